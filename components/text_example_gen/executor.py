"""Beam executor: the scanned texts as tf.Examples (text, label, text_id).

The shared executor (components/scanned_example_gen.py) does the rest, as for images:
TFX's base executor splits (a hash of text_id) and writes the splits, and what was skipped
or left out as a duplicate, and why, is recorded as the artifact's ``ingest_report``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict

import tensorflow as tf

from graft import contract
from graft.components.scanned_example_gen import ScannedExampleGenExecutor
from graft.components.text_example_gen import scan


class Executor(ScannedExampleGenExecutor):

    def scan(self, root: str, split_pattern: str, exec_properties: Dict[str, Any]):
        columns = json.loads(exec_properties.get("custom_config") or "{}") or {}
        path = root if split_pattern == "*" else os.path.join(root, split_pattern)
        return scan.scan(path, columns.get("text_column", "text"),
                         columns.get("label_column", "label"))

    @staticmethod
    def to_example(record, root: str) -> tf.train.Example:
        text_id, label, text = record

        def b(v: str):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8")]))
        return tf.train.Example(features=tf.train.Features(feature={
            contract.FEATURE_TEXT: b(text), contract.FEATURE_LABEL: b(label),
            contract.FEATURE_TEXT_ID: b(text_id)}))
