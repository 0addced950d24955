"""A disk that cannot take what graft writes - a version in the serving dir, models.config
for graft label/rollback: refused in words, before or during the write, with nothing
half-written left behind and the old file standing."""
import errno
import os
import shutil
import subprocess
import uuid

import pytest

from graft import contract
from graft.components.versioned_pusher import versions
from tests.conftest import run_graft


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


def test_a_failed_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    p = tmp_path / "models.config"
    contract.atomic_write(str(p), "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        contract.atomic_write(str(p), "new")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(p)
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["models.config"]


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 2 MB tmpfs, where one can be mounted (root, Linux)."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)])


def _fill(fs):
    fd = os.open(fs / "fill", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)


def test_a_real_full_filesystem_under_the_pusher(tmp_path, tiny_fs):
    src, base = _model(tmp_path), tiny_fs / "m"
    with pytest.raises(versions.PushError, match="no space"):
        versions.publish(str(src), str(base), {"run": 1})
    assert _left(base) == []


def test_graft_label_on_a_full_disk_says_so_and_keeps_models_config(tmp_path, tiny_fs):
    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    config = tiny_fs / "models.config"
    text = (f'model_config_list {{\n  config {{ name: "m" base_path: "{base}" '
            f'model_platform: "tensorflow" }}\n}}\n')
    config.write_text(text)
    _fill(tiny_fs)
    r = run_graft("label", "--model_config_file", str(config), "m", "stable", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"No space left on device: {config}" in r.stderr
    assert config.read_text() == text
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["fill", "models.config"]


def test_graft_run_on_a_full_pipeline_root_names_it(tmp_path, tiny_fs):
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
    (tiny_fs / "root").mkdir()
    _fill(tiny_fs)
    from PIL import Image
    for cls, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        for i in range(6):
            Image.new("RGB", (16, 16), tuple(c // (i + 1) for c in colour)).save(
                data / cls / f"{i}.png")
    r = run_graft("run", "--data", str(data), "--pipeline-root", str(tiny_fs / "root"),
                  "--serving-dir", str(tmp_path / "serving"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"No space left on device: {tiny_fs / 'root'}" in r.stderr
    assert "free space there" in r.stderr
