"""Read TFMA's output for one evaluation into plain numbers and sentences."""
from __future__ import annotations

from typing import Dict, List, Optional

CANDIDATE = "candidate"
BASELINE = "baseline"
METRIC = "sparse_categorical_accuracy"


def _slice_name(slice_key) -> str:
    if not slice_key.single_slice_keys:
        return "overall"
    parts = []
    for k in slice_key.single_slice_keys:
        v = k.bytes_value.decode() if k.HasField("bytes_value") else (
            k.int64_value if k.HasField("int64_value") else k.float_value)
        parts.append(f"{k.column}={v}")
    return ",".join(parts)


def load_accuracies(eval_uri: str) -> Dict[str, Dict[str, float]]:
    """{model name: {slice name: accuracy}} from TFMA's metrics file."""
    import tensorflow_model_analysis as tfma
    out: Dict[str, Dict[str, float]] = {}
    for per_slice in tfma.load_metrics(eval_uri):
        name = _slice_name(per_slice.slice_key)
        for kv in per_slice.metric_keys_and_values:
            if kv.key.name != METRIC or kv.key.is_diff:
                continue
            model = kv.key.model_name or CANDIDATE
            out.setdefault(model, {})[name] = kv.value.double_value.value
    return out


def load_failures(eval_uri: str) -> List[str]:
    import tensorflow_model_analysis as tfma
    result = tfma.load_validation_result(eval_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        name = _slice_name(per_slice.slice_key)
        for f in per_slice.failures:
            failures.append(f"{name}: {f.message}" if f.message else name)
    return failures


def load_confusion(eval_uri: str) -> Dict[str, List[List[int]]]:
    """{model name: [[actual class id, predicted class id, count], ...]} on the overall
    slice, from TFMA's MultiClassConfusionMatrixPlot (threshold 0: every example counts
    under its top class). Class ids are the label vocabulary's indices of that model."""
    import tensorflow_model_analysis as tfma
    out: Dict[str, List[List[int]]] = {}
    for per_slice in tfma.load_plots(eval_uri):
        if _slice_name(per_slice.slice_key) != "overall":
            continue
        for kv in per_slice.plot_keys_and_values:
            matrices = kv.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            out[kv.key.model_name or CANDIDATE] = [
                [e.actual_class_id, e.predicted_class_id, int(round(e.num_weighted_examples))]
                for e in matrices[0].entries]
    return out


def confusion_matrix(entries: List[List[int]], n: int) -> List[List[int]]:
    """[[actual, predicted, count]] -> an n x n matrix (rows: true class). Examples with
    no predicted class (TFMA's -1) are not counted."""
    m = [[0] * n for _ in range(n)]
    for a, p, c in entries:
        if 0 <= a < n and 0 <= p < n:
            m[a][p] += c
    return m


def precision_recall(matrix: List[List[int]], classes: List[str]) -> List[Dict]:
    rows = []
    for i, name in enumerate(classes):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(len(classes)))
        actual = sum(matrix[i])
        rows.append({"class": name, "support": actual,
                     "precision": tp / predicted if predicted else None,
                     "recall": tp / actual if actual else None})
    return rows


def summarize(eval_uri: str, blessed: bool, thresholds: Dict) -> Dict:
    """The verdict for one TFMA evaluation, read from its files, with the confusion
    matrices (candidate and champion) for the run report."""
    out = verdict(load_accuracies(eval_uri), load_failures(eval_uri), blessed, thresholds)
    out["confusion"] = load_confusion(eval_uri)
    return out


def verdict(acc: Dict[str, Dict[str, float]], failures: List[str], blessed: bool,
            thresholds: Dict) -> Dict:
    """Pure: accuracies per model and slice ({model: {slice: accuracy}}), TFMA's
    validation failures, its blessing and the thresholds -> checks in words."""
    cand = acc.get(CANDIDATE, {})
    base: Optional[Dict[str, float]] = acc.get(BASELINE)
    overall = cand.get("overall")
    lines: List[str] = []
    floor = thresholds["min_accuracy"]
    ok_floor = overall is not None and overall >= floor
    lines.append(f"accuracy {overall:.3f} {'>=' if ok_floor else '<'} floor {floor:.3f} "
                 f"({thresholds['floor_reason']}): {'passed' if ok_floor else 'FAILED'}"
                 if overall is not None else "accuracy: not computed")
    regressions: List[str] = []
    if base and base.get("overall") is not None and overall is not None:
        delta = overall - base["overall"]
        tol = thresholds["max_regression"]
        ok = delta >= -tol - 1e-9
        lines.append(f"vs champion: {overall:.3f} vs {base['overall']:.3f} ({delta:+.3f}; "
                     f"may trail by at most {tol:.3f}): {'passed' if ok else 'FAILED'}")
        ptol = thresholds["per_class_max_regression"]
        for name in sorted(k for k in cand if k != "overall"):
            if name in base:
                d = cand[name] - base[name]
                if d < -ptol - 1e-9:
                    regressions.append(f"{name}: {cand[name]:.3f} vs champion {base[name]:.3f} "
                                       f"({d:+.3f}, limit -{ptol:.3f})")
        lines.append("per class vs champion: " + ("passed" if not regressions else
                                                   "FAILED: " + "; ".join(regressions)))
    else:
        lines.append("vs champion: no model in production yet (first run): floor only")
    per_class = {k.split("=", 1)[1]: v for k, v in cand.items() if k != "overall"}
    headline = ("BLESSED: the new model passed every threshold" if blessed else
                "NOT BLESSED: " + "; ".join(l for l in lines if "FAILED" in l))
    if not blessed and "FAILED" not in " ".join(lines):
        headline = "NOT BLESSED: " + ("; ".join(failures) or "TFMA validation failed")
    text = headline + "\n" + "\n".join("  " + l for l in lines)
    if per_class:
        text += "\n  per class: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(per_class.items()))
    return {"blessed": blessed, "headline": headline, "checks": lines, "text": text + "\n",
            "accuracy": overall, "champion_accuracy": (base or {}).get("overall"),
            "per_class_accuracy": per_class, "tfma_failures": failures,
            "champion_per_class_accuracy": {k.split("=", 1)[1]: v for k, v in (base or {}).items()
                                            if k != "overall"},
            "thresholds": thresholds}
