"""A client for graft serve and real TF Serving alike (REST or gRPC)."""
from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import List, Optional, Tuple

from graft.contract import FEATURE_IMAGE, FEATURE_TEXT, SERVING_SIGNATURE, ServableState
from graft.serving.status import Code, ServingError


class Client:
    """predict_images(model, [bytes]) -> [(label, score)], over REST or gRPC.

    Works against any server speaking TF Serving's API whose model has a
    graft-style serving_default (image_bytes -> label, score)."""

    def __init__(self, server: str, use_grpc: bool = False, timeout: float = 30.0):
        self.server, self.use_grpc, self.timeout = server, use_grpc, timeout
        self._stub = None

    def _spec_path(self, model, version, label):
        # Percent-encoded, as TF Serving decodes a model name and a label from the path
        # (a name with a space or a slash is still one path segment).
        path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
        if version is not None:
            return f"{path}/versions/{int(version)}"
        if label:
            return f"{path}/labels/{urllib.parse.quote(label, safe='')}"
        return path

    def _rest(self, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.server}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as f:
                return json.loads(f.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", str(e))
            except ValueError:
                msg = str(e)
            raise ServingError(Code.UNKNOWN, f"HTTP {e.code}: {msg}") from e
        except urllib.error.URLError as e:
            raise ServingError(Code.UNAVAILABLE,
                               f"cannot reach {self.server}: {e.reason}") from e
        except (http.client.InvalidURL, ValueError) as e:  # not HOST:PORT
            raise ServingError(Code.INVALID_ARGUMENT, f"{self.server!r} is not a server "
                                                      f"address (HOST:PORT): {e}") from e
        except (http.client.HTTPException, OSError) as e:  # dropped, or not HTTP
            raise ServingError(Code.UNAVAILABLE, f"no answer from {self.server}: "
                                                 f"{e or type(e).__name__}") from e

    def predict_images(self, model: str, images: List[bytes], version: Optional[int] = None,
                       label: Optional[str] = None) -> List[Tuple[str, float]]:
        if self.use_grpc:
            return self._grpc_predict(model, images, version, label, FEATURE_IMAGE)
        body = {"signature_name": "serving_default",
                "instances": [{FEATURE_IMAGE: {"b64": base64.b64encode(b).decode()}}
                              for b in images]}
        return _labels_and_scores(
            self._rest(self._spec_path(model, version, label) + ":predict", body), model)

    def predict_texts(self, model: str, texts: List[str], version: Optional[int] = None,
                      label: Optional[str] = None) -> List[Tuple[str, float]]:
        """A text model: raw strings in, as TF Serving's row format takes them."""
        if self.use_grpc:
            return self._grpc_predict(model, [t.encode("utf-8") for t in texts], version, label,
                                      FEATURE_TEXT)
        body = {"signature_name": "serving_default", "instances": list(texts)}
        return _labels_and_scores(
            self._rest(self._spec_path(model, version, label) + ":predict", body), model)

    def status(self, model: str):
        if self.use_grpc:
            from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
            import grpc
            stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(self.server))
            req = get_model_status_pb2.GetModelStatusRequest()
            req.model_spec.name = model
            try:
                resp = stub.GetModelStatus(req, timeout=self.timeout)
            except grpc.RpcError as e:
                raise ServingError(e.code(), e.details()) from e
            return [(s.version, ServableState(s.state).name) for s in resp.model_version_status]
        out = self._rest(self._spec_path(model, None, None))
        return [(int(s["version"]), s["state"]) for s in out["model_version_status"]]

    def _grpc_predict(self, model, images, version, label, feature):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        if self._stub is None:
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(self.server))
        req = predict_pb2.PredictRequest()
        req.model_spec.name = model
        req.model_spec.signature_name = SERVING_SIGNATURE
        if version is not None:
            req.model_spec.version.value = version
        elif label:
            req.model_spec.version_label = label
        req.inputs[feature].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        req.output_filter.extend(["label", "score"])
        try:
            resp = self._stub.Predict(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServingError(e.code(), e.details()) from e
        if not {"label", "score"} <= set(resp.outputs):
            raise _not_a_graft_model(model)
        labels = [b.decode("utf-8", "replace") for b in tf.make_ndarray(resp.outputs["label"])]
        scores = tf.make_ndarray(resp.outputs["score"]).tolist()
        return list(zip(labels, scores))


def _not_a_graft_model(model: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION,
                        f"model {model}'s {SERVING_SIGNATURE} does not answer a label and a "
                        f"score per input: not a model graft exported")


def _labels_and_scores(out, model: str) -> List[Tuple[str, float]]:
    """(label, score) per instance from a :predict answer in the row format."""
    try:
        return [(str(p["label"]), float(p["score"])) for p in out["predictions"]]
    except (KeyError, TypeError, ValueError) as e:
        raise _not_a_graft_model(model) from e
