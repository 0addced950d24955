"""Transform's preprocessing_fn: the label vocabulary.

Pixels are NOT transformed here (decoding lives in the model graph); the
image bytes and id pass through unchanged.
"""
import tensorflow as tf
import tensorflow_transform as tft

IMAGE_KEY = "image_bytes"
LABEL_KEY = "label"
ID_KEY = "image_id"
LABEL_ID_KEY = "label_id"
LABEL_VOCAB = "label"


def _dense(x):
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.sparse.to_dense(x, default_value="")[:, 0]
    return tf.reshape(x, [-1])


def preprocessing_fn(inputs):
    label = _dense(inputs[LABEL_KEY])
    return {
        IMAGE_KEY: _dense(inputs[IMAGE_KEY]),
        ID_KEY: _dense(inputs[ID_KEY]),
        LABEL_ID_KEY: tft.compute_and_apply_vocabulary(label, vocab_filename=LABEL_VOCAB),
    }
