"""Run history in ML Metadata: what each `graft run` did, and whether anything changed.

Every run that reaches its end - pushed, not blessed, failed, or nothing new - is
recorded as an execution of type ``graft.Run`` in the pipeline root's ML Metadata,
with when, which spans, the outcome in words, the held-out accuracy, its wall time
and a fingerprint of its inputs (data files, config, graft's code, the backbone's
content). A run killed before its end leaves no record; `graft runs` still lists it,
from TFX's own run context, as stopped at the component that was running.

The fingerprint lets a scheduled run with nothing new stop before TFX starts (or
TensorFlow is even imported): same data, config, code and backbone as the last run
that finished -> "nothing new since run N".
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import time
from typing import Dict, List, Optional

from graft import contract

RUN_TYPE = "graft.Run"
_PROPS = ("run_id", "pipeline", "started", "ended", "spans", "outcome", "kind", "version",
          "accuracy", "wall_s", "fingerprint", "tfx_run_id")
PUSHED, NOT_BLESSED, FAILED, NOTHING_NEW = "pushed", "not_blessed", "failed", "nothing_new"
FINISHED = (PUSHED, NOT_BLESSED, NOTHING_NEW)


@dataclasses.dataclass
class Run:
    run_id: str
    pipeline: str
    started: float
    ended: float = 0.0
    spans: str = ""              # "span-2,span-3" or "" (no span folders)
    kind: str = ""               # one of PUSHED, NOT_BLESSED, FAILED, NOTHING_NEW, or "" (killed)
    outcome: str = ""            # in words
    version: int = 0
    accuracy: float = -1.0
    wall_s: float = 0.0
    fingerprint: str = ""
    tfx_run_id: str = ""

    def to_json(self) -> Dict:
        d = dataclasses.asdict(self)
        d["accuracy"] = None if self.accuracy < 0 else self.accuracy
        d["version"] = self.version or None
        return d


def store(metadata_path: str, create: bool = False):
    """ML Metadata on the pipeline root's SQLite file (without importing TFX)."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2
    if not create and not os.path.exists(metadata_path):
        return None
    c = metadata_store_pb2.ConnectionConfig()
    c.sqlite.filename_uri = metadata_path
    c.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    try:
        return mlmd.MetadataStore(c)
    except RuntimeError as e:  # ML Metadata's words for a file SQLite cannot open as a database
        from graft.pipeline.config import ConfigError
        why = str(e).rsplit(" query:", 1)[0].replace("Error when executing query: ", "")
        raise ConfigError(
            f"ML Metadata at {metadata_path} cannot be opened ({why}): the pipeline root's "
            f"history is damaged. Move the file aside to start the root's history afresh "
            f"(the next run then trains without a champion to compare with).") from e


def _code_fingerprint() -> str:
    """graft's own sources (every room that shapes a model): an upgraded graft is never
    "nothing new". Rooms are found where Python imports them from (a checkout or an
    installed package), without importing them."""
    import importlib.util
    h = hashlib.sha256()
    for package in ("graft", "graft.pipeline", "graft.components", "graft.trainer",
                    "graft.backbones"):
        spec = importlib.util.find_spec(package)
        for base in (spec.submodule_search_locations or []) if spec else []:
            paths = glob.glob(os.path.join(base, "**", "*.py"), recursive=True)
            for path in sorted(paths):
                with open(path, "rb") as f:
                    h.update(f"{package}/{os.path.relpath(path, base)}".encode() + b"\0"
                             + f.read())
    return h.hexdigest()[:16]


def fingerprint(cfg, data_fingerprint: Optional[str], backbone_fingerprint: str
                ) -> Optional[str]:
    """None when the data cannot be fingerprinted here (gs://, TFDS): then every run runs."""
    from graft.pipeline.config import config_json
    if data_fingerprint is None:
        return None
    h = hashlib.sha256()
    for part in (config_json(cfg), data_fingerprint, backbone_fingerprint, _code_fingerprint()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def _run_type_id(s) -> int:
    from ml_metadata.proto import metadata_store_pb2
    t = metadata_store_pb2.ExecutionType(name=RUN_TYPE)
    return s.put_execution_type(t, can_add_fields=True)


def record(metadata_path: str, run: Run) -> None:
    from ml_metadata.proto import metadata_store_pb2
    s = store(metadata_path, create=True)
    e = metadata_store_pb2.Execution(type_id=_run_type_id(s),
                                     last_known_state=metadata_store_pb2.Execution.COMPLETE)
    for key, value in dataclasses.asdict(run).items():
        if isinstance(value, float):
            e.custom_properties[key].double_value = value
        elif isinstance(value, int):
            e.custom_properties[key].int_value = value
        else:
            e.custom_properties[key].string_value = str(value)
    s.put_executions([e])


def _from_execution(e) -> Run:
    values = {}
    for f in dataclasses.fields(Run):
        if f.name in e.custom_properties:
            v = e.custom_properties[f.name]
            values[f.name] = {"double_value": v.double_value, "int_value": v.int_value,
                              "string_value": v.string_value}[v.WhichOneof("value")]
    return Run(**{"run_id": "", "pipeline": "", "started": 0.0, **values})


def recorded(metadata_path: str, pipeline: Optional[str] = None) -> List[Run]:
    """graft.Run records, oldest first."""
    s = store(metadata_path)
    if s is None:
        return []
    try:
        runs = [_from_execution(e) for e in s.get_executions_by_type(RUN_TYPE)]
    except Exception:  # noqa: BLE001 - no such type yet: no runs recorded
        return []
    runs = [r for r in runs if pipeline is None or r.pipeline == pipeline]
    return sorted(runs, key=lambda r: r.started)


def unchanged_since(metadata_path: str, pipeline: str, fp: str) -> Optional[Run]:
    """The last finished run if it had exactly these inputs (and the newest record is
    not a failure, which a new run should retry), else None."""
    runs = recorded(metadata_path, pipeline)
    if not runs or runs[-1].kind not in FINISHED:
        return None
    last = next((r for r in reversed(runs) if r.kind in (PUSHED, NOT_BLESSED)), None)
    if last is None or last.fingerprint != fp or runs[-1].fingerprint != fp:
        return None
    return last


def stopped_runs(metadata_path: str, pipeline: str) -> List[Run]:
    """TFX runs with no graft.Run record (killed, or the process died): where they stopped."""
    s = store(metadata_path)
    if s is None:
        return []
    recorded_ids = {r.tfx_run_id for r in recorded(metadata_path, pipeline)}
    try:
        pipeline_ctx = s.get_context_by_type_and_name("pipeline", pipeline)
    except Exception:  # noqa: BLE001
        return []
    if pipeline_ctx is None:
        return []
    run_type = s.get_context_type("pipeline_run").id
    types = {t.id: t.name for t in s.get_execution_types()}
    out = []
    for ctx in s.get_contexts_by_type("pipeline_run"):
        if ctx.type_id != run_type or ctx.name in recorded_ids:
            continue
        executions = s.get_executions_by_context(ctx.id)
        if not executions or not any(
                c.id == pipeline_ctx.id for c in s.get_contexts_by_execution(executions[0].id)):
            continue
        from ml_metadata.proto import metadata_store_pb2
        done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
        unfinished = [e for e in executions if e.last_known_state not in done]
        last = max(unfinished or executions, key=lambda e: e.id)
        component = types.get(last.type_id, "?").rsplit(".", 1)[-1]
        where = f"during {component}" if unfinished else f"after {component}"
        started = min(e.create_time_since_epoch for e in executions) / 1000.0
        out.append(Run(run_id=ctx.name, pipeline=pipeline, started=started, kind="",
                       outcome=f"stopped {where} (killed, or the process died)",
                       tfx_run_id=ctx.name))
    return out


def tfx_run_since(metadata_path: str, pipeline: str, since: float) -> str:
    """The name of this pipeline's TFX run context created since ``since`` (a failed
    run's, so that `graft runs` does not list it a second time as stopped)."""
    s = store(metadata_path)
    if s is None:
        return ""
    try:
        pipeline_ctx = s.get_context_by_type_and_name("pipeline", pipeline)
        contexts = s.get_contexts_by_type("pipeline_run")
    except Exception:  # noqa: BLE001
        return ""
    for ctx in sorted(contexts, key=lambda c: -c.id):
        if ctx.create_time_since_epoch / 1000.0 < since - 1:
            break
        executions = s.get_executions_by_context(ctx.id)
        if pipeline_ctx is not None and executions and any(
                c.id == pipeline_ctx.id for c in s.get_contexts_by_execution(executions[0].id)):
            return ctx.name
    return ""


def all_runs(metadata_path: str, pipeline: Optional[str] = None) -> List[Run]:
    runs = recorded(metadata_path, pipeline)
    pipelines = {r.pipeline for r in runs} | ({pipeline} if pipeline else set())
    for p in pipelines:
        runs += stopped_runs(metadata_path, p)
    return sorted(runs, key=lambda r: r.started)


def format_line(r: Run) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
    acc = "" if r.accuracy < 0 else f"  held-out {r.accuracy:.3f}"
    wall = f"  {r.wall_s:.0f} s" if r.wall_s else ""
    spans = f"  spans {r.spans}" if r.spans else ""
    return f"{when}  {r.run_id}{spans}  {r.outcome}{acc}{wall}"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def outcome_of(result: Dict) -> Dict:
    """(kind, outcome words, version, accuracy) from the run summary's dict."""
    ev = result.get("evaluation") or {}
    acc = ev.get("accuracy")
    if result.get("pushed"):
        return {"kind": PUSHED, "outcome": f"pushed v{result.get('pushed_version')}",
                "version": int(result.get("pushed_version") or 0),
                "accuracy": float(acc) if acc is not None else -1.0}
    reason = result.get("not_pushed_reason") or ev.get("headline") or "not blessed"
    return {"kind": NOT_BLESSED, "outcome": reason if reason.lower().startswith("not blessed")
            else f"not blessed: {reason}",
            "accuracy": float(acc) if acc is not None else -1.0}



def report_of(metadata_path: str, pipeline: Optional[str], run: str = "") -> Optional[str]:
    """Path of the report.html of a run (its graft run id or TFX run id; '' = the newest
    run that has one), from the graft.RunReport artifact of its TFX run context."""
    s = store(metadata_path)
    if s is None:
        return None
    runs = recorded(metadata_path, pipeline)
    if run:
        matches = [r for r in runs if run in (r.run_id, r.tfx_run_id)]
        tfx_ids = [r.tfx_run_id for r in matches if r.tfx_run_id] or [run]
    else:
        tfx_ids = [r.tfx_run_id for r in reversed(runs) if r.tfx_run_id]
    for tfx_id in tfx_ids:
        try:
            ctx = s.get_context_by_type_and_name("pipeline_run", tfx_id)
        except Exception:  # noqa: BLE001 - no TFX run recorded yet
            return None
        if ctx is None:
            continue
        types = {t.id: t.name for t in s.get_artifact_types()}
        reports = [a for a in s.get_artifacts_by_context(ctx.id)
                   if types.get(a.type_id) == contract.RUN_REPORT_TYPE]
        if reports:
            return os.path.join(max(reports, key=lambda a: a.id).uri, contract.RUN_REPORT_FILE)
    return None
