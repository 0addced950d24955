"""components/publish.py: a file appears under its name whole, or not at all."""
import os

import pytest

from graft.components import publish


def test_a_file_is_published_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "data.tfrecord")
    with publish.published(path) as tmp:
        open(tmp, "wb").write(b"one")
        assert not os.path.exists(path)          # nothing under the real name yet
    assert open(path, "rb").read() == b"one" and os.listdir(tmp_path) == ["data.tfrecord"]
    with pytest.raises(RuntimeError):
        with publish.published(path) as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("killed mid-write")
    # The old file stays; the half-written one is gone.
    assert open(path, "rb").read() == b"one" and os.listdir(tmp_path) == ["data.tfrecord"]
    with publish.published(path) as tmp:
        open(tmp, "wb").write(b"two")
    assert open(path, "rb").read() == b"two"
