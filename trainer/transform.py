"""Transform's preprocessing_fn: the label vocabulary.

Pixels are NOT transformed here (decoding lives in the model graph); the
image bytes and id pass through unchanged.
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
    return {
        contract.FEATURE_IMAGE: _dense(inputs[contract.FEATURE_IMAGE]),
        contract.FEATURE_ID: _dense(inputs[contract.FEATURE_ID]),
        contract.FEATURE_LABEL_ID: tft.compute_and_apply_vocabulary(
            label, vocab_filename=contract.LABEL_VOCABULARY),
    }
