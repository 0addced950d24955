"""Beam's TFRecord checksums through google-crc32c: files Beam writes stay readable by
TensorFlow's reader (which verifies every record's checksum), and a corrupt record is
still caught when Beam reads it."""
import os

import pytest

from graft.components import beam_crc


def test_beam_writes_records_tensorflow_verifies_and_reads_back(tmp_path):
    import google_crc32c
    import tensorflow as tf
    from apache_beam.io import tfrecordio

    assert beam_crc.use_fast_crc32c()
    assert tfrecordio._default_crc32c_fn.fn is google_crc32c.value
    records = [b"", b"x", os.urandom(10_800), b"graft" * 1000]
    path = str(tmp_path / "r.tfrecord")
    with open(path, "wb") as f:
        for r in records:
            tfrecordio._TFRecordUtil.write_record(f, r)
    assert list(tf.compat.v1.io.tf_record_iterator(path)) == records

    with open(path, "rb") as f:  # and Beam's own reader checks them the same way
        got = [tfrecordio._TFRecordUtil.read_record(f) for _ in records]
    assert got == records
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0xFF  # a byte of the last record's data
    with open(path, "wb") as f:
        f.write(bytes(data))
    with open(path, "rb") as f:
        for _ in records[:-1]:
            tfrecordio._TFRecordUtil.read_record(f)
        with pytest.raises(ValueError, match="[Mm]ismatch|[Cc]orrupt|crc"):
            tfrecordio._TFRecordUtil.read_record(f)
