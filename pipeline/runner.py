"""Run the graft pipeline locally (LocalDagRunner, Beam's direct runner).

Shows which component is running while it works, and ends with a summary
read back from ML Metadata and the run's artifacts.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Optional

from graft.pipeline import ingest, run_lock
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
    (pipeline/run_lock.py). Bad data stops the run before it touches the root."""
    start = time.time()
    pre = ingest.preflight(cfg.data, log)
    with run_lock.hold(cfg.pipeline.root, cfg.pipeline.on_busy, log):
        return _run(cfg, pre, start, log)


def _run(cfg: GraftConfig, pre, start: float, log) -> Dict:
    from absl import logging as absl_logging
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from graft.pipeline import dag, summary
    from graft import backbones

    log(f"backbone: {cfg.train.backbone}")
    backbones.resolve(cfg.train.backbone)  # import/download once, before the pipeline starts
    pipeline = dag.create_pipeline(cfg, pre.majority_accuracy if pre else None,
                                   backbone_fingerprint=backbones.fingerprint(cfg.train.backbone))
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
        if type(cause).__name__ in ("DataAnomaliesError", "DataError", "BackboneError"):
            break
    text = str(cause) or type(cause).__name__
    where = f"in {component}: " if component else ""
    return f"the pipeline stopped {where}{text}"
