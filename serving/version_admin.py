"""Versions on disk, labels and rollback - by rewriting models.config atomically,
so a running server (graft serve, or TF Serving with
--model_config_file_poll_wait_seconds) switches without a restart."""
from __future__ import annotations

import glob
import json
import os
import shutil
from typing import Dict, List, Optional

from graft import contract, files
from graft.contract import VersionPolicy
from graft.serving import model_config, source
from graft.serving.manager import ModelConfig
from graft.serving.status import failed_precondition, invalid, not_found

PROVENANCE = os.path.join(contract.ASSETS_EXTRA, contract.PROVENANCE_FILE)
MODEL_INFO = os.path.join(contract.ASSETS_EXTRA, contract.MODEL_INFO_FILE)


def describe_versions(base_path: str) -> List[Dict]:
    try:
        versions = source.list_versions(base_path)
    except source.SourceError as e:
        raise not_found(str(e)) from e
    out = []
    for v, path in sorted(versions.items(), reverse=True):
        row = {"version": v, "path": path}
        for key, rel in (("provenance", PROVENANCE), ("model", MODEL_INFO)):
            p = os.path.join(path, rel)
            if os.path.lexists(p):
                try:
                    row[key] = _json_object(p)
                except ValueError as e:  # a version copied in by hand may carry anything
                    row.setdefault("problems", []).append(str(e))
        out.append(row)
    return out


def _json_object(path: str) -> Dict:
    try:
        doc = json.loads(files.read_config_text(path))
    except files.UnreadableFile as e:
        raise ValueError(str(e)) from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object")
    return doc


def _load_or_new(config_file: str, name: str, base_path: Optional[str]) -> List[ModelConfig]:
    configs = model_config.load(config_file) if os.path.exists(config_file) else []
    if not any(c.name == name for c in configs):
        if not base_path:
            raise invalid(f"model {name} is not in {config_file}: pass --model_base_path")
        configs.append(ModelConfig(name=name, base_path=os.path.abspath(base_path)))
    return configs


def _find(configs, name) -> ModelConfig:
    return next(c for c in configs if c.name == name)


def set_label(config_file: str, name: str, label: str, version: int,
              base_path: Optional[str] = None) -> ModelConfig:
    if not label or not label.strip() or any(ord(c) < 32 or ord(c) == 127 for c in label):
        # "" cannot be named in a request (/labels/ has nothing after it), and a line
        # break or other control character breaks every log and listing that shows it.
        raise invalid(f"label {label!r}: give a name, not empty or blank, with no control "
                      f"characters, e.g. stable or canary")
    configs = _load_or_new(config_file, name, base_path)
    cfg = _find(configs, name)
    on_disk = source.list_versions(cfg.base_path)
    if version not in on_disk:
        raise failed_precondition(f"version {version} of model {name} is not on disk under "
                                  f"{cfg.base_path} (have: {sorted(on_disk)})")
    if cfg.policy == VersionPolicy.LATEST and version not in sorted(on_disk)[-cfg.num_versions:]:
        # A label must point at a loaded version: make the policy keep it loaded.
        cfg.policy, cfg.versions = VersionPolicy.SPECIFIC, tuple(sorted(
            set(sorted(on_disk)[-cfg.num_versions:]) | {version} | set(cfg.labels.values())))
    elif cfg.policy == VersionPolicy.SPECIFIC and version not in cfg.versions:
        cfg.versions = tuple(sorted(set(cfg.versions) | {version}))
    cfg.labels[label] = version
    model_config.write_atomic(config_file, configs)
    return cfg


def rollback(config_file: str, name: str, to: Optional[int] = None,
             base_path: Optional[str] = None, pipeline_root: Optional[str] = None) -> ModelConfig:
    """Pins the model to version `to` (default: the one before the newest).

    A version no longer on disk is restored from the pipeline's pushed
    artifacts (each VersionedPusher output keeps a copy) when --pipeline-root
    is given; otherwise refused."""
    configs = _load_or_new(config_file, name, base_path)
    cfg = _find(configs, name)
    on_disk = sorted(source.list_versions(cfg.base_path))
    if to is None:
        if len(on_disk) < 2:
            raise failed_precondition(f"nothing to roll back to: model {name} has "
                                      f"{len(on_disk)} version(s) on disk")
        to = on_disk[-2]
    if to not in on_disk:
        restored = _restore(cfg.base_path, to, pipeline_root)
        if not restored:
            raise failed_precondition(
                f"version {to} of model {name} is not on disk and could not be restored"
                + ("" if pipeline_root else " (pass --pipeline-root to look in the pipeline's "
                                            "pushed artifacts)"))
    cfg.policy, cfg.versions, cfg.num_versions = VersionPolicy.SPECIFIC, (to,), 1
    cfg.labels = {k: v for k, v in cfg.labels.items() if v == to}
    model_config.write_atomic(config_file, configs)
    return cfg


def unpin(config_file: str, name: str) -> ModelConfig:
    configs = model_config.load(config_file)
    cfg = _find(configs, name)
    cfg.policy, cfg.versions, cfg.num_versions, cfg.labels = VersionPolicy.LATEST, (), 1, {}
    model_config.write_atomic(config_file, configs)
    return cfg


def _restore(base_path: str, version: int, pipeline_root: Optional[str]) -> bool:
    if not pipeline_root:
        return False
    pattern = os.path.join(pipeline_root, "**", "VersionedPusher", "pushed_model", "*",
                           str(version))
    for cand in sorted(glob.glob(pattern, recursive=True)):
        prov = os.path.join(cand, PROVENANCE)
        if os.path.exists(os.path.join(cand, "saved_model.pb")) and os.path.exists(prov):
            try:
                if _json_object(prov).get("version") != version:
                    continue
            except ValueError:  # not a version graft pushed: not one to restore
                continue
            with contract.atomic_dir(os.path.join(base_path, str(version))) as tmp:
                shutil.copytree(cand, tmp, dirs_exist_ok=True)
            return True
    return False
