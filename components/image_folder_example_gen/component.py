"""ImageFolderExampleGen: a FileBasedExampleGen with an image-folder executor.

Splits by a hash of each image's id (its path under the data folder), so
adding files never moves old files across splits.
"""
from __future__ import annotations

from typing import Optional

from google.protobuf import any_pb2, wrappers_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from graft.components.image_folder_example_gen import executor
from graft.components.splits import hash_split


class ImageFolderExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, eval_percent: int = 30, pattern: str = "*",
                 data_fingerprint: str = "", span: Optional[int] = None):
        """pattern: "*" (DIR/<class>/) or a TFX span pattern ("span-{SPAN}/*"), whose
        latest span TFX's driver picks unless ``span`` names one (a backfill).
        data_fingerprint: a digest of every file's name, size and mtime. TFX's own input
        fingerprint stats only what the pattern matches (the class folders), which
        misses an image replaced in place; passed as custom config, it is part of the
        cache key."""
        custom = None
        if data_fingerprint:
            packed = any_pb2.Any()
            packed.Pack(wrappers_pb2.StringValue(value=data_fingerprint))
            custom = example_gen_pb2.CustomConfig(custom_config=packed)
        range_config = None
        if span is not None:
            range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
                start_span_number=span, end_span_number=span))
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
            output_config=hash_split(eval_percent), custom_config=custom,
            range_config=range_config)
