"""Beam executor: the scanned texts as tf.Examples (text, label, text_id).

The base ExampleGen executor splits (a hash of text_id) and writes the splits; this one
turns the file or folder into examples and records what was skipped or left out as a
duplicate, and why, on the artifact (custom property ``ingest_report``) and as
``ingest_report.json`` beside the splits - as the image ExampleGen does.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.types import artifact, standard_component_specs

from graft import contract
from graft.components import ingest_report
from graft.components.text_example_gen import scan


def _to_example(record) -> tf.train.Example:
    text_id, label, text = record

    def b(v: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature={
        contract.FEATURE_TEXT: b(text), contract.FEATURE_LABEL: b(label),
        contract.FEATURE_TEXT_ID: b(text_id)}))


class Executor(base_example_gen_executor.BaseExampleGenExecutor):

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        executor = self

        @beam.ptransform_fn
        def _TextToExample(pipeline, exec_properties: Dict[str, Any], split_pattern: str):
            root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            columns = json.loads(exec_properties.get("custom_config") or "{}") or {}
            path = root if split_pattern == "*" else os.path.join(root, split_pattern)
            result = scan.scan(path, columns.get("text_column", "text"),
                               columns.get("label_column", "label"))
            executor._scan = result
            return (pipeline
                    | "ListTexts" >> beam.Create(result.records, reshuffle=False)
                    | "ToTFExample" >> beam.Map(_to_example))

        return _TextToExample

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._scan = None
        super().Do(input_dict, output_dict, exec_properties)
        ingest_report.publish(output_dict[standard_component_specs.EXAMPLES_KEY], self._scan)
