"""Trainer pieces that need no pipeline: top-block selection, in-graph decoding, versions."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from graft.components.versioned_pusher import versions
from graft.backbones import image_input
from graft.trainer import model


def test_select_top_blocks():
    names = ["stem_conv/kernel:0"] + [f"block{i:02d}_dw_conv/depthwise_kernel:0"
                                      for i in range(16)] + ["head_conv/kernel:0"]
    assert model.select_top_blocks(names, 2) == [
        "block14_dw_conv/depthwise_kernel:0", "block15_dw_conv/depthwise_kernel:0",
        "head_conv/kernel:0"]
    assert model.select_top_blocks(names, 0) == ["head_conv/kernel:0"]
    other = [f"layer{i}/w:0" for i in range(32)]
    assert model.select_top_blocks(other, 4) == other[-8:]
    # A text encoder (graft's MiniLM): its top k transformer layers, never the embeddings.
    text = ["embeddings_word/embeddings:0", "embeddings_norm/gamma:0"] + [
        f"layer_{i}_{part}" for i in range(6) for part in ("query/kernel:0", "output/bias:0")]
    assert model.select_top_blocks(text, 2) == [
        "layer_4_query/kernel:0", "layer_4_output/bias:0",
        "layer_5_query/kernel:0", "layer_5_output/bias:0"]
    assert model.select_top_blocks(text, 0) == []


def _png(mode, size, color):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return tf.constant(buf.getvalue())


def test_decode_gray_transparent_and_aspect():
    gray = image_input.decode_one(_png("L", (10, 10), 0), 8).numpy()
    assert gray.shape == (8, 8, 3) and gray.max() == 0.0
    clear = image_input.decode_one(_png("RGBA", (10, 10), (255, 0, 0, 0)), 8).numpy()
    np.testing.assert_allclose(clear, 1.0, atol=1e-6)  # fully transparent red -> white
    wide = image_input.decode_one(_png("RGB", (40, 10), (0, 0, 0)), 16).numpy()
    assert wide[0, 8].tolist() == [1.0, 1.0, 1.0]  # padded with white above
    assert wide[8, 8].tolist() == [0.0, 0.0, 0.0]  # the image in the middle


def test_an_extreme_aspect_ratio_keeps_a_one_pixel_strip():
    """A 20000 x 2 banner scales to under half a pixel high at 96 px: it used to fail the
    resize (and stop EmbeddingGen); it is a one-pixel strip of its colour on white."""
    for size, expect_row in (((20000, 2), 47), ((2, 20000), None)):
        img = image_input.decode_one(_png("RGB", size, (0, 0, 0)), 96).numpy()
        assert img.shape == (96, 96, 3)
        dark = np.argwhere(img.max(axis=-1) < 0.5)
        if expect_row:  # one row across, in the middle ((96 - 1) // 2)
            assert set(dark[:, 0]) == {expect_row} and len(dark) == 96
        else:           # one column down
            assert set(dark[:, 1]) == {47} and len(dark) == 96


def test_versions_are_monotonic_atomic_and_pruned(tmp_path):
    src = tmp_path / "export"
    src.mkdir()
    (src / "saved_model.pb").write_bytes(b"pb")
    base = tmp_path / "serving" / "m"
    for expected in (1, 2, 3):
        assert versions.publish(str(src), str(base), {}) == expected
    assert versions.prune(str(base), 2) == [1]
    assert versions.list_versions(str(base)) == [2, 3]
    import shutil
    shutil.rmtree(base / "3")
    shutil.rmtree(base / "2")
    assert versions.publish(str(src), str(base), {}) == 4  # never goes back
    with pytest.raises(ValueError, match="no saved_model.pb"):
        versions.publish(str(tmp_path), str(base), {})
    assert not [d for d in (base).iterdir() if d.name.startswith(".tmp")]


def test_a_model_already_pushed_is_found_by_its_artifact_id(tmp_path):
    import json
    base = tmp_path / "m"
    src = tmp_path / "export"
    src.mkdir()
    (src / "saved_model.pb").write_bytes(b"pb")
    versions.publish(str(src), str(base), {"model_artifact_id": 41})
    versions.publish(str(src), str(base), {"model_artifact_id": 42})
    assert versions.version_of_model(str(base), 42) == 2
    assert versions.version_of_model(str(base), 41) == 1
    assert versions.version_of_model(str(base), 7) is None
    assert json.load(open(base / "2" / "assets.extra" / "graft_provenance.json"))["version"] == 2


def test_a_push_killed_mid_copy_leaves_a_temp_dir_the_next_push_removes(tmp_path):
    import subprocess
    import sys
    base = tmp_path / "m"
    base.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = base / f".tmp-1-{dead}-abc123"
    (stale / "variables").mkdir(parents=True)
    live = base / f".tmp-9-{os.getpid()}-def456"  # a push still running: left alone
    live.mkdir()
    src = tmp_path / "export"
    src.mkdir()
    (src / "saved_model.pb").write_bytes(b"pb")
    assert versions.publish(str(src), str(base), {}) == 1
    assert not stale.exists() and live.exists()
    assert (base / "1" / "saved_model.pb").exists()


def test_only_ascii_digit_directories_are_versions(tmp_path):
    for name in ("3", "0007", "²", "12a", ".tmp-4-1-x"):
        (tmp_path / name).mkdir()
    assert versions.list_versions(str(tmp_path)) == [3, 7]


def test_classify_runs_in_chunks_and_matches_the_served_scores(tmp_path):
    """The Classify signature (TFMA's) runs the model CLASSIFY_CHUNK examples at a time:
    more than two chunks, a partial last chunk and no examples at all give the served
    signature's scores, row for row."""
    import tf_keras
    from graft import contract
    from graft.trainer import export
    tiny = tf_keras.Sequential([tf_keras.layers.GlobalAveragePooling2D(input_shape=(32, 32, 3)),
                                tf_keras.layers.Dense(3)])
    export.export(tiny, ["r", "g", "b"], 32, str(tmp_path / "m"), {"backbone": "tiny"})
    m = tf.saved_model.load(str(tmp_path / "m"))

    def png(i):
        b = io.BytesIO()
        Image.new("RGB", (9, 7), (i % 256, (37 * i) % 256, 80)).save(b, "PNG")
        return b.getvalue()
    n = 2 * export.CLASSIFY_CHUNK + 22
    images = [png(i) for i in range(n)]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        contract.FEATURE_IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[x]))
    })).SerializeToString() for x in images]
    got = m.signatures[contract.CLASSIFY_SIGNATURE](inputs=tf.constant(examples))
    want = m.signatures[contract.SERVING_SIGNATURE](image_bytes=tf.constant(images))
    assert got["scores"].shape == (n, 3) and got["classes"].shape == (n, 3)
    assert len(set(np.round(want["scores"].numpy()[:, 0], 4))) > 10  # the rows differ
    np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), rtol=1e-6)
    empty = m.signatures[contract.CLASSIFY_SIGNATURE](inputs=tf.constant([], tf.string))
    assert empty["scores"].shape == (0, 3)


class _Weights:
    """A stand-in for the Keras model _BestWeights reads: its weights are the epoch."""

    def __init__(self):
        self.epoch = None

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.epoch = weights[0]


def _keep(keep, baseline, epochs):
    """(kept epoch or None, weights after training) for (val_loss, val_accuracy) epochs."""
    from graft.trainer.task import _BestWeights
    best = _BestWeights(baseline_loss=baseline[0], baseline_accuracy=baseline[1], keep=keep)
    best.model = _Weights()
    for i, (loss, acc) in enumerate(epochs):
        best.model.epoch = i
        best.on_epoch_end(i, {"val_loss": loss, "val_accuracy": acc})
    best.model.epoch = len(epochs) - 1
    best.on_train_end()
    return (best.best_epoch if best.weights is not None else None), best.model.epoch


@pytest.mark.parametrize("keep, epochs, kept", [
    # phase 1: loss 0.70, accuracy 0.70
    ("val_loss", [(0.68, 0.69), (0.72, 0.75)], 0),
    ("val_accuracy", [(0.68, 0.69), (0.72, 0.75)], 1),
    ("val_accuracy", [(0.68, 0.70), (0.72, 0.75), (0.71, 0.75), (0.80, 0.74)], 2),
    ("val_loss", [(0.71, 0.80), (0.75, 0.90)], None),
    ("val_accuracy", [(0.60, 0.70), (0.50, 0.69)], None),  # ties with phase 1 do not count
])
def test_phase2_keeps_the_epoch_its_rule_picks_or_none(keep, epochs, kept):
    got, restored = _keep(keep, (0.70, 0.70), epochs)
    assert got == kept
    assert restored == (kept if kept is not None else len(epochs) - 1)


def test_fine_tune_keep_is_checked():
    from graft.trainer.options import TrainerOptions
    assert not TrainerOptions(fine_tune_keep="val_accuracy").problems()
    assert any("fine_tune_keep" in p for p in TrainerOptions(fine_tune_keep="acc").problems())
