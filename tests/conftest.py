"""Shared fixtures. Importing graft first sets TF_USE_LEGACY_KERAS before TensorFlow."""
import os
import subprocess
import sys

import pytest

import graft  # noqa: F401  (must precede any TensorFlow import)

OPENCLIPART_ROOT = "/usr/share/openclipart/png"
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


def require_path(path: str, package: str) -> None:
    """Real data comes from Debian packages; `make test` installs them and sets
    GRAFT_REQUIRE_DATA=1, so there a missing package fails instead of skipping."""
    if os.path.exists(path):
        return
    msg = f"{path} missing: apt-get install {package}"
    if os.environ.get("GRAFT_REQUIRE_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def weights_file() -> str:
    from graft import backbones
    return backbones.installed_weights(backbones.REGISTRY["efficientnet_lite0"])[0]


@pytest.fixture(scope="session")
def imported_backbone(tmp_path_factory) -> str:
    """The real EfficientNet-Lite0 import (about a minute), once per test session."""
    from graft import backbones
    dest = str(tmp_path_factory.mktemp("backbones") / "efficientnet_lite0")
    return backbones.import_backbone("efficientnet_lite0", dest=dest)


@pytest.fixture(scope="session")
def text_backbone(tmp_path_factory) -> str:
    """The real all-MiniLM-L6-v2 import (about 30 s), once per test session."""
    from graft import backbones
    return backbones.import_backbone("minilm_l6",
                                     dest=str(tmp_path_factory.mktemp("backbones") / "minilm_l6"))


@pytest.fixture(scope="session")
def mpnet_backbone(tmp_path_factory) -> str:
    """The real all-mpnet-base-v2 import (about 40 s: five wheels joined), once per session."""
    from graft import backbones
    return backbones.import_backbone("mpnet_base",
                                     dest=str(tmp_path_factory.mktemp("backbones") / "mpnet_base"))


def run_graft(*args, env=None, timeout=600):
    """Runs the real `graft` console script; returns CompletedProcess (text)."""
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


# ---- the real pipeline on tiny real data, once per session --------------------
@pytest.fixture(scope="session")
def workspace(tmp_path_factory, imported_backbone):
    """Tiny real clip art (3 classes, 96 px) with a broken image and a stray text file;
    shared by the pipeline, report and page tests, so the pipeline runs once a session."""
    from graft.datasets import openclipart
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    ws = tmp_path_factory.mktemp("pipeline")
    data = ws / "clipart"
    openclipart.prepare(str(data), classes=("animals", "food", "transportation"),
                        max_per_class=30, size=96, seed=0, log=lambda s: None)
    os.remove(data / "graft_dataset.json")
    # Real-world warts: a truncated image and a stray non-image file.
    first = sorted(os.listdir(data / "food"))[0]
    blob = (data / "food" / first).read_bytes()
    (data / "food" / "broken.png").write_bytes(blob[: len(blob) // 4])
    (data / "animals" / "notes.txt").write_text("not an image")
    return {"root": ws, "data": str(data), "backbone": imported_backbone}


def pipeline_cfg(ws, **train):
    from graft.pipeline import config
    return config.load(None, {
        "data": {"path": ws["data"]},
        "train": dict({"backbone": ws["backbone"], "image_size": 96}, **train),
        "push": {"serving_dir": str(ws["root"] / "serving")},
        "pipeline": {"root": str(ws["root"] / "pipeline"), "model_name": "clipart"},
    })


@pytest.fixture(scope="session")
def first_run(workspace):
    """Run 1: no champion yet; blessed, pushes version 1."""
    from graft.pipeline import runner
    return runner.run(pipeline_cfg(workspace), log=lambda s: None)


@pytest.fixture(scope="session")
def second_run(workspace, first_run):
    """Run 2: a head regularised to uselessness plus one fine-tuning epoch: not blessed."""
    from graft.pipeline import runner
    cfg = pipeline_cfg(workspace, head_c_grid=[1e-9], fine_tune="on",
                       fine_tune_learning_rate=1e-6, fine_tune_epochs=1, fine_tune_blocks=1)
    return runner.run(cfg, log=lambda s: None)
