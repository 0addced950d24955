"""Beam executor: the scanned images as tf.Examples (image_bytes, label, image_id).

The shared executor (components/scanned_example_gen.py) does the rest: TFX's base
executor splits (hash of image_id, see component.py) and writes the splits, and what was
skipped or left out as a duplicate, and why, is recorded on the artifact (custom
property ``ingest_report``) and as ``ingest_report.json`` beside the splits.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import tensorflow as tf

from graft import contract
from graft.components.image_folder_example_gen import scan
from graft.components.scanned_example_gen import ScannedExampleGenExecutor


class Executor(ScannedExampleGenExecutor):

    def scan(self, root: str, split_pattern: str, exec_properties: Dict[str, Any]):
        # "*" for DIR/<class>/; "span-3/*" (TFX's driver resolved {SPAN}) with spans.
        folder = os.path.dirname(split_pattern)
        # One span of several need not hold every class: the pre-flight check
        # validated the whole window before TFX started.
        return scan.scan(os.path.join(root, folder) if folder else root, id_root=root,
                         validate=not folder)

    @staticmethod
    def to_example(record, root: str) -> tf.train.Example:
        image_id, label = record
        data = scan.read_bytes(os.path.join(root, image_id))

        def b(v: bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        return tf.train.Example(features=tf.train.Features(feature={
            contract.FEATURE_IMAGE: b(data), contract.FEATURE_LABEL: b(label.encode()),
            contract.FEATURE_ID: b(image_id.encode())}))
