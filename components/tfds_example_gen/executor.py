"""Beam executor: reads a TFDS image-classification dataset (downloading it on first
use, which needs internet) into tf.Examples with graft's features."""
from __future__ import annotations

import io
from typing import Any, Dict

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor

from graft import contract


def to_example(index: int, image: np.ndarray, label: str, split: str) -> tf.train.Example:
    """uint8 [H, W, C] image + class name -> tf.Example (PNG bytes, label, stable id)."""
    from PIL import Image
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    b = lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))  # noqa: E731
    return tf.train.Example(features=tf.train.Features(feature={
        contract.FEATURE_IMAGE: b(buf.getvalue()),
        contract.FEATURE_LABEL: b(label.encode()),
        contract.FEATURE_ID: b(f"{split}/{index}".encode()),
    }))


def _read(name: str, data_dir: str):
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, data_dir=data_dir or None)
    builder.download_and_prepare()
    label_feature = builder.info.features["label"]
    for split in builder.info.splits:
        for i, ex in enumerate(tfds.as_numpy(builder.as_dataset(split=split))):
            yield to_example(i, ex["image"], label_feature.int2str(int(ex["label"])), split)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        @beam.ptransform_fn
        def _TfdsToExample(pipeline, exec_properties: Dict[str, Any], split_pattern: str):
            import json
            cfg = json.loads(exec_properties.get("custom_config") or "{}")
            return (pipeline | "Start" >> beam.Create([cfg["dataset"]])
                    | "Read" >> beam.FlatMap(_read, data_dir=cfg.get("data_dir", "")))
        return _TfdsToExample
