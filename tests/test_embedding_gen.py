"""EmbeddingGen's executor on real clip art and the real backbone: vectors, cache hits and
misses, cache keys, corrupt shards, undecodable images."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from tfx.types import artifact_utils, standard_artifacts

from graft import contract
from graft.components.embedding_gen import cache, executor
from graft.components.embedding_gen.component import Embeddings
from tests.conftest import OPENCLIPART_ROOT, require_path

SIZE = 64
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images():
    """Eight real clip-art PNGs (as graft's ingest would pass them) and their labels."""
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    out = []
    for root, _, files in sorted(os.walk(OPENCLIPART_ROOT)):
        for f in sorted(files):
            if f.endswith(".png") and len(out) < 8:
                img = Image.open(os.path.join(root, f)).convert("RGB")
                img.thumbnail((96, 96))
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                out.append((f"c{len(out) % 2}/{f}".encode(), len(out) % 2, buf.getvalue()))
    assert len(out) == 8
    return out


def _examples(tmp_path, name, splits):
    """An Examples artifact laid out as ExampleGen writes it: Split-<s>/*.gz tf.Examples
    with the label as a string (EmbeddingGen maps it through Transform's vocabulary)."""
    ex = standard_artifacts.Examples()
    ex.uri = str(tmp_path / name)
    ex.split_names = artifact_utils.encode_split_names(list(splits))
    for s, rows in splits.items():
        d = os.path.join(ex.uri, f"Split-{s}")
        os.makedirs(d)
        with tf.io.TFRecordWriter(os.path.join(d, "part-0.gz"), "GZIP") as w:
            for image_id, label, data in rows:
                w.write(tf.train.Example(features=tf.train.Features(feature={
                    contract.FEATURE_IMAGE: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[data])),
                    contract.FEATURE_ID: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[image_id])),
                    contract.FEATURE_LABEL: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[f"c{label}".encode()])),
                })).SerializeToString())
    return ex


# Transform's vocabulary (by frequency): "c1" first, so label "c0" has id 1, "c1" id 0.
LABELS = ["c1", "c0", "other"]


def _transform_graph(tmp_path):
    """A TransformGraph artifact holding the label vocabulary where tf.Transform puts it."""
    tg = standard_artifacts.TransformGraph()
    tg.uri = str(tmp_path / "transform_graph")
    assets = os.path.join(tg.uri, "transform_fn", "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, contract.LABEL_VOCABULARY), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    return tg


def _run(tmp_path, name, examples, backbone, cache_dir, size=SIZE, fingerprint="fp"):
    out = Embeddings()
    out.uri = str(tmp_path / f"{name}-out")
    executor.Executor().Do({"examples": [examples],
                            "transform_graph": [_transform_graph(tmp_path)]},
                           {"embeddings": [out]}, {
        "views": json.dumps([{"backbone": backbone, "fingerprint": fingerprint,
                              "image_size": size}]),
        "batch_size": 3, "cache_dir": cache_dir})
    vectors = {}
    for s in artifact_utils.decode_split_names(
            out.get_string_custom_property(contract.PROP_SPLIT_NAMES)):
        for f in tf.io.gfile.glob(os.path.join(out.uri, f"Split-{s}", "*")):
            assert f.endswith(".tfrecord")  # uncompressed: gzip was slow for float vectors
            for rec in tf.data.TFRecordDataset(f).as_numpy_iterator():
                feat = tf.train.Example.FromString(rec).features.feature
                image_id = feat[contract.FEATURE_ID].bytes_list.value[0]
                vectors[(s, image_id)] = (
                    feat[contract.FEATURE_LABEL_ID].int64_list.value[0],
                    np.frombuffer(feat[contract.FEATURE_EMBEDDING].bytes_list.value[0], "<f4"))
    props = {k: out.get_int_custom_property(k)
             for k in (contract.PROP_EMBEDDED, contract.PROP_REUSED, contract.PROP_EMBEDDING_DIM)}
    return vectors, props, out


def test_vectors_equal_the_backbones_own_output(tmp_path, images, imported_backbone):
    import tensorflow_hub as hub

    from graft.backbones import image_input
    ex = _examples(tmp_path, "ex", {"train": images[:5], "eval": images[5:]})
    vectors, props, _ = _run(tmp_path, "a", ex, imported_backbone, "")
    assert props[contract.PROP_EMBEDDED] == 8 and props[contract.PROP_EMBEDDING_DIM] == 2704
    layer = hub.KerasLayer(imported_backbone)
    batch = tf.stack([image_input.decode_one(tf.constant(b), SIZE) for _, _, b in images])
    direct = layer(batch, training=False).numpy()
    for i, (image_id, label, _) in enumerate(images):
        split = "train" if i < 5 else "eval"
        got_label, got = vectors[(split, image_id)]
        assert got_label == LABELS.index(f"c{label}")  # Transform's id, not the folder's
        np.testing.assert_allclose(got, direct[i], rtol=1e-4, atol=1e-5)


def test_cache_embeds_only_what_is_missing_and_never_reuses_another_key(
        tmp_path, images, imported_backbone):
    store = str(tmp_path / "cache")
    ex = _examples(tmp_path, "ex1", {"train": images[:4], "eval": images[4:6]})
    first, p, _ = _run(tmp_path, "r1", ex, imported_backbone, store)
    assert (p[contract.PROP_EMBEDDED], p[contract.PROP_REUSED]) == (6, 0)

    again, p, _ = _run(tmp_path, "r2", ex, imported_backbone, store)
    assert (p[contract.PROP_EMBEDDED], p[contract.PROP_REUSED]) == (0, 6)
    for k, (label, vec) in first.items():
        np.testing.assert_array_equal(again[k][1], vec)

    # One new image (a mirrored copy: new content) -> one new embedding.
    img = Image.open(io.BytesIO(images[0][2]))
    buf = io.BytesIO()
    ImageOps.mirror(img).save(buf, format="PNG")
    grown = _examples(tmp_path, "ex2", {"train": images[:4] + [(b"c0/new.png", 0, buf.getvalue())],
                                        "eval": images[4:6]})
    _, p, _ = _run(tmp_path, "r3", grown, imported_backbone, store)
    assert (p[contract.PROP_EMBEDDED], p[contract.PROP_REUSED]) == (1, 6)

    # Another image size or another backbone: a different key, everything recomputed.
    _, p, _ = _run(tmp_path, "r4", ex, imported_backbone, store, size=SIZE + 32)
    assert (p[contract.PROP_EMBEDDED], p[contract.PROP_REUSED]) == (6, 0)
    _, p, _ = _run(tmp_path, "r5", ex, imported_backbone, store, fingerprint="other-weights")
    assert (p[contract.PROP_EMBEDDED], p[contract.PROP_REUSED]) == (6, 0)
    assert len(os.listdir(store)) == 3


def test_a_corrupt_cache_shard_is_recomputed_never_served(tmp_path, images, imported_backbone):
    store = str(tmp_path / "cache")
    ex = _examples(tmp_path, "ex", {"train": images[:6]})
    first, _, out = _run(tmp_path, "r1", ex, imported_backbone, store)
    key = out.get_string_custom_property("graft_cache_key")
    shards = [(b, path) for b in cache.BUCKETS for path in cache.Store(store, key).shards(b)]
    bucket, victim = shards[0]
    n_in_victim = len(cache._read_shard(victim, 0))
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a vector
    open(victim, "wb").write(bytes(data))

    again, p, out2 = _run(tmp_path, "r2", ex, imported_backbone, store)
    assert p[contract.PROP_EMBEDDED] == n_in_victim
    assert p[contract.PROP_REUSED] == 6 - n_in_victim
    assert out2.get_int_custom_property("graft_corrupt_cache_shards") == 1
    assert not os.path.exists(victim)
    for k, (_, vec) in first.items():
        np.testing.assert_allclose(again[k][1], vec, rtol=1e-5, atol=1e-6)


def test_a_half_written_shard_is_never_read(tmp_path):
    store = cache.Store(str(tmp_path), "k")
    path = store.write("a", {b"a" * 64: np.ones(4, np.float32)})
    assert store.load("a")[0][b"a" * 64].tolist() == [1, 1, 1, 1]
    # A writer killed mid-shard leaves only a temp file, which readers ignore.
    open(os.path.join(os.path.dirname(path), ".tmp-part-1-x"), "wb").write(b"\x00" * 10)
    truncated = path.replace("part-", "part-0")
    open(truncated, "wb").write(open(path, "rb").read()[:-7])
    entries, corrupt = store.load("a")
    assert corrupt == 1 and not os.path.exists(truncated) and len(entries) == 1


def test_an_undecodable_image_is_named(tmp_path, images, imported_backbone):
    bad = images[:3] + [(b"c1/broken.png", 1, images[3][2][:40])]
    ex = _examples(tmp_path, "ex", {"train": bad})
    with pytest.raises(Exception, match="c1/broken.png: its image cannot be decoded"):
        _run(tmp_path, "r", ex, imported_backbone, "")


def test_a_label_outside_transforms_vocabulary_is_named():
    record = tf.train.Example(features=tf.train.Features(feature={
        contract.FEATURE_IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
        contract.FEATURE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a/1.png"])),
        contract.FEATURE_LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"zebra"])),
    })).SerializeToString()
    assert executor._parse(record, "train", {b"zebra": 3})[2] == 3
    with pytest.raises(ValueError, match=r"a/1.png: label 'zebra' is not in Transform's label"):
        executor._parse(record, "train", {b"cat": 0})


def test_a_shard_in_the_tfrecord_format_from_before_is_still_read(tmp_path):
    """Caches written before the .npy shards stay valid: re-embedding a large set after an
    upgrade would cost hours. New shards are .npy; a compaction merges both."""
    store = cache.Store(str(tmp_path), "k")
    d = tmp_path / "k" / "b3"
    d.mkdir(parents=True)
    h, vec = b"3" * 64, np.arange(4, dtype="<f4")

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
    with tf.io.TFRecordWriter(str(d / "part-old.tfrecord")) as w:
        w.write(tf.train.Example(features=tf.train.Features(feature={
            "h": b(h), "v": b(vec.tobytes()), "c": b(cache._check(h, vec.tobytes()))}))
            .SerializeToString())
    new = store.write("3", {b"3" + b"a" * 63: np.ones(4, np.float32)})
    assert new.endswith(".npy")
    entries, corrupt = store.load("3")
    assert corrupt == 0 and entries[h].tolist() == [0, 1, 2, 3] and len(entries) == 2
