"""The embedding cache: backbone outputs kept across runs, keyed by image content.

Layout, under ``<pipeline root>/embedding_cache/`` (local or gs://, through tf.io.gfile):

    <key>/key.json                       what the key stands for (backbone, size, decoding)
    <key>/b<h>/part-<uuid>.<crc>.npy     immutable shards; <h> = first hex digit of the hash

``key`` hashes the backbone's fingerprint, the input size and the decoding's version,
so another backbone, size or preprocessing never reuses a stale vector. A shard is one
NumPy array of (image sha256, float32 vector) rows; its name carries the CRC-32C of
the file's bytes, so a damaged or truncated shard fails its check. A shard is written
under a temp name and renamed, so a killed run leaves no half-written shard under a
real name; a shard that fails to read or check is deleted and its images are embedded
again - never served. Why .npy and not TFRecords of tf.Examples (the format before,
still read): a bucket loads as one array instead of a record parsed per vector, and
every run loads its buckets (README, "scale: 15 000 images + 1 500 new"). Why not a key-value store: shards need nothing but a filesystem (local, GCS) and
are read whole, bucket by bucket, which is how the EmbeddingGen executor uses them.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import uuid
from typing import Dict, List, Tuple

import google_crc32c
import numpy as np

from graft import files

log = logging.getLogger("graft.embedding_cache")

BUCKETS = "0123456789abcdef"   # by the first hex digit of the content hash
SHARD_PREFIX = "part-"
SHARD_SUFFIX = ".npy"
OLD_SHARD_SUFFIX = ".tfrecord"   # shards written before the .npy format: read, not written
# A bucket with more shards than this is rewritten as one (each run adds at most one
# shard per bucket, so this bounds the files a bucket's reader opens).
MAX_SHARDS = 8
_HASH, _VECTOR, _CHECK = "h", "v", "c"


def cache_key(backbone_fingerprint: str, image_size: int, preprocessing_version: str) -> str:
    text = json.dumps([backbone_fingerprint, int(image_size), preprocessing_version])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check(content_hash: bytes, vector: bytes) -> bytes:
    return hashlib.sha256(content_hash + b"\0" + vector).digest()[:16]


class CorruptShard(ValueError):
    pass


class Store:
    """One key's part of the cache. Stateless between calls; safe in Beam workers."""

    def __init__(self, root: str, key: str):
        self.root, self.key = root, key
        self.dir = os.path.join(root, key)

    def describe(self, description: Dict) -> None:
        """Writes key.json once (what this key stands for, for people reading the cache)."""
        import tensorflow as tf
        path = os.path.join(self.dir, "key.json")
        if not tf.io.gfile.exists(path):
            tf.io.gfile.makedirs(self.dir)
            _write_atomic(path, json.dumps(dict(description, key=self.key), indent=2).encode())

    def _bucket_dir(self, bucket: str) -> str:
        return os.path.join(self.dir, f"b{bucket}")

    def shards(self, bucket: str) -> List[str]:
        import tensorflow as tf
        d = self._bucket_dir(bucket)
        if not tf.io.gfile.isdir(d):
            return []
        return sorted(os.path.join(d, n) for n in tf.io.gfile.listdir(d)
                      if n.startswith(SHARD_PREFIX)
                      and n.endswith((SHARD_SUFFIX, OLD_SHARD_SUFFIX)))

    def load(self, bucket: str, dim: int = 0) -> Tuple[Dict[bytes, np.ndarray], int]:
        """{content hash (hex, as bytes): vector} of one bucket, and how many shards were
        corrupt (deleted). ``dim`` > 0 also rejects vectors of another length."""
        import tensorflow as tf
        entries: Dict[bytes, np.ndarray] = {}
        corrupt = 0
        for path in self.shards(bucket):
            try:
                entries.update(_read_shard(path, dim))
            except (CorruptShard, tf.errors.OpError) as e:
                corrupt += 1
                log.warning("embedding cache: %s is corrupt (%s); deleting it, its images "
                            "are embedded again", path, str(e).splitlines()[0][:200])
                try:
                    tf.io.gfile.remove(path)
                except tf.errors.OpError:
                    pass
        return entries, corrupt

    def write(self, bucket: str, entries: Dict[bytes, np.ndarray]) -> str:
        """One new immutable shard with these entries; returns its path."""
        import tensorflow as tf
        d = self._bucket_dir(bucket)
        tf.io.gfile.makedirs(d)
        buf = io.BytesIO()
        np.save(buf, _rows(entries), allow_pickle=False)
        data = buf.getvalue()
        final = os.path.join(d, f"{SHARD_PREFIX}{uuid.uuid4().hex}."
                                f"{google_crc32c.value(data):08x}{SHARD_SUFFIX}")
        _write_atomic(final, data)
        return final

    def compact(self, bucket: str, entries: Dict[bytes, np.ndarray]) -> bool:
        """Rewrites a bucket holding more than MAX_SHARDS shards as one; True if it did.
        The merged shard is published before the old ones are removed: a reader in
        between sees duplicates (harmless), never a gap."""
        import tensorflow as tf
        old = self.shards(bucket)
        if len(old) <= MAX_SHARDS:
            return False
        self.write(bucket, entries)
        for path in old:
            try:
                tf.io.gfile.remove(path)
            except tf.errors.NotFoundError:
                pass
        return True


def _rows(entries: Dict[bytes, np.ndarray]) -> np.ndarray:
    dim = len(next(iter(entries.values()))) if entries else 0
    rows = np.empty(len(entries), dtype=[("hash", "S64"), ("vector", "<f4", (dim,))])
    if entries:
        rows["hash"] = list(entries)
        rows["vector"] = np.stack(list(entries.values()))
    return rows


def _read_shard(path: str, dim: int) -> Dict[bytes, np.ndarray]:
    return (_read_tfrecord_shard if path.endswith(OLD_SHARD_SUFFIX) else _read_npy_shard)(
        path, dim)


def _read_npy_shard(path: str, dim: int) -> Dict[bytes, np.ndarray]:
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        expected = int(os.path.basename(path)[:-len(SHARD_SUFFIX)].rsplit(".", 1)[1], 16)
    except (ValueError, IndexError) as e:
        raise CorruptShard(f"its name carries no checksum ({e})") from e
    if google_crc32c.value(data) != expected:
        raise CorruptShard("its bytes fail their CRC-32C")
    try:
        rows = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise CorruptShard(f"not a cache shard ({e})") from e
    if rows.dtype.names != ("hash", "vector") or rows.ndim != 1:
        raise CorruptShard(f"not a cache shard (dtype {rows.dtype})")
    vectors = rows["vector"]
    if dim and vectors.shape[1] != dim:
        raise CorruptShard(f"its vectors have {vectors.shape[1]} values, expected {dim}")
    return dict(zip(rows["hash"].tolist(), vectors))


def _read_tfrecord_shard(path: str, dim: int) -> Dict[bytes, np.ndarray]:
    import tensorflow as tf
    out = {}
    # The record reader, not tf.data: an eager tf.data pipeline costs about 15 ms to set
    # up per shard, and one eager step per record was most of a cached run's time
    # (measured 1.4 s of 7.6 s for 16 500 vectors); this reader has neither cost.
    records = tf.compat.v1.io.tf_record_iterator(path)
    for i, rec in enumerate(records):
        try:
            f = tf.train.Example.FromString(rec).features.feature
            h, raw, check = (f[k].bytes_list.value[0] for k in (_HASH, _VECTOR, _CHECK))
        except Exception as e:  # noqa: BLE001 - DecodeError, missing keys: all mean corrupt
            raise CorruptShard(f"record {i} is not a cache entry ({e})") from e
        if _check(h, raw) != check:
            raise CorruptShard(f"record {i} fails its check")
        vec = np.frombuffer(raw, dtype="<f4")
        if dim and vec.size != dim:
            raise CorruptShard(f"record {i} has {vec.size} values, expected {dim}")
        out[h] = vec
    return out


def _write_atomic(path: str, data: bytes) -> None:
    import tensorflow as tf
    with files.published(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
