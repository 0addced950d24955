"""Gathers the run's facts, runs the new model over held-out images for its worst
mistakes, and writes report.html and report.json into the RunReport artifact."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact, artifact_utils
from tfx.utils import path_utils

from graft import contract
from graft.components.blessing_report import reading
from graft.components.run_report import gather, mistakes, render


def _one(input_dict, key):
    items = input_dict.get(key) or []
    return items[0] if items else None


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        t0 = time.time()
        model = artifact_utils.get_single_instance(input_dict["model"])
        info = gather.model_info(model.uri)
        classes = list(info.get("classes") or [])
        evaluation = gather.evaluation(_one(input_dict, "blessing_report").uri) or {}
        baseline = _one(input_dict, "baseline_model")
        data = gather.ingest(input_dict["examples"])
        facts: Dict[str, Any] = {
            "pipeline_name": exec_properties["pipeline_name"],
            "model_name": exec_properties["model_name"],
            "run_id": self._context.pipeline_run_id if self._context else "",
            "spans": data.pop("spans"),
            "classes": classes, "backbone": info.get("backbone"),
            "modality": info.get("modality", "image"),
            "image_size": info.get("image_size"),
            "data": dict(data, total=sum(data["counts"].values())),
            "statistics": gather.statistics(_one(input_dict, "statistics")),
            "training": gather.training(_one(input_dict, "model_run").uri),
            "embedding": gather.embedding(_one(input_dict, "embeddings")),
            "evaluation": evaluation,
            "push": gather.pushed(_one(input_dict, "pushed_model")),
        }
        entries = (evaluation.get("confusion") or {}).get(reading.CANDIDATE)
        matrix = None
        if entries and classes:
            matrix = reading.confusion_matrix(entries, len(classes))
            facts["precision_recall"] = reading.precision_recall(matrix, classes)
            facts["held_out_counts"] = {c: sum(matrix[i]) for i, c in enumerate(classes)}
        if baseline is not None and evaluation.get("champion_accuracy") is not None:
            facts["champion_classes"] = gather.model_info(baseline.uri).get("classes")
            facts["champion_per_class"] = evaluation.get("champion_per_class_accuracy")
        facts["mistakes"] = mistakes.examine(
            path_utils.serving_model_path(model.uri), input_dict["examples"],
            exec_properties["max_examples"], exec_properties["thumbnails"],
            info.get("modality", "image"),
            head_dir=path_utils.serving_model_path(os.path.join(model.uri,
                                                                contract.HEAD_MODEL_DIR)),
            embeddings=_one(input_dict, "embeddings"), classes=classes, confusion=matrix)
        page = render.html(facts)
        out = artifact_utils.get_single_instance(output_dict["report"])
        tf.io.gfile.makedirs(out.uri)
        with tf.io.gfile.GFile(os.path.join(out.uri, contract.RUN_REPORT_FILE), "w") as f:
            f.write(page)
        with tf.io.gfile.GFile(os.path.join(out.uri, contract.RUN_REPORT_JSON), "w") as f:
            json.dump(facts, f, indent=1, default=str)
        print(f"  [report] {os.path.join(out.uri, contract.RUN_REPORT_FILE)} "
              f"({time.time() - t0:.1f} s)", flush=True)
