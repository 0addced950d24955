"""Integer model versions under a TF Serving base path.

TF Serving parses child directory names as integers and ignores the rest, so
a version is written into a ``.tmp-…`` dir and renamed to ``<N>`` (contract.atomic_dir):
the rename is the publish. Numbers never go back, even after old versions are
pruned: the highest number ever published is remembered in ``.graft-last-version``.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from typing import Callable, Dict, List, Optional

from graft import contract, files


class PushError(Exception):
    """The model could not be copied into the serving dir; the message says why and what
    to do. Nothing was published: the temp copy is removed."""


# Room kept beyond the model's own bytes: the provenance, the model card and the
# filesystem's blocks (a SavedModel is a few dozen files).
_SPACE_MARGIN = 1 << 20


def _tree_bytes(path: str) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _model_bytes(source_dir: str) -> Optional[int]:
    """What the new version will take on disk; None for a model on an object store."""
    return None if "://" in source_dir else _tree_bytes(source_dir) + _SPACE_MARGIN


def _check_space(base: str, need: Optional[int]) -> None:
    """Refuses a push that cannot fit before copying a byte of it."""
    if need is None or "://" in base:  # an object store has no free space to ask
        return
    free = shutil.disk_usage(base).free
    if need > free:
        raise PushError(_no_space(base, need, free))


def _no_space(base: str, need: Optional[int], free: Optional[int]) -> str:
    sizes = ", ".join(([f"the model needs {need / 1e6:.1f} MB"] if need is not None else [])
                      + ([f"{free / 1e6:.1f} MB free"] if free is not None else []))
    return (f"no space in {base} for the new version" + (f" ({sizes})" if sizes else "")
            + ": free space there, or point the serving dir elsewhere, and run again. "
              "Nothing was pushed.")


def _copy_error(e: OSError, base: str, need: Optional[int]) -> PushError:
    """shutil.copytree gathers every file's failure into one shutil.Error (a list of
    (src, dst, why)); the first one says enough."""
    whys = [w for *_, w in e.args[0]] if isinstance(e, shutil.Error) and e.args and \
        isinstance(e.args[0], list) else [str(e)]
    if getattr(e, "errno", None) == errno.ENOSPC or any("No space left" in w for w in whys):
        try:
            free = shutil.disk_usage(base).free
        except OSError:
            free = None
        return PushError(_no_space(base, need, free))
    return PushError(f"could not copy the model into {base}: {whys[0] if whys else e}. "
                     f"Nothing was pushed.")


def list_versions(base: str) -> List[int]:
    if not os.path.isdir(base):
        return []
    return sorted(int(d) for d in os.listdir(base)
                  if contract.is_version_name(d) and os.path.isdir(os.path.join(base, d)))


def _last_recorded(base: str) -> int:
    try:
        with open(os.path.join(base, contract.LAST_VERSION_FILE)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def next_version(base: str) -> int:
    return max([_last_recorded(base)] + list_versions(base)) + 1


def publish(source_dir: str, base: str, provenance: dict,
            extra_files: Optional[Callable[[int], Dict[str, str]]] = None) -> int:
    """Copies source_dir to <base>/<next version> with its provenance; returns the version.
    ``extra_files(version)`` gives more files for assets.extra (the model card), written
    inside the same temp dir, so they appear with the version or not at all.
    Temp dirs left by a push that was killed are removed first."""
    if not files.exists(os.path.join(source_dir, "saved_model.pb")):
        raise ValueError(f"{source_dir} holds no saved_model.pb: nothing to push")
    os.makedirs(base, exist_ok=True)
    contract.remove_stale_temps(base)
    need = _model_bytes(source_dir)
    _check_space(base, need)
    version = next_version(base)
    with contract.atomic_dir(os.path.join(base, str(version))) as tmp:
        try:
            files.copy_tree(source_dir, tmp)  # the model artifact may be gs:// (Kubeflow)
        except OSError as e:  # shutil.Error is one too
            raise _copy_error(e, base, need) from e
        extra = os.path.join(tmp, contract.ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, contract.PROVENANCE_FILE), "w") as f:
            json.dump(dict(provenance, version=version), f, indent=2)
        for name, text in (extra_files(version) if extra_files else {}).items():
            with open(os.path.join(extra, name), "w") as f:
                f.write(text)
    contract.atomic_write(os.path.join(base, contract.LAST_VERSION_FILE), str(version))
    return version


def prune(base: str, keep_last: int) -> List[int]:
    """Removes all but the newest keep_last versions; returns the removed numbers."""
    old = list_versions(base)[:-keep_last] if keep_last > 0 else []
    for v in old:
        # Rename first (TF Serving stops seeing it at once), then delete.
        gone = os.path.join(base, f".deleting-{v}")
        os.rename(os.path.join(base, str(v)), gone)
        shutil.rmtree(gone, ignore_errors=True)
    return old


def version_of_model(base: str, model_artifact_id: int):
    """The version already published from this model artifact, if any."""
    for v in reversed(list_versions(base)):
        p = os.path.join(base, str(v), contract.ASSETS_EXTRA, contract.PROVENANCE_FILE)
        try:
            with open(p) as f:
                if json.load(f).get("model_artifact_id") == model_artifact_id:
                    return v
        except (OSError, ValueError):
            continue
    return None
