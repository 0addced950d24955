"""ImageFolderExampleGen: a FileBasedExampleGen with an image-folder executor.

Splits by a hash of each image's id (its path under the data folder), so
adding files never moves old files across splits.
"""
from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from graft.components.image_folder_example_gen import executor, scan


class ImageFolderExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, eval_percent: int = 30):
        output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_percent),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
            ],
            partition_feature_name=scan.FEATURE_ID))
        super().__init__(input_base=input_base, output_config=output_config)
