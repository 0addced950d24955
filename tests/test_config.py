"""Configuration: defaults <- TOML <- flags; mistakes are named."""
import pytest

from graft.pipeline import config, dag


def test_file_then_flags(tmp_path):
    p = tmp_path / "graft.toml"
    p.write_text(config.EXAMPLE_TOML)
    cfg = config.load(str(p), {"train": {"image_size": 96}, "data": {"path": "x/photos"}})
    assert cfg.train.image_size == 96 and cfg.data.path == "x/photos"
    assert cfg.train.fine_tune_blocks == 2 and cfg.model_name == "photos"
    assert cfg.pipeline_name == "graft-photos"


def test_mistakes_are_named(tmp_path):
    with pytest.raises(config.ConfigError, match="unknown setting train.imagesize"):
        config.load(None, {"train": {"imagesize": 3}, "data": {"path": "x"}})
    with pytest.raises(config.ConfigError, match=r"unknown section \[trian\]"):
        config.load(None, {"trian": {}, "data": {"path": "x"}})
    with pytest.raises(config.ConfigError, match="must be a number"):
        config.load(None, {"train": {"image_size": "big"}, "data": {"path": "x"}})
    with pytest.raises(config.ConfigError, match="--data"):
        config.load(None, {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\npath=1")
    with pytest.raises(config.ConfigError, match="bad.toml"):
        config.load(str(bad))


def test_majority_baseline_raises_the_floor():
    cfg = config.load(None, {"data": {"path": "x"}})
    assert dag.effective_floor(cfg, None) == (0.5, "configured floor")
    floor, why = dag.effective_floor(cfg, 0.6)
    assert floor == pytest.approx(0.65) and "majority-class baseline 0.600" in why
    assert dag.effective_floor(cfg, 0.2)[0] == 0.5
