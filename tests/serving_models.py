"""Small real SavedModels for the serving tests (built with TensorFlow, saved, loaded)."""
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

_EX = {"x": tf.io.FixedLenFeature([], tf.float32, default_value=0.0)}


class HalfPlusTwo(tf.Module):
    """y = a * x + b, like TF Serving's own half_plus_two test model (a = 0.5, b = 2 by default)."""

    def __init__(self, a=0.5, b=2.0):
        super().__init__()
        self.a, self.b = tf.Variable(a), tf.Variable(b)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.int64, name="k"),
                                  tf.TensorSpec([None], tf.string, name="blob")])
    def multi(self, x, k, blob):
        return {"y": self.a * x + tf.cast(k, tf.float32),
                "echo_bytes": blob, "length": tf.strings.length(blob)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = tf.io.parse_example(inputs, _EX)["x"]
        y = self.a * x + self.b
        scores = tf.stack([1.0 / (1.0 + tf.exp(y)), 1.0 - 1.0 / (1.0 + tf.exp(y))], axis=1)
        classes = tf.tile(tf.constant([["low", "high"]]), [tf.shape(x)[0], 1])
        return {"classes": classes, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        x = tf.io.parse_example(inputs, _EX)["x"]
        return {"outputs": self.a * x + self.b}


def save(path, a=0.5, b=2.0, warmup=None):
    m = HalfPlusTwo(a, b)
    tf.saved_model.save(m, str(path), signatures={
        "serving_default": m.predict.get_concrete_function(),
        "multi": m.multi.get_concrete_function(),
        "classify_x": m.classify.get_concrete_function(),
        "regress_x": m.regress.get_concrete_function(),
    })
    pb = os.path.join(str(path), "saved_model.pb")
    sm = saved_model_pb2.SavedModel.FromString(open(pb, "rb").read())
    sigs = sm.meta_graphs[0].signature_def
    sigs["classify_x"].method_name = "tensorflow/serving/classify"
    sigs["regress_x"].method_name = "tensorflow/serving/regress"
    open(pb, "wb").write(sm.SerializeToString())
    if warmup is not None:
        os.makedirs(os.path.join(str(path), "assets.extra"), exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(str(path), "assets.extra",
                                               "tf_serving_warmup_requests")) as w:
            for rec in warmup:
                w.write(rec)
    return str(path)
