"""graft: transfer learning as a production pipeline (TFX -> TF Serving).

This package file is the ONE place where process-wide settings that must hold
before TensorFlow is imported are made. Every graft module lives in a
sub-package of ``graft`` (``graft.pipeline``, ``graft.trainer``, ...), so
Python runs this file first in every process that touches graft code: the
CLI, the TFX trainer module, Beam workers that unpickle our functions, the
server and the tests.
"""
import os

# TF 2.16 maps tf.keras to Keras 3; tensorflow_hub.KerasLayer only works with
# Keras 2 (the tf-keras package). Must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up messages (CUDA plugin registration on CPU-only
# machines) hide our own output; Python-level TF errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
