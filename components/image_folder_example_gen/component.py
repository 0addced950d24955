"""ImageFolderExampleGen: a FileBasedExampleGen with an image-folder executor.

Splits by a hash of each image's id (its path under the data folder), so
adding files never moves old files across splits.
"""
from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from graft.components.image_folder_example_gen import executor
from graft.components.splits import hash_split


class ImageFolderExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, eval_percent: int = 30):
        super().__init__(input_base=input_base, output_config=hash_split(eval_percent))
