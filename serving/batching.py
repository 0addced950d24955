"""Dynamic batching: concurrent predict calls on the same signature are merged
into one model call, up to max_batch_size rows or batch_timeout_micros.

Thread-based (both front ends call the dataplane from worker threads): each
request puts (inputs, future) on a queue per (servable, signature); one
batcher thread per queue takes what has arrived, waits at most the timeout for
more, concatenates along the batch dimension, calls the model once and hands
each caller its rows - or the error, to every caller.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Dict

import numpy as np

IDLE_SECONDS = 30.0


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def intra_op_threads(num_batch_threads: int) -> int:
    """TensorFlow's intra-op threads per op when batch threads run batches side by side
    and nobody chose a number: the cores shared among the batch threads. TensorFlow's own
    default gives every batch all the cores, so N parallel batches run N x cores threads
    and starve the front end's thread that reads the next requests (the README's
    throughput row: bench/serving_latency.py at 32 REST clients, before and after)."""
    return max(1, cores() // max(1, num_batch_threads))


@dataclasses.dataclass
class BatchingParameters:
    """A field the file leaves out takes TF Serving's default, as its source sets them
    (SharedBatchScheduler's Options and QueueOptions): a batch thread per core, batches
    of up to 1 000 rows, no timeout, 10 batches queued."""
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=cores)


def parse_parameters(text: str, what: str = "batching parameters") -> BatchingParameters:
    """TF Serving's BatchingParameters text proto, parsed as that message.

    allowed_batch_sizes is checked as TF Serving checks it (increasing, the last
    equal to max_batch_size) so a config that works here works there; our batcher
    does not pad batches to those sizes (CPU kernels gain nothing from it)."""
    from graft.serving.tfs_config_protos import BatchingParameters as Proto
    from graft.serving.tfs_config_protos import ConfigFileError, parse
    msg, _ = parse(text, Proto, what)
    p = BatchingParameters()
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                  "num_batch_threads"):
        if msg.HasField(field):
            setattr(p, field, int(getattr(msg, field).value))
    if p.max_batch_size < 1 or p.num_batch_threads < 1 or p.max_enqueued_batches < 1:
        raise ConfigFileError(f"{what}: max_batch_size, num_batch_threads and "
                              "max_enqueued_batches must be at least 1")
    if p.batch_timeout_micros < 0:
        raise ConfigFileError(f"{what}: batch_timeout_micros must not be negative")
    sizes = list(msg.allowed_batch_sizes)
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != p.max_batch_size):
        raise ConfigFileError(f"{what}: allowed_batch_sizes must be increasing and end with "
                              f"max_batch_size ({p.max_batch_size}), got {sizes}")
    return p


def _rows(item) -> int:
    return len(next(iter(item[0].values())))


class _Queue:
    def __init__(self, servable, sig, params: BatchingParameters):
        self.servable, self.sig, self.params = servable, sig, params
        self.q: "queue.Queue" = queue.Queue(maxsize=params.max_batch_size *
                                            params.max_enqueued_batches)
        self._lock = threading.Lock()
        self._threads = max(1, params.num_batch_threads)
        self.alive = True
        for _ in range(self._threads):
            threading.Thread(target=self._loop, daemon=True, name="graft-batcher").start()

    def submit(self, item) -> bool:
        """Enqueues; False if this queue has shut down (the caller makes a new one)."""
        with self._lock:
            if not self.alive:
                return False
            self.q.put_nowait(item)  # raises queue.Full
            return True

    def _loop(self):
        while True:
            try:
                first = self.q.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                # Idle: the last thread out lets go of the servable, so an unloaded
                # version can be freed. Under the lock, so no submit slips in between.
                with self._lock:
                    if not self.q.empty():
                        continue
                    self._threads -= 1
                    if self._threads == 0:
                        self.alive = False
                    return
            items = [first]
            rows = _rows(first)
            # As TF Serving's batch scheduler: the timeout counts from when the batch's
            # first task was enqueued (not from when a free thread took it), and a batch
            # takes every task already waiting even once the timeout has passed - so with
            # batch_timeout_micros 0 a thread freed under load takes all that queued while
            # it was busy, instead of one request at a time.
            deadline = first[2] + self.params.batch_timeout_micros / 1e6
            while rows < self.params.max_batch_size:
                left = deadline - time.perf_counter()
                try:
                    nxt = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
                except queue.Empty:
                    break
                items.append(nxt)
                rows += _rows(nxt)
            self._run(items)

    def _run(self, items):
        try:
            merged = {k: np.concatenate([np.asarray(i[0][k]) for i in items])
                      for k in items[0][0]}
            out = self.sig(merged)
        except Exception as e:
            for _, fut, _ in items:
                if fut.set_running_or_notify_cancel():  # False: its caller gave up
                    fut.set_exception(e)
            return
        start = 0
        for item in items:
            n = _rows(item)
            if item[1].set_running_or_notify_cancel():
                item[1].set_result({k: v[start:start + n] for k, v in out.items()})
            start += n


class Batcher:
    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queues: Dict = {}
        self._lock = threading.Lock()

    def run(self, servable, sig, inputs):
        return self.submit(servable, sig, inputs).result()

    def submit(self, servable, sig, inputs) -> Future:
        """Queues the call; the Future gets this request's rows of the batch's outputs."""
        from graft.serving.status import Code, ServingError
        key = (servable.name, servable.version, sig.name)
        fut: Future = Future()
        while True:
            with self._lock:
                q = self._queues.get(key)
                if q is None or q.servable is not servable or not q.alive:
                    q = self._queues[key] = _Queue(servable, sig, self.params)
            try:
                if q.submit((inputs, fut, time.perf_counter())):
                    break
            except queue.Full:
                raise ServingError(Code.UNAVAILABLE, "The batch scheduling queue is full")
        return fut
