"""The trainer's inputs, streamed: EmbeddingGen's vectors (phase 1) and ExampleGen's
examples with Transform's label vocabulary (phase 2 decodes their image bytes batch by
batch, or passes their texts on as strings; no split is ever held in memory as pixels)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from graft import contract
from graft.backbones import image_input
from graft.backbones import modality as modalities


def features(modality: str = "image") -> dict:
    """The parse spec of an example: its raw input, its id and its label (as a string)."""
    m = modalities.of(modality)
    return {m.feature: tf.io.FixedLenFeature([], tf.string),
            m.id_feature: tf.io.FixedLenFeature([], tf.string),
            contract.FEATURE_LABEL: tf.io.FixedLenFeature([], tf.string)}


def _files(patterns: Sequence[str]) -> List[str]:
    if isinstance(patterns, str):
        raise TypeError("expected a list of file patterns, got one string")
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no example files match {list(patterns)}")
    return files


def label_table(class_names: Sequence[str]) -> tf.lookup.StaticHashTable:
    """Class name -> its index in Transform's vocabulary (-1 for a name outside it): the
    lookup of the export's transform signature and of the streamed examples alike."""
    names = tf.constant(list(class_names), tf.string)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        names, tf.range(len(class_names), dtype=tf.int64)), default_value=-1)


def records(patterns: Sequence[str], class_names: Sequence[str], modality: str = "image"
            ) -> tf.data.Dataset:
    """ExampleGen's examples as {raw input, its id, label_id} (images: image_bytes and
    image_id): the label's index in Transform's vocabulary (``class_names``, in its
    order), which was computed over these same examples, so every label is in it."""
    table = label_table(class_names)
    spec = features(modality)

    def parse(record):
        e = tf.io.parse_single_example(record, spec)
        e[contract.FEATURE_LABEL_ID] = table.lookup(e.pop(contract.FEATURE_LABEL))
        return e
    ds = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP")
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def embeddings(patterns: Sequence[str], batch: int = 1024
               ) -> Tuple[np.ndarray, np.ndarray, List[bytes]]:
    """EmbeddingGen's records -> (features float32 [N, dim], label ids [N], image ids).

    The one place phase 1's data is held in memory: N x dim float32 (2 704-d: 10.8 kB
    an image), read in batches of ``batch`` and joined once."""
    spec = {contract.FEATURE_EMBEDDING: tf.io.FixedLenFeature([], tf.string),
            contract.FEATURE_LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
            contract.FEATURE_ID: tf.io.FixedLenFeature([], tf.string)}
    def parse(records):
        ex = tf.io.parse_example(records, spec)
        # EmbeddingGen's vectors are little-endian float32 bytes: one [batch, dim] decode.
        ex[contract.FEATURE_EMBEDDING] = tf.io.decode_raw(ex[contract.FEATURE_EMBEDDING],
                                                          tf.float32, little_endian=True)
        return ex

    files = _files(patterns)
    ds = (tf.data.TFRecordDataset(files, compression_type=contract.tfrecord_compression(files))
          .batch(batch).map(parse, num_parallel_calls=tf.data.AUTOTUNE))
    feats, labels, ids = [], [], []
    for b in ds.as_numpy_iterator():
        feats.append(b[contract.FEATURE_EMBEDDING])
        labels.append(b[contract.FEATURE_LABEL_ID])
        ids.extend(b[contract.FEATURE_ID])
    return _join(feats), np.concatenate(labels), ids


def _join(batches: List[np.ndarray]) -> np.ndarray:
    """np.concatenate that frees each batch as it is copied: the peak is the matrix plus
    one batch, not two matrices (np.empty's pages become resident only when written)."""
    if not batches:
        return np.zeros((0, 0), np.float32)
    out = np.empty((sum(len(b) for b in batches), batches[0].shape[1]), batches[0].dtype)
    row = 0
    batches.reverse()
    while batches:
        b = batches.pop()
        out[row:row + len(b)] = b
        row += len(b)
        del b
    return out


def view_dims(patterns: Sequence[str]) -> List[int]:
    """Each view's length in EmbeddingGen's vectors (one view: [dim]), from the first record."""
    files = _files(patterns)
    for r in tf.data.TFRecordDataset(
            files, compression_type=contract.tfrecord_compression(files)).take(1):
        f = tf.train.Example.FromString(r.numpy()).features.feature
        dims = list(f[contract.FEATURE_VIEW_DIMS].int64_list.value)
        return dims or [len(f[contract.FEATURE_EMBEDDING].bytes_list.value[0]) // 4]
    return []


def in_validation(image_id: tf.Tensor, val_percent: int) -> tf.Tensor:
    """Stable hash split of the train split into fit / validation (phase 2's best epoch)."""
    return tf.strings.to_hash_bucket_fast(image_id, 100) < val_percent


def input_stream(patterns: Sequence[str], class_names: Sequence[str],
                 validation_ids: Sequence[bytes], validation: bool, modality: str = "image",
                 image_size: int = 0) -> tf.data.Dataset:
    """(backbone input, label id) pairs of the examples in (or out of) the validation ids:
    images decoded to [size, size, 3] as they stream, texts passed on as strings (the
    text backbone tokenises them itself)."""
    m = modalities.of(modality)
    ids = tf.constant(list(validation_ids) or [b""], tf.string)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(ids, tf.ones_like(ids, tf.int64)), default_value=0)
    want = 1 if validation else 0
    ds = records(patterns, class_names, modality).filter(
        lambda e: tf.equal(table.lookup(e[m.id_feature]), want))
    if m.name == "image":
        return ds.map(lambda e: (image_input.decode_one(e[m.feature], image_size),
                                 e[contract.FEATURE_LABEL_ID]),
                      num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda e: (e[m.feature], e[contract.FEATURE_LABEL_ID]))


def first_inputs(patterns: Sequence[str], n: int, feature: str = contract.FEATURE_IMAGE
                 ) -> List[bytes]:
    """The raw inputs (image bytes, or texts) of the first n examples: the export's
    warmup requests."""
    spec = {feature: tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP").take(n)
    return [tf.io.parse_single_example(r, spec)[feature].numpy() for r in ds]
