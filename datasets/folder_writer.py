"""Writes a class-per-folder dataset atomically: into a temp dir beside the
destination, renamed into place at the end, with a manifest of what was asked
and what was written. A re-run with the same request reuses the folder."""
from __future__ import annotations

import json
import os

from graft import files

MANIFEST = "graft_dataset.json"


class DatasetError(ValueError):
    """Bad request or missing source; the message says what to do."""


def missing_package(package: str, path: str) -> DatasetError:
    return DatasetError(
        f"{path} not found: install the Debian package {package} "
        f"(sudo apt-get install {package}; `make demo` does this when it runs as root)")


def existing_manifest(out_dir: str):
    p = os.path.join(out_dir, MANIFEST)
    if not os.path.lexists(p):
        return None
    try:  # a folder another tool wrote may hold anything under that name
        doc = json.loads(files.read_config_text(p))
    except (files.UnreadableFile, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def reuse_if_same(out_dir: str, request: dict):
    """Returns the existing manifest if out_dir already holds this request;
    raises if it holds something else."""
    if not os.path.exists(out_dir):
        return None
    if not os.path.isdir(out_dir):
        raise DatasetError(f"{out_dir} is a file: give --out a folder (new, or one this "
                           f"command wrote)")
    manifest = existing_manifest(out_dir)
    if manifest is not None and manifest.get("request") == request:
        return manifest
    if os.listdir(out_dir):
        raise DatasetError(f"{out_dir} already exists and holds other data; "
                           f"remove it or choose another --out")
    return None


def write_manifest(tmp_dir: str, manifest: dict) -> None:
    with open(os.path.join(tmp_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
