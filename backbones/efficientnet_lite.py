"""EfficientNet-Lite in tf-keras, with weights from the PyTorch state dict.

Laid out like keras.applications.efficientnet: a config table of stages, one
generic builder (stem -> loop over the table -> head), blocks as small
functions that name every layer from a prefix, and weights loaded once at the
end, by name. Layer names are ``blockNN_*`` (NN = global block index, two
digits) so that "the top k blocks" can be selected by name prefix after the
model is saved and re-loaded through TF-Hub.

Lite variants differ from EfficientNet: no squeeze-and-excite, ReLU6, and the
stem and head are not scaled. BatchNorm epsilon 1e-3; TF 'same' padding (the
weights were trained in TensorFlow and converted to PyTorch).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Tuple

import numpy as np
import tf_keras as keras

BN_EPSILON = 1e-3
HEAD_DIM = 1280                # the head conv's channels: the classic feature vector
NUM_IMAGENET_CLASSES = 1000
# The feature vector is multi-level: the global-average-pooled output of every block
# in the last MULTI_LEVEL_STAGES stages, then the head's 1280 (last, so the ImageNet
# classifier reads features[:, -HEAD_DIM:]). Linear heads on pooled intermediate
# features transfer better off ImageNet's domain (Head2Toe, Evci et al., ICML 2022); a
# linear probe gained on both benchmark datasets with them (README, bench/results/).
MULTI_LEVEL_STAGES = 3


@dataclasses.dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# (repeats, kernel, stride, expand ratio, output channels), EfficientNet-B0 / Lite0.
BASE_STAGES: Tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)

# name: (width multiplier, depth multiplier, native resolution)
VARIANTS: Dict[str, Tuple[float, float, int]] = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def _round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def block_specs(variant: str) -> List[Tuple[int, int, int, int, int]]:
    """Flattened per-block (in_ch, out_ch, kernel, stride, expand); Lite keeps the
    first and last stage unscaled in depth."""
    return [spec for spec, _ in _blocks(variant)]


def _blocks(variant: str):
    """[((in_ch, out_ch, kernel, stride, expand), stage index)] per block."""
    width, depth, _ = VARIANTS[variant]
    blocks = []
    in_ch = 32
    for i, st in enumerate(BASE_STAGES):
        out_ch = _round_filters(st.out_channels, width)
        repeats = st.repeats if i in (0, len(BASE_STAGES) - 1) else _round_repeats(
            st.repeats, depth)
        for r in range(repeats):
            blocks.append(((in_ch, out_ch, st.kernel, st.stride if r == 0 else 1, st.expand), i))
            in_ch = out_ch
    return blocks


def pooled_blocks(variant: str) -> List[int]:
    """Indices of the blocks whose pooled outputs join the feature vector."""
    first_stage = len(BASE_STAGES) - MULTI_LEVEL_STAGES
    return [i for i, (_, stage) in enumerate(_blocks(variant)) if stage >= first_stage]


def feature_dim(variant: str) -> int:
    specs = block_specs(variant)
    return sum(specs[i][1] for i in pooled_blocks(variant)) + HEAD_DIM


def _conv_bn(x, filters, kernel, stride, prefix, act=True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                            use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    if act:
        x = keras.layers.ReLU(6.0, name=f"{prefix}_relu6")(x)
    return x


def _mbconv(x, in_ch, out_ch, kernel, stride, expand, prefix):
    inputs = x
    if expand != 1:
        x = _conv_bn(x, in_ch * expand, 1, 1, f"{prefix}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same",
                                     use_bias=False, name=f"{prefix}_dw_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}_dw_relu6")(x)
    x = _conv_bn(x, out_ch, 1, 1, f"{prefix}_project", act=False)
    if stride == 1 and in_ch == out_ch:
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def block_name(index: int) -> str:
    return f"block{index:02d}"


def build(variant: str = "efficientnet_lite0") -> Tuple[keras.Model, keras.layers.Dense]:
    """Returns (features model: [N,H,W,3] scaled images -> [N, feature_dim(variant)],
    logits layer on the last HEAD_DIM features).

    The features model expects inputs already scaled to (x - 127) / 128."""
    if variant not in VARIANTS:
        raise KeyError(variant)
    inputs = keras.Input(shape=(None, None, 3), name="images")
    x = _conv_bn(inputs, 32, 3, 2, "stem")
    pooled, taps = set(pooled_blocks(variant)), []
    for i, (in_ch, out_ch, k, s, e) in enumerate(block_specs(variant)):
        x = _mbconv(x, in_ch, out_ch, k, s, e, block_name(i))
        if i in pooled:
            taps.append(keras.layers.GlobalAveragePooling2D(name=f"{block_name(i)}_pool")(x))
    x = _conv_bn(x, HEAD_DIM, 1, 1, "head")
    taps.append(keras.layers.GlobalAveragePooling2D(name="avg_pool")(x))
    x = keras.layers.Concatenate(name="multi_level_features")(taps)
    features = keras.Model(inputs, x, name=variant)
    logits = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="logits")
    logits.build((None, HEAD_DIM))
    return features, logits


# ---- weights: PyTorch state-dict name -> our layer name -------------------------

def _bn_weights(sd, p):
    return [sd[f"{p}.weight"], sd[f"{p}.bias"], sd[f"{p}.running_mean"], sd[f"{p}.running_var"]]


def _conv_kernel(w):  # (out, in, kh, kw) -> (kh, kw, in, out)
    return np.transpose(w, (2, 3, 1, 0))


def _dw_kernel(w):  # (ch, 1, kh, kw) -> (kh, kw, ch, 1)
    return np.transpose(w, (2, 3, 0, 1))


def torch_to_keras_weights(sd: Dict[str, np.ndarray], variant: str) -> Dict[str, list]:
    """Maps a lukemelas/EfficientNet-Lite PyTorch state dict onto our layer names."""
    w = {
        "stem_conv": [_conv_kernel(sd["_conv_stem.weight"])],
        "stem_bn": _bn_weights(sd, "_bn0"),
        "head_conv": [_conv_kernel(sd["_conv_head.weight"])],
        "head_bn": _bn_weights(sd, "_bn1"),
        "logits": [sd["_fc.weight"].T, sd["_fc.bias"]],
    }
    for i, (_, _, _, _, expand) in enumerate(block_specs(variant)):
        t, k = f"_blocks.{i}", block_name(i)
        if expand != 1:
            w[f"{k}_expand_conv"] = [_conv_kernel(sd[f"{t}._expand_conv.weight"])]
            w[f"{k}_expand_bn"] = _bn_weights(sd, f"{t}._bn0")
        w[f"{k}_dw_conv"] = [_dw_kernel(sd[f"{t}._depthwise_conv.weight"])]
        w[f"{k}_dw_bn"] = _bn_weights(sd, f"{t}._bn1")
        w[f"{k}_project_conv"] = [_conv_kernel(sd[f"{t}._project_conv.weight"])]
        w[f"{k}_project_bn"] = _bn_weights(sd, f"{t}._bn2")
    return w


def load_weights(features: keras.Model, logits: keras.layers.Dense,
                 sd: Dict[str, np.ndarray], variant: str) -> None:
    """Sets every weight; fails loudly on a missing name or a shape mismatch."""
    try:
        by_name = torch_to_keras_weights(sd, variant)
    except KeyError as e:
        raise ValueError(f"weights file lacks tensor {e} expected for {variant}") from e
    layers = {l.name: l for l in features.layers if l.weights}
    layers["logits"] = logits
    missing = set(layers) - set(by_name)
    if missing:
        raise ValueError(f"no weights for layers: {sorted(missing)}")
    for name, values in by_name.items():
        layer = layers[name]
        expected = [tuple(v.shape) for v in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ValueError(f"layer {name}: weight shapes {got} != expected {expected}")
        layer.set_weights(values)
