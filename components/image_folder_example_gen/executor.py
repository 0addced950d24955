"""Beam executor: reads the scanned images into tf.Examples.

The base ExampleGen executor does the splitting (hash of image_id, see
component.py) and writes the splits; this executor only turns the folder into
examples and records which files were skipped or left out as duplicates, and
why, on the output artifact
(custom property ``ingest_report``) and as ``ingest_report.json`` beside the
splits.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.types import artifact, standard_component_specs

from graft import contract
from graft.components import ingest_report
from graft.components.image_folder_example_gen import scan


def _to_example(record, root: str) -> tf.train.Example:
    image_id, label = record
    data = scan.read_bytes(os.path.join(root, image_id))
    feature = {
        contract.FEATURE_IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        contract.FEATURE_LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
        contract.FEATURE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_id.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


class Executor(base_example_gen_executor.BaseExampleGenExecutor):

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        executor = self

        @beam.ptransform_fn
        def _ImageFolderToExample(pipeline, exec_properties: Dict[str, Any], split_pattern: str):
            root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            # "*" for DIR/<class>/; "span-3/*" (TFX's driver resolved {SPAN}) with spans.
            folder = os.path.dirname(split_pattern)
            # One span of several need not hold every class: the pre-flight check
            # validated the whole window before TFX started.
            result = scan.scan(os.path.join(root, folder) if folder else root, id_root=root,
                               validate=not folder)
            executor._scan = result
            return (pipeline
                    | "ListImages" >> beam.Create(result.records, reshuffle=False)
                    | "ToTFExample" >> beam.Map(_to_example, root=root))

        return _ImageFolderToExample

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._scan = None
        super().Do(input_dict, output_dict, exec_properties)
        ingest_report.publish(output_dict[standard_component_specs.EXAMPLES_KEY], self._scan)
