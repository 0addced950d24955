"""graft serve: wires the manager, REST and gRPC front ends, batching, metrics,
config polling and graceful shutdown together."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import signal
import threading
from typing import List, Optional

from aiohttp import web

from graft import files
from graft.serving import batching, flags, grpc_api, loader, manager as manager_mod, model_config
from graft.serving.dataplane import DataPlane, RequestLimits
from graft.serving.metrics import Metrics
from graft.serving.rest import RestApi
from graft.serving.status import ServingError

log = logging.getLogger("graft.serving")
DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
REST_WORKERS, GRPC_WORKERS, MAX_WORKERS = 8, 16, 256


@dataclasses.dataclass
class ServerOptions:
    """The flags of `graft serve`, named like tensorflow_model_server's (serving/flags.py).

    A port of None switches that API off (the CLI maps TF Serving's 0 to None); 0
    here binds any free port (tests)."""
    port: Optional[int] = 8500
    rest_api_port: Optional[int] = 8501
    host: str = "127.0.0.1"
    grpc_socket_path: str = ""
    model_name: Optional[str] = "default"
    model_base_path: Optional[str] = None
    model_config_file: Optional[str] = None
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = False
    batching_parameters_file: Optional[str] = None
    monitoring_config_file: Optional[str] = None
    max_body_bytes: int = 64 << 20
    warmup: bool = True                       # --enable_model_warmup
    num_request_iterations_for_warmup: int = 1
    rest_api_num_threads: int = 0
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    tensorflow_session_parallelism: int = 0
    tensorflow_session_config_file: str = ""
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    saved_model_tags: str = "serve"
    ssl_config_file: str = ""
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 0
    enable_signature_method_name_check: bool = False
    enable_grpc_healthcheck_service: bool = False
    enable_serialization_as_tensor_content: bool = False
    max_request_elements: int = 1 << 24
    max_instances_per_request: int = 1024
    rows_per_model_call: int = 64
    max_concurrent_model_calls: int = 4
    enable_web_ui: bool = True                # graft's prediction page at / (REST port)
    # A line per request costs about 0.05 ms of the loop's time, and fills the log under
    # load (3 000 lines in 16 s of the batching benchmark); TF Serving logs none.
    rest_access_log: bool = False

    def check(self) -> None:
        """ValueError naming the first flag the server cannot run with. Each of these
        started a server that answered nothing, or none at all: -1 as a limit refused every
        request, -1 intra-op threads aborted TensorFlow (a failed check, no message), nan
        as a poll interval spun a core, and 1e20 killed the poller."""
        for name in ("max_body_bytes", "max_request_elements", "max_instances_per_request",
                     "rows_per_model_call", "max_concurrent_model_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}={getattr(self, name)}: must be at least 1")
        for name in ("tensorflow_session_parallelism", "tensorflow_intra_op_parallelism"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}={getattr(self, name)}: must not be negative "
                                 f"(0: TensorFlow chooses)")
        for name in ("file_system_poll_wait_seconds", "model_config_file_poll_wait_seconds"):
            value = getattr(self, name)
            # TF Serving's flags are int32 seconds; Python's waits overflow near 2**33
            if not (math.isfinite(value) and value <= MAX_WAIT_SECONDS):
                raise ValueError(f"--{name}={value}: must be a number of seconds up to "
                                 f"{MAX_WAIT_SECONDS}")


# The largest int32, the type of TF Serving's poll-interval flags.
MAX_WAIT_SECONDS = 2 ** 31 - 1


def _batching_parameters(o: ServerOptions) -> Optional[batching.BatchingParameters]:
    if not o.enable_batching:
        return None
    if not o.batching_parameters_file:
        return batching.BatchingParameters()
    return batching.parse_parameters(files.read_config_text(o.batching_parameters_file),
                                     o.batching_parameters_file)


def _session_config(o: ServerOptions, params: Optional[batching.BatchingParameters] = None):
    base = None
    if o.tensorflow_session_config_file:
        from google.protobuf import text_format
        from tensorflow.core.protobuf import config_pb2
        from graft.serving.tfs_config_protos import ConfigFileError
        base = config_pb2.ConfigProto()
        try:
            text_format.Parse(files.read_config_text(o.tensorflow_session_config_file), base)
        except text_format.ParseError as e:
            raise ConfigFileError(f"{o.tensorflow_session_config_file}: Error parsing "
                                  f"text-format tensorflow.ConfigProto: {e}") from e
    both = o.tensorflow_session_parallelism
    intra = o.tensorflow_intra_op_parallelism or both
    if (not intra and params is not None and params.num_batch_threads > 1
            and not (base is not None and base.intra_op_parallelism_threads)):
        intra = batching.intra_op_threads(params.num_batch_threads)
        log.info("Batching with %d batch threads: TensorFlow's intra-op threads set to %d "
                 "(the cores shared among them; --tensorflow_intra_op_parallelism overrides)",
                 params.num_batch_threads, intra)
    return loader.session_config(intra, o.tensorflow_inter_op_parallelism or both, base)


def _load_options(o: ServerOptions, params: Optional[batching.BatchingParameters]
                  ) -> loader.LoadOptions:
    tags = tuple(t.strip() for t in o.saved_model_tags.split(",") if t.strip()) or ("serve",)
    return loader.LoadOptions(
        tags=tags, session_config=_session_config(o, params),
        limits=loader.CallLimits(o.rows_per_model_call, o.max_concurrent_model_calls),
        warmup=o.warmup, warmup_iterations=o.num_request_iterations_for_warmup,
        max_load_retries=max(0, o.max_num_load_retries),
        retry_interval_seconds=max(0.0, o.load_retry_interval_micros / 1e6))


def _monitoring_path(path_file: Optional[str]) -> Optional[str]:
    """The Prometheus path from a MonitoringConfig text proto, or None if disabled."""
    if not path_file:
        return None
    from graft.serving.tfs_config_protos import MonitoringConfig, parse
    cfg, _ = parse(files.read_config_text(path_file), MonitoringConfig, path_file)
    if not cfg.prometheus_config.enable:
        return None
    return cfg.prometheus_config.path or DEFAULT_MONITORING_PATH


def _ssl_credentials(path: str):
    """gRPC server credentials from TF Serving's SSLConfig text proto, or None."""
    if not path:
        return None
    import grpc
    from graft.serving.tfs_config_protos import SSLConfig, parse
    cfg, _ = parse(files.read_config_text(path), SSLConfig, path)
    return grpc.ssl_server_credentials(
        [(cfg.server_key.encode(), cfg.server_cert.encode())],
        root_certificates=cfg.custom_ca.encode() or None,
        require_client_auth=cfg.client_verify)


class Server:
    def __init__(self, opts: ServerOptions):
        opts.check()
        self.opts = opts
        self.metrics = Metrics()
        # Read before any model loads: the sessions' thread counts depend on it.
        params = _batching_parameters(opts)
        self.manager = manager_mod.Manager(
            opts.file_system_poll_wait_seconds, _load_options(opts, params),
            allow_labels_for_unavailable=opts.allow_version_labels_for_unavailable_models,
            on_load=self.metrics.observe_load)
        self._configs = self._initial_configs()
        # Config files are read here, so a broken one stops `graft serve` at once, named.
        self._monitoring_path = _monitoring_path(opts.monitoring_config_file)
        # Worker threads per front end. Unbatched, a few model calls at once keep the
        # cores busy; batched, a batch can only fill with as many requests as there are
        # threads waiting in it, so there must be enough to fill every batch thread's
        # batch (TF Serving's advice: about twice max_batch_size client threads).
        # 0 or less: automatic, as TF Serving takes them (-1 was a traceback at start)
        rest_threads, grpc_threads = (max(0, opts.rest_api_num_threads),
                                      max(0, opts.grpc_max_threads))
        self._rest_workers = rest_threads or REST_WORKERS
        self._grpc_workers = grpc_threads or GRPC_WORKERS
        batcher = None
        if params is not None:
            batcher = batching.Batcher(params)
            fill = min(MAX_WORKERS, 2 * params.max_batch_size * params.num_batch_threads)
            self._rest_workers = rest_threads or max(REST_WORKERS, fill)
            self._grpc_workers = grpc_threads or max(GRPC_WORKERS, fill)
        self.dataplane = DataPlane(
            self.manager, batcher,
            RequestLimits(opts.max_request_elements, opts.max_instances_per_request),
            method_name_check=opts.enable_signature_method_name_check,
            tensor_content=opts.enable_serialization_as_tensor_content)
        self._channel_args = flags.grpc_channel_arguments(opts.grpc_channel_arguments)
        self._ssl = _ssl_credentials(opts.ssl_config_file)
        self._stop = threading.Event()
        self.grpc_server = None
        self.rest_port = None
        self.grpc_port = None

    def _initial_configs(self) -> List[manager_mod.ModelConfig]:
        o = self.opts
        if o.model_config_file:
            return model_config.load(o.model_config_file)
        if not o.model_name or not o.model_base_path:
            raise ServingError(grpc_api.Code.INVALID_ARGUMENT,
                               "Both server_options.model_name and "
                               "server_options.model_base_path must be set: pass "
                               "--model_name and --model_base_path, or --model_config_file")
        return [manager_mod.ModelConfig(name=o.model_name,
                                        base_path=os.path.abspath(o.model_base_path))]

    def _watch_config(self):
        path, wait = self.opts.model_config_file, self.opts.model_config_file_poll_wait_seconds
        last = None
        while not self._stop.wait(wait):
            try:
                text = files.read_config_text(path)
            except files.UnreadableFile as e:
                log.error("model config not applied: %s", e)
                continue
            if text == last:
                continue
            last = text
            try:
                self.manager.set_config(model_config.parse(text))
                log.info("applied model config from %s", path)
            except ServingError as e:
                log.error("model config %s rejected: %s", path, e.message)

    async def _serve_rest(self, ready: threading.Event, failed: list):
        o = self.opts
        api = RestApi(self.dataplane, self.metrics, o.max_body_bytes,
                      workers=self._rest_workers, monitoring_path=self._monitoring_path,
                      timeout_ms=o.rest_api_timeout_in_ms, cors=o.rest_api_enable_cors_support,
                      web_page=o.enable_web_ui)
        # The body's Content-Encoding is read by the API itself (rest._inflate).
        runner = web.AppRunner(api.app, handle_signals=False, auto_decompress=False,
                               **({} if o.rest_access_log else {"access_log": None}))
        await runner.setup()
        site = web.TCPSite(runner, o.host, o.rest_api_port)
        try:
            await site.start()
        except OSError as e:  # a port in use, a --host that does not resolve
            failed.append(e)
            ready.set()
            await runner.cleanup()
            api.pool.shutdown(wait=False)
            return
        self.rest_port = site._server.sockets[0].getsockname()[1]
        ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.2)
        await runner.shutdown()   # stops accepting; lets in-flight requests finish
        await runner.cleanup()
        api.pool.shutdown(wait=True)

    def start(self) -> None:
        """Loads the models, starts both front ends; returns when they listen."""
        try:
            self.manager.set_config(self._configs)
        except ServingError as e:
            log.error("%s", e.message)
        self.manager.start()
        if self.opts.model_config_file and self.opts.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._watch_config, daemon=True).start()
        o = self.opts
        if o.port is not None or o.grpc_socket_path:
            self.grpc_server = grpc_api.build_server(
                self.dataplane, o.port, o.host, self.metrics, o.max_body_bytes,
                workers=self._grpc_workers, channel_args=self._channel_args,
                socket_path=o.grpc_socket_path, credentials=self._ssl,
                health=o.enable_grpc_healthcheck_service)
            self.grpc_port = self.grpc_server.bound_port
            self.grpc_server.start()
        if o.rest_api_port is not None:
            ready, failed = threading.Event(), []
            self._rest_thread = threading.Thread(
                target=lambda: asyncio.run(self._serve_rest(ready, failed)), daemon=True,
                name="graft-rest")
            self._rest_thread.start()
            if not ready.wait(30):
                raise OSError(f"REST API did not start on {o.host}:{o.rest_api_port}")
            if failed:
                raise OSError(f"REST API cannot listen on {o.host}:{o.rest_api_port}: "
                              f"{failed[0].strerror or failed[0]}")

    def stop(self, grace: float = 10.0) -> None:
        self._stop.set()
        if self.grpc_server:
            self.grpc_server.stop(grace).wait()
        if getattr(self, "_rest_thread", None):
            self._rest_thread.join(grace + 5)
        self.manager.stop()

    def serve_forever(self) -> None:
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        o = self.opts
        apis = []
        if self.grpc_port:
            apis.append(f"gRPC on {o.host}:{self.grpc_port}")
        if o.grpc_socket_path:
            apis.append(f"gRPC on unix:{o.grpc_socket_path}")
        if self.rest_port:
            apis.append(f"REST on {o.host}:{self.rest_port}")
        print(f"graft serve: {', '.join(apis) or 'no API enabled (--port=0 --rest_api_port=0)'}"
              f"; models: " + ", ".join(f"{c.name} ({c.base_path})" for c in self._configs),
              flush=True)
        done.wait()
        print("graft serve: shutting down (finishing in-flight requests)", flush=True)
        self.stop()
