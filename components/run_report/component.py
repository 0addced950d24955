"""RunReport: the last node of the DAG. Reads what the run's components wrote (the
ingest report, TFDV statistics, the training report, TFMA's verdict and confusion
matrices, the push) and writes ``report.html`` - one file, plots inline as SVG,
thumbnails as data URIs, no network fetches - and ``report.json`` (the facts shown)
into a ``graft.RunReport`` artifact. It also runs the new model over the held-out
examples (at most ``max_examples``) to show the images it gets most confidently wrong.
"""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from graft import contract
from graft.components.blessing_report.component import BlessingReportArtifact
from graft.components.embedding_gen.component import Embeddings
from graft.components.run_report import executor


class RunReportArtifact(artifact.Artifact):
    TYPE_NAME = contract.RUN_REPORT_TYPE


class RunReportSpec(ComponentSpec):
    PARAMETERS = {
        "pipeline_name": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        "max_examples": ExecutionParameter(type=int),   # held-out images the model re-runs on
        "thumbnails": ExecutionParameter(type=int),     # worst mistakes shown
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
        "blessing_report": ChannelParameter(type=BlessingReportArtifact),
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
        "embeddings": ChannelParameter(type=Embeddings, optional=True),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {"report": ChannelParameter(type=RunReportArtifact)}


class RunReport(base_component.BaseComponent):
    SPEC_CLASS = RunReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, statistics, model, model_run, blessing_report, pushed_model,
                 pipeline_name: str, model_name: str, embeddings=None, baseline_model=None,
                 max_examples: int = 2000, thumbnails: int = 12):
        super().__init__(spec=RunReportSpec(
            examples=examples, statistics=statistics, model=model, model_run=model_run,
            blessing_report=blessing_report, pushed_model=pushed_model, embeddings=embeddings,
            baseline_model=baseline_model, pipeline_name=pipeline_name, model_name=model_name,
            max_examples=max_examples, thumbnails=thumbnails,
            report=channel.Channel(type=RunReportArtifact)))
