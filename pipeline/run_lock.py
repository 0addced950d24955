"""One `graft run` at a time per pipeline root.

Two runs on one root would both write ML Metadata, both compare against the same
champion and both push. The lock is an fcntl.flock on ``<root>/.graft-run.lock``:
the kernel drops it when its process ends, however it ends (kill -9 included), so
a killed run never leaves a lock that blocks the next one. The file also says who
holds it, for the message the second run prints.

Remote roots (gs://) are not locked here: there the orchestrator (Kubeflow,
Vertex) owns run concurrency and ML Metadata.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from typing import Callable, Iterator

LOCK_FILE = ".graft-run.lock"
WAIT, FAIL = "wait", "fail"


class RootBusy(RuntimeError):
    """Another run holds this pipeline root (with on_busy = "fail")."""


def _holder(f) -> str:
    try:
        f.seek(0)
        info = json.loads(f.read() or "{}")
        return (f"pid {info['pid']} on {info['host']}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['started']))}")
    except (ValueError, KeyError, OSError):
        return "another process"


@contextlib.contextmanager
def hold(root: str, on_busy: str = WAIT, log: Callable[[str], None] = print,
         poll_seconds: float = 2.0) -> Iterator[None]:
    if "://" in root:
        yield
        return
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK_FILE)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(f)
            if on_busy == FAIL:
                raise RootBusy(f"another graft run ({who}) is running on pipeline root {root}; "
                               f"try again when it ends (or set [pipeline] on_busy = \"wait\")")
            log(f"another graft run ({who}) is running on pipeline root {root}: waiting for "
                f"it to finish (set [pipeline] on_busy = \"fail\" to exit instead)")
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(poll_seconds)
            log("the other run finished; starting")
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.time()}).encode()
        try:  # straight to the file: a buffer that could not be flushed would fail again at close
            os.ftruncate(f.fileno(), 0)
            os.pwrite(f.fileno(), holder, 0)
        except OSError as e:  # a full disk: the run could not write its artifacts either
            raise OSError(e.errno, e.strerror, path) from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
