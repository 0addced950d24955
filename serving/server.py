"""graft serve: wires the manager, REST and gRPC front ends, batching, metrics,
config polling and graceful shutdown together."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
from typing import List, Optional

from aiohttp import web

from graft.serving import batching, grpc_api, manager as manager_mod, model_config
from graft.serving.dataplane import DataPlane
from graft.serving.metrics import Metrics
from graft.serving.rest import RestApi
from graft.serving.status import ServingError

log = logging.getLogger("graft.serving")
DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
REST_WORKERS, GRPC_WORKERS, MAX_WORKERS = 8, 16, 256


@dataclasses.dataclass
class ServerOptions:
    """The flags of `graft serve`, named like tensorflow_model_server's."""
    port: int = 8500
    rest_api_port: int = 8501
    host: str = "127.0.0.1"
    model_name: Optional[str] = None
    model_base_path: Optional[str] = None
    model_config_file: Optional[str] = None
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = False
    batching_parameters_file: Optional[str] = None
    monitoring_config_file: Optional[str] = None
    max_body_bytes: int = 64 << 20
    warmup: bool = True


def _monitoring_path(path_file: Optional[str]) -> Optional[str]:
    """The Prometheus path from a MonitoringConfig text proto, or None if disabled."""
    if not path_file:
        return None
    from graft.serving.tfs_config_protos import MonitoringConfig, parse
    with open(path_file) as f:
        cfg, _ = parse(f.read(), MonitoringConfig, path_file)
    if not cfg.prometheus_config.enable:
        return None
    return cfg.prometheus_config.path or DEFAULT_MONITORING_PATH


class Server:
    def __init__(self, opts: ServerOptions):
        self.opts = opts
        self.metrics = Metrics()
        self.manager = manager_mod.Manager(opts.file_system_poll_wait_seconds, opts.warmup)
        self._configs = self._initial_configs()
        # Config files are read here, so a broken one stops `graft serve` at once, named.
        self._monitoring_path = _monitoring_path(opts.monitoring_config_file)
        # Worker threads per front end. Unbatched, a few model calls at once keep the
        # cores busy; batched, a batch can only fill with as many requests as there are
        # threads waiting in it, so there must be enough to fill every batch thread's
        # batch (TF Serving's advice: about twice max_batch_size client threads).
        self._rest_workers, self._grpc_workers = REST_WORKERS, GRPC_WORKERS
        batcher = None
        if opts.enable_batching:
            params = batching.BatchingParameters()
            if opts.batching_parameters_file:
                with open(opts.batching_parameters_file) as f:
                    params = batching.parse_parameters(f.read(), opts.batching_parameters_file)
            batcher = batching.Batcher(params)
            fill = min(MAX_WORKERS, 2 * params.max_batch_size * params.num_batch_threads)
            self._rest_workers = max(REST_WORKERS, fill)
            self._grpc_workers = max(GRPC_WORKERS, fill)
        self.dataplane = DataPlane(self.manager, batcher)
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
                               "pass --model_name and --model_base_path, or --model_config_file")
        return [manager_mod.ModelConfig(name=o.model_name,
                                        base_path=os.path.abspath(o.model_base_path))]

    def _watch_config(self):
        path, wait = self.opts.model_config_file, self.opts.model_config_file_poll_wait_seconds
        last = None
        while not self._stop.wait(wait):
            try:
                text = open(path).read()
            except OSError as e:
                log.error("could not read model config %s: %s", path, e)
                continue
            if text == last:
                continue
            last = text
            try:
                self.manager.set_config(model_config.parse(text))
                log.info("applied model config from %s", path)
            except ServingError as e:
                log.error("model config %s rejected: %s", path, e.message)

    async def _serve_rest(self, ready: threading.Event):
        o = self.opts
        api = RestApi(self.dataplane, self.metrics, o.max_body_bytes,
                      workers=self._rest_workers, monitoring_path=self._monitoring_path)
        runner = web.AppRunner(api.app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, o.host, o.rest_api_port)
        await site.start()
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
        self.grpc_server = grpc_api.build_server(self.dataplane, self.opts.port, self.opts.host,
                                                 self.metrics, self.opts.max_body_bytes,
                                                 workers=self._grpc_workers)
        self.grpc_port = self.grpc_server.bound_port
        self.grpc_server.start()
        ready = threading.Event()
        self._rest_thread = threading.Thread(
            target=lambda: asyncio.run(self._serve_rest(ready)), daemon=True, name="graft-rest")
        self._rest_thread.start()
        if not ready.wait(30):
            raise OSError(f"REST API did not start on {self.opts.host}:{self.opts.rest_api_port}")

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
        print(f"graft serve: gRPC on {self.opts.host}:{self.grpc_port}, REST on "
              f"{self.opts.host}:{self.rest_port}; models: "
              + ", ".join(f"{c.name} ({c.base_path})" for c in self._configs), flush=True)
        done.wait()
        print("graft serve: shutting down (finishing in-flight requests)", flush=True)
        self.stop()
