"""TfdsExampleGen: FileBasedExampleGen whose executor reads a TFDS dataset by name."""
from __future__ import annotations

import os

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from graft.components.image_folder_example_gen import scan
from graft.components.tfds_example_gen import executor


class TfdsExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, dataset: str, eval_percent: int = 30, data_dir: str = ""):
        data_dir = data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
        os.makedirs(data_dir, exist_ok=True)
        super().__init__(
            input_base=data_dir,
            custom_config={"dataset": dataset, "data_dir": data_dir},
            output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name="train",
                                                          hash_buckets=100 - eval_percent),
                        example_gen_pb2.SplitConfig.Split(name="eval",
                                                          hash_buckets=eval_percent)],
                partition_feature_name=scan.FEATURE_ID)))
