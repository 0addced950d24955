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
    return backbones.installed_weights(backbones.REGISTRY["efficientnet_lite0"])


@pytest.fixture(scope="session")
def imported_backbone(tmp_path_factory) -> str:
    """The real EfficientNet-Lite0 import (about a minute), once per test session."""
    from graft import backbones
    dest = str(tmp_path_factory.mktemp("backbones") / "efficientnet_lite0")
    return backbones.import_backbone("efficientnet_lite0", dest=dest)


def run_graft(*args, env=None, timeout=600):
    """Runs the real `graft` console script; returns CompletedProcess (text)."""
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
