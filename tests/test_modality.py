"""The modality seam's sample input: what EmbeddingGen warms its backbone up with must
go through the same preparation as real inputs, at the batch shape real batches have."""
import tensorflow as tf

from graft.backbones import modality


def test_the_image_sample_decodes_to_a_full_batch_at_the_backbone_size():
    raw = modality.IMAGE.sample_input()
    batch = modality.IMAGE.prepare(tf.constant([raw] * 4), 96)
    assert batch.shape == (4, 96, 96, 3) and batch.dtype == tf.float32


def test_the_text_sample_is_a_non_empty_string_batch():
    raw = modality.TEXT.sample_input()
    batch = modality.TEXT.prepare(tf.constant([raw] * 4))
    assert raw and batch.shape == (4,) and batch.dtype == tf.string
