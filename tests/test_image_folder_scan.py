"""Data checks that stop a run before any TFX work, in words."""
import pytest
from PIL import Image

from graft.components.image_folder_example_gen import scan


def _img(path, mode="RGB", size=(20, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, "white" if mode != "L" else 255).save(path)


def test_counts_labels_ids_and_skips(tmp_path):
    _img(tmp_path / "cats" / "a.png")
    _img(tmp_path / "cats" / "sub" / "b.jpg")
    _img(tmp_path / "dogs" / "c.gif", mode="P")
    _img(tmp_path / "dogs" / "d.bmp")
    (tmp_path / "dogs" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    _img(tmp_path / "dogs" / "e.tiff")
    r = scan.scan(str(tmp_path))
    assert r.counts == {"cats": 2, "dogs": 2}
    assert ("cats/sub/b.jpg", "cats") in r.records
    reasons = dict(r.skipped)
    assert set(reasons) == {"dogs/bad.jpg", "dogs/e.tiff"}


def test_empty_class_single_class_and_no_images(tmp_path):
    with pytest.raises(scan.DataError, match="does not exist"):
        scan.scan(str(tmp_path / "nope"))
    with pytest.raises(scan.DataError, match="no class folders"):
        scan.scan(str(tmp_path))
    _img(tmp_path / "cats" / "a.png")
    with pytest.raises(scan.DataError, match="only one class"):
        scan.scan(str(tmp_path))
    (tmp_path / "dogs").mkdir()
    with pytest.raises(scan.DataError, match="no usable images: dogs"):
        scan.scan(str(tmp_path))


def test_split_is_stable_when_data_grows():
    ids = [f"c/{i}.png" for i in range(500)]
    before = {i: scan.split_of(i, 30) for i in ids}
    assert 0.2 < sum(v == "eval" for v in before.values()) / len(ids) < 0.4
    more = ids + [f"c/new{i}.png" for i in range(100)]
    assert all(scan.split_of(i, 30) == before[i] for i in more if i in before)
