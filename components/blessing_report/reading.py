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


def summarize(eval_uri: str, blessed: bool, thresholds: Dict) -> Dict:
    """The verdict for one TFMA evaluation, read from its files."""
    return verdict(load_accuracies(eval_uri), load_failures(eval_uri), blessed, thresholds)


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
            "thresholds": thresholds}
