"""REST front end (aiohttp): translates HTTP/JSON to the dataplane, nothing more.

Model calls run in a thread pool, never on the event loop, so one slow
prediction does not stall every other request.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from aiohttp import web
from google.protobuf import json_format

from graft.serving import dataplane, rest_json
from graft.serving.status import Code, ServingError, invalid, not_found

_PATH = re.compile(r"^/v1/models/(?P<model>[^/:]+)"
                   r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<meta>/metadata)|:(?P<verb>predict|classify|regress))?$")


def _error(e: ServingError) -> web.Response:
    return web.json_response({"error": e.message}, status=e.http_status)


class RestApi:
    def __init__(self, manager, metrics=None, max_body_bytes: int = 64 << 20,
                 workers: int = 8, monitoring_path: Optional[str] = None):
        self.manager, self.metrics = manager, metrics
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graft-rest")
        self.monitoring_path = monitoring_path
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if self.monitoring_path and path == self.monitoring_path and request.method == "GET":
            return web.Response(text=self.metrics.exposition(), content_type="text/plain")
        m = _PATH.match(path)
        if not m:
            return _error(not_found(f"Malformed request: {request.method} {path}"))
        model, verb = m["model"], m["verb"]
        try:
            version = None
            if m["version"] is not None:
                if not m["version"].isdigit():
                    raise invalid(f"Failed to convert version: {m['version']} to numeric.")
                version = int(m["version"])
            if request.method == "GET" and not verb:
                if m["meta"]:
                    return await self._run(self._metadata, model, version, m["label"])
                return await self._run(self._status, model, version, m["label"])
            if request.method == "POST" and verb:
                try:
                    raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    return web.json_response(
                        {"error": f"Request body too large: the limit is "
                                  f"{request.app._client_max_size} bytes (--max_body_bytes)"},
                        status=413)
                start = time.perf_counter()
                status = "OK"
                try:
                    return await self._run(self._infer, verb, model, version, m["label"], raw,
                                           raise_errors=True)
                except ServingError as e:
                    status = e.code.name
                    raise
                finally:
                    if self.metrics:
                        self.metrics.observe(model, verb, "REST", status,
                                             (time.perf_counter() - start) * 1e6)
            return _error(ServingError(Code.INVALID_ARGUMENT if request.method == "POST"
                                       else Code.NOT_FOUND,
                                       f"Malformed request: {request.method} {path}"))
        except ServingError as e:
            return _error(e)

    async def _run(self, fn, *args, raise_errors=False) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(self.pool, fn, *args)
        except ServingError as e:
            if raise_errors:
                raise
            return _error(e)
        return web.Response(text=json.dumps(payload, allow_nan=False),
                            content_type="application/json")

    # ---- work, in the pool --------------------------------------------------------
    def _status(self, model, version, label):
        rows = self.manager.status(model, version, label)
        return {"model_version_status": [
            {"version": str(v), "state": state,
             "status": {"error_code": "OK" if not err else "UNKNOWN", "error_message": err}}
            for v, state, err in rows]}

    def _metadata(self, model, version, label):
        servable = self.manager.get(model, version, label)
        sig_map = {"signature_def": {
            k: json_format.MessageToDict(v, preserving_proto_field_name=True)
            for k, v in servable.signature_defs.items()
            if not k.startswith("__")}}
        return {"model_spec": {"name": model, "signature_name": "",
                               "version": str(servable.version)},
                "metadata": {"signature_def": sig_map}}

    def _infer(self, verb, model, version, label, raw: bytes):
        # JSON parsing and base64 decoding happen here, in the pool: a large body
        # never holds up the event loop.
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise invalid(f"JSON Parse error: {e}") from e
        servable = self.manager.get(model, version, label)
        sig_name = body.get("signature_name", "") if isinstance(body, dict) else ""
        if verb == "predict":
            sig = servable.signature(sig_name)
            inputs, fmt = rest_json.decode_predict(body, sig.inputs)
            _, outputs = dataplane.predict(servable, sig.name, inputs)
            return rest_json.encode_predict(outputs, fmt)
        examples = rest_json.decode_examples(body)
        if verb == "classify":
            _, classes, scores = dataplane.classify(servable, sig_name, examples)
            return rest_json.encode_classify(classes, scores)
        _, values = dataplane.regress(servable, sig_name, examples)
        return {"results": [float(v) for v in values]}
