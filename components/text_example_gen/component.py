"""TextExampleGen: a FileBasedExampleGen with a text executor.

Why not TFX's CsvExampleGen: it ingests rows as given, and graft's ingest keeps identical
texts once per class and leaves out texts filed under two labels (so no text sits on both
sides of the split), reads JSONL and folders of .txt too, and names every skipped row.
Splits by a hash of each text's id (a digest of the text), as the image path does.
"""
from __future__ import annotations

import os

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from graft import contract
from graft.components.splits import hash_split
from graft.components.text_example_gen import executor


class TextExampleGen(FileBasedExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, data_path: str, eval_percent: int = 30, text_column: str = "text",
                 label_column: str = "label"):
        """data_path: a .csv / .jsonl file, or a folder of <class>/*.txt."""
        data_path = os.path.abspath(data_path) if "://" not in data_path else data_path
        if os.path.isdir(data_path):
            base, pattern = data_path, "*"
        else:
            base, pattern = os.path.dirname(data_path), os.path.basename(data_path)
        super().__init__(
            input_base=base,
            input_config=example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
            output_config=hash_split(eval_percent, contract.FEATURE_TEXT_ID),
            custom_config={"text_column": text_column, "label_column": label_column})
