"""Loads one model version (a SavedModel directory) into a callable servable.

Served the way TF Serving serves it (a SavedModelBundle): a TF1 session over the
MetaGraphDef with the serving tags, feeding the request tensors to the
signature's input tensor names and fetching its output tensor names. So TF1
exports that TF2's ``tf.saved_model.load`` refuses load here, and shapes are
checked only by the graph's own ops, as in TF Serving (half_plus_two answers a
[3] tensor fed to an input declared [-1, 1]).

A loaded Servable is immutable; in-flight requests hold a Python reference to
it, so unloading (dropping it from the manager's table) never pulls a model
out from under a running request - Python's reference counting is the
ref-counted handle TF Serving implements by hand.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

from graft.contract import SERVING_SIGNATURE
from graft.serving.status import Code, ServingError, failed_precondition, invalid

try:  # TF Serving's model server links TF Text's ops in; so does graft's (text models).
    import tensorflow_text  # noqa: F401
except ImportError:  # pragma: no cover - in the lock; a server without it serves images
    pass

DEFAULT_TAGS = ("serve",)
_CODES = {c.value[0]: c for c in Code}  # TF's error codes are gRPC's numbers


class LoadError(Exception):
    pass


@dataclasses.dataclass
class CallLimits:
    """What one model call may cost, shared by every servable of a server.

    ``slots`` bounds how many model calls run at once (memory grows with it, and
    on a few cores more do not add throughput); a batch-major request of more than
    ``rows_per_call`` rows runs as consecutive slices of that many rows, so one
    request of 1 000 tiny images costs what 64 do."""
    rows_per_call: int = 64
    concurrent_calls: int = 4

    def __post_init__(self):
        self.slots = threading.BoundedSemaphore(max(1, self.concurrent_calls))


@dataclasses.dataclass
class LoadOptions:
    """How the manager loads a version: TF Serving's --saved_model_tags, session config
    (--tensorflow_*_parallelism, --tensorflow_session_config_file), warmup
    (--enable_model_warmup, --num_request_iterations_for_warmup) and retries
    (--max_num_load_retries, --load_retry_interval_micros), plus graft's call limits."""
    tags: Tuple[str, ...] = DEFAULT_TAGS
    session_config: Optional[config_pb2.ConfigProto] = None
    limits: CallLimits = dataclasses.field(default_factory=CallLimits)
    warmup: bool = True
    warmup_iterations: int = 1
    max_load_retries: int = 5
    retry_interval_seconds: float = 60.0


def _spec(alias: str, info: meta_graph_pb2.TensorInfo) -> tf.TensorSpec:
    shape = (None if info.tensor_shape.unknown_rank
             else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim])
    return tf.TensorSpec(shape, tf.as_dtype(info.dtype), alias)


def _batch_major(specs) -> bool:
    return all(s.shape.rank and s.shape[0] is None for s in specs)


def type_name(dtype: tf.DType) -> str:
    """TensorFlow's own spelling of a dtype in messages (DataTypeString): float, double."""
    return {tf.float32: "float", tf.float64: "double"}.get(dtype, dtype.name)


def _as_array(alias: str, value, dtype: tf.DType) -> np.ndarray:
    """A request value as the numpy array the session is fed, or INVALID_ARGUMENT in
    TF Serving's words ("Expects arg[x] to be float but string is provided")."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object
                                                                 if dtype == tf.string else None)
    if dtype == tf.string:
        if arr.dtype == object or arr.dtype.kind == "S":
            return arr.astype(object) if arr.dtype != object else arr
        got = type_name(tf.as_dtype(arr.dtype)) if arr.dtype.kind in "biufc" else arr.dtype.name
        raise invalid(f"Expects arg[{alias}] to be string but {got} is provided")
    if arr.dtype == object or arr.dtype.kind in "SU":
        raise invalid(f"Expects arg[{alias}] to be {type_name(dtype)} but string is provided")
    try:
        return arr.astype(dtype.as_numpy_dtype, copy=False)
    except (TypeError, ValueError, OverflowError) as e:
        raise invalid(f"Expects arg[{alias}] to be {type_name(dtype)}: {e}") from e


class Signature:
    def __init__(self, name: str, sig_def: meta_graph_pb2.SignatureDef, session,
                 limits: CallLimits):
        self.name = name
        self.sig_def = sig_def
        self.method_name = sig_def.method_name
        self._session, self._limits = session, limits
        self.inputs: Dict[str, tf.TensorSpec] = {
            k: _spec(k, v) for k, v in sorted(sig_def.inputs.items())}
        self.outputs: List[str] = sorted(sig_def.outputs.keys())
        self._feed = [sig_def.inputs[k].name for k in self.inputs]
        self.batch_major = _batch_major(list(self.inputs.values()) + [
            _spec(k, v) for k, v in sig_def.outputs.items()])
        self._callables: Dict[Tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def _callable(self, fetch: Tuple[str, ...], timeout_ms: int = 0):
        with self._lock:
            fn = self._callables.get((fetch, timeout_ms))
            if fn is None:
                for k in (*self.inputs, *fetch):
                    info = self.sig_def.inputs.get(k) or self.sig_def.outputs.get(k)
                    if not info.name:
                        raise invalid(f"Tensor '{k}' of signature {self.name} is not dense; "
                                      f"only dense tensors are supported")
                opts = config_pb2.CallableOptions(
                    feed=self._feed, fetch=[self.sig_def.outputs[k].name for k in fetch])
                if timeout_ms > 0:  # as TF Serving: the session itself stops a late call
                    opts.run_options.timeout_in_ms = timeout_ms
                # Session.run checks each fed value's shape against the tensor's static
                # shape in Python; TF Serving's C++ Session::Run does not. A callable made
                # from CallableOptions is the C++ path (no Python-side check).
                fn = self._session._make_callable_from_options(opts)
                self._callables[(fetch, timeout_ms)] = fn
            return fn

    def __call__(self, inputs: Dict[str, np.ndarray], output_filter: Sequence[str] = (),
                 timeout_ms: int = 0) -> Dict[str, np.ndarray]:
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise invalid(f"Missing named input: {missing[0]}")
        extra = [k for k in inputs if k not in self.inputs]
        if extra:
            raise invalid(f"Request inputs do not match required inputs for model; "
                          f"signature does not have named input: {extra[0]}")
        unknown = [k for k in output_filter if k not in self.sig_def.outputs]
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {unknown[0]}")
        fetch = tuple(output_filter) or tuple(self.outputs)
        args = [_as_array(k, inputs[k], spec.dtype) for k, spec in self.inputs.items()]
        fn = self._callable(fetch, int(timeout_ms or 0))
        rows = {a.shape[0] if a.ndim else -1 for a in args}
        step = self._limits.rows_per_call
        if self.batch_major and len(rows) == 1 and rows != {-1} and max(rows) > step:
            n = rows.pop()
            parts = [self._run(fn, [a[i:i + step] for a in args]) for i in range(0, n, step)]
            values = [np.concatenate([p[j] for p in parts]) for j in range(len(fetch))]
        else:
            values = self._run(fn, args)
        return dict(zip(fetch, values))

    def _run(self, fn, args) -> list:
        with self._limits.slots:
            try:
                return fn(*args)
            except tf.errors.OpError as e:  # the graph's own error, with its code
                raise ServingError(_CODES.get(e.error_code, Code.INTERNAL), e.message) from e
            except UnicodeDecodeError as e:
                # An op's error quoting the request's own bytes (ParseExample on image
                # bytes) is not UTF-8, so TF cannot even raise it; the input caused it.
                text = e.object.decode("utf-8", errors="replace") if isinstance(
                    e.object, bytes) else str(e)
                raise invalid(f"The model refused the input: {text}") from e


def session_config(intra_op: int = 0, inter_op: int = 0,
                   base: Optional[config_pb2.ConfigProto] = None) -> config_pb2.ConfigProto:
    cfg = config_pb2.ConfigProto()
    if base is not None:
        cfg.CopyFrom(base)
    if intra_op:
        cfg.intra_op_parallelism_threads = intra_op
    if inter_op:
        cfg.inter_op_parallelism_threads = inter_op
    return cfg


class Servable:
    """One loaded version: its session and signatures, ready to call."""

    def __init__(self, name: str, version: int, path: str, tags: Sequence[str] = DEFAULT_TAGS,
                 config: Optional[config_pb2.ConfigProto] = None,
                 limits: Optional[CallLimits] = None):
        self.name, self.version, self.path = name, version, path
        if not any(os.path.exists(os.path.join(path, f))
                   for f in ("saved_model.pb", "saved_model.pbtxt")):
            raise LoadError(f"SavedModel not found in export directory {path} "
                            f"(no saved_model.pb: half-written or not a SavedModel)")
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            from tensorflow.python.util import deprecation
            with graph.as_default(), deprecation.silence():
                meta = tf.compat.v1.saved_model.loader.load(session, list(tags), path)
        except Exception as e:  # corrupt protos, missing variables, unknown ops, wrong tags
            session.close()
            raise LoadError(f"could not load {path} with tags {','.join(tags)}: {e}") from e
        graph.finalize()  # a request can never add ops (or leak memory) into the graph
        self._session = session
        limits = limits or CallLimits()
        self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dict(meta.signature_def)
        self.signatures: Dict[str, Signature] = {
            k: Signature(k, v, session, limits) for k, v in self.signature_defs.items()
            if not k.startswith("__")}
        if not self.signatures:
            session.close()
            raise LoadError(f"{path} has no signatures to serve")

    def signature(self, name: str) -> Signature:
        name = name or SERVING_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise failed_precondition(f'Serving signature key "{name}" not found.')
        return sig
