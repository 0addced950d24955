"""TfdsExampleGen: FileBasedExampleGen whose executor reads a TFDS dataset by name."""
from __future__ import annotations

import os

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from graft.components.splits import hash_split
from graft.components.tfds_example_gen import executor


class TfdsExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, dataset: str, eval_percent: int = 30, data_dir: str = ""):
        data_dir = data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
        os.makedirs(data_dir, exist_ok=True)
        super().__init__(input_base=data_dir,
                         custom_config={"dataset": dataset, "data_dir": data_dir},
                         output_config=hash_split(eval_percent))
