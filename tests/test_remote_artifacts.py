"""Kubeflow and Vertex AI Pipelines hand every component its artifacts as gs:// URIs, which
Python's open() and os cannot read; ram:// (one of TensorFlow's filesystems) stands in for
one here. The Trainer's exports are checked the same way in test_head_export.py."""
import json
import os

from tfx.types import standard_artifacts

from graft import contract, files
from graft.components.anomalies_gate import component as gate
from graft.components.versioned_pusher import executor as pusher

RAM = f"ram://graft-remote-{os.getpid()}"


def test_the_gate_reads_anomalies_from_a_remote_artifact():
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    a = anomalies_pb2.Anomalies()
    a.anomaly_info["label"].description = "Examples contain values missing from the schema: bird"
    files.write(f"{RAM}/anomalies/Split-train/{gate.ANOMALIES_FILE}", a.SerializeToString())
    assert gate.describe(f"{RAM}/anomalies", ["train", "eval"]) == [
        "train: feature 'label': Examples contain values missing from the schema: bird"]


def test_the_pusher_pushes_a_remote_model_and_keeps_its_copy_remote(tmp_path):
    model = standard_artifacts.Model()
    model.uri = f"{RAM}/model"
    files.write(f"{model.uri}/Format-Serving/saved_model.pb", b"a SavedModel")
    files.write(f"{model.uri}/Format-Serving/variables/variables.index", b"index")
    files.write(f"{model.uri}/Format-Serving/{contract.ASSETS_EXTRA}/{contract.MODEL_INFO_FILE}",
                json.dumps({"classes": ["cat", "dog"], "backbone": "efficientnet_lite0",
                            "image_size": 160, "report": {"class_counts": {"cat": 9, "dog": 9}}}))
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property(contract.PROP_BLESSED, 1)
    report = standard_artifacts.ModelEvaluation()  # any artifact: the executor reads its uri
    report.uri = f"{RAM}/report"
    files.write(f"{report.uri}/{contract.REASON_JSON}", json.dumps(
        {"accuracy": 0.9, "champion_accuracy": None, "headline": "BLESSED: first run",
         "per_class_accuracy": {"cat": 0.9, "dog": 0.9}}))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = f"{RAM}/pushed"
    pusher.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "blessing_report": [report]},
        {"pushed_model": [pushed]},
        {"serving_dir": str(tmp_path / "serving"), "model_name": "pets", "keep_last": 3,
         "provenance_json": "{}"})
    version = tmp_path / "serving" / "pets" / "1"
    assert (version / "saved_model.pb").read_bytes() == b"a SavedModel"
    assert (version / "variables" / "variables.index").read_bytes() == b"index"
    card = json.loads((version / contract.ASSETS_EXTRA / contract.MODEL_CARD_JSON).read_text())
    assert card["model_details"]["name"] == "pets"
    assert pushed.get_int_custom_property(contract.PROP_VERSION) == 1
    assert files.read_bytes(f"{pushed.uri}/1/saved_model.pb") == b"a SavedModel"
    assert files.exists(f"{pushed.uri}/1/{contract.ASSETS_EXTRA}/{contract.PROVENANCE_FILE}")
