"""The train/eval split every graft ExampleGen uses: TFX's hash split on the example's
id (contract.FEATURE_ID), so adding data never moves old examples across splits and
the pre-flight check can predict it (contract.split_of)."""
from __future__ import annotations

from tfx.proto import example_gen_pb2

from graft import contract


def hash_split(eval_percent: int, id_feature: str = contract.FEATURE_ID) -> example_gen_pb2.Output:
    return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=contract.SPLIT_TRAIN,
                                          hash_buckets=100 - eval_percent),
        example_gen_pb2.SplitConfig.Split(name=contract.SPLIT_EVAL, hash_buckets=eval_percent)],
        partition_feature_name=id_feature))
