"""Image bytes -> backbone input, as TensorFlow ops: the one decoding used to embed,
to train and inside the exported model, so there is no skew between them.

Decoding and resizing live in the model so that serving takes raw image bytes
and nothing decoded is ever materialized on disk. Only standard TF ops
(DecodeImage, ResizeBilinear, Pad, ...), so real TF Serving loads the export.
The output follows TF-Hub's image convention: float32 RGB in [0, 1].
"""
from __future__ import annotations

import hashlib

import tensorflow as tf


def preprocessing_version() -> str:
    """Changes whenever this file does: part of the embedding cache's key, so a vector
    computed with other decoding is never reused (a comment edit costs one re-embed)."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]

WHITE = 255.0


def decode_one(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes -> float32 [size, size, 3] in [0, 1].

    Grayscale becomes RGB; transparency is composited onto white; the image is
    scaled to fit, keeping its aspect ratio, and padded with white to a square."""
    img = tf.io.decode_image(image_bytes, channels=0, expand_animations=False)
    img = tf.cast(img, tf.float32)
    channels = tf.shape(img)[-1]

    def gray():
        return tf.image.grayscale_to_rgb(img[..., :1])

    def gray_alpha():
        rgb, a = tf.image.grayscale_to_rgb(img[..., :1]), img[..., 1:2] / 255.0
        return rgb * a + WHITE * (1.0 - a)

    def rgba():
        rgb, a = img[..., :3], img[..., 3:4] / 255.0
        return rgb * a + WHITE * (1.0 - a)

    img = tf.case([(tf.equal(channels, 1), gray), (tf.equal(channels, 2), gray_alpha),
                   (tf.equal(channels, 4), rgba)], default=lambda: img[..., :3])
    img = tf.image.resize(img, [size, size], preserve_aspect_ratio=True, antialias=True)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    top, left = (size - h) // 2, (size - w) // 2
    img = tf.pad(img, [[top, size - h - top], [left, size - w - left], [0, 0]],
                 constant_values=WHITE)
    img = tf.ensure_shape(img, [size, size, 3])
    return tf.clip_by_value(img / 255.0, 0.0, 1.0)


def decode_batch(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """[N] string -> [N, size, size, 3] float32."""
    return tf.map_fn(lambda b: decode_one(b, size), image_bytes,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
