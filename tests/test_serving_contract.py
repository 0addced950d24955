"""Contract tests: graft serve answers like TF Serving (shared/docs/tf-serving-contract.md),
over real HTTP and real gRPC, on small real SavedModels."""
import base64
import json
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from graft.serving.server import Server, ServerOptions
from tests import serving_models


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "m"
    serving_models.save(base / "1")
    serving_models.save(base / "3", a=1.0, b=0.0)
    cfg = tmp_path_factory.mktemp("cfg") / "models.config"
    cfg.write_text(f"""model_config_list {{ config {{
      name: 'm' base_path: '{base}' model_platform: 'tensorflow'
      model_version_policy {{ specific {{ versions: 1 versions: 3 }} }}
      version_labels {{ key: 'stable' value: 1 }}
      version_labels {{ key: 'canary' value: 3 }} }} }}""")
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(cfg),
                             max_body_bytes=1 << 20))
    s.start()
    assert s.manager.wait_until_available("m", 3)
    yield s
    s.stop()


def rest(server, path, body=None, raw=None, method=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def stubs(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return (prediction_service_pb2_grpc.PredictionServiceStub(ch),
            model_service_pb2_grpc.ModelServiceStub(ch))


def grpc_error(call, req):
    with pytest.raises(grpc.RpcError) as e:
        call(req, timeout=30)
    return e.value.code(), e.value.details()


def predict_req(name="m", version=None, label=None, sig="", x=(1.0,)):
    r = predict_pb2.PredictRequest()
    r.model_spec.name = name
    if version is not None:
        r.model_spec.version.value = version
    if label:
        r.model_spec.version_label = label
    r.model_spec.signature_name = sig
    r.inputs["x"].CopyFrom(tf.make_tensor_proto(list(x), dtype=tf.float32))
    return r


# ---- status -----------------------------------------------------------------------

def test_status_lists_versions_newest_first(server):
    code, body = rest(server, "/v1/models/m")
    assert code == 200
    assert body == {"model_version_status": [
        {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert rest(server, "/v1/models/m/versions/1")[1]["model_version_status"][0]["version"] == "1"
    assert rest(server, "/v1/models/m/labels/canary")[1]["model_version_status"][0]["version"] == "3"


def test_status_errors(server, stubs):
    assert rest(server, "/v1/models/foo") == (
        404, {"error": "Could not find any versions of model foo"})
    assert rest(server, "/v1/models/m/versions/99") == (
        404, {"error": "Could not find version 99 of model m"})
    _, ms = stubs
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "foo"
    assert grpc_error(ms.GetModelStatus, req) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model foo")
    req.model_spec.name = "m"
    resp = ms.GetModelStatus(req)
    assert [(s.version, s.state) for s in resp.model_version_status] == [(3, 30), (1, 30)]


# ---- predict ----------------------------------------------------------------------

def test_predict_row_and_columnar(server):
    assert rest(server, "/v1/models/m/versions/1:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200, {"predictions": [2.5, 3.0, 4.5]})
    assert rest(server, "/v1/models/m/versions/1:predict", {"inputs": [1.0, 2.0]}) == (
        200, {"outputs": [2.5, 3.0]})
    assert rest(server, "/v1/models/m/versions/1:predict", {"inputs": {"x": [4.0]}}) == (
        200, {"outputs": [4.0]})


def test_latest_label_and_version_routing(server, stubs):
    assert rest(server, "/v1/models/m:predict", {"instances": [2.0]})[1] == {"predictions": [2.0]}
    assert rest(server, "/v1/models/m/labels/stable:predict",
                {"instances": [2.0]})[1] == {"predictions": [3.0]}
    ps, _ = stubs
    resp = ps.Predict(predict_req(label="stable", x=[2.0]))
    assert tf.make_ndarray(resp.outputs["y"]).tolist() == [3.0]
    assert resp.model_spec.version.value == 1
    assert resp.model_spec.signature_name == "serving_default"


def test_several_inputs_b64_and_bytes_outputs(server):
    blob = base64.b64encode(b"\x00\xffhello").decode()
    code, body = rest(server, "/v1/models/m/versions/1:predict", {
        "signature_name": "multi",
        "instances": [{"x": 2.0, "k": 3, "blob": {"b64": blob}}]})
    assert code == 200
    assert body == {"predictions": [{"echo_bytes": {"b64": blob}, "length": 7, "y": 4.0}]}
    code, body = rest(server, "/v1/models/m/versions/1:predict", {
        "signature_name": "multi", "inputs": {"x": [1.0], "k": [1], "blob": ["ab"]}})
    assert body == {"outputs": {"echo_bytes": [{"b64": "YWI="}], "length": [2], "y": [1.5]}}


def test_float_outputs_use_shortest_round_trip_form(server):
    _, body = rest(server, "/v1/models/m/versions/1:predict", {"instances": [0.1]})
    assert body == {"predictions": [2.05]}


@pytest.mark.parametrize("body,status,fragment", [
    ({"instances": [1.0], "inputs": [1.0]}, 400,
     "expecting only one of 'inputs' or 'instances' keys to exist"),
    ({"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
    ({"instances": []}, 400, "No values in 'instances' array"),
    ({"signature_name": "nope", "instances": [1.0]}, 400,
     'Serving signature key "nope" not found.'),
    ({"signature_name": "multi", "instances": [{"x": 1.0, "k": 1, "blob": "a", "y": 2}]}, 400,
     "does not have named input: y"),
    ({"signature_name": "multi", "inputs": {"x": [1.0], "blob": ["a"]}}, 400,
     "Missing named input: k in 'inputs' object."),
    ({"signature_name": "multi", "instances": [{"x": 1.0, "k": 1.0, "blob": "a"}]}, 400,
     "not an integer literal"),
    ({"signature_name": "multi", "instances": [{"x": 1.0, "k": 1, "blob": {"b64": "a-_b"}}]},
     400, "base64"),
    ({"instances": ["one"]}, 400, "not a number"),
    ({"instances": [[1.0, 2.0], [3.0]]}, 400, "ragged"),
    # strings: an object array took [b"a", [b"b"]] as two elements, and TF's 500 followed
    ({"signature_name": "multi", "inputs": {"x": [1.0], "k": [1], "blob": ["a", ["b"]]}}, 400,
     "ragged"),
    ({"signature_name": ["serving_default"], "instances": [1.0]}, 400, "must be a string"),
    ({"signature_name": {"a": 1}, "instances": [1.0]}, 400, "must be a string"),
])
def test_rest_bad_requests(server, body, status, fragment):
    code, resp = rest(server, "/v1/models/m/versions/1:predict", body)
    assert code == status and fragment in resp["error"], resp


def test_rest_routing_errors(server):
    assert rest(server, "/v1/models/foo:predict", {"instances": [1.0]}) == (
        404, {"error": "Servable not found for request: Latest(foo)"})
    assert rest(server, "/v1/models/m/versions/99:predict", {"instances": [1.0]}) == (
        404, {"error": "Servable not found for request: Specific(m, 99)"})
    assert rest(server, "/v1/models/m/labels/beta:predict", {"instances": [1.0]}) == (
        400, {"error": "Unrecognized servable version label: beta"})
    code, body = rest(server, "/v1/models/m:predict", raw=b"{not json")
    assert code == 400 and body["error"].startswith("JSON Parse error")
    assert rest(server, "/v2/anything")[0] == 404
    assert rest(server, "/v1")[0] == 404
    assert rest(server, "/ui/../setup.py")[0] == 404   # only the page's own files are served
    assert rest(server, "/ui/app.jsx")[0] == 404
    assert rest(server, "/v1/models/m/versions/%C2%B2")[0] == 400  # "²": no number to TF Serving
    assert rest(server, "/v1/models/m/versions/1/metadata", {})[0] == 400  # POST: no such route


def test_paths_are_parsed_as_tf_serving_parses_them(server):
    """http_rest_api_util.cc: matched without regard to case on the raw path, the model
    name and label percent-decoded; the verb and "metadata" compared exactly; anything
    else under /v1/ a malformed request (400), outside it 404."""
    assert rest(server, "/V1/Models/m/Versions/1:predict", {"instances": [1.0]}) == (
        200, {"predictions": [2.5]})
    assert rest(server, "/v1/models/%6D/labels/%73table:predict", {"instances": [1.0]}) == (
        200, {"predictions": [2.5]})                  # "m", label "stable", percent-encoded
    assert rest(server, "/v1/models/m:PREDICT", {"instances": [1.0]}) == (
        400, {"error": "Malformed request: POST /v1/models/m:PREDICT"})
    code, body = rest(server, "/v1/models/m/versions/1/METADATA")
    assert code == 200 and "model_version_status" in body      # the status, as there
    assert rest(server, "/v1/models") == (400, {"error": "Missing model name in request."})
    assert rest(server, "/v1/foo") == (400, {"error": "Malformed request: GET /v1/foo"})
    assert rest(server, "/v1/models/a%2Fb") == (
        404, {"error": "Could not find any versions of model a/b"})
    assert rest(server, "/foo", {})[0] == 404


def test_oversized_body_is_413_and_server_survives(server):
    code, body = rest(server, "/v1/models/m:predict", raw=b"[" + b"1.0," * 400_000 + b"1.0]")
    assert code == 413 and "too large" in body["error"]
    assert rest(server, "/v1/models/m/versions/1:predict", {"instances": [0.0]})[0] == 200


def rest_encoded(server, raw: bytes, encoding: str):
    req = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/m/versions/1:predict",
                                 data=raw, headers={"Content-Encoding": encoding})
    try:
        with urllib.request.urlopen(req, timeout=30) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_compressed_bodies_are_read_as_tf_serving_reads_them(server):
    """TF Serving's HTTP server gunzips a body whose Content-Encoding names gzip and reads
    any other as it is; a bad or oversized one is the client's error, in JSON."""
    import gzip
    import zlib
    good = json.dumps({"instances": [1.0, 2.0]}).encode()
    answer = (200, {"predictions": [2.5, 3.0]})
    assert rest_encoded(server, gzip.compress(good), "gzip") == answer
    assert rest_encoded(server, gzip.compress(good[:9]) + gzip.compress(good[9:]),
                        "gzip") == answer                      # two gzip members
    assert rest_encoded(server, zlib.compress(good), "deflate") == answer
    assert rest_encoded(server, good, "br") == answer          # not gzip: read as it is
    for raw in (b"not gzip", gzip.compress(good)[:-12], gzip.compress(good) + b"junk"):
        code, body = rest_encoded(server, raw, "gzip")
        assert code == 400 and "Content-Encoding gzip" in body["error"], body
    # 60 MB of spaces in a 60 KB gzip: refused at the limit (1 MB here), not inflated.
    bomb = gzip.compress(b'{"instances": [' + b" " * 60_000_000 + b"1.0]}", 1)
    code, body = rest_encoded(server, bomb, "gzip")
    assert code == 413 and "inflated" in body["error"], body
    assert rest(server, "/v1/models/m/versions/1:predict", {"instances": [0.0]})[0] == 200


def test_grpc_errors(server, stubs):
    ps, _ = stubs
    assert grpc_error(ps.Predict, predict_req(name="foo")) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(foo)")
    assert grpc_error(ps.Predict, predict_req(version=99)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(m, 99)")
    assert grpc_error(ps.Predict, predict_req(label="beta")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta")
    assert grpc_error(ps.Predict, predict_req(sig="X")) == (
        grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "X" not found.')
    assert grpc_error(ps.Predict, predict_pb2.PredictRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    unknown = predict_req()
    unknown.inputs["x"].dtype = 999  # a number DataType does not name: was INTERNAL
    code, details = grpc_error(ps.Predict, unknown)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "an unknown dtype (999)" in details
    r = predict_req()
    r.model_spec.name = ""
    assert grpc_error(ps.Predict, r) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    r = predict_req()
    r.inputs["zzz"].CopyFrom(tf.make_tensor_proto([1.0]))
    code, _ = grpc_error(ps.Predict, r)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# ---- classify, regress, metadata ----------------------------------------------------

def test_classify_and_regress_rest(server):
    code, body = rest(server, "/v1/models/m/versions/1:classify",
                      {"signature_name": "classify_x", "examples": [{"x": 1.0}, {"x": -10.0}]})
    assert code == 200
    assert [c[0] for c in body["results"][0]] == ["low", "high"]
    assert body["results"][0][1][1] > 0.9 and body["results"][1][0][1] > 0.9
    assert rest(server, "/v1/models/m/versions/1:regress",
                {"signature_name": "regress_x", "examples": [{"x": 2.0}], "context": {}}) == (
        200, {"results": [3.0]})
    # serving_default takes floats: without --enable_signature_method_name_check (TF
    # Serving's default) the signature's input, not its method name, rules it out.
    code, body = rest(server, "/v1/models/m/versions/1:classify", {"examples": [{"x": 1.0}]})
    assert code == 400 and "string tensor" in body["error"]


def test_classify_and_regress_grpc(stubs):
    ps, _ = stubs
    ex = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0]))}))
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "m", "classify_x"
    req.model_spec.version.value = 1
    req.input.example_list.examples.append(ex)
    resp = ps.Classify(req)
    assert [c.label for c in resp.result.classifications[0].classes] == ["low", "high"]
    rreq = regression_pb2.RegressionRequest()
    rreq.model_spec.name, rreq.model_spec.signature_name = "m", "regress_x"
    rreq.model_spec.version.value = 1
    rreq.input.example_list.examples.append(ex)
    assert ps.Regress(rreq).result.regressions[0].value == pytest.approx(3.0)


def test_metadata_rest_and_grpc(server, stubs):
    code, body = rest(server, "/v1/models/m/versions/1/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "m", "signature_name": "", "version": "1"}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert sigs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert sigs["classify_x"]["method_name"] == "tensorflow/serving/classify"
    ps, _ = stubs
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "m"
    req.metadata_field.append("signature_def")
    resp = ps.GetModelMetadata(req)
    m = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(m)
    assert "regress_x" in m.signature_def and resp.model_spec.version.value == 3
    req.metadata_field[:] = ["nope"]
    assert grpc_error(ps.GetModelMetadata, req)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_prometheus_metrics_use_tf_serving_names(tmp_path):
    base = tmp_path / "m"
    serving_models.save(base / "1")
    (base / "2").mkdir()  # not a SavedModel: a failed load
    (base / "2" / "saved_model.pb").write_bytes(b"not a graph")
    mon = tmp_path / "monitoring.config"
    mon.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }')
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m",
                             model_base_path=str(base), monitoring_config_file=str(mon)))
    s.start()
    try:
        assert s.manager.wait_until_available("m")
        rest(s, "/v1/models/m:predict", {"instances": [1.0]})
        rest(s, "/v1/models/m:predict", {"instances": []})
        with urllib.request.urlopen(
                f"http://127.0.0.1:{s.rest_port}/monitoring/prometheus/metrics") as f:
            text = f.read().decode()
        assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in text
        assert ':tensorflow:serving:request_count{model_name="m",status="INVALID_ARGUMENT"} 1' \
            in text
        assert ':tensorflow:serving:request_latency_count{model_name="m",API="predict",' \
               'entrypoint="REST"} 2' in text
        # TensorFlow's own SavedModel metrics, as TF Serving exports them.
        assert "# TYPE :tensorflow:cc:saved_model:load_attempt_count counter" in text
        assert (f':tensorflow:cc:saved_model:load_attempt_count{{model_path="{base / "1"}",'
                f'status="success"}} 1') in text
        assert f'load_attempt_count{{model_path="{base / "2"}",status="fail"}}' in text
        assert f':tensorflow:cc:saved_model:load_latency{{model_path="{base / "1"}"}} ' in text
    finally:
        s.stop()


# ---- MultiInference (TF Serving's multi_inference.cc) ---------------------------------

def _multi(tasks, examples=(2.0,)):
    from tensorflow_serving.apis import inference_pb2
    req = inference_pb2.MultiInferenceRequest()
    for name, sig, method in tasks:
        t = req.tasks.add()
        t.model_spec.name, t.model_spec.signature_name = name, sig
        t.method_name = method
    for x in examples:
        req.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return req


CLS, REG = "tensorflow/serving/classify", "tensorflow/serving/regress"


def test_grpc_multi_inference_runs_each_task(stubs):
    ps, _ = stubs
    resp = ps.MultiInference(_multi([("m", "classify_x", CLS)], examples=(2.0, -10.0)))
    (cls,) = resp.results
    assert [c.label for c in cls.classification_result.classifications[0].classes] == \
        ["low", "high"]
    assert cls.classification_result.classifications[1].classes[0].score > 0.9  # "low"
    (reg,) = ps.MultiInference(_multi([("m", "regress_x", REG)], examples=(2.0, -10.0))).results
    # Latest version (3: a = 1, b = 0) answers, and says so with the signature it ran.
    assert (reg.model_spec.name, reg.model_spec.version.value,
            reg.model_spec.signature_name) == ("m", 3, "regress_x")
    assert [r.value for r in reg.regression_result.regressions] == pytest.approx([2.0, -10.0])


def test_grpc_multi_inference_needs_one_shared_input_tensor(stubs):
    """TF2 SavedModels give every signature its own input placeholder, so, as in TF
    Serving, two tasks only run together on signatures that share one (TF1 exports)."""
    ps, _ = stubs
    assert grpc_error(ps.MultiInference, _multi([("m", "classify_x", CLS),
                                                 ("m", "regress_x", REG)])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input tensor must be the same for all Signatures.")


def test_grpc_multi_inference_errors_match_tf_serving(stubs):
    ps, _ = stubs
    bad = grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_error(ps.MultiInference, _multi([])) == (bad, "ModelSpec has no name specified.")
    assert grpc_error(ps.MultiInference, _multi([("m", "classify_x", CLS),
                                                 ("other", "regress_x", REG)])) == (
        bad, "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
    assert grpc_error(ps.MultiInference, _multi([("m", "regress_x", REG),
                                                 ("m", "regress_x", REG)])) == (
        bad, "Duplicate evaluation of signature: regress_x")
    assert grpc_error(ps.MultiInference, _multi([("m", "nope", CLS)])) == (
        bad, "Requested signature not found in model graph: nope")
    assert grpc_error(ps.MultiInference, _multi([("m", "classify_x", "tensorflow/serving/predict")
                                                 ])) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict")
    code, msg = grpc_error(ps.MultiInference, _multi([("m", "regress_x", CLS)]))
    assert code == bad and "'classes' and/or 'scores'" in msg
    assert grpc_error(ps.MultiInference, _multi([("m", "regress_x", REG)], examples=())) == (
        bad, "Input is empty")
