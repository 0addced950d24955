"""The transfer model: TF-Hub backbone + new head, and which variables train.

Phase 1 fits only the head (on cached backbone features; linear_head.py); phase 2 unfreezes
the top k blocks of the backbone (of a text encoder: its top k transformer layers). BatchNorm stays in inference mode in both
(the backbone is always called with training=False): with few images per
class, updating BatchNorm statistics wrecks pretrained features.
"""
from __future__ import annotations

import re
from typing import List, Sequence, Tuple

import tensorflow_hub as hub
import tf_keras as keras

_BLOCK = re.compile(r"^block(\d+)_")     # graft's EfficientNet-Lite: stem_*, blockNN_*, head_*
_LAYER = re.compile(r"^layer_(\d+)_")    # graft's text encoders: embeddings_*, layer_N_*


def select_top_blocks(variable_names: Sequence[str], k: int) -> List[str]:
    """Names of the variables in the top k blocks (plus the head conv/BN of an image
    backbone), or of a text encoder's top k transformer layers.

    Works on graft-imported backbones (stem_*, blockNN_*, head_*; embeddings_*,
    layer_N_*). For other TF-Hub modules, whose names we do not know, falls back to the
    last k/16 of the variables in order (deeper layers come last in Keras order)."""
    blocks = sorted({int(m.group(1)) for n in variable_names if (m := _BLOCK.match(n))})
    if blocks:
        top = set(blocks[-k:]) if k > 0 else set()
        return [n for n in variable_names
                if n.startswith("head_") or ((m := _BLOCK.match(n)) and int(m.group(1)) in top)]
    layers = sorted({int(m.group(1)) for n in variable_names if (m := _LAYER.match(n))})
    if layers:
        top = set(layers[-k:]) if k > 0 else set()
        return [n for n in variable_names if (m := _LAYER.match(n)) and int(m.group(1)) in top]
    share = max(1, round(len(variable_names) * min(k, 16) / 16)) if k > 0 else 0
    return list(variable_names[len(variable_names) - share:]) if share else []


class PartiallyTrainableKerasLayer(hub.KerasLayer):
    """hub.KerasLayer whose trainable variables are only those named in `train_only`.

    hub.KerasLayer registers the module's variables one by one when it is
    built; we decide trainability there (by name), so the optimizer never sees
    the frozen ones."""

    def __init__(self, handle, train_only: Sequence[str] = (), **kwargs):
        self._train_only = set(train_only)
        super().__init__(handle, trainable=bool(self._train_only), **kwargs)

    def _add_existing_weight(self, weight, trainable=None):
        if trainable is None:
            trainable = weight.trainable
        return super()._add_existing_weight(
            weight, trainable=bool(trainable) and weight.name in self._train_only)


def backbone_variable_names(handle: str) -> List[str]:
    return [v.name for v in hub.KerasLayer(handle, trainable=True).trainable_weights]


def build_head(num_classes: int, dropout: float, feature_dim: int, seed: int) -> keras.Model:
    inputs = keras.Input(shape=(feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(inputs)
    logits = keras.layers.Dense(num_classes, name="head_logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(inputs, logits, name="head")


def set_head_weights(head: keras.Model, kernel, bias) -> None:
    """Loads a fitted linear head (linear_head.LinearHead) into build_head's Dense layer."""
    head.get_layer("head_logits").set_weights([kernel, bias])


def distinct_sizes(sizes: Sequence[int]) -> List[int]:
    """The input sizes a multi-view classifier takes, in first-seen order."""
    return list(dict.fromkeys(int(s) for s in sizes))


def build_multi_view_classifier(views: Sequence[Tuple[keras.layers.Layer, int]],
                                head: keras.Model) -> keras.Model:
    """Several (backbone layer, input size) views -> concatenated features -> head.

    Takes one image batch per distinct size ([N, s, s, 3] each, in distinct_sizes'
    order): every size is decoded from the same bytes, as EmbeddingGen decodes them."""
    sizes = distinct_sizes(s for _, s in views)
    inputs = [keras.Input(shape=(s, s, 3), name=f"images_{s}") for s in sizes]
    features = [layer(inputs[sizes.index(s)], training=False) for layer, s in views]
    x = keras.layers.Concatenate(name="view_features")(features)
    return keras.Model(inputs, head(x), name="classifier")


def build_classifier(backbone: keras.layers.Layer, head: keras.Model, image_size: int,
                     modality: str = "image") -> keras.Model:
    """[N, size, size, 3] float images in [0, 1] (or [N] strings, for a text backbone)
    -> [N, classes] logits."""
    import tensorflow as tf
    if modality == "text":
        inputs = keras.Input(shape=(), dtype=tf.string, name="texts")
    else:
        inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    features = backbone(inputs, training=False)  # BatchNorm in inference mode, always
    return keras.Model(inputs, head(features), name="classifier")
