"""tf.data input from Transform's output examples (image_bytes, label_id, image_id)."""
from __future__ import annotations

from typing import List

import tensorflow as tf

from graft import contract

FEATURES = {
    contract.FEATURE_IMAGE: tf.io.FixedLenFeature([], tf.string),
    contract.FEATURE_ID: tf.io.FixedLenFeature([], tf.string),
    contract.FEATURE_LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
}


def _files(patterns: List[str]) -> List[str]:
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no example files match {patterns}")
    return files


def records(patterns: List[str]) -> tf.data.Dataset:
    ds = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP")
    return ds.map(lambda r: tf.io.parse_single_example(r, FEATURES))


def in_validation(image_id: tf.Tensor, val_percent: int) -> tf.Tensor:
    """Stable hash split of the train split into fit / validation (phase 2's best epoch)."""
    return tf.strings.to_hash_bucket_fast(image_id, 100) < val_percent
