"""AdaBN (Li et al., 2016): re-estimate a frozen backbone's BatchNorm statistics on the
target domain's images; every weight stays as it is.

The module is rebuilt in Keras from a graft import (its provenance names the
architecture) with the module's own values, then run in training mode over the images
in fixed-size batches: each BatchNorm layer normalises with the batch's statistics and
accumulates them with a momentum of seen / (seen + batch), so its moving mean and
variance end as the average over every batch - not an exponential average that would
favour the last ones. The adapted network is saved as a new TF-Hub module.

Only graft-imported backbones can be adapted: a module from an arbitrary TF-Hub handle
is a traced graph whose BatchNorm momentum cannot be set.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Iterable, List

import numpy as np

from graft import files
from graft.backbones.registry import PROVENANCE_FILE, BackboneError, read_provenance

STATISTICS = ("moving_mean", "moving_variance")
VERSION = "adabn-1"   # part of an adapted module's fingerprint: a change re-embeds


def adaptable(path: str) -> bool:
    from graft.backbones import efficientnet_lite
    prov = read_provenance(path) or {}
    return prov.get("architecture") in efficientnet_lite.VARIANTS


def _rebuild(path: str):
    """(features model, logits layer) with the saved module's values, by variable name."""
    import tensorflow as tf

    from graft.backbones import efficientnet_lite
    prov = read_provenance(path) or {}
    variant = prov.get("architecture")
    if variant not in efficientnet_lite.VARIANTS:
        raise BackboneError(
            f"{path}: BatchNorm adaptation needs a graft-imported backbone (one of "
            f"{', '.join(efficientnet_lite.VARIANTS)}); this module's architecture is unknown")
    features, logits = efficientnet_lite.build(variant)
    saved = {v.name: v for v in tf.saved_model.load(path).variables}
    for w in features.weights + logits.weights:
        if w.name not in saved:
            raise BackboneError(f"{path}: the module has no variable {w.name}")
        w.assign(saved[w.name])
    return features, logits, prov


def adapt(path: str, batches: Iterable[np.ndarray], dest: str) -> Dict:
    """Adapts the module at ``path`` on ``batches`` of float images in [0, 1] and saves it
    to ``dest`` (which must not exist; the caller publishes it). Returns what changed:
    {"images", "batches", "variables_changed": [names], "other_variables_changed": []}."""
    from graft.backbones import hub_module
    features, logits, prov = _rebuild(path)
    bn = [layer for layer in features.layers
          if layer.__class__.__name__ == "BatchNormalization"]
    before = {w.name: w.numpy().copy() for w in features.weights + logits.weights}
    seen = 0
    n_batches = 0
    for x in batches:
        n = len(x)
        for layer in bn:
            layer.momentum = seen / (seen + n)   # cumulative average over all images
        features(hub_module.scale(np.asarray(x, np.float32)), training=True)
        seen += n
        n_batches += 1
    if not seen:
        raise ValueError("no images to adapt BatchNorm on")
    changed = sorted(w.name for w in features.weights + logits.weights
                     if not np.array_equal(before[w.name], w.numpy()))
    stats = [n for n in changed if n.rsplit("/", 1)[-1].split(":")[0] in STATISTICS]
    hub_module.save(features, logits, dest)
    result = {"images": seen, "batches": n_batches, "batchnorm_layers": len(bn),
              "variables_changed": stats,
              "other_variables_changed": [n for n in changed if n not in stats]}
    # Through TensorFlow's filesystems: dest is inside an artifact, gs:// on Kubeflow.
    files.write(os.path.join(dest, PROVENANCE_FILE), json.dumps(dict(prov, adapted_batchnorm=dict(
        {k: v for k, v in result.items() if k != "variables_changed"},
        method=VERSION, statistics_changed=len(stats), adapted_from=path)), indent=2))
    return result


def changed_variables(original: str, adapted: str) -> List[str]:
    """Names of the variables whose values differ between two saved modules (measured)."""
    import tensorflow as tf
    a = {v.name: v.numpy() for v in tf.saved_model.load(original).variables}
    return sorted(v.name for v in tf.saved_model.load(adapted).variables
                  if v.name in a and not np.array_equal(a[v.name], v.numpy()))
