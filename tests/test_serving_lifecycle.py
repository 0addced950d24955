"""Hot reload, fallback, corrupt versions, labels, rollback, batching, load and shutdown,
against a real running server."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from graft.contract import ServableState
from graft.serving import batching, model_config, version_admin
from graft.serving.server import Server, ServerOptions
from tests import serving_models
from tests.conftest import run_graft


def publish(base, version, a):
    """Like graft's pusher: write into a non-numeric temp dir, then rename."""
    tmp = base / f".tmp-{version}"
    serving_models.save(tmp, a=a, b=0.0)
    os.rename(tmp, base / str(version))


def predict(server, x=1.0, path="/v1/models/m:predict"):
    req = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}",
                                 data=json.dumps({"instances": [x]}).encode())
    with urllib.request.urlopen(req, timeout=30) as f:
        return json.loads(f.read())["predictions"][0]


def wait_for(fn, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if fn():
                return True
        except Exception:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "m"
    b.mkdir()
    publish(b, 1, a=1.0)
    return b


@pytest.fixture
def server(base):
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=str(base),
                             file_system_poll_wait_seconds=0.1))
    s.start()
    assert s.manager.wait_until_available("m", 1)
    yield s
    s.stop()


def test_new_version_is_picked_up_and_deleting_it_falls_back(server, base):
    assert predict(server) == 1.0
    publish(base, 2, a=2.0)
    assert wait_for(lambda: predict(server) == 2.0)
    assert wait_for(lambda: dict((v, s) for v, s, _ in server.manager.status("m"))[1] == ServableState.END)
    shutil.rmtree(base / "2")
    assert wait_for(lambda: predict(server) == 1.0)


def test_corrupt_and_half_written_versions_never_replace_the_good_one(server, base):
    (base / "5").mkdir()
    (base / "5" / "saved_model.pb").write_bytes(b"this is not a protobuf")
    (base / "6").mkdir()  # half-written: no saved_model.pb yet
    assert wait_for(lambda: dict((v, s) for v, s, _ in server.manager.status("m")).get(6) == ServableState.END)
    assert predict(server) == 1.0
    states = {v: (s, e) for v, s, e in server.manager.status("m")}
    assert states[1][0] == ServableState.AVAILABLE
    assert states[6][0] == ServableState.END and "saved_model.pb" in states[6][1]
    # Once the version is complete it loads (its directory changed).
    shutil.rmtree(base / "6")
    publish(base, 7, a=7.0)
    assert wait_for(lambda: predict(server) == 7.0)


def test_deleting_the_whole_model_dir_keeps_serving(server, base):
    shutil.rmtree(base)
    time.sleep(0.5)
    assert predict(server) == 1.0


def test_labels_and_rollback_through_a_polled_model_config(tmp_path, base):
    publish(base, 2, a=2.0)
    cfg = tmp_path / "models.config"
    model_config.write_atomic(str(cfg), [model_config.ModelConfig(name="m", base_path=str(base))])
    s = Server(ServerOptions(port=0, rest_api_port=0, model_config_file=str(cfg),
                             model_config_file_poll_wait_seconds=0.1,
                             file_system_poll_wait_seconds=0.1))
    s.start()
    try:
        assert wait_for(lambda: predict(s) == 2.0)
        version_admin.set_label(str(cfg), "m", "stable", 1)
        assert wait_for(lambda: predict(s, path="/v1/models/m/labels/stable:predict") == 1.0)
        assert predict(s) == 2.0
        version_admin.rollback(str(cfg), "m")  # default: the version before the newest
        assert wait_for(lambda: predict(s) == 1.0)
        assert wait_for(lambda: {v: st for v, st, _ in s.manager.status("m")}[2] == ServableState.END)
        version_admin.unpin(str(cfg), "m")
        assert wait_for(lambda: predict(s) == 2.0)
    finally:
        s.stop()


def test_label_on_an_unavailable_version_is_rejected(server, base):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    ms = model_service_pb2_grpc.ModelServiceStub(ch)
    req = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f"""model_config_list {{ config {{ name: 'm' base_path: '{base}'
        version_labels {{ key: 'canary' value: 43 }} }} }}""", req.config)
    resp = ms.HandleReloadConfigRequest(req)
    assert resp.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert resp.status.error_message == ("Request to assign label to version 43 of model m, "
                                         "which is not currently available for inference")
    assert server.manager.labels("m") == {}
    assert predict(server) == 1.0


def test_rollback_to_a_pruned_version_restores_it_or_refuses(tmp_path, base):
    cfg = tmp_path / "models.config"
    with pytest.raises(Exception, match="not on disk and could not be restored"):
        version_admin.rollback(str(cfg), "m", to=9, base_path=str(base))
    # A pipeline root holding the pushed copy of version 9 (as VersionedPusher keeps it).
    pushed = tmp_path / "root" / "artifacts" / "VersionedPusher" / "pushed_model" / "12" / "9"
    serving_models.save(pushed, a=9.0, b=0.0)
    (pushed / "assets.extra").mkdir(exist_ok=True)
    (pushed / "assets.extra" / "graft_provenance.json").write_text(json.dumps({"version": 9}))
    c = version_admin.rollback(str(cfg), "m", to=9, base_path=str(base),
                               pipeline_root=str(tmp_path / "root"))
    assert c.policy == "specific" and c.versions == (9,)
    assert (base / "9" / "saved_model.pb").exists()
    assert not [d for d in os.listdir(base) if d.startswith(".tmp")]


def test_concurrent_clients_and_a_version_swap_under_load_have_zero_errors(server, base):
    ps = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    errors, done = [], []

    def client(i):
        for j in range(40):
            try:
                if (i + j) % 2:
                    y = predict(server, x=1.0)
                else:
                    r = predict_pb2.PredictRequest()
                    r.model_spec.name = "m"
                    r.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
                    y = float(tf.make_ndarray(ps.Predict(r, timeout=30).outputs["y"])[0])
                if y not in (1.0, 3.0):
                    errors.append(f"unexpected {y}")
                done.append(y)
            except Exception as e:  # noqa: BLE001 - every failure counts
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    publish(base, 3, a=3.0)  # swap versions while the clients run
    for t in threads:
        t.join()
    assert errors == []
    assert len(done) == 320
    assert wait_for(lambda: predict(server) == 3.0)


def test_batching_merges_concurrent_requests(tmp_path, base):
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 100000 }\n")
    assert batching.parse_parameters(params.read_text()).max_batch_size == 64
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=str(base),
                             enable_batching=True, batching_parameters_file=str(params)))
    s.start()
    try:
        assert s.manager.wait_until_available("m")
        calls = []
        servable = s.manager.get("m")
        sig = servable.signatures["serving_default"]
        original = sig.__call__

        class Counting:
            def __init__(self, inner):
                self.inner = inner

            def __getattr__(self, k):
                return getattr(self.inner, k)

            def __call__(self, inputs):
                calls.append(len(inputs["x"]))
                return self.inner(inputs)

        servable.signatures["serving_default"] = Counting(sig)
        results, go = [], threading.Barrier(32)

        def client(i):
            go.wait()
            results.append((i, predict(s, x=i)))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [(i, float(i)) for i in range(32)]  # a=1, b=0
        assert sum(calls) == 32 and len(calls) < 32, calls
        # The REST front end has enough threads to fill a batch beyond its unbatched 8.
        assert max(calls) > 8, calls
        del original
    finally:
        s.stop()


def test_a_batched_rest_request_that_times_out_leaves_the_batcher_serving(tmp_path, base):
    """The REST front end awaits a batched predict on the event loop; its timeout answers
    504 and must not break the batch it was part of, nor the thread that runs batches."""
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }\n")
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=str(base),
                             enable_batching=True, batching_parameters_file=str(params),
                             rest_api_timeout_in_ms=300))
    s.start()
    try:
        assert s.manager.wait_until_available("m")
        servable = s.manager.get("m")
        sig = servable.signatures["serving_default"]
        slow = threading.Event()

        class Slow:
            def __getattr__(self, k):
                return getattr(sig, k)

            def __call__(self, inputs):
                if not slow.is_set():
                    slow.set()
                    time.sleep(1.0)
                return sig(inputs)
        servable.signatures["serving_default"] = Slow()
        with pytest.raises(urllib.error.HTTPError) as e:
            predict(s, x=2.0)
        assert e.value.code == 504 and "timed out" in json.loads(e.value.read())["error"]
        time.sleep(1.0)  # the slow batch finishes and hands back its rows to no one
        assert predict(s, x=5.0) == 5.0
        assert predict(s, x=7.0) == 7.0
    finally:
        s.stop()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_graft_serve_cli_predict_and_sigterm(base):
    rest_port, grpc_port = _free_port(), _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    proc = subprocess.Popen([exe, "serve", "--model_name", "m", "--model_base_path", str(base),
                             "--port", str(grpc_port), "--rest_api_port", str(rest_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ok = wait_for(lambda: json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{rest_port}/v1/models/m", timeout=2).read())
            ["model_version_status"][0]["state"] == "AVAILABLE", timeout=120)
        assert ok
        # Bound to loopback only.
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "shutting down" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serving_config_files_parse_with_tf_serving_messages(tmp_path, base):
    r = run_graft("serving-config", "--model_name", "m", "--model_base_path", str(base),
                  "--out", str(tmp_path / "cfg"))
    assert r.returncode == 0, r.stderr
    msg = text_format.Parse((tmp_path / "cfg" / "models.config").read_text(),
                            model_server_config_pb2.ModelServerConfig())
    assert msg.model_config_list.config[0].base_path == "/models/m"
    from graft.serving import tfs_config_protos as tfs
    batching_msg, skipped = tfs.parse((tmp_path / "cfg" / "batching.config").read_text(),
                                      tfs.BatchingParameters, "batching.config")
    assert not skipped and batching_msg.max_batch_size.value == 32
    assert batching_msg.num_batch_threads.value >= 1
    monitoring, skipped = tfs.parse((tmp_path / "cfg" / "monitoring.config").read_text(),
                                    tfs.MonitoringConfig, "monitoring.config")
    assert not skipped and monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    docker = (tmp_path / "cfg" / "docker-run.sh").read_text()
    assert "tensorflow/serving" in docker and f"{base}:/models/m" in docker
    assert "kind: Deployment" in (tmp_path / "cfg" / "kubernetes.yaml").read_text()


def test_serving_config_quotes_paths_and_refuses_unusable_names(tmp_path):
    import shlex

    import yaml
    from graft.serving import config_gen
    from graft.serving.status import ServingError
    base = tmp_path / "my models; rm -rf x"  # was pasted unquoted into docker-run.sh
    files = config_gen.generate("My_Model", str(base), str(tmp_path / "cfg"))
    words = shlex.split(open(files["docker-run.sh"]).read().split("\n", 2)[2].replace("\\\n", " "))
    assert words[words.index("-v") + 1] == f"{base}:/models/My_Model"
    k8s = list(yaml.safe_load_all(open(files["kubernetes.yaml"])))
    # Kubernetes object names are DNS-1123 labels: lower case, no underscore.
    assert {d["metadata"]["name"] for d in k8s} == {"my-model-serving"}
    for bad in ("", "a/b", "a b"):
        with pytest.raises(ServingError, match="model name"):
            config_gen.generate(bad, str(base), str(tmp_path / "cfg2"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ServingError, match="is a file"):
        config_gen.generate("m", str(base), str(tmp_path / "file"))


def test_cli_label_versions_and_rollback(tmp_path, base):
    publish(base, 2, a=2.0)
    cfg = str(tmp_path / "models.config")
    r = run_graft("label", "m", "stable", "1", "--model_config_file", cfg,
                  "--model_base_path", str(base))
    assert r.returncode == 0, r.stderr
    assert model_config.load(cfg)[0].labels == {"stable": 1}
    r = run_graft("label", "m", "stable", "8", "--model_config_file", cfg)
    assert r.returncode == 2 and "not on disk" in r.stderr
    r = run_graft("versions", "m", "--model_config_file", cfg)
    assert r.returncode == 0, r.stderr
    assert "stable" in r.stdout and "   2" in r.stdout
    r = run_graft("rollback", "m", "--model_config_file", cfg)
    assert r.returncode == 0 and "pinned to version 1" in r.stdout
    assert model_config.load(cfg)[0].versions == (1,)
    for args in (("versions", "m", "--model_base_path", str(tmp_path / "gone")),
                 ("label", "x", "stable", "1", "--model_config_file", str(tmp_path / "x.config"),
                  "--model_base_path", str(tmp_path / "gone"))):  # were tracebacks
        r = run_graft(*args)
        assert r.returncode == 2 and "Could not find base path" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    r = run_graft("label", "m", "stable", "1", "--model_config_file", "/dev/zero")
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr  # read for ever


@pytest.mark.parametrize("label", ["", "  ", "a\nb", "x\x7f"])
def test_a_label_that_cannot_be_requested_or_listed_is_refused(tmp_path, label):
    (tmp_path / "m" / "1").mkdir(parents=True)
    cfg = str(tmp_path / "models.config")
    with pytest.raises(Exception, match="not empty or blank, with no control characters"):
        version_admin.set_label(cfg, "m", label, 1, base_path=str(tmp_path / "m"))
    assert not os.path.exists(cfg)
    version_admin.set_label(cfg, "m", "canary-2", 1, base_path=str(tmp_path / "m"))
    assert model_config.load(cfg)[0].labels == {"canary-2": 1}


def test_versions_list_a_version_whose_provenance_is_damaged(base):
    """A version copied in by hand may carry any file under provenance's name: `graft
    versions` lists it with the problem instead of stopping at it."""
    publish(base, 2, a=2.0)
    for version, text in ((2, "[1, 2"), (1, "[1, 2]")):
        prov = base / str(version) / version_admin.PROVENANCE
        prov.parent.mkdir(exist_ok=True)
        prov.write_text(text)
    rows = {r["version"]: r for r in version_admin.describe_versions(str(base))}
    assert "is not JSON" in rows[2]["problems"][0] and "provenance" not in rows[2]
    assert "not a JSON object" in rows[1]["problems"][0]
    r = run_graft("versions", "m", "--model_base_path", str(base))
    assert r.returncode == 0 and "is not JSON" in r.stdout, r.stdout + r.stderr


def test_client_names_a_bad_server_address_and_encodes_names():
    from graft.serving.client import Client
    from graft.serving.status import Code, ServingError
    with pytest.raises(ServingError) as e:
        Client("bad::addr", timeout=5).predict_images("m", [b"x"])
    assert e.value.code == Code.INVALID_ARGUMENT and "HOST:PORT" in e.value.message
    # TF Serving percent-decodes a model name and a label taken from the path.
    assert Client("h:1")._spec_path("a b/c", None, "l/1") == "/v1/models/a%20b%2Fc/labels/l%2F1"


def test_batching_and_monitoring_files_parse_as_tf_serving_messages(tmp_path):
    from graft.serving import tfs_config_protos as tfs
    p = batching.parse_parameters("max_batch_size { value: 8 }\nnum_batch_threads { value: 3 }\n"
                                  "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    assert (p.max_batch_size, p.num_batch_threads, p.batch_timeout_micros) == (8, 3, 0)  # TF Serving: no timeout unless set
    with pytest.raises(tfs.ConfigFileError, match="b.config: 1:25 .*Couldn't parse integer"):
        batching.parse_parameters('max_batch_size { value: "many" }', "b.config")
    with pytest.raises(tfs.ConfigFileError, match="allowed_batch_sizes must be increasing"):
        batching.parse_parameters("max_batch_size { value: 8 }\nallowed_batch_sizes: 4")
    with pytest.raises(tfs.ConfigFileError, match="at least 1"):
        batching.parse_parameters("num_batch_threads { value: 0 }")
    # A field of a newer TF Serving is skipped, not fatal; the known ones still apply.
    assert batching.parse_parameters("max_batch_size { value: 16 }\n"
                                     "enable_large_batch_splitting { value: true }"
                                     ).max_batch_size == 16
    # `graft serve` refuses a broken file at start-up with the file and line, exit 2.
    bad = tmp_path / "monitoring.config"
    bad.write_text("prometheus_config { enable: yes please }")
    r = run_graft("serve", "--model_name", "m", "--model_base_path", str(tmp_path),
                  "--port", "0", "--rest_api_port", "0", "--monitoring_config_file", str(bad))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "monitoring.config: 1:29" in r.stderr and 'Expected "true" or "false"' in r.stderr
    assert "Traceback" not in r.stderr


def test_batch_takes_every_waiting_request_once_its_timeout_has_passed():
    """TF Serving's scheduler semantics: with batch_timeout_micros 0, a batch thread freed
    under load takes all requests that queued while it was busy, not one at a time."""
    import types

    import numpy as np
    release, sizes = threading.Event(), []

    class Sig:
        name = "serving_default"

        def __call__(self, inputs):
            sizes.append(len(inputs["x"]))
            if len(sizes) == 1:
                release.wait(10)  # the first batch holds the only batch thread
            return {"y": inputs["x"] * 2}

    b = batching.Batcher(batching.BatchingParameters(max_batch_size=8, batch_timeout_micros=0,
                                                     num_batch_threads=1))
    servable = types.SimpleNamespace(name="m", version=1)
    call = lambda v: b.run(servable, Sig(), {"x": np.array([v], np.float32)})  # noqa: E731
    out = {}
    first = threading.Thread(target=lambda: out.setdefault(0, call(0.0)))
    first.start()
    assert wait_for(lambda: sizes == [1])
    rest = [threading.Thread(target=lambda i=i: out.setdefault(i, call(float(i))))
            for i in range(1, 6)]
    for t in rest:
        t.start()
    assert wait_for(lambda: b._queues[("m", 1, "serving_default")].q.qsize() == 5)
    release.set()
    for t in [first] + rest:
        t.join(10)
    assert sizes == [1, 5]
    assert {i: float(v["y"][0]) for i, v in out.items()} == {i: 2.0 * i for i in range(6)}


def test_parallel_batch_threads_share_the_cores_unless_told_otherwise(tmp_path):
    """With batching on N batch threads, TensorFlow's intra-op threads default to the
    cores / N (every batch on all cores oversubscribed the CPU and starved the REST loop:
    bench/serving_latency.py). An explicit flag or session config file still wins, and
    without batching TensorFlow's own default stays."""
    from graft.serving.batching import intra_op_threads
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 8 }\nnum_batch_threads { value: 2 }\n")
    session_file = tmp_path / "session.config"
    session_file.write_text("intra_op_parallelism_threads: 3\n")
    cores = len(os.sched_getaffinity(0))

    def intra(**kw):
        s = Server(ServerOptions(port=0, rest_api_port=0, model_name="m",
                                 model_base_path=str(tmp_path), **kw))
        return s.manager.load.session_config.intra_op_parallelism_threads

    batched = dict(enable_batching=True, batching_parameters_file=str(params))
    assert intra(**batched) == intra_op_threads(2) == max(1, cores // 2)
    assert intra(**batched, tensorflow_intra_op_parallelism=5) == 5
    assert intra(**batched, tensorflow_session_parallelism=4) == 4
    assert intra(**batched, tensorflow_session_config_file=str(session_file)) == 3
    assert intra() == 0
    # TF Serving's default without a parameters file: a batch thread per core.
    assert batching.BatchingParameters().num_batch_threads == cores
    assert intra(enable_batching=True) == (1 if cores > 1 else 0)
    assert intra_op_threads(64) == 1
