"""The source lists integer version directories as TF Serving does (serving/source.py)."""
import pytest

from graft.serving import source


def test_only_ascii_digit_directories_are_versions(tmp_path):
    for name in ("1", "0007", "²", "١٢", "3a", ".tmp-4-123-x", "assets"):
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    assert sorted(source.list_versions(str(tmp_path))) == [1, 7]


def test_a_missing_base_path_is_an_error_never_zero_versions(tmp_path):
    with pytest.raises(source.SourceError, match="Could not find base path"):
        source.list_versions(str(tmp_path / "gone"))
