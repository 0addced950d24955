"""EmbeddingGen's batching across cache buckets, with a stand-in for the backbone (this is
the DoFn's bookkeeping; the real backbone's vectors are checked in test_embedding_gen.py):
every example comes out once with its own vector, batches are full where they can be, and
buckets waiting for a shared batch stay few."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from graft.components.embedding_gen import executor


class _FakeModel:
    """[N] raw inputs -> [N, 2] vectors derived from the bytes; records each batch's size."""

    def __init__(self):
        self.calls = []

    def __call__(self, batch):
        self.calls.append(len(batch))
        return np.array([[len(b), b[-1]] for b in batch], np.float32)


@pytest.fixture
def run(tmp_path):
    def _run(buckets, batch_size):
        """Runs the DoFn over {bucket: [raw inputs]}; returns (records, model, the most
        buckets that waited at once)."""
        os.makedirs(executor.split_dir(str(tmp_path), "train"))
        fn = executor._EmbedBucket("", [executor.ViewSpec("k", "unused", 0)], batch_size,
                                   str(tmp_path), "image", [b"only"])
        fn.setup()
        fake = _FakeModel()
        fn._model = lambda i: fake
        fn.start_bundle()
        most_waiting = 0
        for name, raws in buckets.items():
            items = [("train", f"{name}/{j}".encode(), 0, f"{name}{j:03d}".encode(), raw)
                     for j, raw in enumerate(raws)]
            fn.process((name, [items]))
            most_waiting = max(most_waiting, len(fn._open))
        fn.finish_bundle()
        fn.teardown()
        records = {}
        files = glob.glob(os.path.join(executor.split_dir(str(tmp_path), "train"), "*"))
        # One file per bucket, nothing left under a temporary name.
        assert sorted(os.path.basename(f) for f in files) == sorted(
            f"{executor.OUTPUT_FILE_PREFIX}-b{b}{executor.OUTPUT_FILE_SUFFIX}" for b in buckets)
        for path in files:
            for value in tf.compat.v1.io.tf_record_iterator(path):
                f = tf.train.Example.FromString(value).features.feature
                records[f["image_id"].bytes_list.value[0]] = np.frombuffer(
                    f["embedding"].bytes_list.value[0], "<f4")
        return records, fake, most_waiting
    return _run


def _raw(name, j):
    return f"{name}-{j}".encode() + bytes([j % 251])


def test_misses_from_several_buckets_share_full_batches(run):
    buckets = {b: [_raw(b, j) for j in range(6)] for b in "0123456789abcdef"}
    records, fake, _ = run(buckets, batch_size=4)
    assert len(records) == 96
    for b, raws in buckets.items():
        for j, raw in enumerate(raws):
            np.testing.assert_array_equal(records[f"{b}/{j}".encode()], [len(raw), raw[-1]])
    # 96 misses in batches of 4: 24 full calls. Per bucket, 6 = 4 + a padded 2 would be 32.
    assert fake.calls == [4] * 24


def test_few_misses_per_bucket_do_not_keep_every_bucket_waiting(run):
    buckets = {b: [_raw(b, 0)] for b in "0123456789abcdef"}
    records, fake, most_waiting = run(buckets, batch_size=64)
    assert len(records) == 16
    assert most_waiting <= executor.MAX_WAITING + 1
    # Each call is padded to the batch size (one input shape for the backbone).
    assert set(fake.calls) == {64}
    assert len(fake.calls) <= 16 // executor.MAX_WAITING + 1


def test_examples_are_read_into_bucket_chunks_of_bounded_size(tmp_path, monkeypatch):
    """The reading step sorts a file's examples into the cache's buckets, in chunks no
    larger than CHUNK_BYTES (so memory does not grow with the file), each example once."""
    path = str(tmp_path / "data.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as w:
        for j in range(200):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_raw("x", j) * 20])),
                "image_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"%d" % j])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ab"[j % 2:][:1]])),
            })).SerializeToString())
    monkeypatch.setattr(executor._ReadByBucket, "CHUNK_BYTES", 500)
    fn = executor._ReadByBucket({b"a": 0, b"b": 1}, "image", "image_id")
    chunks = list(fn.process(("train", path)))
    seen = [item for _, chunk in chunks for item in chunk]
    assert sorted(int(i[1]) for i in seen) == list(range(200))
    assert all(item[3][:1].decode() == bucket for bucket, chunk in chunks for item in chunk)
    assert all(item[2] == int(item[1]) % 2 for item in seen)   # label ids by the vocabulary
    # A chunk goes out at the first record that takes it past 500 bytes: all but its last
    # record (each a little more than its image) stay under that.
    assert all(sum(len(item[4]) for item in chunk[:-1]) < 500 for _, chunk in chunks)
    assert len(chunks) > 16 and max(len(chunk) for _, chunk in chunks) > 1


def test_a_long_step_prints_its_progress(run, monkeypatch, capsys):
    monkeypatch.setattr(executor._Progress, "EVERY_SECONDS", 0.0)
    run({b: [_raw(b, j) for j in range(3)] for b in "0123"}, batch_size=4)
    lines = [line for line in capsys.readouterr().out.splitlines() if "[embed]" in line]
    assert len(lines) == 4
    assert "4 of 16 buckets done in this worker: 12 images written, 12 embedded" in lines[-1]
