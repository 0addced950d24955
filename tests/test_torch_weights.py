"""The restricted reader of legacy PyTorch weight files."""
import io
import os
import pickle

import numpy as np
import pytest

from graft.backbones import torch_weights


def test_reads_the_real_efficientnet_lite0_state_dict(weights_file):
    sd = torch_weights.load_state_dict(weights_file)
    assert len(sd) == 296
    params = sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert 4_600_000 < params < 4_700_000
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_fc.weight"].dtype == np.float32
    # Real trained weights, not zeros or an init: BN variances positive and varied.
    var = sd["_bn1.running_var"]
    assert (var > 0).all() and var.std() > 1e-3


def test_truncated_file_fails_clearly(weights_file, tmp_path):
    data = open(weights_file, "rb").read()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(torch_weights.WeightsFileError, match="truncated"):
        torch_weights.load_state_dict(str(bad))


@pytest.mark.parametrize("seed", range(20))
def test_not_a_weights_file_fails_clearly(tmp_path, seed):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(np.random.default_rng(seed).bytes(1000))
    with pytest.raises(torch_weights.WeightsFileError):
        torch_weights.load_state_dict(str(bad))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/graft-pwned",))


def test_refuses_code_in_the_pickle(tmp_path):
    buf = io.BytesIO()
    for obj in (torch_weights.LEGACY_MAGIC, 1001, {"little_endian": True}, {"w": _Evil()}):
        pickle.dump(obj, buf, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(torch_weights.WeightsFileError, match="refusing to load"):
        torch_weights.load_state_dict(str(path))
    assert not os.path.exists("/tmp/graft-pwned")
