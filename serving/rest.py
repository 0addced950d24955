"""REST front end (aiohttp): translates HTTP/JSON to the dataplane, nothing more.

Routes are a table (ROUTES): a method, a path pattern, and the handler's name. A
new endpoint - a web page at ``/`` - is one more row. A request no route matches
gets TF Serving's "Malformed request" error, as JSON.

Model calls run in a thread pool (or the batcher's threads), never on the event
loop, so one slow prediction does not stall every other request. The loop itself
parses only a batched :predict's body, up to INLINE_BODY_BYTES (_predict_batched).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from aiohttp import web
from google.protobuf import json_format
import orjson

from graft.contract import is_version_name
from graft.serving import rest_json, web_ui
from graft.serving.status import Code, ServingError, invalid

log = logging.getLogger("graft.serving")

# /v1/models/<model>[/versions/<n> | /labels/<label>], as TF Serving's http_rest_api_util.cc:
# matched without regard to case on the raw (still percent-encoded) path, the model name
# and label then percent-decoded (_groups). The verb and "metadata" are compared
# exactly afterwards there, so ":PREDICT" is a malformed request and ".../METADATA" the
# model's status, as here.
_MODEL = (r"^/v1/models/(?P<model>[^/:]+)"
          r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?")
_V1 = re.compile(r"^/v1/", re.IGNORECASE)  # TF Serving's handler's path; others are 404


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    pattern: "re.Pattern"
    handler: str        # name of a RestApi coroutine taking (request, match)
    page: bool = False  # the prediction page's (off with --enable_web_ui=false)


ROUTES = (
    Route("GET", re.compile(r"^/$"), "page", page=True),
    Route("GET", re.compile(r"^/ui/models$"), "page_models", page=True),
    Route("GET", re.compile(r"^/ui/(?P<asset>[a-z]+\.(?:js|css))$"), "page_asset", page=True),
    Route("GET", re.compile(_MODEL + r"/(?-i:metadata)$", re.IGNORECASE), "metadata"),
    Route("GET", re.compile(_MODEL + r"(?:/metadata)?$", re.IGNORECASE), "status"),
    Route("GET", re.compile(r"^/v1/models$", re.IGNORECASE), "no_model"),
    Route("POST", re.compile(_MODEL + r":(?P<verb>(?-i:predict|classify|regress))$",
                             re.IGNORECASE), "infer"),
)


# A batched predict body up to this size is parsed on the event loop (_predict_batched).
INLINE_BODY_BYTES = 256 << 10


def _loads(raw: bytes, fast: bool = True):
    """The request's JSON. ``fast``: orjson first (about half of json's time on an
    image's body), and json for whatever orjson refuses - NaN and Infinity tokens, lone
    surrogates, other encodings, and every malformed body, whose error json words (with
    parse_float: a number beyond a double is an error). Both take the last of duplicate
    keys and read every number alike except an integer beyond 64 bits, a double for
    orjson; a :predict refuses it either way, but in a classify or regress example it
    would turn an int64 feature into a float one, so those bodies parse with json."""
    if fast:
        try:
            return orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw or b"null", parse_float=rest_json.parse_float)


def _json(payload) -> web.Response:
    """An answer's JSON. orjson: a tenth of json's time on a predict's answer, on the REST
    loop of every batched request. The encoders (rest_json) have already made every NaN
    and infinity a string, so orjson's null for them never applies; json stays for what
    orjson refuses (a non-string key, an integer beyond 64 bits)."""
    try:
        return web.Response(body=orjson.dumps(payload), content_type="application/json")
    except TypeError:  # orjson.JSONEncodeError
        return web.Response(text=json.dumps(payload, allow_nan=False),
                            content_type="application/json")


def _error(e: ServingError) -> web.Response:
    return web.json_response({"error": e.message}, status=e.http_status)


# Headers TF Serving's HTTP server adds with --rest_api_enable_cors_support.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, GET",
                "Access-Control-Allow-Headers": "Content-Type"}


def _version(match) -> Optional[int]:
    v = match["version"]
    if v is None:
        return None
    if not is_version_name(v):
        raise invalid(f"Failed to convert version: {v} to numeric.")
    return int(v)


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The request body as TF Serving's HTTP server reads it: inflated when its
    Content-Encoding names gzip (and, more leniently, deflate), as it is otherwise - so an
    encoding it cannot read ends in the JSON parser's 400, not aiohttp's plain-text 400. The
    inflated bytes are bounded by ``limit`` as they come (a 500 KB gzip of 500 MB is
    refused after at most limit + 1 bytes). By hand rather than aiohttp's auto_decompress,
    which answers unknown encodings (br, zstd) in plain text before any handler runs."""
    enc = encoding.lower()
    kind = "gzip" if "gzip" in enc else "deflate" if enc.strip() == "deflate" else None
    if kind is None or not body:
        return body
    wbits = 16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS
    out, rest = bytearray(), body
    try:
        while rest:  # gzip allows several members, one after another
            d = zlib.decompressobj(wbits)
            out += d.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise web.HTTPRequestEntityTooLarge(limit, len(out))
            if not d.eof:
                raise invalid(f"Could not read the request body: Content-Encoding {encoding} "
                              f"but the body is cut short or not {kind} data")
            rest = d.unused_data
    except zlib.error as e:
        raise invalid(f"Could not read the request body: Content-Encoding {encoding} "
                      f"but it is not {kind} data ({e})") from None
    return bytes(out)


def _groups(match: "re.Match") -> dict:
    """A route's groups, the model name and label percent-decoded as TF Serving decodes
    them (curl_easy_unescape: no '+' for space)."""
    return {k: urllib.parse.unquote(v) if v is not None and k in ("model", "label") else v
            for k, v in match.groupdict().items()}


class RestApi:
    def __init__(self, dataplane, metrics=None, max_body_bytes: int = 64 << 20,
                 workers: int = 8, monitoring_path: Optional[str] = None,
                 timeout_ms: int = 30000, cors: bool = False, web_page: bool = True):
        self.dataplane, self.metrics = dataplane, metrics
        self.timeout = timeout_ms / 1000.0 if timeout_ms and timeout_ms > 0 else None
        # Also handed to the model call, so a late call is stopped, not left running.
        self._timeout_ms = int(timeout_ms) if timeout_ms and timeout_ms > 0 else 0
        self.cors = cors
        self.routes = ROUTES if web_page else tuple(r for r in ROUTES if not r.page)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graft-rest")
        self.monitoring_path = monitoring_path
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if self.cors and request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS_HEADERS)
        response = await self._route(request)
        if self.cors:
            response.headers.update(CORS_HEADERS)
        return response

    async def _route(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path  # percent-encoded, without the query
        if self.monitoring_path and request.path == self.monitoring_path \
                and request.method == "GET":
            return web.Response(text=self.metrics.exposition(), content_type="text/plain")
        try:
            for route in self.routes:
                match = route.pattern.match(path)
                if match and route.method == request.method:
                    return await getattr(self, route.handler)(request, _groups(match))
            # TF Serving's REST handler takes every path under /v1/ and answers what it
            # cannot parse with INVALID_ARGUMENT (400); its HTTP server 404s the rest.
            raise ServingError(Code.INVALID_ARGUMENT if _V1.match(path) else Code.NOT_FOUND,
                               f"Malformed request: {request.method} {path}")
        except ServingError as e:
            return _error(e)
        except Exception as e:  # a bug: still JSON, still a message, logged with its trace
            log.exception("REST %s %s failed", request.method, path)
            return _error(ServingError(Code.INTERNAL, f"{type(e).__name__}: {e}"))

    # ---- routes (on the event loop: they hand work to the pool or the batcher) -----
    async def page(self, request, match) -> web.Response:
        return self._asset("index.html")

    async def page_asset(self, request, match) -> web.Response:
        return self._asset(match["asset"])

    def _asset(self, name: str) -> web.Response:
        body = web_ui.asset(name)
        if body is None:
            raise ServingError(Code.NOT_FOUND, f"Malformed request: GET /ui/{name}")
        return web.Response(body=body, content_type=web_ui.FILES[name],
                            headers={"Cache-Control": "no-cache"})

    async def page_models(self, request, match) -> web.Response:
        return await self._run(lambda: web_ui.overview(self.dataplane.manager))

    async def status(self, request, match) -> web.Response:
        return await self._run(self._status, match["model"], _version(match), match["label"])

    async def no_model(self, request, match) -> web.Response:
        raise invalid("Missing model name in request.")

    async def metadata(self, request, match) -> web.Response:
        return await self._run(self._metadata, match["model"], _version(match), match["label"])

    async def infer(self, request, match) -> web.Response:
        model, verb, version = match["model"], match["verb"], _version(match)
        limit = request.app._client_max_size
        try:
            raw = _inflate(await request.read(), request.headers.get("Content-Encoding", ""),
                           limit)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(
                {"error": f"Request body too large: the limit is {limit} bytes "
                          f"(--max_body_bytes; a compressed body's limit is on its "
                          f"inflated bytes)"}, status=413)
        start = time.perf_counter()
        status = "OK"
        try:
            if (verb == "predict" and self.dataplane.batcher is not None
                    and len(raw) <= INLINE_BODY_BYTES):
                return await self._predict_batched(model, version, match["label"], raw)
            return await self._run(self._infer, verb, model, version, match["label"], raw,
                                   raise_errors=True)
        except ServingError as e:
            status = e.code.name
            raise
        finally:
            if self.metrics:
                self.metrics.observe(model, verb, "REST", status,
                                     (time.perf_counter() - start) * 1e6)

    async def _predict_batched(self, model, version, label, raw: bytes) -> web.Response:
        """A batched predict without a pool thread: parsed here, queued for the batch, its
        rows awaited. Each hop between threads costs CPU that the model's batch then
        lacks; through the pool a request made four (loop, worker, batcher, worker,
        loop), here two. Parsing on the loop holds it for at most INLINE_BODY_BYTES'
        worth (about 0.5 ms); larger bodies, and requests that are not batched, go
        through the pool."""
        servable, sig_name, inputs, fmt = self._predict_inputs(model, version, label, raw)
        _, batched = self.dataplane.predict_batched(servable, sig_name, inputs)
        if batched is None:  # not batchable: the model call blocks, so the pool makes it
            return await self._run(self._predict, servable, sig_name, inputs, fmt,
                                   raise_errors=True)
        return _json(rest_json.encode_predict(await self._rows_of(batched), fmt))

    async def _rows_of(self, batched):
        """The batch's outputs for this request, or the timeout's error. One loop future
        and one timer, set from the batch thread: asyncio's wait_for(shield(wrap_future()))
        made three futures, a task and their callbacks per request (measured with
        bench/serving_latency.py's load: 0.58 ms of the loop's CPU a request before).
        The batcher's Future is left alone on a timeout: its batch still runs."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle(f):
            if not done.done():
                e = f.exception()
                done.set_exception(e) if e is not None else done.set_result(f.result())

        def from_batch_thread(f):
            if not loop.is_closed():  # a server stopping with batches still running
                loop.call_soon_threadsafe(settle, f)

        batched.add_done_callback(from_batch_thread)
        timer = loop.call_later(self.timeout, lambda: done.done() or done.set_exception(
            self._timed_out())) if self.timeout else None
        try:
            return await done
        finally:
            if timer is not None:
                timer.cancel()

    def _timed_out(self) -> ServingError:
        return ServingError(Code.DEADLINE_EXCEEDED,
                            f"Request timed out after {self.timeout * 1000:.0f} ms "
                            f"(--rest_api_timeout_in_ms)")

    async def _run(self, fn, *args, raise_errors=False) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            payload = await asyncio.wait_for(loop.run_in_executor(self.pool, fn, *args),
                                             self.timeout)
        except asyncio.TimeoutError:
            e = self._timed_out()
            if raise_errors:
                raise e
            return _error(e)
        except ServingError as e:
            if raise_errors:
                raise
            return _error(e)
        return _json(payload)

    # ---- work, in the pool --------------------------------------------------------
    def _status(self, model, version, label):
        rows = self.dataplane.status(model, version, label)
        return {"model_version_status": [
            {"version": str(v), "state": state.name,
             "status": {"error_code": "OK" if not err else "UNKNOWN", "error_message": err}}
            for v, state, err in rows]}

    def _metadata(self, model, version, label):
        servable = self.dataplane.servable(model, version, label)
        sig_map = {"signature_def": {
            # TF Serving prints with always_print_primitive_fields: empty dims, names,
            # unknown_rank: false and defaults: {} appear, as its tests pin them.
            k: json_format.MessageToDict(v, preserving_proto_field_name=True,
                                         including_default_value_fields=True)
            for k, v in servable.signature_defs.items()
            if not k.startswith("__")}}
        return {"model_spec": {"name": model, "signature_name": "",
                               "version": str(servable.version)},
                "metadata": {"signature_def": sig_map}}

    def _parse(self, model, version, label, raw: bytes, fast: bool = False):
        """(JSON body, servable, signature name) of an inference request (``fast``: _loads)."""
        try:
            body = _loads(raw, fast)
        except (ValueError, UnicodeDecodeError) as e:
            raise invalid(f"JSON Parse error: {e}") from e
        except RecursionError as e:
            raise invalid("JSON Parse error: the document is nested too deeply") from e
        servable = self.dataplane.servable(model, version, label)
        sig_name = body.get("signature_name", "") if isinstance(body, dict) else ""
        if not isinstance(sig_name, str):
            raise invalid("'signature_name' must be a string")
        return body, servable, sig_name

    def _predict_inputs(self, model, version, label, raw: bytes):
        """(servable, signature name, inputs, their JSON format) of a :predict body."""
        body, servable, sig_name = self._parse(model, version, label, raw, fast=True)
        sig = servable.signature(sig_name)
        inputs, fmt = rest_json.decode_predict(body, sig.inputs)
        return servable, sig.name, inputs, fmt

    def _predict(self, servable, sig_name, inputs, fmt):
        _, outputs = self.dataplane.predict(servable, sig_name, inputs,
                                            timeout_ms=self._timeout_ms)
        return rest_json.encode_predict(outputs, fmt)

    def _infer(self, verb, model, version, label, raw: bytes):
        # JSON parsing and base64 decoding happen here, in the pool: a large body
        # never holds up the event loop.
        if verb == "predict":
            return self._predict(*self._predict_inputs(model, version, label, raw))
        body, servable, sig_name = self._parse(model, version, label, raw)
        plane = self.dataplane
        examples = rest_json.decode_examples(body)
        if verb == "classify":
            _, classes, scores = plane.classify(servable, sig_name, examples, self._timeout_ms)
            return rest_json.encode_classify(classes, scores)
        _, values = plane.regress(servable, sig_name, examples, self._timeout_ms)
        return rest_json.encode_regress(values)
