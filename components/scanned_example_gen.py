"""The executor every graft ExampleGen shares: scan the input first (a pure function that
checks and deduplicates it, the same one the pre-flight check runs), turn the scan's
records into tf.Examples in Beam, and record what was left out (ingest_report).

A format is a subclass with two functions: ``scan`` (root, split pattern, exec
properties -> a result with root, records, counts and left_out()) and ``to_example``
(one record -> tf.Example). TFX's base executor does the hash split and the writing.
"""
from __future__ import annotations

from typing import Any, Dict, List

import apache_beam as beam
from tfx.components.example_gen import base_example_gen_executor
from tfx.types import artifact, standard_component_specs

from graft.components import beam_crc, ingest_report

beam_crc.use_fast_crc32c()  # TFX writes the examples with Beam's TFRecord writer


class ScannedExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):

    def scan(self, root: str, split_pattern: str, exec_properties: Dict[str, Any]):
        raise NotImplementedError

    @staticmethod
    def to_example(record, root: str):
        """A staticmethod, so Beam pickles it by reference, not with the executor."""
        raise NotImplementedError

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        executor = self

        @beam.ptransform_fn
        def _ScanToExample(pipeline, exec_properties: Dict[str, Any], split_pattern: str):
            root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            result = executor.scan(root, split_pattern, exec_properties)
            executor._scan = result
            return (pipeline
                    | "List" >> beam.Create(result.records, reshuffle=False)
                    | "ToTFExample" >> beam.Map(type(executor).to_example, root=root))

        return _ScanToExample

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._scan = None
        super().Do(input_dict, output_dict, exec_properties)
        ingest_report.publish(output_dict[standard_component_specs.EXAMPLES_KEY], self._scan)
