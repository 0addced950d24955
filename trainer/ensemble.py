"""Several views (backbones, or one backbone at several input sizes) -> one head.

EmbeddingGen concatenates the views' vectors; two ways to use them:
- concat: one linear head on the concatenated features (its C by cross-validation, as
  for one view);
- average: one linear head per view (each with its own C), their class probabilities
  averaged - the classic ensemble, which keeps each view's own regularisation.
``combine = "auto"`` picks the better of the two by cross-validated accuracy on the
training images: the same folds for both, each view's C fixed at its own CV choice.

Either way the head is one Keras model on the concatenated features, so the exported
classifier is still images -> backbones -> concat -> head, one SavedModel. The averaged
head outputs log(mean probabilities): softmax of that is the average exactly, so
serving's softmax needs no special case.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from graft.trainer import linear_head
from graft.trainer.options import Combine, TrainerOptions


class AveragedHeads(keras.layers.Layer):
    """One Dense per view on its slice of the features; log of their mean softmax."""

    def __init__(self, dims: Sequence[int], num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.dims, self.num_classes = [int(d) for d in dims], int(num_classes)
        self.heads = [keras.layers.Dense(num_classes, name=f"view{i}_logits")
                      for i in range(len(self.dims))]

    def build(self, input_shape):
        for head, d in zip(self.heads, self.dims):
            head.build((None, d))
        super().build(input_shape)

    def call(self, features):
        parts = tf.split(features, self.dims, axis=-1)
        probs = tf.add_n([tf.nn.softmax(h(p), axis=-1) for h, p in zip(self.heads, parts)])
        # log(0) would be -inf; the smallest normal float32 keeps softmax exact elsewhere.
        return tf.math.log(tf.maximum(probs / len(self.heads), np.finfo(np.float32).tiny))

    def get_config(self):
        return dict(super().get_config(), dims=self.dims, num_classes=self.num_classes)


def build_averaged_head(dims: Sequence[int], num_classes: int,
                        heads: List[linear_head.LinearHead]) -> keras.Model:
    inputs = keras.Input(shape=(sum(dims),), name="features")
    layer = AveragedHeads(dims, num_classes, name="averaged_heads")
    out = layer(inputs)
    for dense, lin in zip(layer.heads, heads):
        dense.set_weights([lin.kernel, lin.bias])
    return keras.Model(inputs, out, name="head")


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def split_views(features: np.ndarray, dims: Sequence[int]) -> List[np.ndarray]:
    edges = np.cumsum(dims)[:-1]
    return np.split(features, edges, axis=1)


def predict(chosen: str, concat: Optional[linear_head.LinearHead],
            per_view: List[linear_head.LinearHead], features: np.ndarray,
            dims: Sequence[int]) -> np.ndarray:
    """Class scores of fit_views' result in numpy (argmax = the exported model's label)."""
    if chosen == "concat":
        return concat.logits(features)
    return sum(softmax(h.logits(p)) for h, p in zip(per_view, split_views(features, dims)))


def averaged_cv_accuracy(parts: List[np.ndarray], labels: np.ndarray, num_classes: int,
                         cs: Sequence[float], folds: int, seed: int) -> float:
    """Mean fold accuracy of the averaged per-view heads, each at its chosen C, on the
    same stratified folds linear_head.train uses."""
    from sklearn.model_selection import StratifiedKFold
    k = int(min(folds, np.unique(labels, return_counts=True)[1].min()))
    if k < 2:
        return float("nan")
    accs = []
    for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            parts[0], labels):
        probs = sum(softmax(linear_head.fit(p[tr], labels[tr], num_classes, c).logits(p[te]))
                    for p, c in zip(parts, cs))
        accs.append(float(np.mean(probs.argmax(1) == labels[te])))
    return float(np.mean(accs))


def fit_views(features: np.ndarray, labels: np.ndarray, num_classes: int,
              dims: Sequence[int], opts: TrainerOptions
              ) -> Tuple[str, linear_head.LinearHead, List[linear_head.LinearHead], dict]:
    """Fits the concatenated head and/or the per-view heads, as ``opts.combine`` asks.

    Returns (chosen combine, concat head or None, per-view heads or [], facts for the
    report: per view its C and CV accuracy, and each way's CV accuracy)."""
    cv = dict(grid=opts.head_c_grid, folds=opts.head_cv_folds, seed=opts.seed,
              cv_max_rows=opts.head_cv_max_rows)
    facts: dict = {"views": [], "cv_accuracy": {}}
    concat = per_view = None
    if opts.combine in (Combine.CONCAT, Combine.AUTO):
        concat = linear_head.train(features, labels, num_classes, cv["grid"], cv["folds"],
                                   cv["seed"], cv_max_rows=cv["cv_max_rows"])
        facts["cv_accuracy"]["concat"] = concat.cv_accuracy
    if opts.combine in (Combine.AVERAGE, Combine.AUTO):
        parts = split_views(features, dims)
        per_view = [linear_head.train(p, labels, num_classes, cv["grid"], cv["folds"],
                                      cv["seed"], cv_max_rows=cv["cv_max_rows"]) for p in parts]
        facts["views"] = [{"dim": int(d), "c": h.c, "cv_accuracy": h.cv_accuracy}
                          for d, h in zip(dims, per_view)]
        rows = opts.head_cv_max_rows
        sub = (linear_head.subsample(labels, rows, opts.seed)
               if rows and len(labels) > rows else slice(None))
        facts["cv_accuracy"]["average"] = averaged_cv_accuracy(
            [p[sub] for p in parts], labels[sub], num_classes, [h.c for h in per_view],
            opts.head_cv_folds, opts.seed)
    if opts.combine == Combine.AUTO:
        a, c = facts["cv_accuracy"]["average"], facts["cv_accuracy"]["concat"]
        # Ties (and no CV at all) go to concat: one head, the simpler model.
        chosen = "average" if (a == a and c is not None and a > c) else "concat"
    else:
        chosen = opts.combine.value
    return chosen, concat, (per_view or []), facts
