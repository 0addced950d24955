"""Reads TFRecord files with every record's length bounded before it is read.

Used for data (`--data-format tfrecord`'s pre-flight) and for a served version's warmup
file. Not tf.data.TFRecordDataset: TensorFlow's reader allocates the length a record's
header declares before reading it, so a crafted 112-byte file declaring 1 TB crashed the
whole process (a segfault, no message; in graft serve, every model with it). Beam's
reader is private and reads the declared length in one call. Records are checked as
TFRecord readers check them: the length's and the data's masked CRC-32C.
"""
from __future__ import annotations

import struct
from typing import Iterator

import google_crc32c  # installed with apache-beam[gcp]: the CPU's CRC instruction

from graft import files


class RecordError(ValueError):
    """The file is not readable TFRecords; the message names it and the record."""


def masked_crc32c(data: bytes) -> int:
    c = google_crc32c.value(data)
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xFFFFFFFF


def read_records(path: str, max_record_bytes: int) -> Iterator[bytes]:
    """The records of one TFRecord file (GZIP if its name ends .gz, as Beam's AUTO), local
    or any filesystem TensorFlow reads. RecordError at the first bad record."""
    import gzip
    import zlib
    import tensorflow as tf
    n = 0
    try:
        # A local file must be a regular one: a FIFO would block the read for ever.
        with (files.open_data_file(path) if "://" not in path
              else tf.io.gfile.GFile(path, "rb")) as raw:
            f = gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw
            while True:
                head = f.read(12)
                if not head:
                    return
                bad = f"{path} is not a readable TFRecord file (record {n}"
                if len(head) < 12:
                    raise RecordError(f"{bad}: the file ends inside its header - cut short?)")
                length, crc = struct.unpack("<QI", head)
                if masked_crc32c(head[:8]) != crc:
                    raise RecordError(f"{bad}: its length fails its checksum - not "
                                      f"TFRecords, or corrupt)")
                if length > max_record_bytes:
                    raise RecordError(f"{bad} declares {length} bytes, over the "
                                      f"{max_record_bytes >> 20} MiB a record may hold)")
                body = f.read(length + 4)
                if len(body) < length + 4:
                    raise RecordError(f"{bad}: the file ends inside it - cut short?)")
                if masked_crc32c(body[:length]) != struct.unpack("<I", body[length:])[0]:
                    raise RecordError(f"{bad}: its data fails its checksum - corrupt)")
                yield body[:length]
                n += 1
    except (OSError, EOFError, zlib.error, tf.errors.OpError) as e:
        # gzip.BadGzipFile is an OSError; GFile raises OpErrors for remote files
        raise RecordError(f"{path} is not a readable TFRecord file ({e})") from e
