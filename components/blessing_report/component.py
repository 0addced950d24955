"""BlessingReport: turns TFMA's evaluation into a readable verdict.

Reads the Evaluator's metrics and validation result and writes
``reason.json`` (structured) and ``reason.txt`` (what `graft run` prints):
overall and per-class accuracy of the candidate and the champion, each
threshold with its numbers, and the verdict.
"""
import json
import os

from tfx.dsl.component.experimental.annotations import (InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact  # not via tfx.v1: see pipeline/dag.py

from graft import contract, files
from graft.components.blessing_report import reading


class BlessingReportArtifact(Artifact):
    TYPE_NAME = "graft.BlessingReport"  # KFP v2 wants <namespace>.<Name>


@component
def BlessingReport(
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: InputArtifact[standard_artifacts.ModelBlessing],
    report: OutputArtifact[BlessingReportArtifact],
    thresholds_json: Parameter[str],
) -> None:
    result = reading.summarize(evaluation.uri, blessing.get_int_custom_property(contract.PROP_BLESSED) == 1,
                               json.loads(thresholds_json))
    # What the Evaluator scored (the heads on cached vectors, or the full models on the
    # images): said once here, for the run summary and the run report.
    if evaluation.has_custom_property(contract.PROP_SCORED_ON):
        result["scored_on"] = evaluation.get_string_custom_property(contract.PROP_SCORED_ON)
    files.write(os.path.join(report.uri, contract.REASON_JSON), json.dumps(result, indent=2))
    files.write(os.path.join(report.uri, contract.REASON_TEXT), result["text"])
    report.set_int_custom_property(contract.PROP_BLESSED, int(result["blessed"]))
    report.set_string_custom_property(contract.PROP_REASON, result["headline"])
