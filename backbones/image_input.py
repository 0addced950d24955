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

from graft.contract import MAX_IMAGE_PIXELS


def preprocessing_version() -> str:
    """Changes whenever this file does: part of the embedding cache's key, so a vector
    computed with other decoding is never reused (a comment edit costs one re-embed)."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]

WHITE = 255.0
_PNG, _GIF87, _GIF89, _BMP, _JPEG = b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"\xff\xd8"


def _uint(head: tf.Tensor, start: int, n: int, big_endian: bool) -> tf.Tensor:
    b = tf.cast(head[start:start + n], tf.int64)
    order = range(n) if big_endian else reversed(range(n))
    return sum(b[i] * (256 ** k) for k, i in enumerate(reversed(list(order))))


def declared_size(image_bytes: tf.Tensor) -> tf.Tensor:
    """[width, height] int64 from the image's header, without decoding it (0, 0 for a
    format decode_image will refuse anyway). PNG's IHDR, GIF's logical screen, BMP's
    info header (height may be negative: top-down), JPEG's SOF via extract_jpeg_shape."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(image_bytes, 0, 32),
                                              tf.constant(b"\0" * 32)]), 0, 32)
    b = tf.io.decode_raw(head, tf.uint8)
    magic = lambda m: tf.equal(tf.strings.substr(head, 0, len(m)), m)  # noqa: E731
    def bmp():
        h = _uint(b, 22, 4, False)
        h = tf.where(h >= 2 ** 31, 2 ** 32 - h, h)
        return tf.stack([_uint(b, 18, 4, False), h])
    def jpeg():
        hw = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return tf.stack([hw[1], hw[0]])
    return tf.case([
        (magic(_PNG), lambda: tf.stack([_uint(b, 16, 4, True), _uint(b, 20, 4, True)])),
        (tf.logical_or(magic(_GIF87), magic(_GIF89)),
         lambda: tf.stack([_uint(b, 6, 2, False), _uint(b, 8, 2, False)])),
        (magic(_BMP), bmp),
        (magic(_JPEG), jpeg)],
        default=lambda: tf.zeros([2], tf.int64), exclusive=True)


def check_pixels(image_bytes: tf.Tensor, max_pixels: int = MAX_IMAGE_PIXELS) -> tf.Operation:
    """Fails (InvalidArgument, so a server answers 400) before decoding an image whose
    header declares more than ``max_pixels``: a 110 KB PNG can declare 23000 x 23000."""
    wh = declared_size(image_bytes)
    return tf.debugging.Assert(
        wh[0] * wh[1] <= max_pixels,
        ["Image too large: its header declares width", wh[0], "height", wh[1],
         f"; the limit is {max_pixels} pixels"])


def decode_one(image_bytes: tf.Tensor, size: int, max_pixels: int = MAX_IMAGE_PIXELS
               ) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes -> float32 [size, size, 3] in [0, 1].

    Grayscale becomes RGB; transparency is composited onto white; the image is
    scaled to fit, keeping its aspect ratio, and padded with white to a square.
    An image declaring more than ``max_pixels`` is refused before it is decoded."""
    with tf.control_dependencies([check_pixels(image_bytes, max_pixels)]):
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
    # tf.image.resize(preserve_aspect_ratio=True)'s own arithmetic, but never below one
    # pixel: it makes a 20000 x 2 banner 0 px high at 96 px, and the resize fails.
    hw = tf.cast(tf.shape(img)[:2], tf.float32)
    scale = tf.reduce_min(float(size) / hw)
    fit = tf.maximum(tf.cast(tf.round(scale * hw), tf.int32), 1)
    img = tf.image.resize(img, fit, antialias=True)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    top, left = (size - h) // 2, (size - w) // 2
    img = tf.pad(img, [[top, size - h - top], [left, size - w - left], [0, 0]],
                 constant_values=WHITE)
    img = tf.ensure_shape(img, [size, size, 3])
    return tf.clip_by_value(img / 255.0, 0.0, 1.0)


def decode_batch(image_bytes: tf.Tensor, size: int, max_pixels: int = MAX_IMAGE_PIXELS
                 ) -> tf.Tensor:
    """[N] string -> [N, size, size, 3] float32."""
    return tf.map_fn(lambda b: decode_one(b, size, max_pixels), image_bytes,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
