"""--data-format tfrecord: bad records stop the run before any TFX work, with words."""
import gzip
import os

import pytest
import tensorflow as tf

from graft.components.image_folder_example_gen.scan import DataError
from graft import tfrecords
from graft.contract import split_of
from graft.pipeline import config, ingest, tfrecord_scan
from tests.conftest import run_graft


def _example(**features) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in features.items()
    })).SerializeToString()


def _png(i: int) -> bytes:
    """A real 4 x 4 PNG, distinct for each i (the scan checks every record's image)."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (i % 256, i // 256, 0)).save(buf, "PNG")
    return buf.getvalue()


def _write(path, records, gz=False):
    if gz:
        with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
            for r in records:
                w.write(r)
    else:
        with tf.io.TFRecordWriter(str(path)) as w:
            for r in records:
                w.write(r)


def _records(n, labels=("cat", "dog")):
    return [_example(image_bytes=_png(0), label=labels[i % len(labels)].encode(),
                     image_id=f"img{i}.png".encode()) for i in range(n)]


def test_counts_and_eval_split_match_the_hash_split(tmp_path):
    _write(tmp_path / "part-0.gz", _records(40), gz=True)
    _write(tmp_path / "part-1", _records(10, labels=("bird", "cat")))
    r = tfrecord_scan.scan(str(tmp_path), 30)
    counts, ev = r.counts, r.eval_counts
    assert counts == {"cat": 25, "dog": 20, "bird": 5}
    expected = {}
    for i in range(40):
        if split_of(f"img{i}.png", 30) == "eval":
            label = ("cat", "dog")[i % 2]
            expected[label] = expected.get(label, 0) + 1
    for i in range(10):
        if split_of(f"img{i}.png", 30) == "eval":
            label = ("bird", "cat")[i % 2]
            expected[label] = expected.get(label, 0) + 1
    assert ev == expected and sum(ev.values()) > 0


def test_missing_feature_names_what_is_needed(tmp_path):
    _write(tmp_path / "part-0", [_example(image_bytes=b"x", label=b"cat")])
    with pytest.raises(DataError, match=r"record 0: feature 'image_id'.*image_bytes, label, "
                                        r"image_id"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_a_file_that_is_not_tfrecords_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("these are not records at all, just some text " * 5)
    with pytest.raises(DataError, match="notes.txt is not a readable TFRecord file"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_crafted_and_damaged_record_files_are_named_not_read(tmp_path):
    """A 112-byte file whose valid header declares a 1 TB record crashed graft run
    (TensorFlow's reader allocates the declared length first: a segfault, no message)."""
    import struct

    def masked(data):
        return tfrecords.masked_crc32c(data)
    head = struct.pack("<Q", 1 << 40)
    (tmp_path / "evil").write_bytes(head + struct.pack("<I", masked(head)) + b"x" * 100)
    with pytest.raises(DataError, match=r"evil is not a readable TFRecord file \(record 0 "
                                        r"declares 1099511627776 bytes, over the 256 MiB"):
        tfrecord_scan.scan(str(tmp_path), 30)
    (tmp_path / "evil").unlink()
    _write(tmp_path / "part-0", _records(4))
    good = (tmp_path / "part-0").read_bytes()
    (tmp_path / "part-0").write_bytes(good[:-9])
    with pytest.raises(DataError, match=r"record 3: the file ends inside it - cut short"):
        tfrecord_scan.scan(str(tmp_path), 30)
    (tmp_path / "part-0").write_bytes(good[:20] + bytes([good[20] ^ 1]) + good[21:])
    with pytest.raises(DataError, match=r"record 0: its data fails its checksum"):
        tfrecord_scan.scan(str(tmp_path), 30)
    (tmp_path / "part-0").unlink()
    _write(tmp_path / "part-0.gz", _records(4), gz=True)
    gz = (tmp_path / "part-0.gz").read_bytes()
    (tmp_path / "part-0.gz").write_bytes(gz[:len(gz) // 2])
    with pytest.raises(DataError, match=r"part-0.gz is not a readable TFRecord file"):
        tfrecord_scan.scan(str(tmp_path), 30)
    (tmp_path / "part-0.gz").unlink()
    os.mkfifo(tmp_path / "part-0")  # blocked the scan for ever
    with pytest.raises(DataError, match=r"part-0 is not a readable TFRecord file \(not a regular"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_a_label_with_a_line_break_is_refused(tmp_path):
    _write(tmp_path / "part-0", _records(4, labels=("cat", "dog\r")))
    with pytest.raises(DataError, match=r"record 1: the class name 'dog\\r' holds a control"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_a_record_that_is_not_a_tf_example_is_named(tmp_path):
    _write(tmp_path / "part-0", [b"\x00\x01 definitely not a proto \xff"])
    with pytest.raises(DataError, match="record 0 is not a serialized tf.Example"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_one_label_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(DataError, match="no TFRecord files"):
        tfrecord_scan.scan(str(tmp_path), 30)
    _write(tmp_path / "part-0", _records(5, labels=("cat",)))
    with pytest.raises(DataError, match=r"only one label \(cat\)"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_empty_eval_split_stops_before_the_pipeline(tmp_path):
    # With 1 % held out, none of img2..img5 lands in eval.
    recs = _records(6)[2:]
    assert all(split_of(f"img{i}.png", 1) == "train" for i in range(2, 6))
    _write(tmp_path / "part-0", recs)
    cfg = config.load(None, {"data": {"path": str(tmp_path), "format": "tfrecord",
                                      "eval_percent": 1}})
    with pytest.raises(DataError, match="no image falls in the eval split"):
        ingest.preflight(cfg.data, log=lambda s: None)


def test_cli_exits_2_on_bad_tfrecords(tmp_path):
    data = tmp_path / "records"
    data.mkdir()
    with gzip.open(data / "part-0.gz", "wb") as f:
        f.write(b"gzip, but no TFRecord framing inside")
    r = run_graft("run", "--data", str(data), "--data-format", "tfrecord",
                  "--pipeline-root", str(tmp_path / "root"))
    assert r.returncode == 2, r.stderr[-1000:]
    assert "part-0.gz" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "root").exists()


def test_duplicate_images_are_reported_not_dropped(tmp_path):
    # img0..img9 distinct; then copies: one image twice under the same label, one under two labels
    recs = [_example(image_bytes=_png(i), label=(b"cat", b"dog")[i % 2],
                     image_id=f"img{i}.png".encode()) for i in range(10)]
    straddle = next(i for i in range(10, 100)
                    if split_of(f"img{i}.png", 30) != split_of("img0.png", 30))
    recs.append(_example(image_bytes=_png(0), label=b"cat", image_id=f"img{straddle}.png".encode()))
    recs.append(_example(image_bytes=_png(1), label=b"cat", image_id=b"img100.png"))  # img1 is dog
    _write(tmp_path / "part-0", recs)
    r = tfrecord_scan.scan(str(tmp_path), 30)
    assert sum(r.counts.values()) == 12  # ingested as given
    assert (r.copies, r.straddling, r.conflicts) == (2, 1, 1)
    lines = []
    cfg = config.load(None, {"data": {"path": str(tmp_path), "format": "tfrecord"}})
    ingest.preflight(cfg.data, log=lines.append)
    warning = [x for x in lines if x.startswith("warning:")]
    assert warning and "2 records repeat an image" in warning[0]
    assert "1 images sit in both the train and the eval split" in warning[0]
    assert "1 carry conflicting labels" in warning[0] and "img0.png" in warning[0]


def test_a_record_whose_image_cannot_be_decoded_is_named_before_any_tfx_work(tmp_path):
    """It stopped EmbeddingGen, six components in, and the run's last line lost which
    record it was."""
    recs = _records(6)
    recs.insert(3, _example(image_bytes=b"not an image", label=b"cat", image_id=b"bad.png"))
    _write(tmp_path / "part-0", recs)
    with pytest.raises(DataError, match=r"part-0, record 3 \(image_id 'bad.png'\): its "
                                        r"image_bytes is not usable: not a readable image"):
        tfrecord_scan.scan(str(tmp_path), 30)


def test_distinct_images_give_no_warning(tmp_path):
    recs = [_example(image_bytes=_png(i), label=(b"cat", b"dog")[i % 2],
                     image_id=f"img{i}.png".encode()) for i in range(10)]
    _write(tmp_path / "part-0", recs)
    assert tfrecord_scan.scan(str(tmp_path), 30).duplicate_warning() == ""
