"""The same DAG compiles to a Kubeflow Pipelines v2 spec (what a cluster would run)."""
import json

from tests.conftest import run_graft


def test_compile_for_kubeflow(tmp_path):
    out = tmp_path / "pipeline.json"
    r = run_graft("compile", "--kubeflow", "--image", "registry.example/graft:1.0",
                  "--data", "gs://bucket/photos", "--pipeline-root", "gs://bucket/pipelines",
                  "--output", str(out))
    assert r.returncode == 0, r.stderr
    spec = json.loads(out.read_text())
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    for name in ("ImageFolderExampleGen", "AnomaliesGate", "Transform", "EmbeddingGen", "Trainer",
                 "Evaluator",
                 "BlessingReport", "VersionedPusher"):
        assert f"{name}_executor" in executors
        assert executors[f"{name}_executor"]["container"]["image"] == "registry.example/graft:1.0"
    assert spec["runtimeConfig"]["gcsOutputDirectory"].startswith("gs://bucket/pipelines")
    dag = json.dumps(spec["pipelineSpec"]["root"]["dag"])
    assert "gs://bucket/photos" in json.dumps(spec)
    assert "VersionedPusher" in dag
    # The embedding cache lives under the pipeline root, where every worker reaches it.
    assert "gs://bucket/pipelines/embedding_cache" in json.dumps(spec)
