"""Recurring runs: a systemd timer (or a crontab line) locally, a recurring run on Kubeflow.

Local: the files call `graft run --config FILE` from the directory they were made in,
appending to ``<pipeline root>/logs/graft-run.log``. A run with nothing new exits 0 in
seconds, and the root's lock keeps two runs from overlapping, so any schedule is safe.
Kubeflow: the compiled KFP v2 spec is uploaded and a recurring run created with kfp's
own client (the same requests `kfp` itself sends).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from typing import Dict, List, Optional

_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


class ScheduleError(ValueError):
    """A cron expression or schedule option that cannot work; the message says why."""


def check_cron(expr: str) -> List[str]:
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(f"--cron {expr!r}: expected 5 fields (minute hour day-of-month "
                            f"month day-of-week), e.g. \"0 3 * * *\"")
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for f, (lo, hi), what in zip(fields, limits, ("minute", "hour", "day of month", "month",
                                                  "day of week")):
        for part in f.split(","):
            if not _FIELD.match(part):
                raise ScheduleError(f"--cron: {what} field {f!r} is not cron syntax")
            for n in re.findall(r"\d+", part.split("/")[0]):
                if not lo <= int(n) <= hi:
                    raise ScheduleError(f"--cron: {what} {n} is outside {lo}-{hi}")
    return fields


def _calendar_field(f: str, width: int = 2) -> str:
    out = []
    for part in f.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            base = "*" if not step else "0"
        base = base.replace("-", "..")
        out.append(base + (f"/{step}" if step else ""))
    return ",".join(out)


def on_calendar(expr: str) -> str:
    """A 5-field cron expression as systemd's OnCalendar= (man systemd.time)."""
    minute, hour, dom, month, dow = check_cron(expr)
    days = ""
    if dow != "*":
        names = []
        for part in dow.split(","):
            if "/" in part:
                raise ScheduleError("--cron: steps in the day-of-week field have no systemd form")
            a, _, b = part.partition("-")
            names.append(_DOW[int(a)] + (f"..{_DOW[int(b)]}" if b else ""))
        days = ",".join(names) + " "
    return (f"{days}*-{_calendar_field(month)}-{_calendar_field(dom)} "
            f"{_calendar_field(hour)}:{_calendar_field(minute)}:00")


def _graft_exe() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    return exe if os.path.exists(exe) else (shutil.which("graft") or "graft")


def _unit_value(text: str) -> str:
    """systemd.unit(5): % starts a specifier in every setting; %% is the character."""
    return text.replace("%", "%%")


def _unit_exec(text: str) -> str:
    """...and $ a variable in Exec lines, which take shell-style quotes; $$ is the character."""
    return _unit_value(text).replace("$", "$$")


def has_systemd() -> bool:
    return os.path.isdir("/run/systemd/system")


def local_files(cfg, cron: str, config_path: Optional[str], name: str,
                kind: str = "auto") -> Dict[str, str]:
    """{file name: text}: a systemd service + timer pair, or (kind "cron", or no systemd
    on this machine) one crontab line."""
    if not config_path:
        raise ScheduleError("pass --config graft.toml: the scheduled run needs its settings "
                            "in a file (graft init writes one)")
    workdir = os.getcwd()
    config_abs = os.path.abspath(config_path)
    root = cfg.pipeline.root if "://" in cfg.pipeline.root else os.path.abspath(cfg.pipeline.root)
    logfile = os.path.join(root, "logs", "graft-run.log")
    command = f"{shlex.quote(_graft_exe())} run --config {shlex.quote(config_abs)}"
    if kind == "cron" or (kind == "auto" and not has_systemd()):
        check_cron(cron)
        line = (f"mkdir -p {shlex.quote(os.path.dirname(logfile))} && cd {shlex.quote(workdir)}"
                f" && {command} >> {shlex.quote(logfile)} 2>&1")
        # crontab(5): an unescaped % in the command is a newline, quoted or not.
        return {f"{name}.cron": (
            f"# graft: {name}; install with: (crontab -l; cat {name}.cron) | crontab -\n"
            f"{cron} {line.replace('%', chr(92) + '%')}\n")}
    unit, log = _unit_value(name), _unit_value(logfile)
    service = (f"[Unit]\nDescription=graft run ({unit})\n\n[Service]\nType=oneshot\n"
               f"WorkingDirectory={_unit_value(workdir)}\n"
               f"ExecStartPre=/bin/mkdir -p {_unit_exec(shlex.quote(os.path.dirname(logfile)))}\n"
               f"ExecStart={_unit_exec(command)}\n"
               f"StandardOutput=append:{log}\nStandardError=append:{log}\n")
    timer = (f"[Unit]\nDescription=graft run ({unit}) on schedule \"{cron}\"\n\n[Timer]\n"
             f"OnCalendar={on_calendar(cron)}\n"
             f"# A run missed while the machine was off runs at the next boot.\n"
             f"Persistent=true\nUnit={unit}.service\n\n[Install]\nWantedBy=timers.target\n")
    return {f"{name}.service": service, f"{name}.timer": timer}


def install(files: Dict[str, str], out: Optional[str]) -> List[str]:
    from graft.contract import atomic_write
    out = out or os.path.expanduser("~/.config/systemd/user")
    os.makedirs(out, exist_ok=True)
    written = []
    for fname, text in files.items():
        path = os.path.join(out, fname)
        atomic_write(path, text)
        written.append(path)
    return written


def next_steps(files: Dict[str, str], name: str, out: Optional[str]) -> str:
    if any(f.endswith(".timer") for f in files):
        return (f"next: systemctl --user daemon-reload && systemctl --user enable --now "
                f"{name}.timer   (then: systemctl --user list-timers; journal and "
                f"<pipeline root>/logs/graft-run.log show each run)")
    path = os.path.join(out or os.path.expanduser("~/.config/systemd/user"), f"{name}.cron")
    return f"next: (crontab -l; cat {path}) | crontab -"


def kubeflow(cfg, host: str, cron: str, image: str, name: str, client=None) -> Dict[str, str]:
    """Uploads the compiled pipeline and creates a recurring run, with kfp's own client.

    `graft compile --kubeflow` writes a Vertex-style job (``pipelineSpec`` plus
    ``runtimeConfig``); Kubeflow Pipelines takes the PipelineSpec itself as the
    uploaded package, and the runtime config's output directory and parameters go
    with the recurring run. Not reached, refused or failed: ScheduleError in words."""
    import kfp
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError, MaxRetryError
    check_cron(cron)
    try:
        return _upload_and_schedule(cfg, host, cron, image, name,
                                    client or kfp.Client(host=host))
    except MaxRetryError as e:  # kfp's client retries; the last reason is the useful one
        why = re.sub(r"^<[^>]*>: ", "", str(e.reason))  # urllib3 names its connection object
        raise ScheduleError(f"cannot reach Kubeflow Pipelines at {host}: {why}") from e
    except (HTTPError, OSError) as e:
        raise ScheduleError(f"cannot reach Kubeflow Pipelines at {host}: {e}") from e
    except ApiException as e:
        raise ScheduleError(f"Kubeflow Pipelines at {host} answered {e.status} {e.reason}: "
                            f"{(e.body or '')[:300]}") from e


def _upload_and_schedule(cfg, host: str, cron: str, image: str, name: str, client):
    import json
    import tempfile

    from graft.pipeline import kubeflow as kf
    with tempfile.TemporaryDirectory() as tmp:
        job = json.load(open(kf.compile_pipeline(cfg, image, os.path.join(tmp, "job.json"))))
        package = os.path.join(tmp, f"{name}.yaml")  # JSON is YAML; kfp wants .yaml
        with open(package, "w") as f:
            json.dump(job["pipelineSpec"], f)
        runtime = job.get("runtimeConfig", {})
        params = {k: next(iter(v.values())) if isinstance(v, dict) else v
                  for k, v in (runtime.get("parameterValues") or runtime.get("parameters")
                               or {}).items()}
        pipeline = client.upload_pipeline(package, pipeline_name=name,
                                          description=f"graft pipeline {cfg.pipeline_name}")
        versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions or []
        if not versions:
            raise ScheduleError(f"Kubeflow at {host} lists no version of the uploaded pipeline "
                                f"{pipeline.pipeline_id}")
        experiment = client.create_experiment(name=name)
        run = client.create_recurring_run(
            experiment_id=experiment.experiment_id, job_name=name,
            description=f"graft run on schedule {cron}",
            cron_expression=f"0 {cron}",  # KFP's cron (robfig/cron) has seconds first
            pipeline_id=pipeline.pipeline_id, version_id=versions[0].pipeline_version_id,
            params=params or None, pipeline_root=runtime.get("gcsOutputDirectory"),
            max_concurrency=1, no_catchup=True, enabled=True)
    return {"pipeline_id": pipeline.pipeline_id,
            "recurring_run_id": getattr(run, "recurring_run_id", "") or ""}
