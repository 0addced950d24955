"""Publishing a version into the serving dir when the disk cannot take it: refused in
words, before or during the copy, and nothing half-written left behind."""
import errno
import os
import shutil
import subprocess
import uuid

import pytest

from graft.components.versioned_pusher import versions


def _model(tmp_path, megabytes=3):
    src = tmp_path / "model"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"\0" * 1000)
    (src / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(megabytes << 20))
    return src


def _left(base):
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


def test_a_push_that_cannot_fit_is_refused_before_copying(tmp_path, monkeypatch):
    src, base = _model(tmp_path), tmp_path / "serving" / "m"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=2 << 20) if str(p) == str(base) else real(p))
    with pytest.raises(versions.PushError) as e:
        versions.publish(str(src), str(base), {"run": 1})
    msg = str(e.value)
    assert f"no space in {base}" in msg and "needs 4.2 MB" in msg and "2.1 MB free" in msg
    assert "Nothing was pushed" in msg and "[Errno" not in msg
    assert _left(base) == []


def test_a_copy_that_runs_out_of_space_midway_leaves_no_version(tmp_path, monkeypatch):
    """The free space can go while the copy runs (another writer): shutil.copytree then
    gathers each file's ENOSPC into one shutil.Error."""
    src, base = _model(tmp_path), tmp_path / "serving" / "m"
    real_copytree = shutil.copytree

    def copytree_until_full(s, d, **kw):
        real_copytree(s, d, ignore=lambda folder, names: [n for n in names if n.startswith("var")],
                      **kw)
        raise shutil.Error([(os.path.join(s, "variables"), os.path.join(d, "variables"),
                             f"[Errno {errno.ENOSPC}] No space left on device: 'x'")])

    monkeypatch.setattr(shutil, "copytree", copytree_until_full)
    with pytest.raises(versions.PushError, match=f"no space in {base}.*Nothing was pushed"):
        versions.publish(str(src), str(base), {"run": 1})
    assert _left(base) == []  # no version, no temp dir, no last-version record
    monkeypatch.setattr(shutil, "copytree", real_copytree)
    assert versions.publish(str(src), str(base), {"run": 2}) == 1


def test_other_copy_failures_name_the_first_cause(tmp_path, monkeypatch):
    src, base = _model(tmp_path, 1), tmp_path / "serving" / "m"

    def refuse(s, d, **kw):
        raise shutil.Error([(s, d, "[Errno 5] Input/output error: 'variables.data'")])

    monkeypatch.setattr(shutil, "copytree", refuse)
    with pytest.raises(versions.PushError, match="could not copy the model into .*Input/output"):
        versions.publish(str(src), str(base), {"run": 1})
    assert _left(base) == []


def test_a_real_full_filesystem(tmp_path):
    """The same on a real 2 MB tmpfs, where one can be mounted (root, Linux)."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src, base = _model(tmp_path), mnt / "m"
        with pytest.raises(versions.PushError, match="no space"):
            versions.publish(str(src), str(base), {"run": 1})
        assert _left(base) == []
    finally:
        subprocess.run(["umount", str(mnt)])
