"""The Evaluator's gate metric: TFMA-native sparse categorical accuracy equals the Keras
metric it replaces (the pipeline tests run it inside the real Evaluator)."""
import numpy as np
import pytest

import graft  # noqa: F401  (Keras 2 before TensorFlow)


def _inputs(labels, scores, weights):
    from tensorflow_model_analysis.metrics import metric_types
    return [metric_types.StandardMetricInputs(labels=np.array([l]), predictions=np.array(s),
                                              example_weights=np.array([w]))
            for l, s, w in zip(labels, scores, weights)]


def _combine(elements, example_weighted):
    """The combiner as Beam runs it: two partial accumulations, merged, then extracted."""
    from graft.components import accuracy_metric
    (comp,) = accuracy_metric.SparseCategoricalAccuracy().computations(
        example_weighted=example_weighted)
    fn = comp.combiner
    parts = []
    for half in (elements[:len(elements) // 2], elements[len(elements) // 2:]):
        acc = fn.create_accumulator()
        for e in half:
            acc = fn.add_input(acc, e)
        parts.append(acc)
    (value,) = fn.extract_output(fn.merge_accumulators(parts)).values()
    return value


@pytest.mark.parametrize("example_weighted", [False, True])
def test_equals_keras_sparse_categorical_accuracy(example_weighted):
    import tf_keras
    rng = np.random.default_rng(0)
    n, k = 200, 5
    scores = rng.random((n, k)).astype(np.float32)
    scores[:20] = 0.2                       # ties: the first class wins, as argmax
    labels = rng.integers(0, k, n)
    labels[20:30] = -1                      # a class the model's vocabulary lacks
    weights = rng.random(n).astype(np.float32) + 0.5
    keras = tf_keras.metrics.SparseCategoricalAccuracy()
    keras.update_state(labels, scores, sample_weight=weights if example_weighted else None)
    ours = _combine(_inputs(labels, scores, weights), example_weighted)
    assert ours == pytest.approx(float(keras.result()), abs=1e-6)
    assert 0.1 < ours < 0.5  # not a degenerate case


def test_no_examples_is_nan_and_bad_shapes_say_so():
    import math
    assert math.isnan(_combine([], False))
    from tensorflow_model_analysis.metrics import metric_types
    bad = [metric_types.StandardMetricInputs(labels=np.array([1, 2]),
                                             predictions=np.array([0.1, 0.9]),
                                             example_weights=np.array([1.0]))]
    with pytest.raises(Exception, match="one class id per example"):
        _combine(bad, False)
