"""graft.trainer: the TFX Trainer's module - teach a backbone a new task, export it.

Holds the training run (task: load -> features -> head -> fine-tune -> export, as
named steps), its options (options: one dataclass, passed whole) and report
(report: typed, read by the run summary), the linear head (linear_head), the Keras
model around a TF-Hub backbone (model), input data (data), in-graph image decoding
(preprocess), Transform's preprocessing_fn (transform) and the SavedModel export
(export). An embedding step's consumer, a second modality's export signature or an
ensemble head goes here.

May import: graft.contract, graft.backbones (only to resolve a handle). Nothing of
the pipeline, the components, serving or the CLI.
"""
import glob
import hashlib
import os


def source_fingerprint() -> str:
    """sha256 (16 hex) of this package's sources (the backbone importer lives in
    graft.backbones, so editing it does not retrain; a re-imported backbone changes
    the backbone's own fingerprint instead).

    The TFX Trainer runs graft.trainer.task.run_fn by import path, which TFX does
    not fingerprint (it does for a module_file); the pipeline puts this in the
    Trainer's configuration so changed training code - an upgraded graft - is
    never served from cache when data and config are unchanged."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py"))):
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.hexdigest()[:16]
