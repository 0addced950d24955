"""Several heads -> one prediction: several views (backbones, or one backbone at several
input sizes), several kinds of linear head (``head = "logistic,lda"``), or both.

EmbeddingGen concatenates the views' vectors; two ways to use them:
- concat: the head(s) read the concatenated features (a logistic head's C by
  cross-validation, as for one view);
- average: each view gets its own head(s) (each with its own C), their class
  probabilities averaged - the classic ensemble, which keeps each view's own
  regularisation.
``combine = "auto"`` picks the better of the two by cross-validated accuracy on the
training images: the same folds for both, each head's C fixed at its own CV choice.
Several kinds of head on the same features are averaged the same way: a logistic
regression and a shrinkage LDA are two linear probes that err differently.

Either way the head is one Keras model on the concatenated features, so the exported
classifier is still images -> backbones -> concat -> head, one SavedModel. The averaged
head outputs log(mean probabilities): softmax of that is the average exactly, so
serving's softmax needs no special case.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from graft.trainer import lda_head, linear_head
from graft.trainer.options import Combine, TrainerOptions


class AveragedHeads(keras.layers.Layer):
    """Dense heads, each on one slice of the features (``members``: the slice each head
    reads; default one head per slice); log of their mean softmax."""

    def __init__(self, dims: Sequence[int], num_classes: int,
                 members: Optional[Sequence[int]] = None, **kwargs):
        super().__init__(**kwargs)
        self.dims, self.num_classes = [int(d) for d in dims], int(num_classes)
        self.members = [int(m) for m in (range(len(self.dims)) if members is None
                                         else members)]
        self.heads = [keras.layers.Dense(num_classes, name=f"head{i}_view{m}_logits")
                      for i, m in enumerate(self.members)]

    def build(self, input_shape):
        for head, m in zip(self.heads, self.members):
            head.build((None, self.dims[m]))
        super().build(input_shape)

    def call(self, features):
        parts = tf.split(features, self.dims, axis=-1)
        probs = tf.add_n([tf.nn.softmax(h(parts[m]), axis=-1)
                          for h, m in zip(self.heads, self.members)])
        # log(0) would be -inf; the smallest normal float32 keeps softmax exact elsewhere.
        return tf.math.log(tf.maximum(probs / len(self.heads), np.finfo(np.float32).tiny))

    def get_config(self):
        return dict(super().get_config(), dims=self.dims, num_classes=self.num_classes,
                    members=self.members)


def build_averaged_head(dims: Sequence[int], num_classes: int,
                        heads: List[linear_head.LinearHead],
                        members: Optional[Sequence[int]] = None) -> keras.Model:
    inputs = keras.Input(shape=(sum(dims),), name="features")
    layer = AveragedHeads(dims, num_classes, members, name="averaged_heads")
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


def train_head(kind: str, features: np.ndarray, labels: np.ndarray, num_classes: int,
               opts: TrainerOptions, alone: bool = True) -> linear_head.LinearHead:
    """One head of the given kind, with its cross-validated accuracy (and C, for logistic).
    ``alone`` False: the head is one member of several, and averaged_cv_accuracy's folds
    give an LDA head its accuracy (a logistic head still needs its own to choose C)."""
    if kind == "lda":
        if not alone:
            return lda_head.fit(features, labels, num_classes)
        return lda_head.train(features, labels, num_classes, opts.head_cv_folds, opts.seed,
                              cv_max_rows=opts.head_cv_max_rows)
    return linear_head.train(features, labels, num_classes, opts.head_c_grid,
                             opts.head_cv_folds, opts.seed, cv_max_rows=opts.head_cv_max_rows)


def refit(head: linear_head.LinearHead, features: np.ndarray, labels: np.ndarray,
          num_classes: int) -> linear_head.LinearHead:
    """The same kind of head (at the same C) fit again on other rows."""
    if head.kind == "lda":
        return lda_head.fit(features, labels, num_classes)
    return linear_head.fit(features, labels, num_classes, head.c)


@dataclasses.dataclass
class Heads:
    """Phase 1's fitted heads: each member (slice, head) reads one slice of the features
    (``dims``: the slices' widths); their class probabilities are averaged."""
    combine: str                                       # "concat" | "average"
    dims: List[int]
    members: List[Tuple[int, linear_head.LinearHead]]

    @property
    def single(self) -> Optional[linear_head.LinearHead]:
        """The head, when there is one on all the features (a plain Dense layer)."""
        return self.members[0][1] if len(self.members) == 1 and len(self.dims) == 1 else None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class scores in numpy (argmax = the exported model's label)."""
        if self.single is not None:
            return self.single.logits(features)
        parts = split_views(features, self.dims)
        return sum(softmax(h.logits(parts[m])) for m, h in self.members)

    def build(self, num_classes: int) -> keras.Model:
        """The averaged Keras head (for several members)."""
        return build_averaged_head(self.dims, num_classes, [h for _, h in self.members],
                                   [m for m, _ in self.members])


def averaged_cv_accuracy(heads: Heads, features: np.ndarray, labels: np.ndarray,
                         num_classes: int, folds: int, seed: int) -> float:
    """Mean fold accuracy of the averaged members, each refit (a logistic head at its
    chosen C) on the same stratified folds linear_head.train uses. A member without a
    cross-validated accuracy of its own (an LDA member) gets its accuracy on these folds."""
    from sklearn.model_selection import StratifiedKFold
    k = int(min(folds, np.unique(labels, return_counts=True)[1].min()))
    if k < 2:
        return float("nan")
    parts = split_views(features, heads.dims)
    accs, alone = [], np.zeros(len(heads.members))
    for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            parts[0], labels):
        probs = [softmax(refit(h, parts[m][tr], labels[tr], num_classes).logits(parts[m][te]))
                 for m, h in heads.members]
        alone += [np.mean(p.argmax(1) == labels[te]) / k for p in probs]
        accs.append(float(np.mean(sum(probs).argmax(1) == labels[te])))
    for (_, h), acc in zip(heads.members, alone):
        if h.cv_accuracy is None:
            h.cv_accuracy, h.cv_folds, h.cv_rows = float(acc), k, len(labels)
    return float(np.mean(accs))


def fit_views(features: np.ndarray, labels: np.ndarray, num_classes: int,
              dims: Sequence[int], opts: TrainerOptions) -> Tuple[Heads, dict]:
    """Fits the heads on the concatenated features and/or each view's, as ``opts.combine``
    asks, one of each kind in ``opts.heads``.

    Returns (the chosen heads, facts for the report: per view and kind its C and CV
    accuracy, and each way's CV accuracy)."""
    kinds = opts.heads
    dims = [int(d) for d in dims]
    facts: dict = {"views": [], "cv_accuracy": {}}
    ways = {}
    rows = opts.head_cv_max_rows
    sub = (linear_head.subsample(labels, rows, opts.seed)
           if rows and len(labels) > rows else slice(None))

    def cv_of(heads: Heads) -> Optional[float]:
        if len(heads.members) == 1:
            return heads.members[0][1].cv_accuracy
        return averaged_cv_accuracy(heads, features[sub], labels[sub], num_classes,
                                    opts.head_cv_folds, opts.seed)

    several_views = len(dims) > 1
    if opts.combine in (Combine.CONCAT, Combine.AUTO) or not several_views:
        ways["concat"] = Heads("concat", [sum(dims)], [
            (0, train_head(k, features, labels, num_classes, opts, alone=len(kinds) == 1))
            for k in kinds])
        facts["cv_accuracy"]["concat"] = cv_of(ways["concat"])
    if several_views and opts.combine in (Combine.AVERAGE, Combine.AUTO):
        parts = split_views(features, dims)
        members = [(i, train_head(k, p, labels, num_classes, opts, alone=False))
                   for i, p in enumerate(parts) for k in kinds]
        ways["average"] = Heads("average", dims, members)
        facts["cv_accuracy"]["average"] = cv_of(ways["average"])
        facts["views"] = [{"dim": dims[i], "head": h.kind, "c": h.c,
                           "cv_accuracy": h.cv_accuracy} for i, h in members]
    if len(ways) == 2:
        a, c = facts["cv_accuracy"]["average"], facts["cv_accuracy"]["concat"]
        # Ties (and no CV at all) go to concat: fewer heads, the simpler model.
        chosen = "average" if (a == a and c is not None and a > c) else "concat"
    else:
        chosen = next(iter(ways))
    return ways[chosen], facts
