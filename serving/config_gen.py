"""Configs for real tensorflow/serving over the same model directory:
models.config, batching parameters, monitoring, a docker run line and a
Kubernetes Deployment + Service."""
from __future__ import annotations

import os
import re
import shlex
import urllib.parse
from typing import Dict

from graft import contract
from graft.contract import atomic_write
from graft.serving import model_config
from graft.serving.manager import ModelConfig
from graft.serving.status import invalid

BATCHING = """max_batch_size { value: %(max_batch_size)d }
batch_timeout_micros { value: %(batch_timeout_micros)d }
max_enqueued_batches { value: 100 }
num_batch_threads { value: %(num_batch_threads)d }
"""

MONITORING = """prometheus_config {
  enable: true
  path: "/monitoring/prometheus/metrics"
}
"""

K8S = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: %(k8s)s-serving
  labels: {app: %(k8s)s-serving}
spec:
  replicas: 1
  selector:
    matchLabels: {app: %(k8s)s-serving}
  template:
    metadata:
      labels: {app: %(k8s)s-serving}
    spec:
      containers:
      - name: tensorflow-serving
        image: tensorflow/serving:2.16.1
        args:
        - --port=8500
        - --rest_api_port=8501
        - --model_config_file=/models/config/models.config
        - --model_config_file_poll_wait_seconds=30
        - --enable_batching=true
        - --batching_parameters_file=/models/config/batching.config
        - --monitoring_config_file=/models/config/monitoring.config
        ports:
        - {containerPort: 8500, name: grpc}
        - {containerPort: 8501, name: rest}
        readinessProbe:
          httpGet: {path: /v1/models/%(probe)s, port: 8501}
        volumeMounts:
        - {name: models, mountPath: /models}
      volumes:
      - name: models
        persistentVolumeClaim: {claimName: %(k8s)s-models}
---
apiVersion: v1
kind: Service
metadata:
  name: %(k8s)s-serving
spec:
  selector: {app: %(k8s)s-serving}
  ports:
  - {name: grpc, port: 8500, targetPort: 8500}
  - {name: rest, port: 8501, targetPort: 8501}
"""


def generate(name: str, base_path: str, out_dir: str, max_batch_size: int = 32,
             batch_timeout_micros: int = 2000, num_batch_threads: int = 2) -> Dict[str, str]:
    """Writes the files; inside the container the model lives at /models/<name>."""
    # graft run's rule for a model name: it becomes a folder, a URL segment and a container
    # path, unquoted, in every file written here.
    if not contract.is_model_name(name):
        raise invalid(f"model name {name!r}: use letters, digits, - and _")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise invalid(f"--out {out_dir} is a file: give a folder for the config files")
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "models.config": model_config.to_text([ModelConfig(name=name,
                                                           base_path=f"/models/{name}")]),
        "batching.config": BATCHING % dict(max_batch_size=max_batch_size,
                                          batch_timeout_micros=batch_timeout_micros,
                                          num_batch_threads=num_batch_threads),
        "monitoring.config": MONITORING,
        "docker-run.sh": (
            "#!/bin/sh\n# Serve with the real TensorFlow Serving over graft's model directory.\n"
            f"docker run --rm -p 8500:8500 -p 8501:8501 \\\n"
            f"  -v {shlex.quote(os.path.abspath(base_path) + ':/models/' + name)} \\\n"
            f"  -v {shlex.quote(os.path.abspath(out_dir) + ':/models/config')} \\\n"
            f"  tensorflow/serving:2.16.1 \\\n"
            f"  --model_config_file=/models/config/models.config \\\n"
            f"  --model_config_file_poll_wait_seconds=30 \\\n"
            f"  --enable_batching=true --batching_parameters_file=/models/config/batching.config \\\n"
            f"  --monitoring_config_file=/models/config/monitoring.config\n"),
        "kubernetes.yaml": K8S % {"probe": urllib.parse.quote(name, safe=""), "k8s": _k8s_name(name)},
    }
    for fname, text in files.items():
        atomic_write(os.path.join(out_dir, fname), text)
    os.chmod(os.path.join(out_dir, "docker-run.sh"), 0o755)
    return {k: os.path.join(out_dir, k) for k in files}


def _k8s_name(name: str) -> str:
    """A Kubernetes object name (a DNS-1123 label: lower-case letters, digits and '-',
    with room for the '-serving' suffix) from a model name."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50].strip("-") or "model"
