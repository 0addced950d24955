"""Light augmentation for fine-tuning (phase 2), on decoded images."""
from __future__ import annotations

import tensorflow as tf


def augment(image: tf.Tensor, size: int, seed=None) -> tf.Tensor:
    """Light augmentation for fine-tuning: horizontal flip and a random crop of up to 10%."""
    image = tf.image.random_flip_left_right(image, seed=seed)
    crop = tf.cast(tf.cast(size, tf.float32) * tf.random.uniform([], 0.9, 1.0, seed=seed),
                   tf.int32)
    image = tf.image.random_crop(image, [crop, crop, 3], seed=seed)
    return tf.image.resize(image, [size, size])
