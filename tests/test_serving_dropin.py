"""graft serve as a drop-in for tensorflow_model_server: its flags, its answers on TF1 and
TF2 half_plus_two exports, and survival of hostile requests, restarts and broken versions.
Real HTTP, real gRPC, real SavedModels exported by the tests."""
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import psutil
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from graft.cli import build_parser
from graft.contract import ServableState
from graft.serving import flags
from graft.serving.server import Server, ServerOptions
from tests import tfs_models
from tests.test_serving_contract import rest
from tests.conftest import run_graft

# tensorflow_model_server's flags, from its main.cc.
TFS_FLAGS = """port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms
rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models
batching_parameters_file enable_per_model_batching_parameters model_config_file
model_config_file_poll_wait_seconds model_name model_base_path num_load_threads
num_unload_threads max_num_load_retries load_retry_interval_micros
file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism
tensorflow_session_config_file tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism
use_alts_credentials ssl_config_file platform_config_file per_process_gpu_memory_fraction
saved_model_tags grpc_channel_arguments grpc_max_threads enable_model_warmup
num_request_iterations_for_warmup version monitoring_config_file
remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools
num_tflite_interpreters_per_pool enable_signature_method_name_check
xla_cpu_compilation_enabled xla_gpu_compilation_enabled enable_profiler
thread_pool_factory_config_file mixed_precision skip_initialize_tpu
enable_grpc_healthcheck_service enable_serialization_as_tensor_content""".split()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfs")
    tfs_models.export_tf1(str(root / "tf1" / "1"))
    tfs_models.export_tf2(str(root / "tf2" / "1"))
    tfs_models.export_batch_reporter(str(root / "rows" / "1"))
    cfg = root / "models.config"
    cfg.write_text("model_config_list {\n" + "".join(
        f"  config {{ name: '{n}' base_path: '{root / n}' model_platform: 'tensorflow' }}\n"
        for n in ("tf1", "tf2", "rows")) + "}\n")
    return root


def _server(models, **kw):
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(models / "models.config"),
                             **kw))
    s.start()
    for n in ("tf1", "tf2", "rows"):
        assert s.manager.wait_until_available(n, 1)
    return s


@pytest.fixture(scope="module")
def server(models):
    s = _server(models, max_instances_per_request=1500, rows_per_model_call=64)
    yield s
    s.stop()


def stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))


def example(x):
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}))


# ---- flags ----------------------------------------------------------------------------

def test_every_tensorflow_model_server_flag_is_accepted():
    assert set(TFS_FLAGS) == set(flags.TF_SERVING_FLAGS)
    parser = build_parser()
    values = {int: "3", float: "0.5", str: "x", bool: "true"}
    argv = ["serve"] + [f"--{f.name}={values[f.kind]}" for f in flags.TF_SERVING_FLAGS.values()]
    args = parser.parse_args(argv)
    assert args.rest_api_timeout_in_ms == 3 and args.enable_batching is True
    # A bare boolean flag means true, and TF's false spellings work.
    args = parser.parse_args(["serve", "--enable_batching", "--enable_model_warmup=false"])
    assert args.enable_batching is True and args.enable_model_warmup is False
    warned = flags.ignored_flags(parser.parse_args(
        ["serve", "--per_process_gpu_memory_fraction=0.4", "--xla_cpu_compilation_enabled"]))
    assert len(warned) == 2 and "--per_process_gpu_memory_fraction" in warned[0]
    assert flags.ignored_flags(parser.parse_args(["serve"])) == []


def test_flag_values_the_server_cannot_run_with_are_refused_at_start(tmp_path):
    """Found by starting graft serve with each flag set to -1, 0, nan and huge values: -1
    as a limit refused every request, -1 intra-op threads aborted TensorFlow, nan as a
    poll interval spun a core, 1e20 killed the poller, a value beyond int64 hung REST."""
    parser = build_parser()
    with pytest.raises(SystemExit):  # as TF's flag parser: out of range
        parser.parse_args(["serve", "--rest_api_timeout_in_ms=99999999999999999999"])
    base = dict(port=None, rest_api_port=None, model_name="m", model_base_path=str(tmp_path))
    for bad, fragment in ((dict(max_body_bytes=-1), "--max_body_bytes=-1: must be at least 1"),
                          (dict(max_request_elements=0), "--max_request_elements=0"),
                          (dict(tensorflow_intra_op_parallelism=-1), "must not be negative"),
                          (dict(file_system_poll_wait_seconds=float("nan")), "seconds up to"),
                          (dict(model_config_file_poll_wait_seconds=1e20), "seconds up to")):
        with pytest.raises(ValueError, match=fragment):
            Server(ServerOptions(**base, **bad))
    # -1 threads: automatic, as TF Serving takes it (it was a traceback at start).
    assert Server(ServerOptions(**base, rest_api_num_threads=-1))._rest_workers >= 1


def test_a_port_in_use_or_a_host_that_does_not_resolve_is_named_at_start(tmp_path):
    """gRPC's default SO_REUSEPORT let a second server bind a gRPC port in use, silently,
    and the two split its requests; REST waited 30 s on a port in use and printed a
    thread's traceback; a --host that does not resolve was a traceback."""
    tfs_models.export_tf2(str(tmp_path / "m" / "1"))
    base = dict(model_name="m", model_base_path=str(tmp_path / "m"))
    first = Server(ServerOptions(port=0, rest_api_port=0, **base))
    first.start()
    try:
        for opts in (dict(port=first.grpc_port, rest_api_port=None),
                     dict(port=None, rest_api_port=first.rest_port),
                     dict(port=0, rest_api_port=None, host="-1")):
            second = Server(ServerOptions(**opts, **base))
            t = time.time()
            with pytest.raises(OSError, match="API cannot listen on"):
                second.start()
            assert time.time() - t < 20
            second.stop(grace=0)
    finally:
        first.stop()


def test_a_stale_unix_socket_is_replaced_and_any_other_file_named(tmp_path):
    """A killed server leaves its socket file: the next one binds over it, as TF Serving's
    gRPC does. A regular file at the path was blamed on its folder."""
    import socket as socket_mod
    tfs_models.export_tf2(str(tmp_path / "m" / "1"))
    base = dict(model_name="m", model_base_path=str(tmp_path / "m"), port=None,
                rest_api_port=None)
    stale = tmp_path / "stale.sock"
    s = socket_mod.socket(socket_mod.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, as after kill -9
    server = Server(ServerOptions(grpc_socket_path=str(stale), **base))
    server.start()
    server.stop(grace=0)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    server = Server(ServerOptions(grpc_socket_path=str(taken), **base))
    with pytest.raises(OSError, match="a file that is not a socket is there"):
        server.start()
    server.stop(grace=0)
    assert taken.read_text() == "mine"


def test_a_zero_poll_interval_polls_once_and_does_not_spin(tmp_path):
    """TF Serving: 0 polls the model dirs once, a negative value never. A zero wait in the
    poll loop spun a core at 100 %."""
    from graft.serving import manager as manager_mod
    tfs_models.export_tf2(str(tmp_path / "m" / "1"))
    for seconds in (0, -1):
        m = manager_mod.Manager(seconds)
        m.set_config([manager_mod.ModelConfig(name="m", base_path=str(tmp_path / "m"))])
        m.start()
        try:
            assert m.wait_until_available("m", 1, timeout=30)
            m._thread.join(5)
            assert not m._thread.is_alive()
        finally:
            m.stop()


def test_grpc_channel_arguments_parse_like_tf_serving():
    assert flags.grpc_channel_arguments("grpc.max_connection_age_ms=2000, grpc.x=abc") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.x", "abc")]
    with pytest.raises(ValueError):
        flags.grpc_channel_arguments("novalue")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tensorflow_model_server_launch_line_starts_graft_serve(models, tmp_path):
    grpc_port, rest_port = _free_port(), _free_port()
    sock = tmp_path / "tfs.sock"
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    proc = subprocess.Popen(
        [exe, "serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=hp", f"--model_base_path={models / 'tf1'}",
         "--rest_api_timeout_in_ms=5000", f"--grpc_socket_path={sock}",
         "--grpc_channel_arguments=grpc.max_connection_age_ms=60000",
         "--per_process_gpu_memory_fraction=0.5", "--tensorflow_intra_op_parallelism=1",
         "--enable_grpc_healthcheck_service", "--max_num_load_retries=2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        end = time.time() + 120
        while time.time() < end:
            line = proc.stdout.readline()
            lines.append(line)
            if "graft serve:" in line or not line:
                break
        out = "".join(lines)
        assert "gRPC on unix:" in out, out
        warnings = [l for l in lines if "--per_process_gpu_memory_fraction" in l]
        assert len(warnings) == 1 and "WARNING" in warnings[0]
        # gRPC over the Unix socket, as TF Serving's --grpc_socket_path.
        ch = grpc.insecure_channel(f"unix:{sock}")
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "hp"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0, 3.0, 4.0]))
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=30)
        assert list(tf.make_ndarray(resp.outputs["y"])) == [3.0, 3.5, 4.0]
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        health = health_pb2_grpc.HealthStub(
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}")).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.terminate()
        proc.wait(30)


def test_version_flag_and_a_bad_model_config_exit_cleanly(tmp_path):
    r = run_graft("serve", "--version", timeout=120)
    assert r.returncode == 0 and "TensorFlow ModelServer" in r.stdout
    cfg = tmp_path / "models.config"
    cfg.write_text("model_config_list { config { name: 'm' base_path: '/x' bogus_field: 1 } }")
    r = run_graft("serve", f"--model_config_file={cfg}", "--port=0", "--rest_api_port=0",
                  timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    cfg.write_text("model_config_list { config { name: 'm' base_path: '/x' } "
                   "config { name: 'm' base_path: '/y' } }")
    r = run_graft("serve", f"--model_config_file={cfg}", "--port=0", "--rest_api_port=0",
                  timeout=120)
    assert r.returncode == 2 and "Illegal to list model m multiple times in config list" in (
        r.stderr), r.stderr
    # A device or a FIFO as a config file was read until the kernel killed the server.
    os.mkfifo(tmp_path / "batching.config")
    r = run_graft("serve", f"--model_config_file={cfg}", "--enable_batching",
                  f"--batching_parameters_file={tmp_path / 'batching.config'}", "--port=0",
                  "--rest_api_port=0", timeout=120)
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr
    # gRPC took --port=99999 as port 34463 (99999 - 65536) and served there.
    r = run_graft("serve", "--port=99999", "--rest_api_port=0", "--model_name=m",
                  f"--model_base_path={tmp_path}", timeout=120)
    assert r.returncode == 2 and "--port=99999: a port is 0-65535" in r.stderr, r.stderr


# ---- answers, as TF Serving gives them ------------------------------------------------

@pytest.mark.parametrize("model", ["tf1", "tf2"])
def test_half_plus_two_predict_feeds_the_graph_like_tf_serving(server, model):
    """TF2's signature declares x as [-1, 1]; TF Serving feeds a [3] tensor anyway."""
    assert rest(server, f"/v1/models/{model}:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200, {"predictions": [3.0, 3.5, 4.0]})
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0, 3.0, 4.0], dtype=tf.float32))
    resp = stub(server).Predict(req, timeout=30)
    assert list(resp.outputs["y"].float_val) == [3.0, 3.5, 4.0]  # typed fields, as TF Serving
    assert resp.model_spec.signature_name == "serving_default"


def test_tf1_regress_and_classify_signatures(server):
    ok, body = rest(server, "/v1/models/tf1:regress",
                    {"signature_name": "regress_x2_to_y3", "examples": [{"x": 1.0, "x2": 4.0}]})
    assert (ok, body) == (200, {"results": [5.0]})
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "tf1", "classify_x_to_y"
    req.input.example_list.examples.append(example(2.0))
    resp = stub(server).Classify(req, timeout=30)
    (cls,) = resp.result.classifications[0].classes
    assert (cls.label, cls.score) == ("", 3.0)


def test_tf2_signatures_marked_predict_classify_and_regress_by_default(server):
    """TF2 exports mark every signature "predict"; TF Serving's method-name check is off
    by default, so Classify and Regress run them."""
    assert rest(server, "/v1/models/tf2:classify",
                {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}) == (
        200, {"results": [[["", 3.0]]]})
    req = regression_pb2.RegressionRequest()
    req.model_spec.name, req.model_spec.signature_name = "tf2", "regress_x_to_y"
    req.input.example_list.examples.append(example(4.0))
    assert [r.value for r in stub(server).Regress(req, timeout=30).result.regressions] == [4.0]


def test_method_name_check_flag(models):
    s = _server(models, enable_signature_method_name_check=True)
    try:
        code, body = rest(s, "/v1/models/tf2:classify",
                          {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
        assert code == 400 and "tensorflow/serving/classify" in body["error"]
        # A TF1 signature marked classify still works with the check on.
        assert rest(s, "/v1/models/tf1:classify", {"signature_name": "classify_x_to_y",
                                                   "examples": [{"x": 2.0}]})[0] == 200
    finally:
        s.stop()


def test_metadata_prints_default_fields_like_tf_serving(server):
    code, body = rest(server, "/v1/models/tf2/metadata")
    assert code == 200
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    x = sig["inputs"]["x"]
    assert x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
                                 "unknown_rank": False}
    assert sig["defaults"] == {} and sig["method_name"] == "tensorflow/serving/predict"


def test_tensor_content_serialisation_flag(models):
    s = _server(models, enable_serialization_as_tensor_content=True)
    try:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "tf2"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
        y = stub(s).Predict(req, timeout=30).outputs["y"]
        assert y.tensor_content and not y.float_val
        assert tf.make_ndarray(y).tolist() == [[3.0]]
    finally:
        s.stop()


def test_cors_preflight_and_headers(models):
    s = _server(models, rest_api_enable_cors_support=True)
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{s.rest_port}/v1/models/tf2:predict",
                                     method="OPTIONS")
        with urllib.request.urlopen(req, timeout=30) as f:
            assert f.status == 204
            assert f.headers["Access-Control-Allow-Origin"] == "*"
        req = urllib.request.Request(f"http://127.0.0.1:{s.rest_port}/v1/models/tf2")
        with urllib.request.urlopen(req, timeout=30) as f:
            assert f.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        s.stop()


def test_no_access_log_line_per_request_unless_asked(models, caplog):
    """TF Serving logs nothing per request; --rest_access_log turns aiohttp's log on."""
    import logging
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    url = "/v1/models/tf2:predict"
    for flag, lines in ((False, 0), (True, 1)):
        s = _server(models, rest_access_log=flag)
        try:
            caplog.clear()
            req = urllib.request.Request(f"http://127.0.0.1:{s.rest_port}{url}",
                                         data=b'{"instances": [1.0]}')
            with urllib.request.urlopen(req, timeout=30) as f:
                assert json.loads(f.read()) == {"predictions": [2.5]}
            time.sleep(0.2)
            got = [r for r in caplog.records if r.name == "aiohttp.access"]
            assert len(got) == lines, [r.getMessage() for r in got]
            if lines:
                assert "POST " + url in got[0].getMessage()
        finally:
            s.stop()


# ---- hostile requests ----------------------------------------------------------------

def _rss():
    return psutil.Process().memory_info().rss


def test_a_tiny_grpc_request_declaring_a_huge_tensor_is_refused_before_allocating(server):
    tp = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0],
                                tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2 ** 28)]))
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "tf2"
    req.inputs["x"].CopyFrom(tp)
    assert req.ByteSize() < 60
    before = _rss()
    with pytest.raises(grpc.RpcError) as e:
        stub(server).Predict(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "268435456 elements" in e.value.details()
    assert _rss() - before < 100 << 20
    # The wrong dtype is refused in TF Serving's words, also before any allocation.
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(["a"]))
    with pytest.raises(grpc.RpcError) as e:
        stub(server).Predict(req, timeout=30)
    assert e.value.details() == "Expects arg[x] to be float but string is provided"


def test_large_requests_run_in_bounded_slices_and_are_capped(server):
    code, body = rest(server, "/v1/models/rows:predict", {"instances": [1.0] * 1000})
    assert code == 200 and len(body["predictions"]) == 1000
    assert max(body["predictions"]) == 64  # never more than rows_per_model_call at once
    code, body = rest(server, "/v1/models/rows:predict", {"instances": [1.0] * 2000})
    assert code == 400 and "--max_instances_per_request" in body["error"]


@pytest.mark.parametrize("body", [
    {"signature_name": ["serving_default"], "instances": [1.0]},
    {"signature_name": {"a": 1}, "instances": [1.0]},
    {"signature_name": "regress_x_to_y", "instances": [{"b64": base64.b64encode(
        b"\x89PNG\r\n\x1a\n not an example").decode()}]},
    {"instances": json.loads("[" * 900 + "1.0" + "]" * 900)},
    {"instances": [10 ** 400]},
    {"instances": ["text"]},
])
def test_bad_predict_bodies_get_a_4xx_json_error(server, body):
    code, out = rest(server, "/v1/models/tf2:predict", body)
    assert 400 <= code < 500 and isinstance(out.get("error"), str), (code, out)


@pytest.mark.parametrize("raw", [
    b"[" * 100000 + b"]" * 100000,
    b'{"examples": [{"x": ' + str(10 ** 30).encode() + b'}], "signature_name": "regress_x_to_y"}',
    b'{"examples": [{"x": 1e999}], "signature_name": "regress_x_to_y"}',
    b"\xff\xfe not utf-8",
])
def test_bad_classify_bodies_get_a_4xx_json_error(server, raw):
    code, out = rest(server, "/v1/models/tf2:regress", raw=raw)
    assert 400 <= code < 500 and isinstance(out.get("error"), str), (code, out)


# ---- restarts and broken versions -----------------------------------------------------

def _status(server, name):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = name
    resp = model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(req, timeout=30)
    return {s.version: (s.state, s.status.error_message) for s in resp.model_version_status}


@contextlib.contextmanager
def _serving_version_1(base, predict_path):
    """graft serve on base, once version 1 (half_plus_two) answers at predict_path."""
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=str(base),
                             file_system_poll_wait_seconds=0.1, max_num_load_retries=0))
    s.start()
    try:
        assert s.manager.wait_until_available("m", 1, timeout=60)
        assert rest(s, predict_path, {"instances": [[2.0]]}) == (200, {"predictions": [[3.0]]})
        yield s
    finally:
        s.stop()


def test_cold_start_with_a_corrupt_newest_version_serves_the_newest_good_one(tmp_path):
    base = tmp_path / "m"
    tfs_models.export_tf2(str(base / "1"))
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    with _serving_version_1(base, "/v1/models/m:predict") as s:
        status = _status(s, "m")
        assert status[1][0] == int(ServableState.AVAILABLE)
        assert status[2][0] == int(ServableState.END) and "could not load" in status[2][1]


def test_a_crafted_warmup_file_fails_its_version_not_the_server(tmp_path, caplog):
    """A warmup record header declaring 1 TB segfaulted graft serve as it loaded the version
    (tf.data's reader allocates the declared length), with every model it served. Now the
    length is bounded first: that version fails to load and the newest good one serves, as
    after any failed load. A good warmup file is replayed."""
    import struct

    from tensorflow_serving.apis import prediction_log_pb2

    from graft import tfrecords
    base = tmp_path / "m"
    for v in (1, 2):
        tfs_models.export_tf2(str(base / str(v)))
        (base / str(v) / "assets.extra").mkdir()
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "m"
    log.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], tf.float32))
    with tf.io.TFRecordWriter(str(base / "1" / "assets.extra" / "tf_serving_warmup_requests")) as w:
        w.write(log.SerializeToString())
    head = struct.pack("<Q", 1 << 40)
    (base / "2" / "assets.extra" / "tf_serving_warmup_requests").write_bytes(
        head + struct.pack("<I", tfrecords.masked_crc32c(head)) + b"x" * 100)
    caplog.set_level("INFO")
    with _serving_version_1(base, "/v1/models/m/versions/1:predict") as s:
        assert "{name: m version: 1}" in caplog.text and "(1 warmup requests)" in caplog.text
        deadline = time.time() + 60
        while _status(s, "m").get(2, (0,))[0] != int(ServableState.END) and time.time() < deadline:
            time.sleep(0.2)
        state, message = _status(s, "m")[2]
        assert state == int(ServableState.END), message
        assert "declares 1099511627776 bytes" in message, message


def test_a_half_copied_version_loads_once_its_copy_is_completed_in_place(tmp_path):
    src = tmp_path / "src"
    tfs_models.export_tf2(str(src))
    base = tmp_path / "m"
    tfs_models.export_tf2(str(base / "1"))
    # Version 2 arrives without its variables (a copy still running) ...
    (base / "2").mkdir()
    shutil.copy(src / "saved_model.pb", base / "2" / "saved_model.pb")
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=str(base),
                             file_system_poll_wait_seconds=0.1, max_num_load_retries=5,
                             load_retry_interval_micros=200_000))
    s.start()
    try:
        assert s.manager.wait_until_available("m", 1, timeout=30)
        end = time.time() + 20
        while time.time() < end and _status(s, "m").get(2, (0, ""))[1] == "":
            time.sleep(0.1)
        assert _status(s, "m")[2][1], "version 2 should have failed while incomplete"
        # ... then the copy completes, inside the version directory (its mtime unchanged).
        shutil.copytree(src / "variables", base / "2" / "variables", dirs_exist_ok=True)
        assert s.manager.wait_until_available("m", 2, timeout=30)
        assert _status(s, "m")[2][0] == int(ServableState.AVAILABLE)
    finally:
        s.stop()


def test_concurrent_hostile_requests_keep_memory_bounded(server):
    """Forty threads each sending 1 000 rows: slices of 64 and four model calls at a time."""
    before = _rss()
    errors = []

    def hit():
        try:
            code, _ = rest(server, "/v1/models/rows:predict", {"instances": [1.0] * 1000})
            if code != 200:
                errors.append(code)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=hit) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert _rss() - before < 300 << 20


# ---- hostile images, on a model exported by graft's own exporter ------------------------

def _png(w, h):
    import io
    from PIL import Image
    b = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(b, "PNG")
    return b.getvalue()


def _png_header_only(w, h):
    """A PNG that declares w x h pixels in 100-odd bytes: a decompression bomb's header."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\0" * 64)


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    import tf_keras
    from graft.trainer import export
    root = tmp_path_factory.mktemp("img")
    tiny = tf_keras.Sequential([tf_keras.layers.GlobalAveragePooling2D(input_shape=(32, 32, 3)),
                                tf_keras.layers.Dense(2)])
    export.export(tiny, ["red", "blue"], 32, str(root / "img" / "1"), {"backbone": "tiny"},
                  warmup_images=[_png(8, 8)])
    export.export(tiny, ["red", "blue"], 32, str(root / "small" / "1"), {"backbone": "tiny"},
                  max_image_pixels=1000)
    cfg = root / "models.config"
    cfg.write_text("model_config_list {\n" + "".join(
        f"  config {{ name: '{n}' base_path: '{root / n}' }}\n" for n in ("img", "small"))
        + "}\n")
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(cfg)))
    s.start()
    assert s.manager.wait_until_available("img", 1) and s.manager.wait_until_available("small", 1)
    yield s
    s.stop()


def _b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(image_server):
    before, t = _rss(), time.time()
    results = []

    def bomb():
        results.append(rest(image_server, "/v1/models/img:predict",
                            {"instances": [_b64(_png_header_only(23000, 23000))]}))
    threads = [threading.Thread(target=bomb) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert time.time() - t < 20
    assert len(results) == 4
    for code, body in results:
        assert code == 400 and "Image too large" in body["error"] and "23000" in body["error"]
    assert _rss() - before < 300 << 20
    code, body = rest(image_server, "/v1/models/img:predict", {"instances": [_b64(_png(40, 30))]})
    assert code == 200 and body["predictions"][0]["label"] in ("red", "blue")


def test_the_pixel_limit_is_the_exported_models_setting(image_server):
    assert rest(image_server, "/v1/models/small:predict",
                {"instances": [_b64(_png(30, 30))]})[0] == 200
    code, body = rest(image_server, "/v1/models/small:predict",
                      {"instances": [_b64(_png(40, 30))]})
    assert code == 400 and "1000 pixels" in body["error"]


def test_a_thousand_tiny_images_in_one_request_are_answered_in_slices(image_server):
    tiny = _b64(_png(1, 1))
    code, body = rest(image_server, "/v1/models/img:predict", {"instances": [tiny] * 1000})
    assert code == 200 and len(body["predictions"]) == 1000
    code, body = rest(image_server, "/v1/models/img:predict", {"instances": ["not b64"]})
    assert code == 400 and isinstance(body["error"], str)


def test_labels_for_unavailable_versions_need_the_flag(tmp_path):
    base = tmp_path / "m"
    tfs_models.export_tf2(str(base / "1"))
    cfg = tmp_path / "models.config"
    cfg.write_text(f"model_config_list {{ config {{ name: 'm' base_path: '{base}' "
                   f"version_labels {{ key: 'canary' value: 2 }} }} }}")
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(cfg),
                             allow_version_labels_for_unavailable_models=True))
    s.start()
    try:
        assert s.manager.wait_until_available("m", 1)
        assert s.manager.labels("m") == {"canary": 2}
        # The label exists; the version behind it does not serve yet.
        assert rest(s, "/v1/models/m/labels/canary:predict", {"instances": [[1.0]]})[0] == 404
    finally:
        s.stop()
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(cfg)))
    s.start()
    try:
        assert s.manager.wait_until_available("m", 1)
        assert s.manager.labels("m") == {}
    finally:
        s.stop()


def test_rest_timeout_flag_answers_504(tmp_path):
    tfs_models.export_slow(str(tmp_path / "slow" / "1"))
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="slow",
                             model_base_path=str(tmp_path / "slow"), rest_api_timeout_in_ms=200))
    s.start()
    try:
        assert s.manager.wait_until_available("slow", 1)
        assert rest(s, "/v1/models/slow:predict", {"inputs": 10}) == (200, {"outputs": 10})
        t = time.time()
        code, body = rest(s, "/v1/models/slow:predict", {"inputs": 100_000_000})
        assert code == 504, body
        assert time.time() - t < 5
        # The session stopped the call (as TF Serving's run timeout does): the server's
        # workers are free again at once, or this stop() would wait for a long loop.
    finally:
        t = time.time()
        s.stop()
        assert time.time() - t < 10


def test_grpc_over_tls_with_the_ssl_config_file(models, tmp_path):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    ssl = tmp_path / "ssl.config"
    ssl.write_text(f"server_key: {json.dumps(key_pem)}\nserver_cert: {json.dumps(cert_pem)}\n")
    s = _server(models, ssl_config_file=str(ssl))
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert_pem.encode())
        ch = grpc.secure_channel(f"localhost:{s.grpc_port}", creds)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "tf2"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=30)
        assert list(resp.outputs["y"].float_val) == [3.0]
        with pytest.raises(grpc.RpcError):  # plaintext is refused
            stub(s).Predict(req, timeout=10)
    finally:
        s.stop()
