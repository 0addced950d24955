"""Watches model base paths for integer version directories.

Like TF Serving's FileSystemStoragePathSource, each poll reports the FULL set
of versions on disk. A listing that fails is an error, never "zero versions",
so a flaky disk never unloads a model. Child names that are not integers
(``.tmp-3``, ``assets``) are ignored: writers publish with a rename.
"""
from __future__ import annotations

import logging
import os
from typing import Dict

from graft.contract import is_version_name

log = logging.getLogger("graft.serving")


class SourceError(OSError):
    pass


def list_versions(base_path: str) -> Dict[int, str]:
    """{version: path}. Raises SourceError when the base path cannot be listed."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError as e:
        raise SourceError(f"Could not find base path {base_path}") from e
    except OSError as e:
        raise SourceError(f"Could not list base path {base_path}: {e}") from e
    out = {}
    for name in names:
        if is_version_name(name):
            path = os.path.join(base_path, name)
            if os.path.isdir(path):
                out[int(name)] = path
    return out


def fingerprint(version_path: str) -> float:
    """Changes when a version directory is rewritten: a failed load is retried then."""
    try:
        pb = os.path.join(version_path, "saved_model.pb")
        return max(os.stat(version_path).st_mtime,
                   os.stat(pb).st_mtime if os.path.exists(pb) else 0.0)
    except OSError:
        return 0.0
