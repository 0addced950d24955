"""SparseCategoricalAccuracy as a TFMA-native metric: the Evaluator's gate metric,
computed in plain Python per example instead of through a Keras metric.

Why: TFMA runs a Keras metric (tf_metric_wrapper) by calling its update_state eagerly,
through AutoGraph, on every batch of every slice - 1.2 s of the demo's 10 s Evaluator
for one model, twice that with a champion - to count argmax(scores) == label. The name,
the value and the thresholds are those of the Keras metric it replaces
(``sparse_categorical_accuracy``; a label the model's vocabulary lacks, id -1, is
wrong; ties go to the first class, as argmax), so the gate, the blessing report and
earlier runs' evaluations read the same key.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

NAME = "sparse_categorical_accuracy"


class SparseCategoricalAccuracy(metric_types.Metric):
    """Share of examples whose highest-scoring class is their label."""

    def __init__(self, name: str = NAME):
        super().__init__(metric_util.merge_per_key_computations(_computations), name=name)


def _computations(name: str = NAME, eval_config=None, model_name: str = "",
                  output_name: str = "", sub_key=None, aggregation_type=None,
                  class_weights=None, example_weighted: bool = False
                  ) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 sub_key=sub_key, example_weighted=example_weighted)
    return [metric_types.MetricComputation(
        keys=[key], preprocessors=None,
        combiner=_Combiner(key, eval_config, aggregation_type, class_weights,
                           example_weighted))]


class _Combiner(beam.CombineFn):
    """Accumulates [weighted correct, weight]."""

    def __init__(self, key, eval_config, aggregation_type, class_weights, example_weighted):
        self._key = key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted

    def create_accumulator(self) -> List[float]:
        return [0.0, 0.0]

    def add_input(self, acc: List[float], element: metric_types.StandardMetricInputs
                  ) -> List[float]:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, sub_key=self._key.sub_key,
                aggregation_type=self._aggregation_type, class_weights=self._class_weights,
                example_weighted=self._example_weighted, flatten=False):
            scores = np.asarray(prediction).reshape(-1)
            truth = np.asarray(label).reshape(-1)
            if truth.size != 1 or scores.size < 2:
                raise ValueError(f"{NAME} needs one class id per example and a score per "
                                 f"class; got labels {truth.shape} and scores {scores.shape}")
            w = float(metric_util.safe_to_scalar(weight))
            acc[0] += w * float(int(np.argmax(scores)) == int(truth[0]))
            acc[1] += w
        return acc

    def merge_accumulators(self, accs: Iterable[List[float]]) -> List[float]:
        out = [0.0, 0.0]
        for a in accs:
            out[0] += a[0]
            out[1] += a[1]
        return out

    def extract_output(self, acc: List[float]) -> Dict[metric_types.MetricKey, Optional[float]]:
        return {self._key: acc[0] / acc[1] if acc[1] else float("nan")}


metric_types.register_metric(SparseCategoricalAccuracy)
