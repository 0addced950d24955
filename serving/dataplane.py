"""The dataplane both front ends share: find a servable, then predict, classify,
regress or run a MultiInference on it.

One object (as MLServer's DataPlane) holds the model manager and the optional
batcher; REST, gRPC and the warmup replay only translate their wire formats into
its calls (numpy in, numpy out; or TF Serving's request protos). A new front end -
a web page - is a new caller of this object, nothing else.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from graft.contract import CLASSIFY_METHOD, REGRESS_METHOD, SERVING_SIGNATURE
from graft.serving.loader import type_name
from graft.serving.status import Code, ServingError, invalid


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may declare, checked before anything is allocated for it.

    TF Serving itself checks neither: a 40-byte TensorProto can declare 2^28 floats
    (TensorProto fills a short value list with its last value), and its server
    allocates them. ``max_elements`` bounds every input tensor, ``max_instances``
    the rows (images, sentences) of one request."""
    max_elements: int = 1 << 24
    max_instances: int = 1024


def _batchable(sig, inputs) -> bool:
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
    return len(sizes) == 1 and None not in sizes and all(
        s.shape.rank and s.shape[0] is None for s in sig.inputs.values())


def _method_sig(servable, signature_name: str, method: str, what: str, check_method: bool):
    """The signature, checked as TF Serving's classifier.cc/regressor.cc check it. The
    method-name check is TF Serving's --enable_signature_method_name_check, off by
    default there too: TF2 exports mark every signature "predict"."""
    sig = servable.signature(signature_name)
    if check_method and sig.method_name != method:
        raise invalid(f"Expected {what} signature method_name to be {method}. "
                      f"Was: {sig.method_name}")
    if len(sig.inputs) != 1:
        raise invalid(f"Expected one input Tensor in the {what} signature, "
                      f"found {len(sig.inputs)}")
    if next(iter(sig.inputs.values())).dtype != tf.string:
        raise invalid(f"The {what} signature's input must be a string tensor "
                      f"(serialized tf.Examples)")
    return sig


def _declared_elements(name: str, tp) -> int:
    n = 1
    for d in tp.tensor_shape.dim:
        if d.size < 0:
            raise invalid(f"input '{name}': negative dimension {d.size}")
        n *= d.size
    return n


# ---- TF Serving protos (gRPC and warmup) ---------------------------------------

def examples_from_input(inp) -> List[bytes]:
    """Input proto -> serialized tf.Examples (context features merged in)."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context
        out = []
        for e in inp.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(ctx)
            merged.MergeFrom(e)
            out.append(merged.SerializeToString())
        return out
    raise invalid("Input is empty")


# TensorProto's typed value field per dtype, as TF's Tensor::AsProtoField fills it.
_VALUE_FIELDS = {
    tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val",
    tf.int16: "int_val", tf.int8: "int_val", tf.uint8: "int_val", tf.uint16: "int_val",
    tf.int64: "int64_val", tf.uint32: "uint32_val", tf.uint64: "uint64_val",
    tf.bool: "bool_val",
}


def _dtype_name(enum_value: int) -> str:
    """A request tensor's dtype, in words: also for 0 and numbers DataType does not name."""
    if not enum_value:
        return "an unset dtype"
    try:
        return type_name(tf.as_dtype(enum_value))
    except TypeError:
        return f"an unknown dtype ({enum_value})"


def tensor_proto(value: np.ndarray, as_content: bool = False):
    """An output tensor as TF Serving sends it: every value in its typed field (float_val,
    ...) by default (Tensor::AsProtoField), packed tensor_content with
    --enable_serialization_as_tensor_content (AsProtoTensorContent)."""
    tp = tf.make_tensor_proto(value)
    dtype = tf.as_dtype(tp.dtype)
    field = _VALUE_FIELDS.get(dtype)
    if field is None:  # strings (always string_val), half, complex: as TF writes them
        return tp
    arr = np.asarray(value, dtype=dtype.as_numpy_dtype)
    tp.ClearField(field)
    tp.tensor_content = b""
    if as_content:
        tp.tensor_content = np.ascontiguousarray(arr).tobytes()
    else:
        getattr(tp, field).extend(arr.ravel().tolist())
    return tp


def _fill_classifications(result, classes, scores) -> None:
    n = len(classes if classes is not None else scores)
    for i in range(n):
        c = result.classifications.add()
        width = (classes if classes is not None else scores).shape[1]
        for j in range(width):
            cls = c.classes.add()
            if classes is not None:
                cls.label = classes[i][j].decode() if isinstance(classes[i][j], bytes) \
                    else str(classes[i][j])
            if scores is not None:
                cls.score = float(scores[i][j])


_TASK_KINDS = {CLASSIFY_METHOD: "classification", REGRESS_METHOD: "regression"}


def _fill_spec(spec, servable, sig_name):
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = sig_name


class DataPlane:
    """Requests on servables, shared by every front end.

    ``manager`` finds servables (None for warmup replay, which is handed one);
    ``batcher`` (--enable_batching) merges concurrent predicts into one model call."""

    def __init__(self, manager=None, batcher=None, limits: Optional[RequestLimits] = None,
                 method_name_check: bool = False, tensor_content: bool = False):
        self.manager, self.batcher = manager, batcher
        self.tensor_content = tensor_content
        self.limits = limits or RequestLimits()
        self.method_name_check = method_name_check

    def _check_rows(self, n: int) -> None:
        if n > self.limits.max_instances:
            raise invalid(f"Request has {n} instances; this server accepts at most "
                          f"{self.limits.max_instances} per request "
                          f"(--max_instances_per_request): send smaller batches")

    def servable(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        return self.manager.get(name, version, label)

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        return self.manager.status(name, version, label)

    def predict(self, servable, signature_name: str, inputs: Dict[str, np.ndarray],
                output_filter: Sequence[str] = (), timeout_ms: int = 0
                ) -> Tuple[str, Dict[str, np.ndarray]]:
        sig, batched = self.predict_batched(servable, signature_name, inputs, output_filter)
        if batched is not None:
            outputs = batched.result()
            if output_filter:
                outputs = {k: outputs[k] for k in output_filter}
        else:
            outputs = sig(inputs, output_filter, timeout_ms)
        return sig.name, outputs

    def predict_batched(self, servable, signature_name: str, inputs: Dict[str, np.ndarray],
                        output_filter: Sequence[str] = ()):
        """(signature, Future of the outputs): the request checked and queued for a batch,
        without waiting for it. The Future is None when the request is not batched (no
        batching, or inputs without one shared batch dimension): call the signature."""
        sig = servable.signature(signature_name)
        for v in inputs.values():
            if np.ndim(v):
                self._check_rows(np.shape(v)[0])
            if np.size(v) > self.limits.max_elements:
                raise invalid(f"An input has {np.size(v)} elements; the limit is "
                              f"{self.limits.max_elements} (--max_request_elements)")
        if self.batcher is None or not _batchable(sig, inputs):
            return sig, None
        unknown = [k for k in output_filter if k not in sig.outputs]
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {unknown[0]}")
        return sig, self.batcher.submit(servable, sig, inputs)

    def classify(self, servable, signature_name: str, examples: List[bytes], timeout_ms: int = 0
                 ) -> Tuple[str, Optional[np.ndarray], Optional[np.ndarray]]:
        sig = _method_sig(servable, signature_name, CLASSIFY_METHOD, "classification",
                          self.method_name_check)
        if not examples:
            raise invalid("Input is empty")
        self._check_rows(len(examples))
        out = sig({next(iter(sig.inputs)): np.array(examples, dtype=object)}, (), timeout_ms)
        classes, scores = out.get("classes"), out.get("scores")
        if classes is None and scores is None:
            raise invalid("Expected classification signature outputs 'classes' and/or 'scores'")
        for what, t in (("classes", classes), ("scores", scores)):
            if t is not None and (t.ndim != 2 or t.shape[0] != len(examples)):
                raise invalid(f"Expected {what} Tensor shape: [batch_size num_classes] with "
                              f"batch_size {len(examples)}, got {list(t.shape)}")
        return sig.name, classes, scores

    def regress(self, servable, signature_name: str, examples: List[bytes], timeout_ms: int = 0
                ) -> Tuple[str, np.ndarray]:
        sig = _method_sig(servable, signature_name, REGRESS_METHOD, "regression",
                          self.method_name_check)
        if not examples:
            raise invalid("Input is empty")
        self._check_rows(len(examples))
        out = sig({next(iter(sig.inputs)): np.array(examples, dtype=object)}, (), timeout_ms)
        if "outputs" not in out:
            raise invalid("Expected regression signature output 'outputs'")
        values = out["outputs"]
        if values.size != len(examples) or values.ndim > 2:
            raise invalid(f"Expected output Tensor shape to be either [batch_size] or "
                          f"[batch_size, 1] with batch_size {len(examples)}, got "
                          f"{list(values.shape)}")
        return sig.name, np.reshape(values, [-1])

    def predict_proto(self, servable, request):
        from tensorflow_serving.apis import predict_pb2
        sig = servable.signature(request.model_spec.signature_name)
        inputs = {}
        for k, tp in request.inputs.items():
            # Checked on the proto, before tf.make_ndarray allocates what it declares.
            spec = sig.inputs.get(k)
            if spec is not None and tp.dtype != spec.dtype.as_datatype_enum:
                got = _dtype_name(tp.dtype)
                raise invalid(f"Expects arg[{k}] to be {type_name(spec.dtype)} but {got} "
                              f"is provided")
            n = _declared_elements(k, tp)
            if n > self.limits.max_elements:
                raise invalid(f"input '{k}' declares {n} elements; the limit is "
                              f"{self.limits.max_elements} (--max_request_elements)")
            try:
                inputs[k] = tf.make_ndarray(tp)
            except Exception as e:
                raise invalid(f"input '{k}': {e}") from e
        sig_name, outputs = self.predict(servable, request.model_spec.signature_name, inputs,
                                         list(request.output_filter))
        resp = predict_pb2.PredictResponse()
        _fill_spec(resp.model_spec, servable, sig_name)
        for k, v in outputs.items():
            resp.outputs[k].CopyFrom(tensor_proto(v, self.tensor_content))
        return resp

    def classify_proto(self, servable, request):
        from tensorflow_serving.apis import classification_pb2
        sig_name, classes, scores = self.classify(servable, request.model_spec.signature_name,
                                                  examples_from_input(request.input))
        resp = classification_pb2.ClassificationResponse()
        _fill_spec(resp.model_spec, servable, sig_name)
        _fill_classifications(resp.result, classes, scores)
        return resp

    def regress_proto(self, servable, request):
        from tensorflow_serving.apis import regression_pb2
        sig_name, values = self.regress(servable, request.model_spec.signature_name,
                                        examples_from_input(request.input))
        resp = regression_pb2.RegressionResponse()
        _fill_spec(resp.model_spec, servable, sig_name)
        for v in values:
            resp.result.regressions.add(value=float(v))
        return resp

    def multi_inference_proto(self, servable, request):
        """Classify and regress tasks over one input on one model, checked as TF
        Serving's TensorFlowMultiInferenceRunner checks them: one model name,
        distinct signatures, one shared input tensor, classify/regress methods only."""
        from tensorflow_serving.apis import inference_pb2
        model_name, input_tensor, tasks = "", "", []
        for task in request.tasks:
            spec = task.model_spec
            if not spec.name:
                raise invalid("Found ModelSpec with an empty model name.")
            if model_name and spec.name != model_name:
                raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same "
                              "model name.")
            model_name = spec.name
            sig_name = spec.signature_name or SERVING_SIGNATURE
            if sig_name in [s for _, s in tasks]:
                raise invalid(f"Duplicate evaluation of signature: {sig_name}")
            sig_def = servable.signature_defs.get(sig_name)
            if sig_def is None:
                raise invalid(f"Requested signature not found in model graph: {sig_name}")
            if task.method_name not in _TASK_KINDS:
                raise ServingError(Code.UNIMPLEMENTED,
                                   f"Unsupported signature method_name: {task.method_name}")
            _method_sig(servable, sig_name, task.method_name, _TASK_KINDS[task.method_name],
                        self.method_name_check)
            tensor = next(iter(sig_def.inputs.values())).name
            if input_tensor and tensor != input_tensor:
                raise invalid("Input tensor must be the same for all Signatures.")
            input_tensor = tensor
            tasks.append((task.method_name, sig_name))
        examples = examples_from_input(request.input)
        resp = inference_pb2.MultiInferenceResponse()
        for method, sig_name in tasks:
            result = resp.results.add()
            if method == CLASSIFY_METHOD:
                _, classes, scores = self.classify(servable, sig_name, examples)
                _fill_classifications(result.classification_result, classes, scores)
            else:
                _, values = self.regress(servable, sig_name, examples)
                for v in values:
                    result.regression_result.regressions.add(value=float(v))
            _fill_spec(result.model_spec, servable, sig_name)
        return resp
