"""The offline text backbone: all-MiniLM-L6-v2 imported from its PyPI wheel into a TF-Hub
SavedModel that takes raw strings, checked against the reference implementation's output
(tests/fixtures/minilm_reference.json, made by sentence-transformers on PyTorch with the
same model files: tests/fixtures/make_minilm_reference.py)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from graft import backbones

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.json")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def module(text_backbone):
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops before loading)
    return tf.saved_model.load(text_backbone)


def test_import_records_a_text_module(text_backbone):
    prov = backbones.read_provenance(text_backbone)
    assert prov["modality"] == "text" and prov["feature_dim"] == 5 * 384
    assert prov["max_seq_length"] == 256
    assert 22_000_000 < prov["num_parameters"] < 23_000_000
    assert prov["blocks"] == [f"layer_{i}" for i in range(6)]
    # A second import of the same weights is a no-op.
    logs = []
    assert backbones.import_backbone("minilm_l6", dest=text_backbone, log=logs.append) == \
        text_backbone
    assert logs == [f"minilm_l6: already imported at {text_backbone}"]


def test_tokenisation_inside_the_graph_matches_the_reference_tokenizer(module, reference):
    out = module.signatures["tokenize"](texts=tf.constant(reference["sentences"]))
    ids, mask = out["input_ids"].numpy(), out["attention_mask"].numpy()
    for i, expected in enumerate(reference["token_ids"]):
        assert ids[i][:mask[i].sum()].tolist() == expected, reference["sentences"][i]
    assert mask.sum(axis=1).max() == reference["max_seq_length"]  # the long one is truncated


def test_embeddings_match_sentence_transformers(module, reference):
    got = module.signatures["sentence_embedding"](
        texts=tf.constant(reference["sentences"]))["sentence_embedding"].numpy()
    ref = np.array(reference["embeddings"], np.float32)
    assert got.shape == ref.shape == (len(reference["sentences"]), 384)
    cosine = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= 0.999, dict(zip(reference["sentences"], cosine.round(5)))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_the_feature_vector_is_multi_level_with_the_reference_embedding_last(module,
                                                                             reference):
    features = module.signatures["serving_default"](
        texts=tf.constant(reference["sentences"]))["feature_vector"].numpy()
    ref = np.array(reference["embeddings"], np.float32)
    assert features.shape == (len(reference["sentences"]), 5 * 384)
    np.testing.assert_allclose(features[:, -384:], ref, atol=2e-3)
    levels = features.reshape(len(ref), 5, 384)
    # Each level is its own L2-normalised mean, and the levels differ from one another.
    np.testing.assert_allclose(np.linalg.norm(levels, axis=2), 1.0, rtol=1e-5)
    assert np.abs(levels[:, 0] - levels[:, -1]).max() > 0.1


def test_paraphrases_are_closer_than_unrelated_sentences(module, reference):
    texts = reference["sentences"][:8]
    e = module.signatures["sentence_embedding"](
        texts=tf.constant(texts))["sentence_embedding"].numpy()
    sim = e @ e.T
    for a, b in reference["paraphrase_pairs"]:
        others = [i for i in range(8) if i not in (a, b)]
        assert sim[a, b] > max(sim[a, i] for i in others), (texts[a], texts[b])
        assert sim[a, b] > 0.5


def test_hub_keras_layer_takes_raw_strings(text_backbone, module, reference):
    import tensorflow_hub as hub
    layer = hub.KerasLayer(text_backbone, trainable=False)
    out = layer(tf.constant(reference["sentences"][:2])).numpy()
    assert out.shape == (2, 5 * 384)
    np.testing.assert_allclose(out[:, -384:], np.array(reference["embeddings"][:2]), atol=1e-4)


def test_a_broken_weights_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "model.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(backbones.BackboneError, match="model.zip"):
        backbones.import_backbone("minilm_l6", dest=str(tmp_path / "out"), weights_path=str(junk))
    assert not (tmp_path / "out").exists()
