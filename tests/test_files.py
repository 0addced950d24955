"""graft/files.py: a file appears under its name whole, or not at all, on any filesystem TensorFlow reads."""
import os

import pytest

from graft import files


def test_a_file_is_published_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "data.tfrecord")
    with files.published(path) as tmp:
        open(tmp, "wb").write(b"one")
        assert not os.path.exists(path)          # nothing under the real name yet
    assert open(path, "rb").read() == b"one" and os.listdir(tmp_path) == ["data.tfrecord"]
    with pytest.raises(RuntimeError):
        with files.published(path) as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("killed mid-write")
    # The old file stays; the half-written one is gone.
    assert open(path, "rb").read() == b"one" and os.listdir(tmp_path) == ["data.tfrecord"]
    with files.published(path) as tmp:
        open(tmp, "wb").write(b"two")
    assert open(path, "rb").read() == b"two"


def test_artifact_files_on_a_filesystem_python_cannot_open():
    """ram:// stands in for gs://: what the trainer and components write to an artifact
    goes through TensorFlow's filesystems, not open()."""
    path = f"ram://graft-files-{os.getpid()}/a/b/report.json"
    files.write(path, '{"x": 1}')
    assert files.exists(path) and files.read_text(path) == '{"x": 1}'
    files.write(path, b"\x00\x01")
    assert files.read_bytes(path) == b"\x00\x01"
    with pytest.raises(OSError):
        open(path)


def test_open_data_file_opens_regular_files_only(tmp_path):
    """A FIFO named like an image would block a plain open() for ever; /dev/zero would be
    read for ever; a folder is not a file."""
    import os
    import threading
    (tmp_path / "a.png").write_bytes(b"12345")
    with files.open_data_file(str(tmp_path / "a.png")) as f:
        assert f.read() == b"12345"
    with pytest.raises(OSError, match="larger than"):
        files.open_data_file(str(tmp_path / "a.png"), max_bytes=4)
    with pytest.raises(IsADirectoryError):
        files.open_data_file(str(tmp_path))
    os.mkfifo(tmp_path / "pipe.png")
    out = {}

    def try_open():
        try:
            files.open_data_file(str(tmp_path / "pipe.png"))
        except OSError as e:
            out["e"] = e
    t = threading.Thread(target=try_open, daemon=True)
    t.start()
    t.join(30)
    assert "not a regular file" in str(out.get("e")), "blocked on the pipe"
    with pytest.raises(OSError, match="not a regular file"):
        files.open_data_file("/dev/zero")


def test_config_files_are_read_only_if_regular_small_and_utf8(tmp_path):
    """`graft serve --model_config_file /dev/zero` (and graft.toml, the batching, monitoring,
    SSL and session files, `graft versions|label|rollback`) read until the kernel killed the
    process; a folder or non-UTF-8 bytes were tracebacks."""
    import os
    cfg = tmp_path / "models.config"
    cfg.write_text("model_config_list {}")
    assert files.read_config_text(str(cfg)) == "model_config_list {}"
    os.mkfifo(tmp_path / "pipe.config")
    for path, why in (("/dev/zero", "not a regular file"),
                      (str(tmp_path / "pipe.config"), "not a regular file"),
                      (str(tmp_path), "a folder"),
                      (str(tmp_path / "none.config"), "No such file")):
        with pytest.raises(files.UnreadableFile, match=why):
            files.read_config_text(path)
    with pytest.raises(files.UnreadableFile, match="larger than"):
        files.read_config_text(str(cfg), max_bytes=4)
    cfg.write_bytes(b"\xff\xfe")
    with pytest.raises(files.UnreadableFile, match="not UTF-8"):
        files.read_config_text(str(cfg))
