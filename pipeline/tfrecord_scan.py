"""Pre-flight for `--data-format tfrecord`: check the tf.Examples before any TFX work.

ImportExampleGen would take any records and the pipeline would fail much later
(a missing feature in Transform, an empty eval split in the Evaluator) with a
stack trace. Here we read each record's label and id once, check that the
features graft needs are there, and compute the split exactly as
ImportExampleGen will (hash of image_id), so bad input stops with a message
that says what to fix - the same checks the image-folder scan makes.

Byte-identical images are found the same way too (sha256 of image_bytes), but
ImportExampleGen ingests every record as given, so here they are reported, not
left out: the run warns how many copies there are, how many sit on both sides
of the split (they inflate held-out accuracy) and how many images carry
conflicting labels, so they can be removed where the TFRecords are written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from typing import Dict, Iterator, List, Tuple

from graft import tfrecords
from graft.components.image_folder_example_gen.scan import MAX_FILE_BYTES, DataError, check_image
from graft.contract import (FEATURE_ID, FEATURE_IMAGE, FEATURE_LABEL, SPLIT_EVAL, label_problem,
                            split_of)

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


# A record holds one image file, so the image folders' limit on one file bounds it too.
MAX_RECORD_BYTES = MAX_FILE_BYTES


def _records(path: str) -> Iterator[bytes]:
    try:
        yield from tfrecords.read_records(path, MAX_RECORD_BYTES)
    except tfrecords.RecordError as e:
        raise DataError(str(e)) from e


def _value(example, key: str, where: str) -> str:
    feature = example.features.feature.get(key)
    values = feature.bytes_list.value if feature is not None else []
    if len(values) != 1:
        raise DataError(f"{where}: feature {key!r} must hold exactly one bytes value "
                        f"(graft's tf.Examples carry {', '.join(REQUIRED)})")
    return values[0].decode("utf-8", "replace")


@dataclasses.dataclass
class TFRecordScan:
    counts: Dict[str, int]        # images per label
    eval_counts: Dict[str, int]   # eval-split images per label
    copies: int = 0               # records whose image_bytes an earlier record already had
    straddling: int = 0           # images with copies in both splits
    conflicts: int = 0            # images whose copies carry different labels
    examples: List[str] = dataclasses.field(default_factory=list)  # a few image_ids

    def duplicate_warning(self) -> str:
        """'' when every image is distinct, else one line saying what is duplicated."""
        if not self.copies:
            return ""
        return (f"warning: {self.copies} records repeat an image another record already holds "
                f"(same image_bytes): {self.straddling} images sit in both the train and the eval "
                f"split (held-out accuracy counts them as unseen), {self.conflicts} carry "
                f"conflicting labels. TFRecord input is used as given; remove the copies where "
                f"it is written (e.g. {', '.join(self.examples)})")


def _duplicates(seen: Dict[str, List[Tuple[str, str, str]]], result: TFRecordScan) -> None:
    for copies in seen.values():
        if len(copies) < 2:
            continue
        result.copies += len(copies) - 1
        result.straddling += len({split for _, _, split in copies}) > 1
        result.conflicts += len({label for _, label, _ in copies}) > 1
        if len(result.examples) < 3:
            result.examples.append(" = ".join(sorted(i for i, _, _ in copies)[:2]))


def scan(path: str, eval_percent: int) -> TFRecordScan:
    """Counts per label and per eval-split label, and duplicates; DataError on bad input."""
    import tensorflow as tf
    counts: Dict[str, int] = {}
    eval_counts: Dict[str, int] = {}
    seen: Dict[str, List[Tuple[str, str, str]]] = {}  # sha256 -> (image_id, label, split)
    for f in _files(path):
        try:
            for i, record in enumerate(_records(f)):
                where = f"{f}, record {i}"
                try:
                    with warnings.catch_warnings():
                        # protobuf's python parser only warns on some garbage
                        warnings.simplefilter("error", RuntimeWarning)
                        ex = tf.train.Example.FromString(record)
                except Exception as e:  # noqa: BLE001 - DecodeError or the warning
                    raise DataError(f"{where} is not a serialized tf.Example ({e})") from e
                _value(ex, FEATURE_IMAGE, where)
                label, image_id = _value(ex, FEATURE_LABEL, where), _value(ex, FEATURE_ID, where)
                # Checked as the image folders' files are: EmbeddingGen stopped the run on
                # an undecodable image six components later, its record unnamed at the end.
                bad_image = check_image(ex.features.feature[FEATURE_IMAGE].bytes_list.value[0])
                if bad_image:
                    raise DataError(f"{where} (image_id {image_id!r}): its image_bytes is not "
                                    f"usable: {bad_image}. TFRecord input is used as given: "
                                    f"fix or remove the record where the files are written")
                problem = label_problem(label)
                if problem:
                    raise DataError(f"{where}: {problem}")
                counts[label] = counts.get(label, 0) + 1
                split = split_of(image_id, eval_percent)
                if split == SPLIT_EVAL:
                    eval_counts[label] = eval_counts.get(label, 0) + 1
                digest = hashlib.sha256(
                    ex.features.feature[FEATURE_IMAGE].bytes_list.value[0]).hexdigest()
                seen.setdefault(digest, []).append((image_id, label, split))
        except tf.errors.OpError as e:
            raise DataError(f"{f} is not a readable TFRecord file ({e.message.splitlines()[0]})"
                            ) from e
    if not counts:
        raise DataError(f"the TFRecord files in {path} hold no records")
    if len(counts) < 2:
        raise DataError(f"only one label ({next(iter(counts))}) in {path}: a classifier needs "
                        f"at least two")
    result = TFRecordScan(counts, eval_counts)
    _duplicates(seen, result)
    return result
