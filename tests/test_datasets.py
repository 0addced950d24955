"""`graft data ...`: real Debian-packaged data -> DIR/<class>/<file>."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from graft.datasets import fashion_mnist, folder_writer, openclipart
from tests.conftest import FASHION_MNIST_ROOT, OPENCLIPART_ROOT, require_path, run_graft

# Real wart files in openclipart-png: a 623 Mpx and a 169 Mpx PNG.
BOMBS = {"transportation": "roadsigns/stop_sign_right_font_mig_.png",
         "food": "meats_and_eggs/salami_mateya_01.png"}


def _files(d):
    return sorted(os.path.relpath(os.path.join(p, f), d)
                  for p, _, fs in os.walk(d) for f in fs if f.endswith(".png"))


@pytest.fixture
def small_clipart_root(tmp_path):
    """A small openclipart tree of real files (symlinked): 6 images per class for
    two classes, the two real decompression bombs, and one truncated PNG."""
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    root = tmp_path / "png"
    for cls in ("transportation", "food"):
        real = openclipart.list_category(OPENCLIPART_ROOT, cls)
        picks = [f for f in real if f != BOMBS[cls]][:6] + [BOMBS[cls]]
        for rel in picks:
            dst = root / cls / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.join(OPENCLIPART_ROOT, cls, rel), dst)
    good = open(os.path.join(OPENCLIPART_ROOT, "food", picks[0]), "rb").read()
    (root / "food" / "truncated.png").write_bytes(good[: len(good) // 3])
    return str(root)


def test_openclipart_layout_bombs_and_corrupt_files(small_clipart_root, tmp_path):
    out = tmp_path / "clipart"
    m = openclipart.prepare(str(out), classes=("food", "transportation"),
                            root=small_clipart_root, size=64, log=lambda s: None)
    assert m["counts"] == {"food": 6, "transportation": 6}
    skipped = {os.path.basename(s["file"]): s["reason"] for s in m["skipped"]}
    assert set(skipped) == {"stop_sign_right_font_mig_.png", "salami_mateya_01.png",
                            "truncated.png"}
    assert "decompression bomb" in skipped["stop_sign_right_font_mig_.png"]
    assert "decompression bomb" in skipped["salami_mateya_01.png"]
    files = _files(out)
    assert len(files) == 12 and {f.split(os.sep)[0] for f in files} == {"food", "transportation"}
    for f in files:
        img = Image.open(out / f)
        assert img.mode == "RGB" and max(img.size) <= 64
    assert json.load(open(out / folder_writer.MANIFEST))["total"] == 12
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".tmp-")]


def test_openclipart_composites_transparency_onto_white(small_clipart_root, tmp_path):
    out = tmp_path / "c"
    openclipart.prepare(str(out), classes=("food", "transportation"), root=small_clipart_root,
                        size=0, log=lambda s: None)
    checked = 0
    for f in _files(out):
        src_name = os.path.basename(f).split("__")[-1]
        src = next(p for p in _files(small_clipart_root) if os.path.basename(p) == src_name)
        rgba = Image.open(os.path.join(small_clipart_root, src)).convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        ys, xs = np.nonzero(alpha == 0)
        if len(ys):
            px = np.asarray(Image.open(out / f))[ys[0], xs[0]]
            assert tuple(px) == (255, 255, 255)
            checked += 1
    assert checked >= 3  # most clip art has transparent corners


def test_openclipart_is_deterministic_for_a_seed(tmp_path):
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    kw = dict(classes=("plants", "tools"), max_per_class=4, size=32, log=lambda s: None)
    openclipart.prepare(str(tmp_path / "a"), seed=1, **kw)
    openclipart.prepare(str(tmp_path / "b"), seed=1, **kw)
    openclipart.prepare(str(tmp_path / "c"), seed=2, **kw)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    # A re-run with the same request reuses the folder.
    m = openclipart.prepare(str(tmp_path / "a"), seed=1, **kw)
    assert m["total"] == 8


def test_openclipart_bad_requests(tmp_path):
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    with pytest.raises(folder_writer.DatasetError, match="available: .*animals"):
        openclipart.prepare(str(tmp_path / "x"), classes=("animals", "dragons"))
    with pytest.raises(folder_writer.DatasetError, match="apt-get install openclipart-png"):
        openclipart.prepare(str(tmp_path / "x"), root=str(tmp_path / "nowhere"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("user data")
    with pytest.raises(folder_writer.DatasetError, match="already exists"):
        openclipart.prepare(str(tmp_path / "busy"), classes=("plants", "tools"), max_per_class=2)
    assert (tmp_path / "busy" / "mine.txt").read_text() == "user data"
    (tmp_path / "a-file").write_text("user data")  # was a NotADirectoryError traceback
    with pytest.raises(folder_writer.DatasetError, match="is a file"):
        openclipart.prepare(str(tmp_path / "a-file"), classes=("plants", "tools"))
    assert (tmp_path / "a-file").read_text() == "user data"


def test_fashion_mnist_real_classes_and_seeded_selection(tmp_path):
    require_path(FASHION_MNIST_ROOT, "dataset-fashion-mnist")
    m = fashion_mnist.prepare(str(tmp_path / "a"), per_class=5, seed=3, log=lambda s: None)
    assert m["counts"] == {name: 5 for name in fashion_mnist.CLASS_NAMES}
    files = _files(tmp_path / "a")
    assert len(files) == 50
    img = Image.open(tmp_path / "a" / files[0])
    assert img.size == (28, 28) and img.mode == "L"
    fashion_mnist.prepare(str(tmp_path / "b"), per_class=5, seed=3, log=lambda s: None)
    fashion_mnist.prepare(str(tmp_path / "c"), per_class=5, seed=4, log=lambda s: None)
    assert _files(tmp_path / "b") == files
    assert _files(tmp_path / "c") != files


def test_fashion_mnist_labels_match_the_images(tmp_path):
    # Trousers are tall and narrow, bags wide: a real-data sanity check that
    # images and labels were not misaligned while reading the IDX files.
    require_path(FASHION_MNIST_ROOT, "dataset-fashion-mnist")
    fashion_mnist.prepare(str(tmp_path / "t"), split="test", per_class=50, log=lambda s: None)

    def width_ratio(cls):
        arrs = [np.asarray(Image.open(tmp_path / "t" / cls / f)) > 30
                for f in os.listdir(tmp_path / "t" / cls)]
        return np.mean([a.any(0).sum() / max(1, a.any(1).sum()) for a in arrs])

    assert width_ratio("trouser") < 0.7 < width_ratio("bag")


def test_cli_data_fashion_mnist(tmp_path):
    require_path(FASHION_MNIST_ROOT, "dataset-fashion-mnist")
    r = run_graft("data", "fashion-mnist", "--out", str(tmp_path / "f"), "--per-class", "2",
                  "--size", "32")
    assert r.returncode == 0, r.stderr
    assert "wrote 20 train images" in r.stdout
    assert Image.open(tmp_path / "f" / "bag" / os.listdir(tmp_path / "f" / "bag")[0]).size == (32, 32)


@pytest.mark.parametrize("args", [
    ("openclipart", "--max-per-class", "-5"), ("openclipart", "--size", "-1"),
    ("fashion-mnist", "--per-class", "-1"), ("fashion-mnist", "--size", "x"),
    ("tweets", "--per-class", "-2")])
def test_cli_data_refuses_negative_counts_and_sizes(tmp_path, args):
    """--max-per-class -5 was random.sample's ValueError traceback; --size -1 passed."""
    r = run_graft("data", args[0], "--out", str(tmp_path / "d"), *args[1:])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"argument {args[1]}: a whole number, 0 or more" in r.stderr
    assert not (tmp_path / "d").exists()
