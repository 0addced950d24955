"""The model manager: applies version policies and labels, loads and unloads.

One background thread polls every model's base path (the source), asks the
policy what to load and unload, and does it - new versions are loaded (and
their warmup replayed) before old ones are unloaded, and the last AVAILABLE
version is never unloaded while nothing else is ready. A version that fails to
load is retried as TF Serving retries it (--max_num_load_retries times, every
--load_retry_interval_micros), and at once when its files change; while the
newest version is broken, the newest one that loads serves instead (TF Serving
keeps an old version only while it runs; on a cold start it serves nothing).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from graft.contract import ServableState, VersionPolicy
from graft.serving import loader, policy, source, warmup
from graft.serving.status import ServingError, failed_precondition, invalid, not_found

log = logging.getLogger("graft.serving")


@dataclasses.dataclass
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy.LATEST
    num_versions: int = 1
    versions: Tuple[int, ...] = ()   # with VersionPolicy.SPECIFIC
    labels: Dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VersionState:
    state: ServableState = ServableState.START
    error: str = ""
    servable: Optional[loader.Servable] = None
    fingerprint: str = ""
    loaded_at: float = 0.0
    attempts: int = 0          # failed loads of these files
    retry_at: float = 0.0      # when the next retry is due


class Manager:
    def __init__(self, poll_seconds: float = 1.0, load: Optional[loader.LoadOptions] = None,
                 allow_labels_for_unavailable: bool = False,
                 on_load: Optional[Callable[[str, bool, float], None]] = None):
        self.poll_seconds = poll_seconds
        self._on_load = on_load  # (version dir, loaded?, microseconds): the metrics' hook
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.load = load or loader.LoadOptions()
        self._configs: Dict[str, ModelConfig] = {}
        self._versions: Dict[str, Dict[int, VersionState]] = {}
        self._state_lock = threading.RLock()
        self._reconcile_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._warned: set = set()

    # ---- configuration ----------------------------------------------------------
    def set_config(self, configs: List[ModelConfig]) -> None:
        """Applies exactly this set of models; loads what they want, then checks labels.

        Raises FAILED_PRECONDITION (and keeps the previous labels) when a label
        points at a version that is not AVAILABLE, as TF Serving does; with
        --allow_version_labels_for_unavailable_models a NEW label may (TF Serving's
        rule: a label in use is never moved to a version that cannot serve it)."""
        with self._reconcile_lock:
            old = self._configs
            new = {c.name: c for c in configs}
            with self._state_lock:
                for c in configs:
                    prev = old.get(c.name)
                    # Labels are checked below, after loading; until then keep the old ones.
                    self._configs[c.name] = dataclasses.replace(
                        c, labels=dict(prev.labels) if prev else {})
                    self._versions.setdefault(c.name, {})
                removed = [n for n in old if n not in new]
            for name in removed:
                self._unload_all(name)
                with self._state_lock:
                    self._configs.pop(name, None)
            for c in configs:
                self._reconcile(c.name)
            errors = []
            with self._state_lock:
                for c in configs:
                    prev_labels = old[c.name].labels if c.name in old else {}
                    bad = [(l, v) for l, v in c.labels.items()
                           if self._state(c.name, v) != ServableState.AVAILABLE
                           and not (self.allow_labels_for_unavailable
                                    and l not in prev_labels)]
                    if bad:
                        label, v = bad[0]
                        errors.append(f"Request to assign label to version {v} of model "
                                      f"{c.name}, which is not currently available for inference")
                    else:
                        self._configs[c.name].labels = dict(c.labels)
            if errors:
                raise failed_precondition(errors[0])

    # ---- polling ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="graft-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        if self.poll_seconds <= 0:
            # TF Serving's --file_system_poll_wait_seconds: 0 polls once (set_config has),
            # a negative value never; a zero wait in this loop spun a core at 100 %.
            return
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()

    def poll_once(self) -> None:
        with self._reconcile_lock:
            for name in list(self._configs):
                try:
                    self._reconcile(name)
                except Exception:  # a bug must not kill the poller
                    log.exception("reconciling model %s failed", name)

    # ---- the work ---------------------------------------------------------------
    def _state(self, name: str, version: int) -> Optional[ServableState]:
        st = self._versions.get(name, {}).get(version)
        return st.state if st else None

    def _reconcile(self, name: str) -> None:
        cfg = self._configs.get(name)
        if cfg is None:
            return
        try:
            disk = source.list_versions(cfg.base_path)
        except source.SourceError as e:
            self._warn_once((name, "base"), f"{e} for servable {name}")
            return  # a failed listing is never "zero versions": keep serving
        if not disk:
            self._warn_once((name, "empty"), f"No versions of servable {name} found under "
                                             f"base path {cfg.base_path}")
        now = time.time()
        with self._state_lock:
            versions = self._versions.setdefault(name, {})
            states = {v: s.state for v, s in versions.items()}
            broken, blocked = set(), set()
            for v, st in versions.items():
                if not st.error or v not in disk:
                    continue
                if st.fingerprint != source.fingerprint(disk[v]):
                    st.attempts = 0  # rewritten in place: a fresh start
                    continue
                broken.add(v)
                if st.attempts > self.load.max_load_retries or now < st.retry_at:
                    blocked.add(v)
        wanted = policy.wanted_versions(cfg.policy, disk, cfg.num_versions, cfg.versions)
        wanted = policy.with_fallback(cfg.policy, disk, wanted, broken)
        failed = blocked
        to_load, _ = policy.plan(wanted, states, failed)
        for v in to_load:
            self._load(name, v, disk[v])
        with self._state_lock:
            states = {v: s.state for v, s in versions.items()}
        _, to_unload = policy.plan(wanted, states, failed)
        for v in to_unload:
            self._unload(name, v)

    def _set(self, name, version, **kw) -> None:
        with self._state_lock:
            st = self._versions.setdefault(name, {}).setdefault(version, VersionState())
            for k, v in kw.items():
                setattr(st, k, v)

    def _load(self, name: str, version: int, path: str) -> None:
        fp = source.fingerprint(path)
        with self._state_lock:
            prev = self._versions.get(name, {}).get(version)
            attempts = prev.attempts if prev and prev.fingerprint == fp else 0
        self._set(name, version, state=ServableState.LOADING, error="", fingerprint=fp)
        t = time.time()
        o = self.load
        try:
            try:
                servable = loader.Servable(name, version, path, o.tags, o.session_config,
                                           o.limits)
            except Exception:
                self._loaded(path, False, t)
                raise
            self._loaded(path, True, t)
            n = warmup.replay(servable, o.warmup_iterations) if o.warmup else 0
        except Exception as e:  # LoadError, or anything a broken model raises
            attempts += 1
            left = o.max_load_retries - attempts + 1
            log.error("Loading servable %s version %d failed: %s (%s)", name, version, e,
                      f"retrying in {o.retry_interval_seconds:g} s, {left} retries left"
                      if left > 0 else "no retries left: fix or rewrite the version directory")
            self._set(name, version, state=ServableState.END, error=str(e), servable=None,
                      attempts=attempts, retry_at=time.time() + max(0.0, o.retry_interval_seconds))
            return
        self._set(name, version, state=ServableState.AVAILABLE, servable=servable,
                  loaded_at=time.time(), attempts=0)
        log.info("Successfully loaded servable version {name: %s version: %d} in %.1f s"
                 "%s", name, version, time.time() - t,
                 f" ({n} warmup requests)" if n else "")

    def _loaded(self, path: str, ok: bool, started: float) -> None:
        """The SavedModel load's outcome, for the metrics (warmup is not part of it)."""
        if self._on_load is not None:
            self._on_load(path, ok, (time.time() - started) * 1e6)

    def _unload(self, name: str, version: int) -> None:
        self._set(name, version, state=ServableState.UNLOADING)
        self._set(name, version, state=ServableState.END, servable=None)
        log.info("Unloaded servable version {name: %s version: %d}", name, version)

    def _unload_all(self, name: str) -> None:
        for v, st in list(self._versions.get(name, {}).items()):
            if st.state == ServableState.AVAILABLE:
                self._unload(name, v)

    def _warn_once(self, key, msg) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg)

    # ---- lookups (the request path) ---------------------------------------------
    def get(self, name: str, version: Optional[int] = None, label: Optional[str] = None
            ) -> loader.Servable:
        if not name:
            raise invalid("ModelSpec has no name specified.")
        with self._state_lock:
            cfg = self._configs.get(name)
            versions = self._versions.get(name, {})
            if label:
                if cfg is None or label not in cfg.labels:
                    if cfg is None:
                        raise not_found(f"Servable not found for request: Latest({name})")
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = cfg.labels[label]
            if version is not None:
                st = versions.get(version)
                if cfg is None or st is None or st.servable is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return st.servable
            ready = [v for v, st in versions.items() if st.servable is not None]
            if cfg is None or not ready:
                raise not_found(f"Servable not found for request: Latest({name})")
            return versions[max(ready)].servable

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None
               ) -> List[Tuple[int, ServableState, str]]:
        """[(version, state, error)] newest first, like GetModelStatus."""
        with self._state_lock:
            cfg = self._configs.get(name)
            versions = self._versions.get(name, {})
            if label:
                if cfg is None or label not in cfg.labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = cfg.labels[label]
            if cfg is None or not versions:
                raise not_found(f"Could not find any versions of model {name}")
            if version is not None:
                if version not in versions:
                    raise not_found(f"Could not find version {version} of model {name}")
                st = versions[version]
                return [(version, st.state, st.error)]
            return [(v, st.state, st.error) for v, st in sorted(versions.items(), reverse=True)]

    def names(self) -> List[str]:
        with self._state_lock:
            return sorted(self._configs)

    def labels(self, name: str) -> Dict[str, int]:
        with self._state_lock:
            cfg = self._configs.get(name)
            return dict(cfg.labels) if cfg else {}

    def wait_until_available(self, name: str, version: Optional[int] = None,
                             timeout: float = 60.0) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            try:
                s = self.get(name, version)
                return s is not None
            except ServingError:
                time.sleep(0.05)
        return False
