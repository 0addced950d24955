"""Run the graft pipeline locally (LocalDagRunner, Beam's direct runner).

Shows which component is running while it works, and ends with a summary
read back from ML Metadata and the run's artifacts.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import time
from typing import Dict, Optional

from graft.pipeline import history, ingest, run_lock
from graft.pipeline.config import GraftConfig


class RunFailed(RuntimeError):
    """The pipeline stopped; the message says where and why, in words."""


class _Progress(logging.Handler):
    """Turns TFX's orchestration log lines into one progress line per component."""

    def __init__(self, log):
        super().__init__(logging.INFO)
        self.log, self.started, self.cached = log, {}, set()
        self.current = None

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Component ") and msg.endswith(" is running."):
            self.current = msg[len("Component "):-len(" is running.")]
            self.started[self.current] = time.time()
            self.log(f"-> {self.current} ...")
        elif msg.startswith("A cached execution") and self.current:
            self.cached.add(self.current)
        elif msg.startswith("Component ") and msg.endswith(" is finished.") and self.current:
            dt = time.time() - self.started.get(self.current, time.time())
            self.log(f"   {self.current} done in {dt:.1f} s"
                     + (" (cached: inputs unchanged)" if self.current in self.cached else ""))


def run(cfg: GraftConfig, log=print) -> Dict:
    """Checks the data, then runs the pipeline holding the pipeline root's lock
    (pipeline/run_lock.py), and records the run in the root's history. Bad data stops
    the run before it touches the root; unchanged inputs stop it before TFX starts."""
    from graft import backbones
    start = time.time()
    run_id = history.new_run_id()
    window = ingest.span_window(cfg.data)
    spans = ",".join(name for _, name in window)
    fp = history.fingerprint(cfg, ingest.data_fingerprint(cfg.data),
                             ",".join(backbones.fingerprint(b) for b in cfg.train.backbones))
    base = history.Run(run_id=run_id, pipeline=cfg.pipeline_name, started=start, spans=spans,
                       fingerprint=fp or "")
    if fp is not None and os.path.isdir(cfg.pipeline.root):
        with run_lock.hold(cfg.pipeline.root, cfg.pipeline.on_busy, log):
            prev = history.unchanged_since(cfg.metadata_path, cfg.pipeline_name, fp)
            if prev is not None:
                return _nothing_new(cfg, base, prev)
    pre = ingest.preflight(cfg.data, log)
    _check_writable(cfg)
    with run_lock.hold(cfg.pipeline.root, cfg.pipeline.on_busy, log):
        try:
            result = _run(cfg, pre, start, log, window)
        except RunFailed as e:
            history.record(cfg.metadata_path, dataclasses.replace(
                base, ended=time.time(), wall_s=time.time() - start, kind=history.FAILED,
                outcome=f"failed: {str(e)[:300]}",
                tfx_run_id=history.tfx_run_since(cfg.metadata_path, cfg.pipeline_name, start)))
            raise
        result["graft_run_id"], result["spans"] = run_id, [n for _, n in window]
        history.record(cfg.metadata_path, dataclasses.replace(
            base, ended=time.time(), wall_s=time.time() - start,
            tfx_run_id=result.get("run_id", ""), **history.outcome_of(result)))
        return result


def _check_writable(cfg: GraftConfig) -> None:
    """The pipeline root and the serving dir can be made and written, checked before TFX
    starts: a serving dir that could not be made failed the run at its last step, after
    every other. What the check makes it removes again (a run stopped by its data gate
    leaves no serving dir behind)."""
    from graft.pipeline.config import ConfigError
    for what, path in (("pipeline.root", cfg.pipeline.root),
                       ("push.serving_dir", cfg.push.serving_dir)):
        if "://" in path:  # the root on gs:// (Kubeflow): TensorFlow's filesystem says later
            continue
        made, p = [], os.path.abspath(path)
        while not os.path.exists(p) and os.path.dirname(p) != p:
            made.append(p)
            p = os.path.dirname(p)
        try:
            for d in reversed(made):
                os.mkdir(d)
            if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} {path} is not a folder this user can write to")
        except OSError as e:
            raise ConfigError(f"{what} {path} cannot be created: {e.strerror or e}") from e
        finally:
            for d in made:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def _nothing_new(cfg: GraftConfig, base: "history.Run", prev: "history.Run") -> Dict:
    wall = time.time() - base.started
    history.record(cfg.metadata_path, dataclasses.replace(
        base, ended=time.time(), wall_s=wall, kind=history.NOTHING_NEW,
        outcome=f"nothing new since run {prev.run_id}"))
    return {"nothing_new": True, "since_run": prev.run_id, "since_outcome": prev.outcome,
            "graft_run_id": base.run_id, "pipeline_name": cfg.pipeline_name,
            "model_name": cfg.model_name, "spans": base.spans.split(",") if base.spans else [],
            "wall_time_s": round(wall, 2)}


def _ingested_spans(cfg: GraftConfig, node_id: str) -> set:
    """Spans ExampleGen has already ingested into this root's ML Metadata."""
    s = history.store(cfg.metadata_path)
    if s is None:
        return set()
    ctx = s.get_context_by_type_and_name("node", f"{cfg.pipeline_name}.{node_id}")
    if ctx is None:
        return set()
    out = set()
    for a in s.get_artifacts_by_context(ctx.id):
        if "span" in a.custom_properties:
            out.add(a.custom_properties["span"].int_value)
    return out


def _backfill(cfg: GraftConfig, window, log) -> None:
    """TFX's ExampleGen ingests the latest span each run; a span of the window it has
    never seen (a first run over several spans, or a run that was skipped) is ingested
    first by ExampleGen alone with a static range, into the same ML Metadata, so the
    window resolver finds it."""
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.pipeline import Pipeline
    from graft.components.image_folder_example_gen.component import ImageFolderExampleGen
    from graft.pipeline import dag
    latest = max(span for span, _ in window)
    # A component's node id is its class name (the DAG gives this one no other).
    done = _ingested_spans(cfg, ImageFolderExampleGen.__name__)
    for span, name in window:
        if span == latest or span in done:
            continue
        log(f"-> ingesting earlier span {name} (not seen by this pipeline root yet) ...")
        gen = ingest.images_example_gen(cfg.data, span=span)
        LocalDagRunner().run(Pipeline(
            pipeline_name=cfg.pipeline_name,
            pipeline_root=os.path.join(ingest.absolute(cfg.pipeline.root), "artifacts"),
            components=[gen], enable_cache=True,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(cfg.metadata_path),
            beam_pipeline_args=dag.beam_args(cfg, local=True)))


def _run(cfg: GraftConfig, pre, start: float, log, window) -> Dict:
    from absl import logging as absl_logging
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from graft.pipeline import dag, summary
    from graft import backbones

    log(f"backbone: {cfg.train.backbone}")
    for b in cfg.train.backbones:
        backbones.resolve(b)  # import/download once, before the pipeline starts
    pipeline = dag.create_pipeline(cfg, pre.majority_accuracy if pre else None,
                                   backbone_fingerprints={b: backbones.fingerprint(b)
                                                          for b in cfg.train.backbones})
    os.makedirs(cfg.pipeline.root, exist_ok=True)

    absl_logging.set_verbosity(absl_logging.INFO)
    # TFX, Beam and TensorFlow log every step and many harmless deprecation
    # warnings; show our progress lines instead, and only errors from the rest
    # (failures surface as exceptions, explained at the end).
    quiet = [(h, h.level) for h in logging.getLogger().handlers
             + logging.getLogger("tensorflow").handlers + [absl_logging.get_absl_handler()]]
    for h, _ in quiet:
        h.setLevel(logging.ERROR)
    progress = _Progress(log)
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(progress)
    log(f"running pipeline {cfg.pipeline_name} (root {cfg.pipeline.root}) on Beam's direct runner")
    try:
        if window:
            _backfill(cfg, window, log)
        LocalDagRunner().run(pipeline)
        result = summary.read(cfg, preflight=pre, wall_time=time.time() - start)
    except Exception as e:
        raise RunFailed(_explain(e, progress.current)) from e
    finally:
        absl_logger.removeHandler(progress)
        for h, level in quiet:
            h.setLevel(level)
    result["cached"] = sorted(progress.cached)
    return result


def _explain(e: Exception, component: Optional[str]) -> str:
    """The innermost readable cause, with the component it came from."""
    cause = e
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        if nxt is cause:
            break
        cause = nxt
        if type(cause).__module__.startswith("graft."):
            break  # graft's own errors say what to fix (name the record, the class ...)
    text = str(cause) or type(cause).__name__
    if getattr(cause, "errno", None) == errno.ENOSPC or "No space left on device" in text:
        on = getattr(cause, "filename", None) or "the pipeline root"
        text = (f"no space left on the disk holding {on}: free space there, or point "
                f"--pipeline-root elsewhere ({text})")
    where = f"in {component}: " if component else ""
    return f"the pipeline stopped {where}{text}"
