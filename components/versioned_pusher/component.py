"""VersionedPusher: pushes a blessed model as the next integer version.

TFX's own Pusher names versions by timestamp and copies saved_model.pb last,
so a poller can load a half-copied version (tensorflow/serving#1086). This
one copies into a non-numeric temp dir, which TF Serving ignores, and
publishes with one rename.
"""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from graft.components.blessing_report.component import BlessingReportArtifact
from graft.components.versioned_pusher import executor


class VersionedPusherSpec(ComponentSpec):
    PARAMETERS = {
        "serving_dir": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        "keep_last": ExecutionParameter(type=int),
        "provenance_json": ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        # The readable evaluation: its numbers go into the version's provenance.
        "blessing_report": ChannelParameter(type=BlessingReportArtifact, optional=True),
    }
    OUTPUTS = {
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
    }


class VersionedPusher(base_component.BaseComponent):
    SPEC_CLASS = VersionedPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model, model_blessing, serving_dir: str, model_name: str,
                 keep_last: int = 5, provenance_json: str = "{}", blessing_report=None):
        from tfx.types import channel
        super().__init__(spec=VersionedPusherSpec(
            model=model, model_blessing=model_blessing, blessing_report=blessing_report,
            serving_dir=serving_dir,
            model_name=model_name, keep_last=keep_last, provenance_json=provenance_json,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
