"""TFX's Trainer, with EmbeddingGen's vectors as one more input channel.

The standard Trainer takes one ``examples`` channel; graft's run_fn needs two: the
embeddings (phase 1 fits the head on them) and ExampleGen's examples (phase 2 streams
their image bytes to fine-tune, labelled by Transform's vocabulary). Same spec plus
``embeddings``, same GenericExecutor plus the embeddings' split file patterns in
``fn_args.embeddings`` (and, when AdaBN ran, the adapted modules in
``fn_args.adapted_backbone_paths``), and for the head export (trainer/export.py) the
vectors' cache key in ``fn_args.embedding_key`` and ``fn_args.head_model_dir``; its node
id stays ``Trainer``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, json_utils, path_utils

from graft import contract
from graft.components.embedding_gen.component import (AdaptedBackbones, Embeddings,
                                                      adapted_views)
from graft.components.embedding_gen.executor import split_dir

EMBEDDINGS_KEY = "embeddings"
ADAPTED_KEY = "adapted_backbones"


class Executor(trainer_executor.GenericExecutor):
    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        emb = artifact_utils.get_single_instance(input_dict[EMBEDDINGS_KEY])
        fn_args.embeddings = {
            s: [io_utils.all_files_pattern(split_dir(emb.uri, s))]
            for s in artifact_utils.decode_split_names(
                emb.get_string_custom_property(contract.PROP_SPLIT_NAMES))}
        fn_args.embedding_key = emb.get_string_custom_property(contract.PROP_EMBEDDING_KEY)
        model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.MODEL_KEY])
        fn_args.head_model_dir = path_utils.serving_model_dir(
            os.path.join(model.uri, contract.HEAD_MODEL_DIR))
        adapted = input_dict.get(ADAPTED_KEY) or []
        if adapted:  # AdaBN ran: each view's adapted module replaces its backbone
            views = adapted_views(adapted[0])
            fn_args.adapted_backbone_paths = [v.pop("path") for v in views]
            fn_args.adaptation = views
        return fn_args


class TrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              EMBEDDINGS_KEY: ChannelParameter(type=Embeddings),
              ADAPTED_KEY: ChannelParameter(type=AdaptedBackbones, optional=True)}


class Trainer(base_component.BaseComponent):
    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples, embeddings, transform_graph, schema, run_fn: str,
                 custom_config: Optional[Dict[str, Any]] = None, adapted_backbones=None):
        super().__init__(spec=TrainerSpec(
            examples=examples, embeddings=embeddings, transform_graph=transform_graph,
            adapted_backbones=adapted_backbones,
            schema=schema, run_fn=run_fn,
            train_args=trainer_pb2.TrainArgs(num_steps=0),
            eval_args=trainer_pb2.EvalArgs(num_steps=0),
            custom_config=json_utils.dumps(custom_config or {}),
            model=channel.Channel(type=standard_artifacts.Model),
            model_run=channel.Channel(type=standard_artifacts.ModelRun)))
