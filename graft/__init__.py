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


def _openblas_coretype() -> str:
    """The OpenBLAS kernel family this CPU's features allow ('' to let OpenBLAS decide).

    Why: numpy 1.26's and scipy 1.12's OpenBLAS (0.3.23, 0.3.21) choose their kernels by
    CPU model number and fall back to Prescott (SSE3, no AVX) for an Intel model they do
    not know (OpenBLAS issue 4267, fixed in 0.3.25, which numpy 1.x never ships). On this
    project's Emerald Rapids machines that made the head's cross-validation 1.45x slower
    (7.2 s against 5.0 s on the demo's 1 088 vectors). Chosen by features, as 0.3.25 does."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return ""
    except OSError:  # not Linux: OpenBLAS's own detection
        return ""
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return ""


# Must be set before numpy or scipy load their OpenBLAS; a value the user set wins.
if "OPENBLAS_CORETYPE" not in os.environ:
    _coretype = _openblas_coretype()
    if _coretype:
        os.environ["OPENBLAS_CORETYPE"] = _coretype

__version__ = "0.1.0"
