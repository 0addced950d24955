"""Configuration: defaults <- TOML <- flags; mistakes are named."""
import os
import re

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
    # Each was a Python traceback: a number for a path, a file not in UTF-8, a directory.
    bad.write_text("[data]\npath = 3\n")
    with pytest.raises(config.ConfigError, match="data.path must be text"):
        config.load(str(bad))
    bad.write_bytes(b"\xff\xfe[data]")
    with pytest.raises(config.ConfigError, match="not UTF-8"):
        config.load(str(bad))
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path))
    # A device or a FIFO given as the config was read for ever (graft run --config /dev/zero
    # grew until the kernel killed it); now they are refused unread.
    fifo = tmp_path / "graft.toml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        with pytest.raises(config.ConfigError, match="not a regular file"):
            config.load(path)


def test_toml_values_that_are_not_settings_are_named(tmp_path):
    """TOML has nan and inf: `seed = nan` was a traceback, `batch_size = 2.5` a silent 2,
    `multi_scale = 224` a TypeError; these and values out of a setting's range are now
    refused with the setting named."""
    cases = {"seed = nan": "train.seed must be a finite number",
             "batch_size = inf": "train.batch_size must be a finite number",
             "batch_size = 2.5": "train.batch_size must be a whole number",
             "spans = 1e300": "out of range",
             "multi_scale = 224": "train.multi_scale must be a list",
             "seed = -1": "train.seed must be between 0 and 4294967295",
             "dropout = 1.5": "train.dropout must be at least 0 and below 1",
             "fine_tune_learning_rate = 0": "train.fine_tune_learning_rate must be above 0",
             "fine_tune_min_images = -1": "train.fine_tune_min_images must not be negative",
             "batch_size = 100000": "train.batch_size must be at most 4096",
             'path = "a\\u0000b"': "data.path holds a NUL character",
             'beam_args = [1]': "pipeline.beam_args must be a list of flags",
             'root = ""': "pipeline.root and push.serving_dir must name folders"}
    section = {"spans": "data", "path": "data", "beam_args": "pipeline", "root": "pipeline"}
    for line, message in cases.items():
        key = line.split(" ")[0]
        toml = tmp_path / "graft.toml"
        toml.write_text(f"[data]\npath = \"x\"\n[{section.get(key, 'train')}]\n{line}\n"
                        if section.get(key) != "data" else f"[data]\n{line}\n")
        with pytest.raises(config.ConfigError, match=message):
            config.load(str(toml))


def test_majority_baseline_raises_the_floor():
    cfg = config.load(None, {"data": {"path": "x"}})
    assert dag.effective_floor(cfg, None) == (0.5, "configured floor")
    floor, why = dag.effective_floor(cfg, 0.6)
    assert floor == pytest.approx(0.65) and "majority-class baseline 0.600" in why
    assert dag.effective_floor(cfg, 0.2)[0] == 0.5


def test_train_section_is_the_trainers_options_with_fine_tune_as_an_enum():
    from graft.trainer.options import FineTune, TrainerOptions
    cfg = config.load(None, {"data": {"path": "x"}, "train": {"fine_tune": "off"}})
    assert isinstance(cfg.train, TrainerOptions) and cfg.train.fine_tune is FineTune.OFF
    assert TrainerOptions.from_json(cfg.train.to_json()) == cfg.train
    with pytest.raises(config.ConfigError, match="train.fine_tune must be one of auto, on, off"):
        config.load(None, {"data": {"path": "x"}, "train": {"fine_tune": "maybe"}})
    with pytest.raises(config.ConfigError, match="train.head_c_grid must be a list of positive"):
        config.load(None, {"data": {"path": "x"}, "train": {"head_c_grid": [0.1, -1]}})
    with pytest.raises(ValueError, match="different graft versions"):
        TrainerOptions.from_json(dict(cfg.train.to_json(), epochs=3))


def test_fine_tune_auto_switches_on_at_the_threshold():
    from graft.trainer.options import FineTune, TrainerOptions
    auto = TrainerOptions(fine_tune=FineTune.AUTO, fine_tune_min_images=100)
    assert not auto.runs_fine_tune(99) and auto.runs_fine_tune(100)
    assert not TrainerOptions(fine_tune=FineTune.ON, fine_tune_epochs=0).runs_fine_tune(10**6)
    assert TrainerOptions(fine_tune=FineTune.ON).runs_fine_tune(1)


def test_unknown_format_lists_the_registered_ones():
    with pytest.raises(config.ConfigError, match="images, tfrecord, tfds"):
        config.load(None, {"data": {"path": "x", "format": "csv"}})
    with pytest.raises(config.ConfigError, match="needs data.tfds_name"):
        config.load(None, {"data": {"format": "tfds"}})


def test_training_report_round_trips_and_reads_in_words():
    from graft.trainer.report import Phase1Report, Phase2Report, TrainingReport
    r = TrainingReport(classes=["a", "b"], train_images=90, validation_images=10,
                       phase1=Phase1Report(c=0.1, cv_folds=5, cv_accuracy=0.8123, fit_images=90),
                       phase2=Phase2Report(ran=True, epochs=3, kept=False))
    assert TrainingReport.from_json(r.to_json()) == r
    assert r.describe() == ("training: phase 1 (linear head on 90 images, C=0.1 by 5-fold CV, "
                            "CV acc 0.812); phase 2 (fine-tune) 3 epochs, dropped: no epoch "
                            "beat phase 1 on validation loss")


def test_a_text_backbone_on_image_data_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(config.ConfigError, match="minilm_l6 is a text encoder but the data "
                                                 r"\(images\) is image - use an image backbone"):
        config.load(None, {"data": {"path": str(tmp_path)}, "train": {"backbone": "minilm_l6"}})


def test_text_data_picks_the_text_modality_and_backbone(tmp_path):
    cfg = config.load(None, {"data": {"path": str(tmp_path / "t.csv"), "format": "text"}})
    assert cfg.train.modality == "text" and cfg.train.backbone == "minilm_l6"
    # Phase 2 fine-tunes the encoder's top layers, as it does an image backbone's blocks.
    tuned = config.load(None, {"data": {"path": "t.csv", "format": "text"},
                               "train": {"fine_tune": "on"}})
    assert tuned.train.runs_fine_tune(10)


@pytest.mark.parametrize("flag,why", [
    ("--direct_num_workers=-3", "give 1 or more workers"),          # was Beam's IndexError
    ("--direct_num_workers=abc", "invalid int value: 'abc'"),      # was argparse's usage
    ("--direct_running_mode=fast", "invalid choice: 'fast'")])
def test_beam_args_beam_refuses_are_named_before_tfx_starts(flag, why):
    cfg = config.GraftConfig()
    cfg.pipeline.beam_args = [flag]
    for local in (True, False):
        with pytest.raises(config.ConfigError, match="beam_args: .*" + re.escape(why)):
            dag.beam_args(cfg, local=local)


def test_a_local_run_names_graft_s_setup_py_unless_told_where_the_code_comes_from():
    """Without a dependency flag TFX builds (and leaves behind) an sdist of itself in every
    Beam component; a local run from a checkout names graft's setup.py instead."""
    import os
    cfg = config.GraftConfig()
    local = dag.beam_args(cfg, local=True)
    [setup] = [a for a in local if a.startswith("--setup_file=")]
    assert os.path.basename(setup) == "setup.py" and os.path.exists(setup.split("=", 1)[1])
    assert local[:len(cfg.pipeline.beam_args)] == cfg.pipeline.beam_args
    assert dag.beam_args(cfg, local=False) == cfg.pipeline.beam_args  # compiled: as configured
    cfg.pipeline.beam_args = ["--runner=DataflowRunner", "--extra_package=/x/graft.tar.gz"]
    assert dag.beam_args(cfg, local=True) == cfg.pipeline.beam_args
