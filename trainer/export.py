"""Export the trained classifier as a SavedModel TF Serving and TFMA both load.

Signatures (the input is the modality's feature: ``image_bytes``, or ``text`` for a
text model; backbones/modality.py):
- ``serving_default``: {"image_bytes": [N] string} (b64 over REST) - or {"text": [N]
  string} - -> {"scores": [N, C], "classes": [N, C] class names, "label": [N] best
  class, "score": [N] its probability}.
- ``classify``: {"inputs": [N] serialized tf.Example with image_bytes (or text)} ->
  {"classes", "scores"}; method_name tensorflow/serving/classify, so TF
  Serving's Classify API (REST :classify) works.
- ``transform_features``: serialized tf.Examples -> {"label_id"}: the label
  mapped through THIS model's class list. TFMA runs it as a preprocessing
  function, so the champion and the challenger are each scored against their
  own vocabulary.
Also written: assets.extra/graft_model.json (classes, backbone, image size,
training metrics) and assets.extra/tf_serving_warmup_requests.

``export_head`` writes the same classifier after its frozen backbones: ``classify`` and
``transform_features`` over EmbeddingGen's records (the vector in place of the image).
The Evaluator scores it on the held-out vectors instead of running every backbone over
every held-out image again, for the challenger and the champion both
(components/embedding_evaluator/).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import tensorflow as tf

from graft import contract, files
from graft.backbones import modality as modalities
from graft.backbones.hub_module import Untracked
from graft.trainer import data


CLASSIFY_CHUNK = 64  # examples per model call inside the Classify signature


def _example_spec(feature: str):
    return {feature: tf.io.FixedLenFeature([], tf.string, default_value=""),
            contract.FEATURE_LABEL: tf.io.FixedLenFeature([], tf.string, default_value="")}


class ServingModule(tf.Module):
    def __init__(self, classifier, class_names: List[str], image_size: int,
                 max_image_pixels: int = contract.MAX_IMAGE_PIXELS, modality: str = "image",
                 image_sizes: Optional[List[int]] = None):
        super().__init__()
        # A multi-view classifier (multi_scale) takes the images at each of these sizes.
        self.image_sizes = list(image_sizes or [image_size])
        self.modality = modalities.of(modality)
        self.example_spec = _example_spec(self.modality.feature)
        # The classifier's values are saved through this list and its graph through the
        # signatures; tracked whole, Keras would also save every layer's call functions
        # and the backbone module's own again (hub_module.Untracked), which TFMA, the run
        # report and every server load paid for.
        self._keras = Untracked(classifier=classifier)
        self.classifier_variables = list(classifier.variables)
        self.image_size = image_size
        self.max_image_pixels = max_image_pixels
        self.class_names = tf.constant(class_names)
        self.label_table = data.label_table(class_names)

    def _predict(self, raw):
        inputs = [self.modality.prepare(raw, s, self.max_image_pixels) for s in self.image_sizes]
        inputs = inputs[0] if len(inputs) == 1 else inputs
        scores = tf.nn.softmax(self._keras.classifier(inputs, training=False), axis=-1)
        n = tf.shape(scores)[0]
        classes = tf.tile(self.class_names[tf.newaxis, :], [n, 1])
        return scores, classes

    def serve(self, raw):
        scores, classes = self._predict(raw)
        best = tf.argmax(scores, axis=-1)
        return {"scores": scores, "classes": classes,
                "label": tf.gather(self.class_names, best),
                "score": tf.reduce_max(scores, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")],
                 autograph=False)  # see export()
    def classify(self, inputs):
        # The model runs CLASSIFY_CHUNK examples at a time, one chunk after another: TFMA
        # (the Evaluator) calls this signature on batches Beam sizes adaptively, up to
        # 1 000 examples, and 1 000 images decoded at 224 px with the backbone's
        # activations took the Evaluator to 3.3 GB at 60 000 Fashion-MNIST images, more
        # than any other step. Per chunk, memory no longer depends on the caller's batch.
        raw = tf.io.parse_example(inputs, self.example_spec)[self.modality.feature]
        n = tf.shape(raw)[0]
        chunks = (n + CLASSIFY_CHUNK - 1) // CLASSIFY_CHUNK
        k = int(self.class_names.shape[0])

        def step(i, done):
            part = raw[i * CLASSIFY_CHUNK:(i + 1) * CLASSIFY_CHUNK]
            return i + 1, done.write(i, self._predict(part)[0])
        _, done = tf.while_loop(
            lambda i, _: i < chunks, step,
            [tf.constant(0), tf.TensorArray(tf.float32, size=chunks, infer_shape=False,
                                            element_shape=tf.TensorShape([None, k]))],
            parallel_iterations=1)  # one chunk at a time, or the bound is lost
        scores = done.concat()
        return {"classes": tf.tile(self.class_names[tf.newaxis, :], [n, 1]), "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
                 autograph=False)  # see export()
    def transform_features(self, examples):
        parsed = tf.io.parse_example(examples, self.example_spec)
        return {contract.FEATURE_LABEL_ID: self.label_table.lookup(parsed[contract.FEATURE_LABEL])}


class HeadModule(tf.Module):
    """The classifier's head alone: EmbeddingGen's records in, the served model's scores
    out (for a model whose backbones are the frozen ones that computed the vectors)."""

    def __init__(self, head, class_names: List[str], dim: int):
        super().__init__()
        self._keras = Untracked(head=head)
        self.head_variables = list(head.variables)
        self.dim = dim
        self.class_names = tf.constant(class_names)
        self.label_table = data.label_table(class_names)
        self.spec = {contract.FEATURE_EMBEDDING: tf.io.FixedLenFeature([], tf.string),
                     contract.FEATURE_LABEL: tf.io.FixedLenFeature([], tf.string,
                                                                   default_value="")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")],
                 autograph=False)
    def classify(self, inputs):
        raw = tf.io.parse_example(inputs, self.spec)[contract.FEATURE_EMBEDDING]
        x = tf.reshape(tf.io.decode_raw(raw, tf.float32, little_endian=True), [-1, self.dim])
        scores = tf.nn.softmax(self._keras.head(x, training=False), axis=-1)
        n = tf.shape(scores)[0]
        return {"classes": tf.tile(self.class_names[tf.newaxis, :], [n, 1]), "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
                 autograph=False)
    def transform_features(self, examples):
        parsed = tf.io.parse_example(examples, self.spec)
        return {contract.FEATURE_LABEL_ID: self.label_table.lookup(parsed[contract.FEATURE_LABEL])}


def export_head(head, class_names: List[str], dim: int, export_dir: str, info: Dict) -> None:
    """The head as a SavedModel with the full export's classify and transform_features
    signature names (so one TFMA EvalConfig fits both), and info - what identifies the
    vectors it takes - as assets.extra/graft_head.json."""
    module = HeadModule(head, class_names, dim)
    tf.saved_model.save(module, export_dir, signatures={
        contract.CLASSIFY_SIGNATURE: module.classify.get_concrete_function(),
        contract.TRANSFORM_SIGNATURE: module.transform_features.get_concrete_function()})
    _set_classify_method(export_dir)
    files.write(os.path.join(export_dir, contract.ASSETS_EXTRA, contract.HEAD_INFO_FILE),
                json.dumps(dict(info, classes=class_names, dim=dim), indent=2))


def _set_classify_method(export_dir: str) -> None:
    """TF2's saver writes every signature as a predict signature; TF Serving's
    Classify API checks method_name. Rewrite that one field, atomically."""
    from tensorflow.core.protobuf import saved_model_pb2
    path = os.path.join(export_dir, "saved_model.pb")
    sm = saved_model_pb2.SavedModel.FromString(files.read_bytes(path))
    for mg in sm.meta_graphs:
        mg.signature_def[contract.CLASSIFY_SIGNATURE].method_name = contract.CLASSIFY_METHOD
    files.write(path, sm.SerializeToString())


def _write_warmup(export_dir: str, raw_inputs: List[bytes],
                  feature: str = contract.FEATURE_IMAGE) -> None:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    path = os.path.join(export_dir, contract.ASSETS_EXTRA, contract.WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as w:
        for raw in raw_inputs[:3]:
            req = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=contract.SERVING_SIGNATURE))
            req.inputs[feature].CopyFrom(tf.make_tensor_proto([raw], dtype=tf.string))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())


def export(classifier, class_names: List[str], image_size: int, export_dir: str,
           info: Dict, warmup_images: Optional[List[bytes]] = None,
           max_image_pixels: int = contract.MAX_IMAGE_PIXELS, modality: str = "image",
           image_sizes: Optional[List[int]] = None) -> ServingModule:
    """Writes the SavedModel; returns its module (the trainer checks the head export
    against it)."""
    module = ServingModule(classifier, class_names, image_size, max_image_pixels, modality,
                           image_sizes)
    # The serving input is named after the modality's feature (image_bytes / text).
    # autograph=False: the graph has no Python control flow on tensors (decoding uses
    # tf.case), and converting the Keras and TF-Hub code beneath was most of the export's
    # time (measured: about 8 of 12 s).
    serve = tf.function(module.serve, input_signature=[
        tf.TensorSpec([None], tf.string, name=module.modality.feature)], autograph=False)
    signatures = {
        contract.SERVING_SIGNATURE: serve.get_concrete_function(),
        contract.CLASSIFY_SIGNATURE: module.classify.get_concrete_function(),
        contract.TRANSFORM_SIGNATURE: module.transform_features.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    module.saved_serve = signatures[contract.SERVING_SIGNATURE]  # after the save: not in it
    _set_classify_method(export_dir)
    files.write(os.path.join(export_dir, contract.ASSETS_EXTRA, contract.MODEL_INFO_FILE),
                json.dumps(dict(info, classes=class_names, image_size=image_size,
                                modality=modality), indent=2))
    if warmup_images:
        _write_warmup(export_dir, warmup_images, module.modality.feature)
    return module
