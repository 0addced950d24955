"""`graft schedule --kubeflow`: the requests kfp's own client sends, checked by a local HTTP
server standing in for the Kubeflow Pipelines API."""
import cgi
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import run_graft


class _KfpStandIn(BaseHTTPRequestHandler):
    calls = []
    refuse_upload = False

    def log_message(self, *a):
        pass

    def _reply(self, body, code=200):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.calls.append(("GET", self.path, None))
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply({"multi_user": False})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply({})  # no experiment of that name yet
        if self.path.startswith("/apis/v2beta1/pipelines/p-1/versions"):
            return self._reply({"pipeline_versions": [
                {"pipeline_id": "p-1", "pipeline_version_id": "v-1", "display_name": "v1"}],
                "total_size": 1})
        self._reply({"error": f"unexpected GET {self.path}"}, 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path.startswith("/apis/v2beta1/pipelines/upload") and self.refuse_upload:
            return self._reply({"error": "user is not allowed to upload pipelines"}, 403)
        if self.path.startswith("/apis/v2beta1/pipelines/upload"):
            env = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": self.headers["Content-Type"],
                   "CONTENT_LENGTH": str(length)}
            form = cgi.FieldStorage(fp=io.BytesIO(raw), environ=env)
            self.calls.append(("POST", self.path, form["uploadfile"].file.read()))
            return self._reply({"pipeline_id": "p-1", "display_name": "graft-m"})
        body = json.loads(raw or b"{}")
        self.calls.append(("POST", self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            return self._reply(dict(body, experiment_id="e-1"))
        if self.path == "/apis/v2beta1/recurringruns":
            return self._reply(dict(body, recurring_run_id="r-1"))
        self._reply({"error": f"unexpected POST {self.path}"}, 404)


@pytest.fixture
def kfp_api():
    _KfpStandIn.calls, _KfpStandIn.refuse_upload = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KfpStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _KfpStandIn.calls
    server.shutdown()


def test_schedule_on_kubeflow_uploads_the_spec_and_creates_a_recurring_run(tmp_path, kfp_api):
    host, calls = kfp_api
    cfg = tmp_path / "graft.toml"
    cfg.write_text('[data]\npath = "gs://bucket/photos"\n'
                   '[pipeline]\nroot = "gs://bucket/pipelines"\nmodel_name = "m"\n')
    r = run_graft("schedule", "--kubeflow", "--host", host, "--cron", "0 3 * * fri-7",
                  "--config", str(cfg), "--image", "registry.example/graft:1.0", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "recurring run r-1" in r.stdout

    (upload,) = [c for c in calls if c[1].startswith("/apis/v2beta1/pipelines/upload")]
    assert "name=graft-m" in upload[1]
    spec = json.loads(upload[2])
    # What was uploaded parses as KFP's own PipelineSpec proto, and every component that
    # runs in a container runs on the given image (resolvers run in the KFP backend).
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    proto = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(),
                                  ignore_unknown_fields=False)
    executors = json_format.MessageToDict(proto.deployment_spec)["executors"]
    containers = {k: e["container"] for k, e in executors.items() if "container" in e}
    assert {"ImageFolderExampleGen_executor", "EmbeddingGen_executor", "Trainer_executor",
            "Evaluator_executor", "VersionedPusher_executor"} <= set(containers)
    assert {c["image"] for c in containers.values()} == {"registry.example/graft:1.0"}

    (job,) = [c[2] for c in calls if c[1] == "/apis/v2beta1/recurringruns"]
    # robfig/cron (KFP) puts seconds first, has no weekday 7 and no name ranges in every
    # version: graft sends the schedule in plain numbers
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 0,5,6"
    assert job["pipeline_version_reference"] == {"pipeline_id": "p-1",
                                                 "pipeline_version_id": "v-1"}
    assert job["experiment_id"] == "e-1" and int(job["max_concurrency"]) == 1
    assert job["runtime_config"]["pipeline_root"].startswith("gs://bucket/pipelines")
    assert job["no_catchup"] is True and job["mode"] == "ENABLE"


def test_kubeflow_schedule_needs_host_and_image(tmp_path):
    cfg = tmp_path / "graft.toml"
    cfg.write_text('[data]\npath = "gs://b/p"\n[pipeline]\nroot = "gs://b/r"\n')
    r = run_graft("schedule", "--kubeflow", "--cron", "0 3 * * *", "--config", str(cfg))
    assert r.returncode == 2 and "--host" in r.stderr


def test_kubeflow_schedule_failures_are_named_not_tracebacks(tmp_path, kfp_api):
    host, _ = kfp_api
    cfg = tmp_path / "graft.toml"
    cfg.write_text('[data]\npath = "gs://b/p"\n[pipeline]\nroot = "gs://b/r"\n')
    args = ("schedule", "--kubeflow", "--image", "img:1", "--cron", "0 3 * * *",
            "--config", str(cfg), "--host")
    _KfpStandIn.refuse_upload = True
    r = run_graft(*args, host)
    assert r.returncode == 2 and "answered 403" in r.stderr, r.stderr
    assert "not allowed to upload" in r.stderr and "Traceback" not in r.stderr
    r = run_graft(*args, "http://127.0.0.1:1")  # nothing listens there
    assert r.returncode == 2 and "cannot reach Kubeflow Pipelines at" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
