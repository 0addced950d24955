"""Replays a version's assets.extra/tf_serving_warmup_requests before it serves, as TF
Serving does: the first real request then meets traced functions, and a version
whose warmup fails never becomes AVAILABLE."""
from __future__ import annotations

import os

from graft import tfrecords
from graft.contract import ASSETS_EXTRA, WARMUP_FILE
from graft.serving.dataplane import DataPlane
from graft.serving.loader import LoadError
from graft.serving.status import ServingError

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit (saved_model_warmup_util.cc)
# Bounds one record's declared length before it is read (graft/tfrecords.py says why): a
# crafted warmup file took the whole server down with every model it served.
MAX_WARMUP_RECORD_BYTES = 256 << 20


def replay(servable, iterations: int = 1) -> int:
    """Runs every warmup record on the servable (each ``iterations`` times, TF Serving's
    --num_request_iterations_for_warmup); returns how many. Any failure fails the load."""
    path = os.path.join(servable.path, ASSETS_EXTRA, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    plane = DataPlane()  # no batcher: warmup calls the model directly
    calls = {"predict_log": plane.predict_proto, "classify_log": plane.classify_proto,
             "regress_log": plane.regress_proto,
             "multi_inference_log": plane.multi_inference_proto}
    n = 0
    try:
        for raw in tfrecords.read_records(path, MAX_WARMUP_RECORD_BYTES):
            n += 1
            if n > MAX_WARMUP_RECORDS:
                raise LoadError(f"too many warmup records in {path} (max {MAX_WARMUP_RECORDS})")
            _replay_one(calls, servable, raw, n, path, iterations)
    except tfrecords.RecordError as e:
        raise LoadError(f"warmup: {e}") from e
    return n


def _replay_one(calls, servable, raw: bytes, n: int, path: str, iterations: int) -> None:
    from tensorflow_serving.apis import prediction_log_pb2
    try:
        log = prediction_log_pb2.PredictionLog.FromString(raw)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError
        raise LoadError(f"warmup record {n} in {path} is not a PredictionLog ({e})") from e
    kind = log.WhichOneof("log_type")
    if kind not in calls:
        raise LoadError(f"unsupported warmup record type {kind}")
    try:
        for _ in range(max(1, iterations)):
            calls[kind](servable, getattr(log, kind).request)
    except ServingError as e:
        raise LoadError(f"warmup request {n} failed: {e.message}") from e
