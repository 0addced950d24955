"""Save a text encoder as a TF2 SavedModel in TF-Hub's reusable format, strings in.

Like hub_module.py for images: the root has ``__call__(texts, training)``,
``variables``, ``trainable_variables`` and ``regularization_losses``, so
``hub.KerasLayer`` loads it and can fine-tune its top layers. ``__call__`` and
``serving_default`` give the multi-level feature vector: each of the encoder's output
layers mean-pooled over real tokens and L2-normalised, concatenated, the last layer's
(the reference sentence embedding) last. Signatures:
- ``serving_default``: texts (string [N]) -> {"feature_vector": float32 [N, L x width]};
- ``sentence_embedding``: texts -> {"sentence_embedding": float32 [N, width]}, the
  reference model's own output (the last ``width`` of the feature vector);
- ``tokenize``: texts -> {"input_ids": int32 [N, T], "attention_mask": int32 [N, T]}
  (what the encoder sees; kept so the tokenisation can be checked against the
  reference tokenizer).
"""
from __future__ import annotations

from typing import List

import tensorflow as tf
import tensorflow_text as text  # the tokenizer's ops; this module is loaded only for text

from graft.backbones.hub_module import Untracked

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="texts")


class TextEncoderModule(tf.Module):
    # TF-Hub reads these as saved attributes (see hub_module.BackboneModule).
    variables = None
    trainable_variables = None

    def __init__(self, encoder, vocab: List[str], max_seq_length: int,
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]", pad_token: str = "[PAD]"):
        super().__init__(name=None)
        self._keras = Untracked(encoder=encoder)  # see hub_module.Untracked
        self._tokenizer = text.FastBertTokenizer(
            vocab=vocab, token_out_type=tf.int32, unknown_token="[UNK]",
            lower_case_nfd_strip_accents=False)  # done by _ids, as the reference does
        self._cls = vocab.index(cls_token)
        self._sep = vocab.index(sep_token)
        self._pad = vocab.index(pad_token)
        self._max_tokens = max_seq_length - 2  # room for [CLS] and [SEP] (<s>, </s>)
        self.variables = list(encoder.variables)
        self.trainable_variables = list(encoder.trainable_variables)
        self.regularization_losses = []

    def _ids(self, texts):
        # The reference tokenizer's clean_text drops U+FFFD and every control or format
        # character (Unicode category C) but tab, newline and CR; TF Text's normaliser
        # would turn them into spaces or [UNK] instead.
        texts = tf.strings.regex_replace(texts, r"[^\PC\t\n\r]|\x{FFFD}", "")
        # Then lower-case and strip accents as it does (lower(), NFD, drop combining marks).
        # TF Text's own lower_case_nfd_strip_accents case-folds with NFKC, which maps
        # full-width forms ("，") to ASCII where the reference keeps them.
        texts = tf.strings.lower(texts, encoding="utf-8")
        texts = text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        pieces = self._tokenizer.tokenize(texts)               # ragged [N, (pieces)]
        if pieces.shape.rank == 3:                             # [N, (words), (pieces)]
            pieces = pieces.merge_dims(1, 2)
        pieces = pieces[:, :self._max_tokens]
        n = tf.shape(texts)[0]
        cls = tf.fill([n, 1], self._cls)
        sep = tf.fill([n, 1], self._sep)
        ragged = tf.concat([tf.RaggedTensor.from_tensor(cls), pieces,
                            tf.RaggedTensor.from_tensor(sep)], axis=1)
        ids = ragged.to_tensor(default_value=self._pad)
        mask = tf.sequence_mask(ragged.row_lengths(), tf.shape(ids)[1], dtype=tf.int32)
        return ids, mask

    def _embed(self, texts, training):
        ids, mask = self._ids(texts)
        m = tf.cast(mask, tf.float32)
        layers = self._keras.encoder([ids, m], training=training)
        if not isinstance(layers, (list, tuple)):
            layers = [layers]
        count = tf.maximum(tf.reduce_sum(m, axis=1, keepdims=True), 1e-9)
        pooled = []
        for tokens in layers:
            mean = tf.reduce_sum(tokens * m[:, :, tf.newaxis], axis=1) / count
            # torch's eps 1e-12, squared
            pooled.append(tf.math.l2_normalize(mean, axis=1, epsilon=1e-24))
        return pooled

    @tf.function
    def __call__(self, texts, training=False):
        return tf.concat(self._embed(texts, training), axis=1)

    @tf.function(input_signature=[TEXT_SPEC])
    def sentence_embedding(self, texts):
        return {"sentence_embedding": self._embed(texts, False)[-1]}

    @tf.function(input_signature=[TEXT_SPEC])
    def tokenize(self, texts):
        ids, mask = self._ids(texts)
        return {"input_ids": ids, "attention_mask": mask}


def save(encoder, vocab: List[str], arch, export_dir: str) -> None:
    """arch: the encoder's sentence_encoder.Architecture (sequence length, special tokens)."""
    module = TextEncoderModule(encoder, vocab, arch.max_seq_length, arch.cls_token,
                               arch.sep_token, arch.pad_token)
    module.__call__.get_concrete_function(TEXT_SPEC, True)   # hub.KerasLayer passes a bool
    serving = module.__call__.get_concrete_function(TEXT_SPEC, False)
    signatures = {
        "serving_default": tf.function(
            lambda texts: {"feature_vector": serving(texts)},
            input_signature=[TEXT_SPEC]).get_concrete_function(),
        "sentence_embedding": module.sentence_embedding.get_concrete_function(),
        "tokenize": module.tokenize.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
