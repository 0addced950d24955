"""Data checks that stop a run before any TFX work, in words."""
import pytest
from PIL import Image

from graft import contract
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
    before = {i: contract.split_of(i, 30) for i in ids}
    assert 0.2 < sum(v == "eval" for v in before.values()) / len(ids) < 0.4
    more = ids + [f"c/new{i}.png" for i in range(100)]
    assert all(contract.split_of(i, 30) == before[i] for i in more if i in before)


def _distinct(path, shade):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (shade, 255 - shade, 7)).save(path)


def test_identical_copies_are_kept_once_and_label_conflicts_left_out(tmp_path):
    _distinct(tmp_path / "cats" / "a.png", 10)
    _distinct(tmp_path / "cats" / "b.png", 20)
    _distinct(tmp_path / "cats" / "z.png", 30)
    _distinct(tmp_path / "dogs" / "c.png", 40)
    _distinct(tmp_path / "dogs" / "d.png", 50)
    # the same bytes twice in one class, in a sub-folder too
    (tmp_path / "cats" / "sub").mkdir()
    (tmp_path / "cats" / "sub" / "a_copy.png").write_bytes((tmp_path / "cats" / "a.png").read_bytes())
    (tmp_path / "cats" / "0a.png").write_bytes((tmp_path / "cats" / "a.png").read_bytes())
    # the same image filed under both classes
    (tmp_path / "dogs" / "z_too.png").write_bytes((tmp_path / "cats" / "z.png").read_bytes())
    r = scan.scan(str(tmp_path))
    assert sorted(i for i, _ in r.records) == ["cats/0a.png", "cats/b.png", "dogs/c.png",
                                               "dogs/d.png"]
    assert r.counts == {"cats": 2, "dogs": 2}
    left_out = {i: (kind, why) for i, kind, why in r.duplicates}
    assert left_out["cats/a.png"] == (contract.DUPLICATE_COPY,
                                      "identical to cats/0a.png: kept once")
    assert left_out["cats/sub/a_copy.png"][0] == contract.DUPLICATE_COPY
    for image_id, other in (("cats/z.png", "dogs/z_too.png"), ("dogs/z_too.png", "cats/z.png")):
        kind, why = left_out[image_id]
        assert kind == contract.DUPLICATE_LABEL_CONFLICT and "(cats, dogs)" in why and other in why
    assert r.duplicate_counts() == {contract.DUPLICATE_COPY: 2,
                                    contract.DUPLICATE_LABEL_CONFLICT: 2}
    assert r.skipped == []
    # no content is left on both sides of the split: every kept record is distinct
    kept = [(tmp_path / i).read_bytes() for i, _ in r.records]
    assert len(set(kept)) == len(kept)


def test_a_class_emptied_by_label_conflicts_says_so(tmp_path):
    _distinct(tmp_path / "cats" / "a.png", 10)
    _distinct(tmp_path / "cats" / "b.png", 20)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "b.png").write_bytes((tmp_path / "cats" / "b.png").read_bytes())
    with pytest.raises(scan.DataError, match="no usable images: dogs.*2 images were left out "
                                             "because the same image is also filed under"):
        scan.scan(str(tmp_path))


def test_summary_reports_duplicates_in_words():
    from graft.pipeline import summary
    text = summary.format_text({"data": {"counts": {"cats": 2, "dogs": 2}, "duplicates": [
        {"image_id": "cats/a.png", "kind": contract.DUPLICATE_COPY, "reason": "identical to cats/0a.png"},
        {"image_id": "cats/z.png", "kind": contract.DUPLICATE_LABEL_CONFLICT,
         "reason": "the same image is filed under 2 classes (cats, dogs)"}]}})
    assert "identical copies kept once: 1 files left out" in text
    assert "label conflicts: 1 files left out" in text
    assert "cats/z.png: the same image is filed under 2 classes (cats, dogs)" in text


def test_a_file_that_cannot_be_read_is_skipped_not_fatal(tmp_path):
    _distinct(tmp_path / "cats" / "a.png", 10)
    _distinct(tmp_path / "dogs" / "b.png", 20)
    (tmp_path / "dogs" / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a dangling link
    r = scan.scan(str(tmp_path))
    assert r.counts == {"cats": 1, "dogs": 1}
    assert dict(r.skipped)["dogs/gone.png"].startswith("unreadable:")


def test_a_pipe_or_an_oversized_file_named_as_an_image_is_skipped_not_read(
        tmp_path, monkeypatch):
    """A FIFO named x.png blocked a plain open() for ever (the run hung in its pre-flight
    check); a file over the size limit is not read into memory."""
    import os
    import threading
    _distinct(tmp_path / "cats" / "a.png", 10)
    _distinct(tmp_path / "dogs" / "b.png", 20)
    _img(tmp_path / "dogs" / "big.png", size=(400, 300))
    os.mkfifo(tmp_path / "dogs" / "pipe.png")
    monkeypatch.setattr(scan, "MAX_FILE_BYTES", (tmp_path / "dogs" / "b.png").stat().st_size)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=scan.scan(str(tmp_path))), daemon=True)
    t.start()
    t.join(60)
    assert "r" in out, "the scan blocked on the pipe"
    reasons = dict(out["r"].skipped)
    assert "not a regular file" in reasons["dogs/pipe.png"]
    assert "larger than" in reasons["dogs/big.png"]
    assert out["r"].counts == {"cats": 1, "dogs": 1}


def test_a_class_name_with_a_line_break_is_refused_naming_it(tmp_path):
    """tf.Transform keeps labels one a line: 'new\\nline' broke the run in EmbeddingGen."""
    _distinct(tmp_path / "cats" / "a.png", 10)
    _distinct(tmp_path / "new\nline" / "b.png", 20)
    with pytest.raises(scan.DataError, match=r"class name 'new\\nline' holds a control"):
        scan.scan(str(tmp_path))


def _two_classes(tmp_path):
    for cls, colour in (("cats", "white"), ("dogs", "black")):
        for i in range(3):
            path = tmp_path / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8 + i, 8), colour).save(path)


def test_odd_file_names_and_empty_files_are_skipped_in_words(tmp_path):
    import os
    _two_classes(tmp_path)
    bad_name = os.path.join(os.fsencode(str(tmp_path / "cats")), b"caf\xe9.png")
    with open(bad_name, "wb") as f:
        f.write((tmp_path / "cats" / "0.png").read_bytes()[:-1] + b"\x01")
    (tmp_path / "dogs" / "empty.png").write_bytes(b"")
    (tmp_path / "dogs" / "junk.png").write_bytes(b"not an image at all")
    os.symlink(str(tmp_path / "dogs"), str(tmp_path / "dogs" / "loop"))  # nested loop: not followed
    r = scan.scan(str(tmp_path))
    assert r.counts == {"cats": 3, "dogs": 3}
    reasons = dict(r.skipped)
    assert "UTF-8" in reasons["cats/caf\\xe9.png"]
    assert reasons["dogs/empty.png"] == "empty file (0 bytes)"
    assert "BytesIO" not in reasons["dogs/junk.png"] and "not a readable image" in reasons[
        "dogs/junk.png"]


@pytest.mark.parametrize("kind", ["loop", "dangling", "not-utf8"])
def test_a_class_entry_tfx_cannot_read_stops_the_run_naming_it(tmp_path, kind):
    import os
    _two_classes(tmp_path)
    if kind == "loop":
        os.symlink(str(tmp_path / "birds"), str(tmp_path / "birds"))
    elif kind == "dangling":
        os.symlink(str(tmp_path / "gone"), str(tmp_path / "birds"))
    else:
        os.mkdir(os.path.join(os.fsencode(str(tmp_path)), b"b\xefrds"))
    with pytest.raises(scan.DataError) as e:
        scan.scan(str(tmp_path))
    assert ("b\\xefrds" if kind == "not-utf8" else "birds") in str(e.value)
    assert ("UTF-8" if kind == "not-utf8" else "remove or fix it") in str(e.value)
