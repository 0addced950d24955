"""sentence-transformers' sentence encoders in Keras, reading their files without PyTorch.

Two architectures, one builder:
- all-MiniLM-L6-v2: a 6-layer, 384-wide BERT encoder (absolute positions, token types);
- all-mpnet-base-v2: a 12-layer, 768-wide MPNet encoder (positions counted over the real
  tokens from 2 on, as RoBERTa does, plus a relative-position bias on the attention
  logits shared by every layer, T5's bucketing).
Either way the sentence embedding is the mean of the last layer's token vectors over the
real (unpadded) tokens, L2-normalised - as sentence-transformers' Transformer ->
Pooling(mean) -> Normalize defines it.

graft's feature vector is multi-level, as for the image backbones: that same pooling of
each layer in an architecture's ``feature_layers``, the reference embedding (the last
layer) last. A linear head on it beat one on the reference embedding alone on the tweets
(README, "Measured here").

Tokenisation runs inside the graph (text_module), so the saved module (and every model
built on it) takes raw strings. Both models use a lower-casing WordPiece vocabulary; they
differ in their special tokens ([CLS]/[SEP]/[PAD] against <s>/</s>/<pad>).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str               # the Keras model's name
    kind: str               # "bert" or "mpnet"
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    max_seq_length: int     # sentence_bert_config.json: tokens, the two special ones included
    layer_norm_eps: float
    cls_token: str
    sep_token: str
    pad_token: str
    # Encoder layers whose pooled outputs make the feature vector, the last one last (the
    # reference embedding is feature_vector[:, -hidden:]).
    feature_layers: Tuple[int, ...]
    relative_buckets: int = 0   # MPNet's relative-position buckets (0: none)

    @property
    def feature_dim(self) -> int:
        return self.hidden * len(self.feature_layers)


ARCHITECTURES: Dict[str, Architecture] = {
    # Layer 0 and the embeddings are left out: with them the head lost 1.2 points at 100
    # texts per class, 0.3 at 1 000.
    "all-MiniLM-L6-v2": Architecture(
        name="minilm_l6", kind="bert", hidden=384, layers=6, heads=12, intermediate=1536,
        vocab_size=30522, max_positions=512, max_seq_length=256, layer_norm_eps=1e-12,
        cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        feature_layers=(1, 2, 3, 4, 5)),
    # Every other layer of the top half: on the tweets at 100 and 1 000 texts per class it
    # beat the last layer alone (by 1.1 and 2.4 points), the top three and the top five
    # (bench/results/text_feature_levels_mpnet.json, which counts layers from 1).
    "all-mpnet-base-v2": Architecture(
        name="mpnet_base", kind="mpnet", hidden=768, layers=12, heads=12, intermediate=3072,
        vocab_size=30527, max_positions=514, max_seq_length=384, layer_norm_eps=1e-5,
        cls_token="<s>", sep_token="</s>", pad_token="<pad>",
        feature_layers=(5, 7, 9, 11), relative_buckets=32),
}
# MPNet's position ids start after its padding id, as RoBERTa's (fairseq's make_positions).
_MPNET_PADDING_IDX = 1
_MPNET_MAX_DISTANCE = 128


def layer_name(i: int) -> str:
    """Variables of encoder layer i are named layer_<i>_*: fine-tuning the top k layers
    selects them by that prefix."""
    return f"layer_{i}"


def read_vocab(tokenizer_json: str, pad_token: str) -> List[str]:
    with open(tokenizer_json) as f:
        spec = json.load(f)
    model = spec.get("model") or {}
    if model.get("type") != "WordPiece":
        raise ValueError(f"{tokenizer_json}: expected a WordPiece tokenizer, got "
                         f"{model.get('type')!r}")
    vocab: Dict[str, int] = model["vocab"]
    out = [""] * len(vocab)
    for token, i in vocab.items():
        out[i] = token
    if "" in out or pad_token not in out:
        raise ValueError(f"{tokenizer_json}: the vocabulary's ids are not 0..{len(vocab) - 1} "
                         f"with {pad_token}")
    return out


def relative_position_buckets(length, num_buckets: int, max_distance: int = _MPNET_MAX_DISTANCE):
    """[T, T] bucket of each (query, key) offset: MPNet's relative_position_bucket (T5's
    bidirectional bucketing: exact below num_buckets / 4, logarithmic up to max_distance)."""
    import tensorflow as tf
    pos = tf.range(length)
    n = -(pos[tf.newaxis, :] - pos[:, tf.newaxis])      # query - key
    half = num_buckets // 2
    ret = tf.cast(n < 0, tf.int32) * half
    n = tf.abs(n)
    max_exact = half // 2
    large = max_exact + tf.cast(
        tf.math.log(tf.cast(tf.maximum(n, 1), tf.float32) / max_exact)
        / math.log(max_distance / max_exact) * (half - max_exact), tf.int32)
    large = tf.minimum(large, half - 1)
    return ret + tf.where(n < max_exact, n, large)


def build(arch: Architecture):
    """The encoder as a Keras model: (token ids [N, T] int32, mask [N, T] float32) ->
    the token vectors [N, T, hidden] of each layer in arch.feature_layers, in that order.
    Layer names match load_weights."""
    import tf_keras as keras
    import tensorflow as tf

    hidden, heads = arch.hidden, arch.heads
    ids = keras.Input([None], dtype=tf.int32, name="input_ids")
    mask = keras.Input([None], dtype=tf.float32, name="attention_mask")
    words = keras.layers.Embedding(arch.vocab_size, hidden, name="embeddings_word")(ids)
    if arch.kind == "mpnet":
        # create_position_ids_from_input_ids: real tokens count from padding_idx + 1.
        position_ids = keras.layers.Lambda(lambda m: tf.cast(
            tf.cumsum(m, axis=1) * m, tf.int32) + _MPNET_PADDING_IDX)(mask)
        x = keras.layers.Add()([words, keras.layers.Embedding(
            arch.max_positions, hidden, name="embeddings_position")(position_ids)])
    else:
        positions = keras.layers.Embedding(arch.max_positions, hidden,
                                           name="embeddings_position")(
            keras.layers.Lambda(lambda x: tf.range(tf.shape(x)[1])[tf.newaxis, :])(ids))
        types = keras.layers.Embedding(2, hidden, name="embeddings_type")(
            keras.layers.Lambda(lambda x: tf.zeros_like(x))(ids))
        x = keras.layers.Add()([words, positions, types])
    x = keras.layers.LayerNormalization(epsilon=arch.layer_norm_eps, name="embeddings_norm")(x)
    # Added to the attention logits of padding: BERT's extended attention mask.
    bias = keras.layers.Lambda(
        lambda m: (1.0 - m)[:, tf.newaxis, tf.newaxis, :] * -1e9)(mask)
    if arch.relative_buckets:
        # One [1, heads, T, T] bias for every layer, as MPNetEncoder.compute_position_bias.
        table = keras.layers.Embedding(arch.relative_buckets, heads,
                                       name="encoder_relative_attention_bias")
        relative = table(keras.layers.Lambda(lambda x: relative_position_buckets(
            tf.shape(x)[1], arch.relative_buckets))(ids))              # [T, T, heads]
        bias = keras.layers.Lambda(lambda a: a[0] + tf.transpose(a[1], [2, 0, 1])[tf.newaxis])(
            [bias, relative])
    head = hidden // heads

    def split(t):
        n = tf.shape(t)[0]
        return tf.transpose(tf.reshape(t, [n, -1, heads, head]), [0, 2, 1, 3])

    def attend(args):
        q, k, v, b = args
        scores = tf.matmul(split(q), split(k), transpose_b=True) / math.sqrt(head) + b
        ctx = tf.matmul(tf.nn.softmax(scores, axis=-1), split(v))
        n = tf.shape(ctx)[0]
        return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [n, -1, hidden])

    outputs = []
    for i in range(arch.layers):
        p = layer_name(i)
        q = keras.layers.Dense(hidden, name=f"{p}_query")(x)
        k = keras.layers.Dense(hidden, name=f"{p}_key")(x)
        v = keras.layers.Dense(hidden, name=f"{p}_value")(x)
        ctx = keras.layers.Lambda(attend, name=f"{p}_attention")([q, k, v, bias])
        a = keras.layers.Dense(hidden, name=f"{p}_attention_output")(ctx)
        x = keras.layers.LayerNormalization(epsilon=arch.layer_norm_eps,
                                            name=f"{p}_attention_norm")(a + x)
        h = keras.layers.Dense(arch.intermediate, name=f"{p}_intermediate")(x)
        h = keras.layers.Lambda(lambda t: tf.nn.gelu(t, approximate=False))(h)  # the erf GELU
        o = keras.layers.Dense(hidden, name=f"{p}_output")(h)
        x = keras.layers.LayerNormalization(epsilon=arch.layer_norm_eps,
                                            name=f"{p}_output_norm")(o + x)
        if i in arch.feature_layers:
            outputs.append(x)
    return keras.Model([ids, mask], outputs, name=arch.name)


def _weight_map(arch: Architecture) -> List[Tuple[str, str, bool]]:
    """(Keras layer, safetensors prefix, is a Dense whose torch weight is transposed)."""
    rows = [("embeddings_word", "embeddings.word_embeddings", False),
            ("embeddings_position", "embeddings.position_embeddings", False),
            ("embeddings_norm", "embeddings.LayerNorm", False)]
    if arch.kind == "mpnet":
        rows.append(("encoder_relative_attention_bias", "encoder.relative_attention_bias", False))
        attention = {"query": "attention.attn.q", "key": "attention.attn.k",
                     "value": "attention.attn.v", "attention_output": "attention.attn.o",
                     "attention_norm": "attention.LayerNorm"}
    else:
        rows.append(("embeddings_type", "embeddings.token_type_embeddings", False))
        attention = {"query": "attention.self.query", "key": "attention.self.key",
                     "value": "attention.self.value",
                     "attention_output": "attention.output.dense",
                     "attention_norm": "attention.output.LayerNorm"}
    for i in range(arch.layers):
        p, t = layer_name(i), f"encoder.layer.{i}"
        rows += [(f"{p}_{ours}", f"{t}.{theirs}", not theirs.endswith("LayerNorm"))
                 for ours, theirs in attention.items()]
        rows += [(f"{p}_intermediate", f"{t}.intermediate.dense", True),
                 (f"{p}_output", f"{t}.output.dense", True),
                 (f"{p}_output_norm", f"{t}.output.LayerNorm", False)]
    return rows


def load_weights(model, state: Dict[str, np.ndarray], arch: Architecture) -> None:
    """Copies the safetensors tensors into the Keras model; every one must fit exactly."""
    for layer_id, prefix, dense in _weight_map(arch):
        layer = model.get_layer(layer_id)
        if prefix.endswith("LayerNorm"):
            values = [state[f"{prefix}.weight"], state[f"{prefix}.bias"]]
        elif dense:
            values = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
        else:
            values = [state[f"{prefix}.weight"]]
        for var, value in zip(layer.weights, values):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"{prefix}: shape {value.shape} does not fit {layer_id}'s "
                                 f"{tuple(var.shape)}")
        layer.set_weights(values)


def read_model_dir(path: str, arch: Architecture):
    """(safetensors state, vocabulary) from an extracted sentence-transformers folder."""
    from safetensors.numpy import load_file
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not os.path.exists(os.path.join(path, name)):
            raise ValueError(f"{path}: {name} is missing (not a sentence-transformers folder)")
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    expected = {"hidden_size": arch.hidden, "num_hidden_layers": arch.layers,
                "num_attention_heads": arch.heads, "intermediate_size": arch.intermediate,
                "vocab_size": arch.vocab_size}
    wrong = {k: config.get(k) for k, v in expected.items() if config.get(k) != v}
    if wrong:
        raise ValueError(f"{path}/config.json: {wrong} does not describe {arch.name}")
    return load_file(os.path.join(path, "model.safetensors")), \
        read_vocab(os.path.join(path, "tokenizer.json"), arch.pad_token)
