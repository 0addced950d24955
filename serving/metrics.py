"""Prometheus metrics with TF Serving's names.

Hand-written exposition because prometheus_client appends ``_total`` to every
counter, and TF Serving's counter is exported as
``:tensorflow:serving:request_count`` exactly; dashboards built for the real
server must work unchanged.
"""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# Latency buckets in microseconds, like TF Serving's exponential buckets.
BUCKETS = [10 * 1.8 ** i for i in range(33)]


def _label(value: str) -> str:
    """A label value in Prometheus' text format: backslash, quote and newline escaped
    (a model path or name may hold any of them)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._count = defaultdict(int)                  # (model, status) -> n
        self._hist = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sum = defaultdict(float)
        self._n = defaultdict(int)
        self._loads = defaultdict(int)                  # (version dir, status) -> n
        self._load_micros = defaultdict(float)          # version dir -> total, loaded ones

    def observe_load(self, path: str, ok: bool, micros: float):
        """A SavedModel load, counted under TensorFlow's own metric names (as TF Serving
        exports them: /tensorflow/cc/saved_model/load_attempt_count and load_latency)."""
        with self._lock:
            self._loads[(path, "success" if ok else "fail")] += 1
            if ok:
                self._load_micros[path] += micros

    def observe(self, model: str, api: str, entrypoint: str, status: str, micros: float):
        with self._lock:
            self._count[(model, status)] += 1
            key = (model, api, entrypoint)
            self._hist[key][bisect.bisect_left(BUCKETS, micros)] += 1
            self._sum[key] += micros
            self._n[key] += 1

    def exposition(self) -> str:
        out = ["# TYPE :tensorflow:serving:request_count counter"]
        with self._lock:
            for (model, status), n in sorted(self._count.items()):
                out.append(f':tensorflow:serving:request_count{{model_name="{_label(model)}",'
                           f'status="{status}"}} {n}')
            out.append("# TYPE :tensorflow:serving:request_latency histogram")
            for key, counts in sorted(self._hist.items()):
                model, api, entry = key
                labels = f'model_name="{_label(model)}",API="{api}",entrypoint="{entry}"'
                cum = 0
                for b, c in zip(BUCKETS + [float("inf")], counts):
                    cum += c
                    le = "+Inf" if b == float("inf") else f"{b:g}"
                    out.append(f":tensorflow:serving:request_latency_bucket{{{labels},le=\"{le}\"}} {cum}")
                out.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {self._sum[key]:g}")
                out.append(f":tensorflow:serving:request_latency_count{{{labels}}} {self._n[key]}")
            out.append("# TYPE :tensorflow:cc:saved_model:load_attempt_count counter")
            for (path, status), n in sorted(self._loads.items()):
                out.append(f':tensorflow:cc:saved_model:load_attempt_count{{model_path='
                           f'"{_label(path)}",status="{status}"}} {n}')
            out.append("# TYPE :tensorflow:cc:saved_model:load_latency counter")
            for path, micros in sorted(self._load_micros.items()):
                out.append(f':tensorflow:cc:saved_model:load_latency{{model_path='
                           f'"{_label(path)}"}} {micros:.0f}')
        return "\n".join(out) + "\n"
