"""AnomaliesGate: fails the run, in words, when the data does not match the schema.

TFX 1.16's ExampleValidator records anomalies but never stops a pipeline;
the Trainer runs after this gate, so bad data never reaches training.
"""
import os

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from graft import files

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """New data does not match the schema; the message lists each anomaly."""


def describe(anomalies_uri: str, split_names) -> list:
    """Human-readable lines, one per anomaly: '<split>: <feature>: <description>'."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        if not files.exists(path):  # gs:// on Kubeflow
            continue
        a = anomalies_pb2.Anomalies.FromString(files.read_bytes(path))
        for feature, info in sorted(a.anomaly_info.items()):
            text = info.description or info.short_description
            lines.append(f"{split}: feature '{feature}': {text}")
        if a.HasField("dataset_anomaly_info"):
            info = a.dataset_anomaly_info
            lines.append(f"{split}: dataset: {info.description or info.short_description}")
    return lines


@component
def AnomaliesGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    lines = describe(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if lines:
        raise DataAnomaliesError(
            "the data does not match the schema, so training was not started:\n  "
            + "\n  ".join(lines)
            + "\nFix the data, or if the change is intended, update the curated schema "
              "([pipeline] schema) to accept it.")
