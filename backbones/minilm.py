"""all-MiniLM-L6-v2 (sentence-transformers) in Keras, reading its files without PyTorch.

The model is a 6-layer, 384-wide BERT encoder; the sentence embedding is the mean of
the last layer's token vectors over the real (unpadded) tokens, L2-normalised - as
sentence-transformers' Transformer -> Pooling(mean) -> Normalize defines it.

graft's feature vector is multi-level, as for the image backbones: that same pooling of
each layer in FEATURE_LAYERS, the reference embedding (the last layer) last. A linear
head on it beat one on the reference embedding alone on the tweets by 1.7 points at
1 000 labelled texts per class and 3.0 on 26 000 (README, "Measured here").

Tokenisation runs inside the graph, so the saved module (and every model built on it)
takes raw strings: TF Text's FastBertTokenizer with the model's own WordPiece vocabulary
(tokenizer.json), lower-cased with accents stripped (the tokenizer's BertNormalizer
with lowercase and strip_accents unset), [CLS] ... [SEP], truncated to the model's
max_seq_length (256 tokens). Why TF Text and not standard ops: WordPiece's greedy
longest-match has no core TensorFlow op, and TF Serving's model server links TF Text's
ops in, so the export still serves there. Why FastBertTokenizer: one op pair carrying
its vocabulary as a constant (no lookup-table asset to ship), and the faster of TF
Text's two BERT tokenizers.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np

HIDDEN = 384
LAYERS = 6
HEADS = 12
INTERMEDIATE = 1536
MAX_SEQ_LENGTH = 256       # sentence_bert_config.json: tokens, [CLS] and [SEP] included
LAYER_NORM_EPS = 1e-12
CLS_TOKEN, SEP_TOKEN, PAD_ID = "[CLS]", "[SEP]", 0
# Encoder layers whose pooled outputs make the feature vector, the last one last (the
# reference embedding is feature_vector[:, -HIDDEN:]). Layer 0 and the embeddings are
# left out: with them the head lost 1.2 points at 100 texts per class, 0.3 at 1 000.
FEATURE_LAYERS = (1, 2, 3, 4, 5)
FEATURE_DIM = HIDDEN * len(FEATURE_LAYERS)


def layer_name(i: int) -> str:
    """Variables of encoder layer i are named layer_<i>_*: fine-tuning the top k layers
    selects them by that prefix."""
    return f"layer_{i}"


def read_vocab(tokenizer_json: str) -> List[str]:
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
    if "" in out or out[PAD_ID] != "[PAD]":
        raise ValueError(f"{tokenizer_json}: the vocabulary's ids are not 0..{len(vocab) - 1} "
                         f"with [PAD] at 0")
    return out


def build():
    """The encoder as a Keras model: (token ids [N, T] int32, mask [N, T] float32) ->
    the token vectors [N, T, 384] of each layer in FEATURE_LAYERS, in that order. Layer
    names match load_weights."""
    import tf_keras as keras
    import tensorflow as tf

    ids = keras.Input([None], dtype=tf.int32, name="input_ids")
    mask = keras.Input([None], dtype=tf.float32, name="attention_mask")
    words = keras.layers.Embedding(30522, HIDDEN, name="embeddings_word")(ids)
    positions = keras.layers.Embedding(512, HIDDEN, name="embeddings_position")(
        keras.layers.Lambda(lambda x: tf.range(tf.shape(x)[1])[tf.newaxis, :])(ids))
    types = keras.layers.Embedding(2, HIDDEN, name="embeddings_type")(
        keras.layers.Lambda(lambda x: tf.zeros_like(x))(ids))
    x = keras.layers.Add()([words, positions, types])
    x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name="embeddings_norm")(x)
    # Added to the attention logits of padding: BERT's extended attention mask.
    bias = keras.layers.Lambda(
        lambda m: (1.0 - m)[:, tf.newaxis, tf.newaxis, :] * -1e9)(mask)
    head = HIDDEN // HEADS

    def split(t):
        n = tf.shape(t)[0]
        return tf.transpose(tf.reshape(t, [n, -1, HEADS, head]), [0, 2, 1, 3])

    def attend(args):
        q, k, v, b = args
        scores = tf.matmul(split(q), split(k), transpose_b=True) / math.sqrt(head) + b
        ctx = tf.matmul(tf.nn.softmax(scores, axis=-1), split(v))
        n = tf.shape(ctx)[0]
        return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [n, -1, HIDDEN])

    outputs = []
    for i in range(LAYERS):
        p = layer_name(i)
        q = keras.layers.Dense(HIDDEN, name=f"{p}_query")(x)
        k = keras.layers.Dense(HIDDEN, name=f"{p}_key")(x)
        v = keras.layers.Dense(HIDDEN, name=f"{p}_value")(x)
        ctx = keras.layers.Lambda(attend, name=f"{p}_attention")([q, k, v, bias])
        a = keras.layers.Dense(HIDDEN, name=f"{p}_attention_output")(ctx)
        x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS,
                                            name=f"{p}_attention_norm")(a + x)
        h = keras.layers.Dense(INTERMEDIATE, name=f"{p}_intermediate")(x)
        h = keras.layers.Lambda(lambda t: tf.nn.gelu(t, approximate=False))(h)  # BERT's erf GELU
        o = keras.layers.Dense(HIDDEN, name=f"{p}_output")(h)
        x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=f"{p}_output_norm")(o + x)
        if i in FEATURE_LAYERS:
            outputs.append(x)
    return keras.Model([ids, mask], outputs, name="minilm_l6")


def _weight_map() -> List[Tuple[str, str, bool]]:
    """(Keras layer, safetensors prefix, is a Dense whose torch weight is transposed)."""
    rows = [("embeddings_word", "embeddings.word_embeddings", False),
            ("embeddings_position", "embeddings.position_embeddings", False),
            ("embeddings_type", "embeddings.token_type_embeddings", False),
            ("embeddings_norm", "embeddings.LayerNorm", False)]
    for i in range(LAYERS):
        p, t = layer_name(i), f"encoder.layer.{i}"
        rows += [(f"{p}_query", f"{t}.attention.self.query", True),
                 (f"{p}_key", f"{t}.attention.self.key", True),
                 (f"{p}_value", f"{t}.attention.self.value", True),
                 (f"{p}_attention_output", f"{t}.attention.output.dense", True),
                 (f"{p}_attention_norm", f"{t}.attention.output.LayerNorm", False),
                 (f"{p}_intermediate", f"{t}.intermediate.dense", True),
                 (f"{p}_output", f"{t}.output.dense", True),
                 (f"{p}_output_norm", f"{t}.output.LayerNorm", False)]
    return rows


def load_weights(model, state: Dict[str, np.ndarray]) -> None:
    """Copies the safetensors tensors into the Keras model; every one must fit exactly."""
    for layer_id, prefix, dense in _weight_map():
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


def read_model_dir(path: str):
    """(safetensors state, vocabulary) from an extracted sentence-transformers folder."""
    from safetensors.numpy import load_file
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not os.path.exists(os.path.join(path, name)):
            raise ValueError(f"{path}: {name} is missing (not an all-MiniLM-L6-v2 folder)")
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    expected = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE}
    wrong = {k: config.get(k) for k, v in expected.items() if config.get(k) != v}
    if wrong:
        raise ValueError(f"{path}/config.json: {wrong} is not MiniLM-L6-H384")
    return load_file(os.path.join(path, "model.safetensors")), \
        read_vocab(os.path.join(path, "tokenizer.json"))
