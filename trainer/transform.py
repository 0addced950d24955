"""Transform's preprocessing_fn: the label vocabulary.

Raw inputs are NOT transformed here (image decoding and text tokenisation live in the
model graph): every feature but the label - image bytes or text, and the id - passes
through unchanged, whatever the modality.
"""
import tensorflow as tf
import tensorflow_transform as tft

from graft import contract


def _dense(x):
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.sparse.to_dense(x, default_value="")[:, 0]
    return tf.reshape(x, [-1])


def preprocessing_fn(inputs):
    label = _dense(inputs[contract.FEATURE_LABEL])
    out = {k: _dense(v) for k, v in inputs.items() if k != contract.FEATURE_LABEL}
    out[contract.FEATURE_LABEL_ID] = tft.compute_and_apply_vocabulary(
        label, vocab_filename=contract.LABEL_VOCABULARY)
    return out
