"""Backbone handles: what the trainer asks of this room.

``resolve`` turns a handle into something ``hub.KerasLayer`` loads; ``fingerprint``
says what identifies the backbone's content, for the Trainer's cache key.
"""
from __future__ import annotations

import os

from graft.backbones.registry import (REGISTRY, BackboneError, cache_dir, default_import_dir,
                                      is_current, is_imported, read_provenance,
                                      unknown_name_message)


def is_remote_handle(handle: str) -> bool:
    return handle.startswith(("https://", "http://", "gs://"))


def resolve(handle: str, import_if_needed: bool = True) -> str:
    """Returns something ``hub.KerasLayer`` / ``hub.load`` accepts.

    Registered names become the local imported SavedModel (imported on first use
    when ``import_if_needed``); URLs are returned as they are, with the TF-Hub
    cache pointed at the graft cache so downloads persist between runs."""
    if handle in REGISTRY:
        path = default_import_dir(handle)
        if is_current(path):
            return path
        if not import_if_needed:
            state = "was imported by an older graft" if is_imported(path) else \
                "is not imported yet"
            raise BackboneError(
                f"backbone {handle!r} {state}: run `graft backbone import {handle}`")
        from graft.backbones.importer import import_backbone
        return import_backbone(handle)
    if is_remote_handle(handle):
        os.environ.setdefault("TFHUB_CACHE_DIR", os.path.join(cache_dir(), "tfhub"))
        return handle
    if os.path.isdir(handle):
        if not os.path.exists(os.path.join(handle, "saved_model.pb")):
            raise BackboneError(f"{handle} is a directory but holds no saved_model.pb")
        return handle
    raise BackboneError(unknown_name_message(handle))


def fingerprint(handle: str) -> str:
    """What identifies the backbone's content, for the Trainer's cache key: the
    weights' sha256 and module format of a graft import; the handle otherwise."""
    path = default_import_dir(handle) if handle in REGISTRY else handle
    prov = read_provenance(path) if os.path.isdir(path) else None
    if prov:
        return f"{prov.get('weights_sha256', '')[:16]}-format{prov.get('module_format', 1)}"
    return handle


