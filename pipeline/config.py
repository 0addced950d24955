"""One typed configuration for a pipeline run: TOML file, then flag overrides.

Sections mirror the flow of data: [data] -> [train] -> [evaluate] -> [push],
plus [pipeline] for where things live and how they run. Unknown keys are
errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import enum
import math
import os
from typing import Any, Dict, List, Optional

from graft import contract, files
from graft.pipeline import ingest
from graft.trainer.options import TrainerOptions

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10, which TFX 1.16 needs
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration value the user must fix; the message names it."""


@dataclasses.dataclass
class DataConfig:
    path: str = ""                 # image folder DIR/<class>/<file>, or TFRecord dir
    format: str = "images"         # a key of ingest.FORMATS: images | tfrecord | tfds | text
    tfds_name: str = ""            # with format = "tfds", e.g. "tf_flowers" (needs internet)
    eval_percent: int = 30         # held-out share, by a hash of each image's id
    # With span folders (span-N/ or YYYY-MM-DD/ under path): train on the latest this many
    # spans, by span number (dated folders: days); 0 = every span.
    spans: int = 1
    # A folder of unlabelled images from where the model will serve (any layout): with
    # train.adapt_batchnorm, BatchNorm statistics are re-estimated on them too.
    unlabeled: str = ""
    text_column: str = "text"      # format = "text" with a CSV or JSONL file: the columns
    label_column: str = "label"


# The [train] section is the trainer's own options object, passed whole to the Trainer.
TrainConfig = TrainerOptions
DEFAULT_IMAGE_BACKBONE = TrainerOptions.backbone
DEFAULT_TEXT_BACKBONE = "minilm_l6"


@dataclasses.dataclass
class EvaluateConfig:
    min_accuracy: float = 0.5          # absolute floor, overall
    max_regression: float = 0.01       # challenger may trail the champion by at most this
    per_class_max_regression: float = 0.10
    majority_margin: float = 0.05      # must beat majority-class accuracy by this much


@dataclasses.dataclass
class PushConfig:
    serving_dir: str = "serving_models"  # models go to <serving_dir>/<model_name>/<version>
    keep_last: int = 5


@dataclasses.dataclass
class PipelineConfig:
    model_name: str = ""           # default: the data folder's name
    name: str = ""                 # TFX pipeline name; default graft-<model_name>
    root: str = "build/pipeline"   # pipeline root: artifacts + MLMD (SQLite)
    schema: str = ""               # curated schema.pbtxt to validate against (ImportSchemaGen)
    beam_args: List[str] = dataclasses.field(default_factory=lambda: [
        "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    on_busy: str = "wait"          # another run on this root: "wait" for it, or "fail" (exit 3)


@dataclasses.dataclass
class GraftConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = dataclasses.field(default_factory=EvaluateConfig)
    push: PushConfig = dataclasses.field(default_factory=PushConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)

    @property
    def model_name(self) -> str:
        return self.pipeline.model_name or contract.safe_model_name(os.path.basename(
            os.path.normpath(self.data.path or self.data.tfds_name or "model")))

    @property
    def pipeline_name(self) -> str:
        return self.pipeline.name or f"graft-{self.model_name}"

    @property
    def metadata_path(self) -> str:
        """ML Metadata's SQLite file (local runs; Kubeflow brings its own store)."""
        root = self.pipeline.root
        return os.path.join(root if "://" in root else os.path.abspath(root),
                            contract.METADATA_FILE)

    def validate(self) -> "GraftConfig":
        d, e = self.data, self.evaluate
        missing = ingest.problem(d)
        if missing:
            raise ConfigError(missing)
        if d.spans < 0:
            raise ConfigError("data.spans must be 0 (every span) or a positive number")
        if not 1 <= d.eval_percent <= 90:
            raise ConfigError("data.eval_percent must be between 1 and 90")
        # What the model takes in follows from the data's format; the default backbone
        # follows from that, so `graft run --data-format text --data t.csv` just works.
        modality = ingest.FORMATS[d.format].modality
        self.train.modality = modality
        if modality == "text" and self.train.backbone == DEFAULT_IMAGE_BACKBONE:
            self.train.backbone = DEFAULT_TEXT_BACKBONE
        from graft.trainer.options import split_size
        name, size = split_size(self.train.backbone.strip())
        if size and "," not in self.train.backbone:  # one backbone at its own size
            self.train.backbone, self.train.image_size = name, size
        for problem in self.train.problems():
            raise ConfigError(f"train.{problem}")
        from graft.backbones.registry import REGISTRY
        for name in self.train.backbones:
            registered = REGISTRY.get(name)
            if registered is not None and registered.modality != modality:
                raise ConfigError(f"train.backbone {name} is a {registered.modality} "
                                  f"encoder but the data ({d.format}) is {modality} - use "
                                  f"{'an' if modality == 'image' else 'a'} {modality} backbone "
                                  f"(graft backbone list)")
        if d.unlabeled:
            if not self.train.adapt_batchnorm:
                raise ConfigError("data.unlabeled (--unlabeled) is read only to adapt "
                                  "BatchNorm: add train.adapt_batchnorm = true "
                                  "(--adapt-batchnorm)")
            if "://" not in d.unlabeled and not os.path.isdir(d.unlabeled):
                raise ConfigError(f"data.unlabeled {d.unlabeled} is not a folder")
        if not 0 <= e.min_accuracy <= 1:
            raise ConfigError("evaluate.min_accuracy is a fraction between 0 and 1")
        if self.push.keep_last < 1:
            raise ConfigError("push.keep_last must be at least 1")
        if self.pipeline.on_busy not in ("wait", "fail"):
            raise ConfigError('pipeline.on_busy must be "wait" or "fail"')
        if not contract.is_model_name(self.model_name):
            raise ConfigError(f"model name {self.model_name!r}: use letters, digits, - and _")
        if not self.pipeline.root.strip() or not self.push.serving_dir.strip():
            raise ConfigError("pipeline.root and push.serving_dir must name folders")
        if not all(isinstance(a, str) for a in self.pipeline.beam_args):
            raise ConfigError('pipeline.beam_args must be a list of flags in quotes, e.g. '
                              '["--direct_num_workers=2"]')
        if any(ord(c) < 32 for c in self.pipeline_name):
            raise ConfigError(f"pipeline.name {self.pipeline_name!r} holds a control character")
        return self


def config_json(cfg: GraftConfig) -> str:
    """The whole config as canonical JSON (what the run-history fingerprint hashes)."""
    import json

    def plain(v):
        return v.value if isinstance(v, enum.Enum) else v
    d = dataclasses.asdict(cfg)
    d["train"] = cfg.train.to_json()
    d["pipeline"].pop("on_busy", None)  # how to queue is not an input of the model
    return json.dumps(d, sort_keys=True, default=plain)


def _apply(section_obj, values: Dict[str, Any], where: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {where}.{key}; known: {', '.join(fields)}")
        current = getattr(section_obj, key)
        if key in ("backbone", "head") and isinstance(value, list):  # several, as a TOML list
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{key} must be a name or a list of names")
            value = ",".join(value)
        if isinstance(current, enum.Enum):
            try:
                value = type(current)(value)
            except ValueError:
                raise ConfigError(f"{where}.{key} must be one of "
                                  f"{', '.join(m.value for m in type(current))}, not {value!r}"
                                  ) from None
        elif isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key} must be true or false")
        elif isinstance(current, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key} must be text, in quotes: {key} = \"...\"")
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be a number")
            # TOML has nan and inf; int() of them was a traceback, of 2.5 a silent 2
            if not math.isfinite(value):
                raise ConfigError(f"{where}.{key} must be a finite number, not {value}")
            if isinstance(current, int) and value != int(value):
                raise ConfigError(f"{where}.{key} must be a whole number, not {value}")
            if isinstance(current, int) and not -2 ** 63 <= value < 2 ** 63:
                raise ConfigError(f"{where}.{key} is out of range: {value}")
            value = type(current)(value)
        elif isinstance(current, list) and not isinstance(value, list):
            raise ConfigError(f"{where}.{key} must be a list, e.g. {key} = [{value!r}]")
        if any("\0" in v for v in (value if isinstance(value, list) else [value])
               if isinstance(v, str)):  # os calls raise on it, deep in a run
            raise ConfigError(f"{where}.{key} holds a NUL character")
        setattr(section_obj, key, value)


def load(path: Optional[str] = None, overrides: Optional[Dict[str, Dict[str, Any]]] = None,
         validate: bool = True) -> GraftConfig:
    """Defaults <- TOML file <- overrides ({section: {key: value}}, from flags).
    validate=False for commands that only need the config's paths (graft runs)."""
    cfg = GraftConfig()
    layers = []
    if path:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} not found (graft init writes an example)")
        try:
            layers.append((path, tomllib.loads(files.read_config_text(path))))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from e
        except files.UnreadableFile as e:
            raise ConfigError(str(e)) from e
    if overrides:
        layers.append(("flags", overrides))
    for where, doc in layers:
        for section, values in doc.items():
            if not hasattr(cfg, section) or not isinstance(values, dict):
                raise ConfigError(f"{where}: unknown section [{section}]; known: "
                                  f"{', '.join(f.name for f in dataclasses.fields(cfg))}")
            _apply(getattr(cfg, section), values, section)
    return cfg.validate() if validate else cfg


EXAMPLE_TOML = '''# graft pipeline configuration. Every key is optional; flags override it.
# graft run --config graft.toml

[data]
path = "build/data/clipart"      # DIR/<class_name>/<image files>
format = "images"                # images | tfrecord (tf.Examples with image_bytes, label) | tfds
                                 # | text (a .csv / .jsonl file, or DIR/<class>/*.txt)
# text_column = "text"           # with format = "text": the CSV columns / JSONL keys
# label_column = "label"
# tfds_name = "tf_flowers"       # with format = "tfds" (needs internet)
# unlabeled = "photos_from_production"   # unlabelled images for train.adapt_batchnorm
eval_percent = 30                # held out by a hash of each image's path: stable as data grows
spans = 1                        # with span-N/ or YYYY-MM-DD/ folders: train on the latest N (0 = all)

[train]
backbone = "efficientnet_lite0"  # or https://tfhub.dev/..., https://www.kaggle.com/models/..., a dir
image_size = 160
# backbone = ["efficientnet_lite0", "efficientnet_lite2"]   # an ensemble (features of each)
# multi_scale = [224]            # also run the backbone(s) at these sizes, features combined
# combine = "auto"               # several views: "concat" one head, "average" a head each; auto: CV
# adapt_batchnorm = false        # AdaBN: BatchNorm statistics re-estimated on your images
# compare_scratch = false        # also train a small CNN from scratch and print the gain
# head = ["logistic", "lda"]     # phase 1's head: "logistic" (default), "lda" (shrinkage LDA), or both averaged
batch_size = 32
head_c_grid = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]  # phase 1: frozen backbone, linear
head_cv_folds = 5                # head; its L2 strength (C) picked by cross-validation
head_cv_max_rows = 10000         # above this, C is picked on a subsample, then one full fit
dropout = 0.2                    # phase 2 only
fine_tune = "auto"               # phase 2: unfreeze the top blocks; auto = with >= 2000 images
fine_tune_blocks = 2
fine_tune_learning_rate = 0.0001
fine_tune_epochs = 5
fine_tune_keep = "val_loss"      # the epoch phase 2 keeps: lowest val_loss, or best val_accuracy
augment = true
seed = 0
max_image_pixels = 50000000      # served images declaring more are refused (400), undecoded

[evaluate]
min_accuracy = 0.5               # absolute floor
max_regression = 0.01            # vs the model in production (the champion)
per_class_max_regression = 0.10
majority_margin = 0.05           # must beat always-guess-the-commonest-class by this

[push]
serving_dir = "serving_models"   # TF Serving base paths: <serving_dir>/<model_name>/<version>
keep_last = 5

[pipeline]
# model_name = "clipart"         # default: the data folder's name
root = "build/pipeline"          # artifacts and ML Metadata (SQLite)
# schema = "schema.pbtxt"        # a curated schema to validate new data against
on_busy = "wait"                 # another graft run on this root: "wait", or "fail" (exit 3)
'''
