"""Pre-flight for `--data-format tfrecord`: check the tf.Examples before any TFX work.

ImportExampleGen would take any records and the pipeline would fail much later
(a missing feature in Transform, an empty eval split in the Evaluator) with a
stack trace. Here we read each record's label and id once, check that the
features graft needs are there, and compute the split exactly as
ImportExampleGen will (hash of image_id), so bad input stops with a message
that says what to fix - the same checks the image-folder scan makes.
"""
from __future__ import annotations

import os
import warnings
from typing import Dict, Tuple

from graft.components.image_folder_example_gen.scan import (FEATURE_ID, FEATURE_IMAGE,
                                                            FEATURE_LABEL, DataError, split_of)

REQUIRED = (FEATURE_IMAGE, FEATURE_LABEL, FEATURE_ID)


def _files(path: str):
    import tensorflow as tf
    if not tf.io.gfile.isdir(path):
        raise DataError(f"TFRecord folder {path} does not exist")
    files = sorted(os.path.join(path, f) for f in tf.io.gfile.listdir(path)
                   if not f.endswith("/") and not f.startswith("."))
    if not files:
        raise DataError(f"no TFRecord files in {path}: expected files of serialized tf.Examples "
                        f"with features {', '.join(REQUIRED)}")
    return files


def _value(example, key: str, where: str) -> str:
    feature = example.features.feature.get(key)
    values = feature.bytes_list.value if feature is not None else []
    if len(values) != 1:
        raise DataError(f"{where}: feature {key!r} must hold exactly one bytes value "
                        f"(graft's tf.Examples carry {', '.join(REQUIRED)})")
    return values[0].decode("utf-8", "replace")


def scan(path: str, eval_percent: int) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(images per label, eval-split images per label); DataError on bad input."""
    import tensorflow as tf
    counts: Dict[str, int] = {}
    eval_counts: Dict[str, int] = {}
    for f in _files(path):
        compression = "GZIP" if f.endswith(".gz") else ""  # as Beam's AUTO detection
        try:
            for i, record in enumerate(tf.data.TFRecordDataset(f, compression_type=compression)):
                where = f"{f}, record {i}"
                try:
                    with warnings.catch_warnings():
                        # protobuf's python parser only warns on some garbage
                        warnings.simplefilter("error", RuntimeWarning)
                        ex = tf.train.Example.FromString(record.numpy())
                except Exception as e:  # noqa: BLE001 - DecodeError or the warning
                    raise DataError(f"{where} is not a serialized tf.Example ({e})") from e
                _value(ex, FEATURE_IMAGE, where)
                label, image_id = _value(ex, FEATURE_LABEL, where), _value(ex, FEATURE_ID, where)
                counts[label] = counts.get(label, 0) + 1
                if split_of(image_id, eval_percent) == "eval":
                    eval_counts[label] = eval_counts.get(label, 0) + 1
        except tf.errors.OpError as e:
            raise DataError(f"{f} is not a readable TFRecord file ({e.message.splitlines()[0]})"
                            ) from e
    if not counts:
        raise DataError(f"the TFRecord files in {path} hold no records")
    if len(counts) < 2:
        raise DataError(f"only one label ({next(iter(counts))}) in {path}: a classifier needs "
                        f"at least two")
    return counts, eval_counts
