"""graft.trainer: backbones (handles, offline import), the Keras model, input data and export."""
import glob
import hashlib
import os


def source_fingerprint() -> str:
    """sha256 (16 hex) of this package's sources.

    The TFX Trainer runs graft.trainer.task.run_fn by import path, which TFX does
    not fingerprint (it does for a module_file); the pipeline puts this in the
    Trainer's configuration so changed training code - an upgraded graft - is
    never served from cache when data and config are unchanged."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py"))):
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.hexdigest()[:16]
