"""SavedModels shaped like TF Serving's own test models (half_plus_two, TF1 and TF2),
exported here by the tests themselves, and a model that reports the batch it ran in."""
import tensorflow as tf


def export_tf1(path, c_for_default=False):
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default(), v1.Session(graph=g) as sess:
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        c = v1.Variable(3.0, name="c")
        ex = v1.placeholder(tf.string, name="tf_example")
        feats = v1.io.parse_example(ex, {
            "x": v1.io.FixedLenFeature([1], tf.float32),
            "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        x = tf.identity(feats["x"], name="x")
        y = tf.add(tf.multiply(a, x), b, name="y")
        y2 = tf.add(tf.multiply(a, x), c, name="y2")
        x2 = tf.identity(feats["x2"], name="x2")
        y3 = tf.add(tf.multiply(a, x2), c, name="y3")
        sess.run(v1.global_variables_initializer())
        info = v1.saved_model.utils.build_tensor_info
        sdu = v1.saved_model.signature_def_utils
        predict_out = y2 if c_for_default else y
        sigs = {
            "serving_default": sdu.build_signature_def(
                {"x": info(x)}, {"y": info(predict_out)}, "tensorflow/serving/predict"),
            "regress_x_to_y": sdu.build_signature_def(
                {"inputs": info(ex)}, {"outputs": info(y)}, "tensorflow/serving/regress"),
            "regress_x_to_y2": sdu.build_signature_def(
                {"inputs": info(ex)}, {"outputs": info(y2)}, "tensorflow/serving/regress"),
            "regress_x2_to_y3": sdu.build_signature_def(
                {"inputs": info(ex)}, {"outputs": info(y3)}, "tensorflow/serving/regress"),
            "classify_x_to_y": sdu.build_signature_def(
                {"inputs": info(ex)}, {"scores": info(y)}, "tensorflow/serving/classify"),
        }
        builder = v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=sigs)
        builder.save()


class _HalfPlusTwo(tf.Module):
    def __init__(self):
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)
        self.c = tf.Variable(3.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    def _parse(self, ex):
        return tf.io.parse_example(ex, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, ex):
        return {"outputs": self.a * self._parse(ex) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, ex):
        return {"scores": self.a * self._parse(ex) + self.b}


def export_tf2(path):
    m = _HalfPlusTwo()
    tf.saved_model.save(m, path, signatures={
        "serving_default": m.predict, "regress_x_to_y": m.regress,
        "classify_x_to_y": m.classify})


class _BatchReporter(tf.Module):
    """Each row's output is the number of rows the model was called with."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"rows": tf.fill(tf.shape(x), tf.shape(x)[0])}


def export_batch_reporter(path):
    m = _BatchReporter()
    tf.saved_model.save(m, path, signatures={"serving_default": m.predict})


class _Slow(tf.Module):
    """Spins a graph loop n times: a model whose latency the request chooses."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n")])
    def predict(self, n):
        done = tf.while_loop(lambda i: i < n, lambda i: i + 1, [tf.constant(0)])
        return {"done": done[0] if isinstance(done, (list, tuple)) else done}


def export_slow(path):
    m = _Slow()
    tf.saved_model.save(m, path, signatures={"serving_default": m.predict})
