"""The data contract (graft/contract.py): the split hash, atomic publishing, no imports."""
import ast
import os
import subprocess
import sys

import pytest

from graft import contract


def test_partition_key_is_the_serialized_feature_tfx_hashes():
    import tensorflow as tf
    for image_id in ("cats/a.png", "", "ü/ß.jpg", "x" * 300):
        want = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[image_id.encode()])).SerializeToString(deterministic=True)
        assert contract.partition_key(image_id) == want


def test_split_is_deterministic_and_roughly_the_asked_share():
    ids = [f"c/{i}.png" for i in range(2000)]
    share = sum(contract.split_of(i, 30) == contract.SPLIT_EVAL for i in ids) / len(ids)
    assert 0.27 < share < 0.33
    assert [contract.split_of(i, 30) for i in ids] == [contract.split_of(i, 30) for i in ids]


def test_contract_imports_nothing_of_graft_and_no_tensorflow():
    tree = ast.parse(open(contract.__file__).read())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(n.split(".")[0] in ("graft", "tensorflow", "tfx") for n in names), names


def test_atomic_dir_publishes_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "out"
    with contract.atomic_dir(str(dest)) as tmp:
        open(os.path.join(tmp, "a"), "w").write("1")
        assert not dest.exists()
    assert (dest / "a").read_text() == "1" and (dest.stat().st_mode & 0o777) == 0o755
    with pytest.raises(RuntimeError):
        with contract.atomic_dir(str(tmp_path / "fails")) as tmp:
            open(os.path.join(tmp, "half"), "w").write("x")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_refuses_or_replaces_an_existing_dir(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("old")
    with pytest.raises(FileExistsError):
        with contract.atomic_dir(str(dest)) as tmp:
            open(os.path.join(tmp, "new"), "w").write("new")
    assert [p.name for p in dest.iterdir()] == ["old"]
    with contract.atomic_dir(str(dest), replace=True) as tmp:
        open(os.path.join(tmp, "new"), "w").write("new")
    assert [p.name for p in dest.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temps_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".tmp-my-model-2026-{dead}-abcd_123").mkdir()
    (tmp_path / f".tmp-7-{os.getpid()}-xyz").mkdir()
    (tmp_path / "7").mkdir()
    assert contract.remove_stale_temps(str(tmp_path)) == [f".tmp-my-model-2026-{dead}-abcd_123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".tmp-7-{os.getpid()}-xyz", "7"]


def test_atomic_write_replaces_whole_files_readable_by_others(tmp_path):
    p = tmp_path / "models.config"
    contract.atomic_write(str(p), "one")
    assert p.read_text() == "one" and (p.stat().st_mode & 0o777) == 0o644
    contract.atomic_write(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["models.config"]


def test_temps_in_the_older_pushers_format_are_cleaned_too(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".tmp-3-{dead}").mkdir()
    assert contract.remove_stale_temps(str(tmp_path)) == [f".tmp-3-{dead}"]
