"""Save a Keras backbone as a TF2 SavedModel in TF-Hub's reusable format.

TF-Hub's "reusable SavedModel" API (what ``hub.KerasLayer`` expects): the
root object has ``__call__(inputs, training)``, ``variables``,
``trainable_variables`` and ``regularization_losses``. We add:
- ``serving_default``: images -> {"feature_vector": [N, D]} (multi-level: pooled
  outputs of the top stages' blocks, then the head's 1280; see efficientnet_lite);
- ``logits``: images -> {"logits": [N, 1000]} (the ImageNet classifier on the last
  1280 features, kept so the import can be checked on real photos).
Images are float32 [N, H, W, 3] in [0, 1]; the module scales them itself.
"""
from __future__ import annotations

import tensorflow as tf

IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


def scale(images):
    # The weights were trained on (x - 127) / 128 for x in 0..255.
    return (images * 255.0 - 127.0) / 128.0


class Untracked:
    """Holds Keras objects out of the SavedModel's object graph. Tracked, a Keras model
    saves every layer's own call functions as well (about 2 000 functions for
    EfficientNet-Lite0): loading the module then took 3.3 s instead of 0.9 s, in every
    component and server that loads it. The variables are saved through the module's
    ``variables`` list, and the module's own functions hold the whole graph."""

    def __init__(self, **objects):
        self.__dict__.update(objects)


class BackboneModule(tf.Module):
    # TF-Hub reads these as saved attributes (lists of variables), not as
    # tf.Module's computed properties: shadow the properties so they are saved.
    variables = None
    trainable_variables = None

    def __init__(self, features, logits_layer):
        super().__init__(name=None)
        self._keras = Untracked(features=features, logits_layer=logits_layer)
        self.variables = list(features.variables) + list(logits_layer.variables)
        # The feature vector's variables only: TF-Hub fine-tunes these.
        self.trainable_variables = list(features.trainable_variables)
        self.regularization_losses = []

    @tf.function
    def __call__(self, images, training=False):
        return self._keras.features(scale(images), training=training)

    @tf.function(input_signature=[IMAGE_SPEC])
    def logits(self, images):
        features = self._keras.features(scale(images), training=False)
        head_dim = self._keras.logits_layer.kernel.shape[0]  # the head's features come last
        return self._keras.logits_layer(features[:, -head_dim:])


def save(features, logits_layer, export_dir: str) -> None:
    module = BackboneModule(features, logits_layer)
    # hub.KerasLayer calls with a Python bool: trace both variants.
    module.__call__.get_concrete_function(IMAGE_SPEC, True)
    serving = module.__call__.get_concrete_function(IMAGE_SPEC, False)
    signatures = {
        "serving_default": tf.function(
            lambda images: {"feature_vector": serving(images)},
            input_signature=[IMAGE_SPEC]).get_concrete_function(),
        "logits": tf.function(
            lambda images: {"logits": module.logits(images)},
            input_signature=[IMAGE_SPEC]).get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
