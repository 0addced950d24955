"""The dataplane both front ends share: find a servable, then predict, classify,
regress or run a MultiInference on it.

One object (as MLServer's DataPlane) holds the model manager and the optional
batcher; REST, gRPC and the warmup replay only translate their wire formats into
its calls (numpy in, numpy out; or TF Serving's request protos). A new front end -
a web page - is a new caller of this object, nothing else.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from graft.contract import CLASSIFY_METHOD, REGRESS_METHOD, SERVING_SIGNATURE
from graft.serving.status import Code, ServingError, invalid


def _batchable(sig, inputs) -> bool:
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
    return len(sizes) == 1 and None not in sizes and all(
        s.shape.rank and s.shape[0] is None for s in sig.inputs.values())


def _method_sig(servable, signature_name: str, method: str, what: str):
    sig = servable.signature(signature_name)
    if sig.method_name != method:
        raise invalid(f"Expected {what} signature method_name to be {method}. "
                      f"Was: {sig.method_name}")
    if list(sig.inputs) != ["inputs"] and len(sig.inputs) != 1:
        raise invalid(f"Expected one input tensor in the {what} signature")
    return sig


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

    def __init__(self, manager=None, batcher=None):
        self.manager, self.batcher = manager, batcher

    def servable(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        return self.manager.get(name, version, label)

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        return self.manager.status(name, version, label)

    def predict(self, servable, signature_name: str, inputs: Dict[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> Tuple[str, Dict[str, np.ndarray]]:
        sig = servable.signature(signature_name)
        if self.batcher is not None and _batchable(sig, inputs):
            outputs = self.batcher.run(servable, sig, inputs)
        else:
            outputs = sig(inputs)
        if output_filter:
            unknown = [k for k in output_filter if k not in outputs]
            if unknown:
                raise invalid(f"output tensor alias not found in signature: {unknown[0]}")
            outputs = {k: outputs[k] for k in output_filter}
        return sig.name, outputs

    def classify(self, servable, signature_name: str, examples: List[bytes]
                 ) -> Tuple[str, Optional[np.ndarray], Optional[np.ndarray]]:
        sig = _method_sig(servable, signature_name, CLASSIFY_METHOD, "classification")
        if not examples:
            raise invalid("Input is empty")
        out = sig({next(iter(sig.inputs)): np.array(examples, dtype=object)})
        classes, scores = out.get("classes"), out.get("scores")
        if classes is None and scores is None:
            raise invalid("Expected classification signature outputs 'classes' and/or 'scores'")
        return sig.name, classes, scores

    def regress(self, servable, signature_name: str, examples: List[bytes]
                ) -> Tuple[str, np.ndarray]:
        sig = _method_sig(servable, signature_name, REGRESS_METHOD, "regression")
        if not examples:
            raise invalid("Input is empty")
        out = sig({next(iter(sig.inputs)): np.array(examples, dtype=object)})
        if "outputs" not in out:
            raise invalid("Expected regression signature output 'outputs'")
        return sig.name, np.reshape(out["outputs"], [-1])

    def predict_proto(self, servable, request):
        from tensorflow_serving.apis import predict_pb2
        inputs = {}
        for k, tp in request.inputs.items():
            try:
                inputs[k] = tf.make_ndarray(tp)
            except Exception as e:
                raise invalid(f"input '{k}': {e}") from e
        sig_name, outputs = self.predict(servable, request.model_spec.signature_name, inputs,
                                         list(request.output_filter))
        resp = predict_pb2.PredictResponse()
        _fill_spec(resp.model_spec, servable, sig_name)
        for k, v in outputs.items():
            resp.outputs[k].CopyFrom(tf.make_tensor_proto(v))
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
            _method_sig(servable, sig_name, task.method_name, _TASK_KINDS[task.method_name])
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
