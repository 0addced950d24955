"""What training did, as typed records: written by the trainer as
training_report.json beside the model, read back by the run summary (and, later,
the run report). No TensorFlow here.

Which backbone variables changed in each phase is measured (values compared
before and after), not assumed, so tests can prove the freeze.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional

from graft import files


# Phase 1's kinds of head (options.HEAD_KINDS), as the reports name them.
HEAD_NAMES = {"logistic": "logistic regression",
              "lda": "linear discriminant analysis (Ledoit-Wolf shrinkage)"}


@dataclasses.dataclass
class Phase1Report:
    """The linear head on frozen features."""
    head: str = "logistic regression (L-BFGS) on standardised features"
    heads: List[str] = dataclasses.field(default_factory=lambda: ["logistic"])  # kinds fit
    c: float = 0.0                       # the L2 strength used
    cv_folds: int = 0                    # 0: too few images per class to cross-validate
    cv_accuracy: Optional[float] = None  # mean held-out-fold accuracy at that C
    cv_rows: int = 0                     # images C was chosen on (a subsample of big sets)
    cv_curve: List[List[float]] = dataclasses.field(default_factory=list)  # [[C, CV accuracy]]
    converged: bool = True
    train_accuracy: float = 0.0
    fit_images: int = 0
    backbone_variables_changed: List[str] = dataclasses.field(default_factory=list)
    val_loss: Optional[float] = None     # on phase 2's validation slice, when phase 2 ran
    val_accuracy: Optional[float] = None
    # Several views (an ensemble, multi-scale): each view as {"view", "dim", "c",
    # "cv_accuracy"}, how they were combined and each way's CV accuracy.
    views: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    combine: str = ""                    # "concat" | "average" ("" for one view)
    combine_cv: Dict[str, Optional[float]] = dataclasses.field(default_factory=dict)
    # AdaBN: per view, the images its BatchNorm statistics were re-estimated on and the
    # variables that changed against the unadapted module (measured).
    adaptation: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Phase2Report:
    """Fine-tuning the top blocks; ``ran`` False when it was off."""
    ran: bool = False
    epochs: int = 0
    trainable_variables: List[str] = dataclasses.field(default_factory=list)
    best_epoch: int = 0                  # 1-based; 0 when no epoch beat phase 1
    best_val_loss: Optional[float] = None
    best_val_accuracy: Optional[float] = None
    kept: bool = False                   # False: phase 1's head (refit on everything) won
    backbone_variables_changed: List[str] = dataclasses.field(default_factory=list)
    # One row per epoch: {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}.
    history: List[Dict[str, float]] = dataclasses.field(default_factory=list)
    tensorboard_dir: str = ""            # TensorBoard logs of the fine-tuning (model run dir)


@dataclasses.dataclass
class ScratchReport:
    """--compare-scratch: a small CNN trained from scratch on the same training images,
    scored on the same held-out images as the transfer model."""
    ran: bool = False
    image_size: int = 0
    epochs: int = 0
    parameters: int = 0
    held_out_images: int = 0
    held_out_accuracy: Optional[float] = None
    seconds: float = 0.0


@dataclasses.dataclass
class TrainingReport:
    classes: List[str]
    train_images: int                    # images the final head was fit on
    validation_images: int               # phase 2's validation slice (0 without phase 2)
    phase1: Phase1Report = dataclasses.field(default_factory=Phase1Report)
    phase2: Phase2Report = dataclasses.field(default_factory=Phase2Report)
    class_counts: Dict[str, int] = dataclasses.field(default_factory=dict)  # training images
    scratch: ScratchReport = dataclasses.field(default_factory=ScratchReport)

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: str) -> None:
        files.write(path, json.dumps(self.to_json(), indent=2))

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "TrainingReport":
        def known(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in names})
        return cls(classes=list(d.get("classes", [])), train_images=d.get("train_images", 0),
                   validation_images=d.get("validation_images", 0),
                   class_counts=dict(d.get("class_counts") or {}),
                   phase1=known(Phase1Report, d.get("phase1")),
                   phase2=known(Phase2Report, d.get("phase2")),
                   scratch=known(ScratchReport, d.get("scratch")))

    @classmethod
    def read(cls, path: str) -> "TrainingReport":
        return cls.from_json(json.loads(files.read_text(path)))

    def describe(self, noun: str = "images") -> str:
        """One line for the run summary."""
        p1, p2 = self.phase1, self.phase2
        sub = (f" on a {p1.cv_rows}-{noun[:-1]} subsample"
               if p1.cv_rows and p1.cv_rows < p1.fit_images else "")
        kinds = p1.heads or ["logistic"]
        if kinds != ["logistic"]:  # lda, or several kinds averaged: no single C to show
            cv = (f"{' + '.join(kinds)}, {p1.cv_folds}-fold CV{sub} acc "
                  f"{p1.cv_accuracy or 0:.3f}" if p1.cv_folds and p1.cv_accuracy is not None
                  else f"{' + '.join(kinds)}, too few images to cross-validate")
        else:
            cv = (f"C={p1.c:g} by {p1.cv_folds}-fold CV{sub}, CV acc {p1.cv_accuracy or 0:.3f}"
                  if p1.cv_folds else f"C={p1.c:g}, too few images to cross-validate")
        if p1.combine == "average":
            n_views = len({v.get("view") for v in p1.views})
            each = "a head" if len(kinds) == 1 else " + ".join(kinds)
            cv = (f"{n_views} views, {each} each ("
                  + ", ".join(f"C {v['c']:g}" if v.get("head", "logistic") == "logistic"
                              else v.get("head", "") for v in p1.views)
                  + "), probabilities averaged")
        if p1.combine:
            ways = ", ".join(f"{k} {v:.3f}" for k, v in sorted(p1.combine_cv.items())
                             if v is not None and v == v)
            cv += f"; {p1.combine} chosen" + (f" (CV acc {ways})" if ways else "")
        if p1.adaptation:
            n = max(a.get("images", 0) for a in p1.adaptation)
            cv += f"; BatchNorm statistics adapted on {n} {noun}"
        if not p2.ran:
            ft = "off"
        elif p2.kept:
            ft = f"{p2.epochs} epochs, best val acc {p2.best_val_accuracy or 0:.3f}, kept"
        else:
            ft = f"{p2.epochs} epochs, dropped: no epoch beat phase 1 on validation loss"
        return (f"training: phase 1 (linear head on {p1.fit_images} {noun}, {cv}); "
                f"phase 2 (fine-tune) {ft}")
