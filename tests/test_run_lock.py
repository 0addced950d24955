"""One graft run per pipeline root: a second one waits or exits, and a run killed with
SIGKILL never leaves a lock behind."""
import os
import signal
import subprocess
import sys
import time

import pytest

from graft.pipeline import run_lock

HOLDER = """
import sys, time
from graft.pipeline import run_lock
with run_lock.hold(sys.argv[1], log=lambda m: None):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_run_fails_fast_naming_the_holder(tmp_path, holder):
    with pytest.raises(run_lock.RootBusy, match=f"pid {holder.pid}"):
        with run_lock.hold(str(tmp_path), on_busy=run_lock.FAIL, log=lambda m: None):
            pass


def test_a_waiting_run_starts_when_the_holder_is_killed_with_sigkill(tmp_path, holder):
    said = []
    os.kill(holder.pid, 0)
    t = time.time()

    def kill_soon(msg):
        said.append(msg)
        if "waiting" in msg:
            os.kill(holder.pid, signal.SIGKILL)
    with run_lock.hold(str(tmp_path), on_busy=run_lock.WAIT, log=kill_soon, poll_seconds=0.05):
        ran = True
    assert ran and time.time() - t < 30
    assert any("waiting" in m and str(holder.pid) in m for m in said)
    # And after it, the root is free at once.
    with run_lock.hold(str(tmp_path), on_busy=run_lock.FAIL, log=lambda m: None):
        pass


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    with run_lock.hold(str(tmp_path), on_busy=run_lock.FAIL, log=lambda m: None):
        pass
    with run_lock.hold(str(tmp_path), on_busy=run_lock.FAIL, log=lambda m: None):
        pass


def test_graft_run_on_a_busy_root_exits_3_with_a_message(tmp_path, holder):
    from PIL import Image
    from tests.conftest import run_graft
    for c, cls in enumerate(("red", "blue")):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (8, 8), (i * 10, c * 200, 50)).save(tmp_path / "data" / cls / f"{i}.png")
    cfg = tmp_path / "graft.toml"
    cfg.write_text(f'[data]\npath = "{tmp_path / "data"}"\n'
                   f'[pipeline]\nroot = "{tmp_path}"\non_busy = "fail"\n')
    r = run_graft("run", "--config", str(cfg), timeout=300)
    assert r.returncode == 3, r.stderr
    assert f"pid {holder.pid}" in r.stderr and "Traceback" not in r.stderr
