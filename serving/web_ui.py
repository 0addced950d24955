"""The prediction page at ``/`` (``--enable_web_ui``, on by default): static files
served by graft itself (no CDN; the page works offline) and one JSON listing of the
models, versions, labels and provenance the page offers. Predictions go through the
TF Serving REST API like any client's, so the page shows what a client would get."""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

from graft import contract
from graft.contract import ServableState

WEB_DIR = os.path.join(os.path.dirname(__file__), "web")
# The only files served: a fixed table, so no request path ever reaches the filesystem.
FILES = {"index.html": "text/html", "app.js": "application/javascript",
         "app.css": "text/css"}
_MAX_INFO_BYTES = 1 << 20  # a provenance or model info file larger than this is not shown


def asset(name: str) -> Optional[bytes]:
    if name not in FILES:
        return None
    with open(os.path.join(WEB_DIR, name), "rb") as f:
        return f.read()


def _read_json(path: str) -> Optional[Dict]:
    try:
        if os.path.getsize(path) > _MAX_INFO_BYTES:
            return None
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def overview(manager) -> Dict:
    """{"models": [{"name", "labels", "versions": [{"version", "state", "provenance",
    "model"}]}]}: what the page can offer, newest version first."""
    out = []
    for name in manager.names():
        try:
            rows = manager.status(name)
        except Exception:  # noqa: BLE001 - no versions seen yet
            rows = []
        versions = []
        for version, state, _ in rows:
            entry = {"version": version, "state": state.name, "provenance": None, "model": None}
            if state == ServableState.AVAILABLE:
                try:
                    path = manager.get(name, version).path
                except Exception:  # noqa: BLE001 - unloaded in between
                    path = ""
                extra = os.path.join(path, contract.ASSETS_EXTRA)
                if path:
                    prov = _read_json(os.path.join(extra, contract.PROVENANCE_FILE)) or None
                    info = _read_json(os.path.join(extra, contract.MODEL_INFO_FILE)) or {}
                    entry["provenance"] = prov
                    entry["model"] = {k: info.get(k) for k in ("classes", "backbone",
                                                              "image_size")} if info else None
                    if entry["model"] is not None:
                        entry["model"]["modality"] = info.get("modality", "image")
            versions.append(entry)
        out.append({"name": name, "labels": manager.labels(name), "versions": versions})
    return {"models": out}
