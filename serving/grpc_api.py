"""gRPC front end (grpcio): PredictionService and ModelService from
tensorflow-serving-api, translated to the same dataplane as REST."""
from __future__ import annotations

import logging
import os
import stat
import time
from concurrent import futures

import grpc
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_management_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)

from graft.serving import model_config
from graft.serving.status import Code, ServingError, invalid

log = logging.getLogger("graft.serving")


def _spec(request):
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    spec = request.model_spec
    if not spec.name:
        raise invalid("ModelSpec has no name specified.")
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    return spec.name, version, label


class _Base:
    def __init__(self, dataplane, metrics=None):
        self.dataplane, self.metrics = dataplane, metrics

    def _call(self, api, request, context, fn):
        start, name, error = time.perf_counter(), "", None
        try:
            name, version, label = _spec(request)
            servable = self.dataplane.servable(name, version, label)
            return fn(servable)
        except ServingError as e:
            error = e
        except Exception as e:  # a bug: the client gets INTERNAL with a message, never a hang
            log.exception("%s failed", api)
            error = ServingError(Code.INTERNAL, f"{type(e).__name__}: {e}")
        finally:
            if self.metrics and name:
                self.metrics.observe(name, api, "GRPC", error.code.name if error else "OK",
                                     (time.perf_counter() - start) * 1e6)
        context.abort(error.code, error.message)


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        return self._call("predict", request, context,
                          lambda s: self.dataplane.predict_proto(s, request))

    def Classify(self, request, context):
        return self._call("classify", request, context,
                          lambda s: self.dataplane.classify_proto(s, request))

    def Regress(self, request, context):
        return self._call("regress", request, context,
                          lambda s: self.dataplane.regress_proto(s, request))

    def GetModelMetadata(self, request, context):
        def meta(servable):
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise invalid("Metadata field signature_def must be the one and only field "
                              f"requested, got {fields}")
            resp = get_model_metadata_pb2.GetModelMetadataResponse()
            resp.model_spec.name = servable.name
            resp.model_spec.version.value = servable.version
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for k, v in servable.signature_defs.items():
                if not k.startswith("__"):
                    sig_map.signature_def[k].CopyFrom(v)
            resp.metadata["signature_def"].Pack(sig_map)
            return resp
        return self._call("metadata", request, context, meta)

    def MultiInference(self, request, context):
        from tensorflow_serving.apis import inference_pb2
        # TF Serving picks the servable by the first task's ModelSpec (an empty one without tasks).
        first = inference_pb2.InferenceTask()
        if request.tasks:
            first.CopyFrom(request.tasks[0])
        first.model_spec.SetInParent()
        return self._call("multi_inference", first, context,
                          lambda s: self.dataplane.multi_inference_proto(s, request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            name, version, label = _spec(request)
            rows = self.manager.status(name, version, label)
        except ServingError as e:
            context.abort(e.code, e.message)
        resp = get_model_status_pb2.GetModelStatusResponse()
        for v, state, err in rows:
            s = resp.model_version_status.add(version=v, state=int(state))
            s.status.error_code = 2 if err else 0  # UNKNOWN / OK
            s.status.error_message = err
        return resp

    def HandleReloadConfigRequest(self, request, context):
        resp = model_management_pb2.ReloadConfigResponse()
        try:
            configs = model_config.from_proto(request.config)
            self.manager.set_config(configs)
        except ServingError as e:
            resp.status.error_code = e.code.value[0]
            resp.status.error_message = e.message
        return resp


def build_server(dataplane, port, host: str = "127.0.0.1", metrics=None,
                 max_message_bytes: int = 64 << 20, workers: int = 16, channel_args=(),
                 socket_path: str = "", credentials=None, health: bool = False) -> grpc.Server:
    """port None: no TCP port (only the Unix socket, if any); 0: any free port."""
    # grpc.so_reuseport off: with gRPC's default a second server bound a port already in
    # use, silently, and the two split its requests between them (REST refuses the same).
    options = dict([("grpc.max_receive_message_length", max_message_bytes),
                    ("grpc.max_send_message_length", max_message_bytes),
                    ("grpc.so_reuseport", 0)])
    options.update(dict(channel_args))  # --grpc_channel_arguments override the defaults
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="graft-grpc"),
                         options=list(options.items()))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(dataplane, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(dataplane.manager), server)
    if health:
        from grpc_health.v1 import health as health_mod, health_pb2, health_pb2_grpc
        servicer = health_mod.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.bound_port = None
    if port is not None:
        address = f"{host}:{port}"
        server.bound_port = _bind(server, address, credentials, f"{address}: the port is in "
                                  f"use, or the host is not one of this machine's addresses")
    if socket_path:
        # gRPC replaces a stale socket left by a server that was killed, never another file
        taken = os.path.lexists(socket_path) and not stat.S_ISSOCK(os.lstat(socket_path).st_mode)
        _bind(server, f"unix:{socket_path}", None,
              f"the Unix socket {socket_path}: " + (
                  "a file that is not a socket is there; remove it or choose another path"
                  if taken else "its folder must exist and be writable"))
    return server


def _bind(server, address: str, credentials, why: str) -> int:
    """The port bound, or OSError: grpc raises RuntimeError for a port in use or a host
    that does not resolve (older releases returned 0)."""
    try:
        bound = (server.add_secure_port(address, credentials) if credentials
                 else server.add_insecure_port(address))
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"gRPC API cannot listen on {why}")
    return bound
