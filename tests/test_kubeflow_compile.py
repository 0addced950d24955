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
                 "BlessingReport", "VersionedPusher", "RunReport"):
        assert f"{name}_executor" in executors
        assert executors[f"{name}_executor"]["container"]["image"] == "registry.example/graft:1.0"
    assert spec["runtimeConfig"]["gcsOutputDirectory"].startswith("gs://bucket/pipelines")
    dag = json.dumps(spec["pipelineSpec"]["root"]["dag"])
    assert "gs://bucket/photos" in json.dumps(spec)
    assert "VersionedPusher" in dag
    # The embedding cache lives under the pipeline root, where every worker reaches it.
    assert "gs://bucket/pipelines/embedding_cache" in json.dumps(spec)


def _compile(tmp_path, toml: str) -> dict:
    """`graft compile --kubeflow` on a graft.toml; the compiled spec."""
    cfg = tmp_path / "graft.toml"
    cfg.write_text(toml)
    out = tmp_path / "pipeline.json"
    r = run_graft("compile", "--kubeflow", "--image", "registry.example/graft:1.0",
                  "--config", str(cfg), "--output", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def test_beam_settings_reach_every_beam_component_in_the_compiled_spec(tmp_path):
    spec = _compile(tmp_path, '[data]\npath = "gs://bucket/photos"\n[pipeline]\n'
                              'root = "gs://bucket/p"\n'
                              'beam_args = ["--runner=DataflowRunner", "--project=my-project", '
                              '"--region=europe-west4", "--temp_location=gs://bucket/tmp"]\n')
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    for name in ("ImageFolderExampleGen", "StatisticsGen", "Transform", "EmbeddingGen",
                 "Evaluator"):
        args = " ".join(executors[f"{name}_executor"]["container"]["args"])
        assert "--runner=DataflowRunner" in args and "--project=my-project" in args, name


def test_an_ensemble_with_adabn_compiles_with_the_adapter_feeding_embedding_and_training(
        tmp_path):
    spec = _compile(tmp_path, '[data]\npath = "gs://bucket/photos"\n'
                              'unlabeled = "gs://bucket/unlabeled"\n[train]\n'
                              'backbone = ["efficientnet_lite0", "efficientnet_lite1@240"]\n'
                              'adapt_batchnorm = true\n[pipeline]\nroot = "gs://bucket/p"\n')
    assert "BatchNormAdapter_executor" in spec["pipelineSpec"]["deploymentSpec"]["executors"]
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    for consumer in ("EmbeddingGen", "Trainer"):
        inputs = tasks[consumer]["inputs"]["artifacts"]
        assert inputs["adapted_backbones"]["taskOutputArtifact"]["producerTask"] == \
            "BatchNormAdapter"
    assert "efficientnet_lite1" in json.dumps(tasks["EmbeddingGen"])
    assert "gs://bucket/unlabeled" in json.dumps(tasks["BatchNormAdapter"])
