"""TFX's Evaluator, with EmbeddingGen's vectors as one more input channel.

The standard Evaluator scores each model on the examples: for graft's models that ran
every backbone over every held-out image again, twice (challenger and champion) - most
of a recurring run's evaluation, and the one cost of a run after a new span that grew
with all the data instead of the new images. Same spec plus ``embeddings``, same
executor, except that when both models have a head export over exactly these vectors
(trainer/export.py: export_head) it scores those heads on the held-out vectors
(executor.py). Its node id stays ``Evaluator``.
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from graft.components.embedding_evaluator import executor
from graft.components.embedding_gen.component import Embeddings


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    INPUTS = {**standard_component_specs.EvaluatorSpec.INPUTS,
              executor.EMBEDDINGS_KEY: ChannelParameter(type=Embeddings, optional=True)}


class Evaluator(base_beam_component.BaseBeamComponent):
    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, model, baseline_model, eval_config: tfma.EvalConfig,
                 example_splits: Optional[List[str]] = None, embeddings=None):
        super().__init__(spec=EvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            embeddings=embeddings, eval_config=eval_config,
            example_splits=json_utils.dumps(example_splits),
            fairness_indicator_thresholds=json_utils.dumps(None),
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=standard_artifacts.ModelBlessing)))
