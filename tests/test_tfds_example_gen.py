"""The TFDS path needs internet to download; its conversion is tested here on real pixels."""
import json

import pytest

import numpy as np
import tensorflow as tf

from graft.components.tfds_example_gen.executor import to_example
from graft.pipeline import config, dag
from graft.trainer.options import OPTIONS_KEY, TrainerOptions


def test_tfds_elements_become_graft_examples():
    img = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3)
    ex = to_example(7, img, "tulips", "train")
    f = ex.features.feature
    assert f["label"].bytes_list.value[0] == b"tulips"
    assert f["image_id"].bytes_list.value[0] == b"train/7"
    decoded = tf.io.decode_png(f["image_bytes"].bytes_list.value[0]).numpy()
    np.testing.assert_array_equal(decoded, img)
    gray = to_example(0, img[..., :1], "x", "test").features.feature["image_bytes"]
    assert tf.io.decode_png(gray.bytes_list.value[0]).shape == (12, 10, 1)


def test_tfds_config_builds_a_pipeline(tmp_path):
    cfg = config.load(None, {"data": {"format": "tfds", "tfds_name": "tf_flowers"},
                             "train": {"backbone": "https://tfhub.dev/x/1"},
                             "pipeline": {"root": str(tmp_path)}})
    p = dag.create_pipeline(cfg)
    assert p.components[0].id == "TfdsExampleGen"
    trainer = next(c for c in p.components if c.id == "Trainer")
    custom = json.loads(trainer.exec_properties["custom_config"])
    # The trainer's options travel whole and come back as the same object.
    assert TrainerOptions.from_json(custom[OPTIONS_KEY]) == cfg.train
    assert cfg.model_name == "tf_flowers"


def test_a_name_tfds_cannot_parse_is_refused_before_the_pipeline_runs():
    # It used to stop TfdsExampleGen with TFDS's traceback, after the pipeline had started.
    for bad in ("../../etc", "a b", "flowers;rm"):
        with pytest.raises(config.ConfigError, match="not a TFDS dataset name"):
            config.load(None, {"data": {"format": "tfds", "tfds_name": bad}})
    assert config.load(None, {"data": {"format": "tfds", "tfds_name": "tf_flowers:3.*.*"}})


def test_embedding_gen_is_recomputed_when_the_decoding_changes(tmp_path, monkeypatch):
    """TFX caches a component on its inputs and properties, not on its code: the decoding's
    version is in EmbeddingGen's properties, so an upgraded decoding is never served the
    vectors of the old one."""
    from graft.backbones import modality
    cfg = config.load(None, {"data": {"format": "tfds", "tfds_name": "tf_flowers"},
                             "train": {"backbone": "https://tfhub.dev/x/1"},
                             "pipeline": {"root": str(tmp_path)}})

    def views():
        p = dag.create_pipeline(cfg)
        return json.loads(next(c for c in p.components
                               if c.id == "EmbeddingGen").exec_properties["views"])
    before = views()
    assert before[0]["decoding"] == modality.IMAGE.version()
    monkeypatch.setattr(modality.Modality, "version", lambda self: "another decoding")
    assert views()[0]["decoding"] == "another decoding" and views() != before
