"""The trainer's options: one typed object, owned here, passed whole.

The pipeline's ``[train]`` config section IS this dataclass (pipeline/config.py
reads graft.toml into it), the DAG hands it to the TFX Trainer as its custom
config, and ``run_fn`` reads it back - no hand-copied dict, no string keys.
No TensorFlow here: the config loader imports it.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Dict, List

from graft.contract import MAX_IMAGE_PIXELS

# The key under which the TFX Trainer's custom_config carries these options.
OPTIONS_KEY = "options"
FINE_TUNE_KEEP = ("val_loss", "val_accuracy")  # how phase 2 picks the epoch it keeps
# Phase 1's kinds of linear head: logistic regression (C by cross-validation) and linear
# discriminant analysis with Ledoit-Wolf shrinkage (nothing to choose).
HEAD_KINDS = ("logistic", "lda")


class FineTune(str, enum.Enum):
    """Phase 2 (unfreeze the top blocks): always, never, or from a data size on."""
    AUTO = "auto"   # on with >= fine_tune_min_images training images
    ON = "on"
    OFF = "off"


class Combine(str, enum.Enum):
    """How several views' features make one prediction (views(): backbones x input sizes)."""
    AUTO = "auto"         # whichever of the two cross-validates better on the training images
    CONCAT = "concat"     # one linear head on the concatenated features
    AVERAGE = "average"   # one head per view, their probabilities averaged


@dataclasses.dataclass(frozen=True)
class View:
    """One frozen feature extractor: a backbone at one input size."""
    backbone: str
    image_size: int

    @property
    def name(self) -> str:
        return f"{self.backbone}@{self.image_size}" if self.image_size else self.backbone


def split_size(handle: str):
    """"efficientnet_lite1@240" -> ("efficientnet_lite1", 240); no "@PX" -> (handle, 0)."""
    name, sep, size = handle.rpartition("@")
    if sep and name and size.isdigit():
        return name, int(size)
    return handle, 0


MAX_BATCH_SIZE = 4096


@dataclasses.dataclass
class TrainerOptions:
    # A registered name, TF-Hub URL or SavedModel dir; several, comma-separated (a list in
    # graft.toml), make an ensemble: every backbone's features, combined per `combine`.
    backbone: str = "efficientnet_lite0"
    image_size: int = 160
    # Multi-scale: more input sizes at which every backbone also runs (e.g. [224]); the
    # features of all sizes are combined like an ensemble's.
    multi_scale: List[int] = dataclasses.field(default_factory=list)
    combine: Combine = Combine.AUTO
    # Domain adaptation (AdaBN): re-estimate the frozen backbone's BatchNorm statistics on
    # the training images (plus [data] unlabeled) before its features are computed.
    adapt_batchnorm: bool = False
    # Also train a small CNN from scratch on the same split, to show what transfer gains.
    compare_scratch: bool = False
    batch_size: int = 32
    # Phase 1's head: "logistic", "lda", or both ("logistic,lda"; a list in graft.toml):
    # with several kinds, one of each is fit and their probabilities averaged.
    head: str = "logistic"
    # phase 1: logistic-regression head; L2 strength C picked by k-fold cross-validation
    head_c_grid: List[float] = dataclasses.field(default_factory=lambda: [
        0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    head_cv_folds: int = 5
    # Above this many training images C is chosen on a stratified subsample of this size,
    # then the head is fit once on all of them (0 = always cross-validate on all).
    head_cv_max_rows: int = 10000
    dropout: float = 0.2           # on the features, while phase 2 trains the head
    val_percent: int = 10          # of the train split: phase 2 picks its best epoch on it
    fine_tune: FineTune = FineTune.AUTO
    # auto = off below this many training images: there the validation slice is too small
    # to pick a better epoch reliably (the benchmark behind it: README, bench/results/).
    fine_tune_min_images: int = 2000
    fine_tune_blocks: int = 2      # top k blocks (plus the head conv) unfrozen in phase 2
    fine_tune_learning_rate: float = 1e-4
    fine_tune_epochs: int = 5
    # Which epoch phase 2 keeps, judged on the validation slice: "val_loss" (the lowest,
    # if below phase 1's) or "val_accuracy" (the highest - ties: the lower loss - if above
    # phase 1's: the metric the Evaluator blesses on).
    fine_tune_keep: str = "val_loss"
    augment: bool = True           # random flips and crops in phase 2
    seed: int = 0
    # The exported model refuses (HTTP 400 / INVALID_ARGUMENT) an image whose header
    # declares more pixels than this, before decoding it: serving memory stays bounded.
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # What the model takes in: set by the pipeline from the data's format (images or text),
    # not by hand; backbones/modality.py says what each means.
    modality: str = "image"

    @property
    def heads(self) -> List[str]:
        """Phase 1's kinds of head, in the order given."""
        return [h.strip() for h in self.head.split(",") if h.strip()]

    @property
    def backbones(self) -> List[str]:
        """The backbone handles (without any @PX input size)."""
        return [split_size(b.strip())[0] for b in self.backbone.split(",") if b.strip()]

    def views(self) -> List[View]:
        """Every (backbone, input size) whose features the head reads, in a fixed order:
        the features are concatenated in this order."""
        if self.modality != "image":
            return [View(b, 0) for b in self.backbones]
        out = []
        for b in (x.strip() for x in self.backbone.split(",") if x.strip()):
            name, size = split_size(b)
            sizes = [size or self.image_size] + [s for s in self.multi_scale
                                                 if s != (size or self.image_size)]
            out += [View(name, s) for s in sizes]
        return out

    def problems(self) -> List[str]:
        """What is wrong with these options, as '<key> must ...' sentences."""
        out = []
        if not self.backbones:
            out.append("backbone must name at least one backbone")
        elif len(set(v.name for v in self.views())) != len(self.views()):
            out.append("backbone lists the same backbone at the same size twice")
        for b in self.backbone.split(","):
            size = split_size(b.strip())[1]
            if size and not 32 <= size <= 1024:
                out.append(f"backbone {b.strip()}: the input size must be between 32 and 1024")
        if not isinstance(self.multi_scale, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 32 <= x <= 1024
                for x in self.multi_scale):
            out.append("multi_scale must be a list of input sizes between 32 and 1024, "
                       "e.g. [224]")
        elif self.modality == "text" and self.multi_scale:
            out.append("multi_scale is for images (text has no input size)")
        several = len(self.views()) > 1
        kinds = self.heads
        if not kinds or any(k not in HEAD_KINDS for k in kinds) or len(set(kinds)) < len(kinds):
            out.append(f"head must be one or more of {', '.join(HEAD_KINDS)} (each once, "
                       f"comma-separated), not {self.head!r}")
        elif len(kinds) > 1 and self.fine_tune == FineTune.ON:
            out.append("fine_tune = \"on\" needs a single kind of head: several are averaged "
                       "and phase 2 fine-tunes one Dense head (use \"auto\" or \"off\")")
        if several and self.fine_tune == FineTune.ON:
            out.append("fine_tune = \"on\" needs a single backbone at a single size: with "
                       "several views only the head trains (use \"auto\" or \"off\")")
        if self.adapt_batchnorm and self.modality != "image":
            out.append("adapt_batchnorm re-estimates an image backbone's BatchNorm "
                       "statistics; a text encoder has none (LayerNorm)")
        if self.adapt_batchnorm and self.fine_tune == FineTune.ON:
            out.append("adapt_batchnorm and fine_tune = \"on\" do not combine yet: phase 2 "
                       "would fine-tune the unadapted backbone")
        if self.compare_scratch and self.modality != "image":
            out.append("compare_scratch trains a small image CNN; it is for image data")
        grid = self.head_c_grid
        if (not isinstance(grid, list) or not grid or not all(
                isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in grid)):
            out.append("head_c_grid must be a list of positive numbers, e.g. [0.01, 0.1, 1.0]")
        if self.head_cv_folds < 2:
            out.append("head_cv_folds must be at least 2")
        if self.head_cv_max_rows and self.head_cv_max_rows < 10 * self.head_cv_folds:
            out.append("head_cv_max_rows must be 0 (no limit) or at least 10 x head_cv_folds")
        if not 32 <= self.image_size <= 1024:
            out.append("image_size must be between 32 and 1024 pixels")
        if self.max_image_pixels < 1:
            out.append("max_image_pixels must be at least 1")
        if self.batch_size < 1:
            out.append("batch_size must be at least 1")
        if not 1 <= self.val_percent <= 50:
            out.append("val_percent must be between 1 and 50")
        if self.fine_tune_epochs < 0 or self.fine_tune_blocks < 0:
            out.append("fine_tune_epochs and fine_tune_blocks must not be negative")
        if self.fine_tune_min_images < 0:
            out.append("fine_tune_min_images must not be negative")
        if not 0 < self.fine_tune_learning_rate <= 1:
            out.append("fine_tune_learning_rate must be above 0 and at most 1, e.g. 1e-4")
        if not 0 <= self.dropout < 1:
            out.append("dropout must be at least 0 and below 1")
        if not 0 <= self.seed < 2 ** 32:
            out.append("seed must be between 0 and 4294967295 (numpy's range)")
        if self.batch_size > MAX_BATCH_SIZE:
            # phase 2 holds a batch of decoded images in memory at once
            out.append(f"batch_size must be at most {MAX_BATCH_SIZE}")
        if self.fine_tune_keep not in FINE_TUNE_KEEP:
            out.append(f"fine_tune_keep must be one of {', '.join(FINE_TUNE_KEEP)}, "
                       f"not {self.fine_tune_keep!r}")
        if self.modality not in ("image", "text"):
            out.append('modality must be "image" or "text"')
        return out

    def runs_fine_tune(self, training_images: int) -> bool:
        if self.fine_tune_epochs <= 0:
            return False
        if len(self.views()) > 1 or self.adapt_batchnorm or len(self.heads) > 1:
            # phase 2 tunes one backbone, the one phase 1 read unadapted, under one head
            return False
        return self.fine_tune == FineTune.ON or (
            self.fine_tune == FineTune.AUTO and training_images >= self.fine_tune_min_images)

    def to_json(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fine_tune"] = self.fine_tune.value
        d["combine"] = self.combine.value
        d["head_c_grid"] = [float(c) for c in self.head_c_grid]
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "TrainerOptions":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown trainer options {unknown}: the pipeline and the trainer "
                             f"come from different graft versions")
        opts = cls(**d)
        opts.fine_tune = FineTune(opts.fine_tune)
        opts.combine = Combine(opts.combine)
        return opts
