"""Compile the same DAG for Kubeflow Pipelines (KFP v2 / Vertex AI Pipelines).

The spec runs every component in IMAGE (a container with graft installed:
`pip install .` on top of a TFX 1.16 image). Paths in the config should be
gs:// (or another filesystem the cluster reaches). Differences from a local
run: ML Metadata belongs to the orchestrator, and the majority-class floor is
not known at compile time (the configured floor applies).
"""
from __future__ import annotations

import os

from graft.pipeline import dag
from graft.pipeline.config import GraftConfig


def compile_pipeline(cfg: GraftConfig, image: str, output: str) -> str:
    from tfx import v1 as tfx
    pipeline = dag.create_pipeline(cfg, majority_accuracy=None, local=False)
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=out_dir, output_filename=os.path.basename(output))
    runner.run(pipeline, write_out=True)
    return os.path.join(out_dir, os.path.basename(output))
