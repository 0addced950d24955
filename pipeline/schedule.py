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

# systemd.time(7) names the weekdays, Monday first; cron numbers them Sunday = 0.
_SYSTEMD_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]


class ScheduleError(ValueError):
    """A cron expression or schedule option that cannot work; the message says why."""


class Cron:
    """A 5-field cron expression, read by croniter (cron's syntax: ranges, steps, lists,
    month and weekday names, @daily and its kin) and kept as the set of values each field
    takes, so that the crontab line, the systemd timer and Kubeflow's recurring run all
    fire at the same times. `text` is the expression as written; `normalized` the same
    schedule in plain numbers, which every cron (Vixie's, cronie, robfig/cron in KFP)
    reads alike."""

    def __init__(self, text: str, fields: List[Optional[List[int]]]):
        self.text = text
        self.fields = fields  # per field: None for every value ("*"), else sorted values

    @property
    def normalized(self) -> str:
        return " ".join("*" if f is None else _runs(f, "-") for f in self.fields)

    @property
    def day_or(self) -> bool:
        """cron's rule: when both day fields are restricted, a day matching either runs."""
        return self.fields[2] is not None and self.fields[4] is not None


def _runs(values: List[int], dash: str) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7,8": consecutive runs of three or more as ranges."""
    out, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{values[i]}{dash}{values[j]}")
            i = j + 1
        else:
            out.append(str(values[i]))
            i += 1
    return ",".join(out)


def check_cron(expr: str) -> Cron:
    """Parses `expr` with croniter; ScheduleError in words for anything cron would not run
    (a day that never comes, such as 30 February, included). croniter's own extensions
    that have no crontab or systemd form (L, #, H, a seconds or a year field) are refused."""
    from croniter import croniter
    from croniter.croniter import CroniterError
    fields = expr.split()
    is_macro = len(fields) == 1 and fields[0].startswith("@")
    if not is_macro and len(fields) != 5:
        raise ScheduleError(f"--cron {expr!r}: expected 5 fields (minute hour day-of-month "
                            f"month day-of-week), e.g. \"0 3 * * *\", or one of @hourly "
                            f"@daily @weekly @monthly @yearly")
    names = ("minute", "hour", "day of month", "month", "day of week")
    for f, what, (lo, hi) in zip(fields if not is_macro else [], names,
                                 [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]):
        for part in f.split(","):
            base = part.split("/")[0]
            if what == "day of week" and base.split("-")[0] == "7" and part != "7":
                # croniter reads 7-7 as every day and 7/2 as 0/2; cron as Sunday alone
                raise ScheduleError(f"--cron: day of week {part!r}: start a range or step "
                                    f"at 0 for Sunday (7 may end one: 5-7)")
            for token in base.split("-"):
                if token[:1].upper() in ("R", "H"):  # no month or weekday name starts so
                    raise ScheduleError(f"--cron: {what} field {f!r}: R and H are croniter's "
                                        f"random and hashed values, which cron does not have")
                if token.isdecimal() and token.isascii() and not lo <= int(token) <= hi:
                    raise ScheduleError(f"--cron: {what} {token} is outside {lo}-{hi}")
    try:
        expanded, nth = croniter.expand(expr, strict=True)
    except (CroniterError, ValueError) as e:
        if is_macro:
            raise ScheduleError(f"--cron {expr!r}: not a schedule; use 5 fields or one of "
                                f"@hourly @daily @weekly @monthly @yearly") from e
        raise ScheduleError(f"--cron {expr!r}: {_croniter_words(e)}") from e
    if nth or any("l" in f for f in expanded):
        raise ScheduleError(f"--cron {expr!r}: 'L' and '#' are croniter's; cron and systemd "
                            f"have no such field")
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
    out: List[Optional[List[int]]] = []
    for f, (lo, hi) in zip(expanded, limits):
        values = None if f == ["*"] else sorted({int(v) for v in f})
        if values is not None and values == list(range(lo, hi + 1)) and hi not in (31, 6):
            values = None  # "0-59" is "*"; a list in a day field stays (cron's OR rule)
        out.append(values)
    return Cron(" ".join(fields), out)  # one line: it goes into comments and descriptions


def _croniter_words(e: Exception) -> str:
    msg = str(e)
    msg = re.sub(r"^\[[^\]]*\] ?", "", msg)
    return re.sub(r"^is not acceptable[.,]? *", "", msg).strip() or "not cron syntax"


def _systemd_field(values: Optional[List[int]]) -> str:
    return "*" if values is None else _runs(values, "..")


def on_calendar(expr: str) -> List[str]:
    """A cron expression as systemd OnCalendar= values (man systemd.time): one, or two
    when both day fields are restricted, since cron runs on a day matching either and one
    systemd calendar needs both."""
    cron = check_cron(expr)
    minute, hour, dom, month, dow = (_systemd_field(f) for f in cron.fields)
    time_of_day = f"{hour}:{minute}:00"
    days = ""
    if cron.fields[4] is not None:  # systemd's week starts on Monday: Sunday goes last
        order = sorted(cron.fields[4], key=lambda d: (d + 6) % 7)
        days = ",".join(_SYSTEMD_DOW[d] for d in order) + " "
    if cron.day_or:
        return [f"{days}*-{month}-* {time_of_day}", f"*-{month}-{dom} {time_of_day}"]
    return [f"{days}*-{month}-{dom} {time_of_day}"]


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
    schedule = check_cron(cron)
    if kind == "cron" or (kind == "auto" and not has_systemd()):
        line = (f"mkdir -p {shlex.quote(os.path.dirname(logfile))} && cd {shlex.quote(workdir)}"
                f" && {command} >> {shlex.quote(logfile)} 2>&1")
        # crontab(5): an unescaped % in the command is a newline, quoted or not.
        return {f"{name}.cron": (
            f"# graft: {name}; install with: (crontab -l; cat {name}.cron) | crontab -\n"
            f"# schedule: {schedule.text}\n"
            f"{schedule.normalized} {line.replace('%', chr(92) + '%')}\n")}
    unit, log = _unit_value(name), _unit_value(logfile)
    service = (f"[Unit]\nDescription=graft run ({unit})\n\n[Service]\nType=oneshot\n"
               f"WorkingDirectory={_unit_value(workdir)}\n"
               f"ExecStartPre=/bin/mkdir -p {_unit_exec(shlex.quote(os.path.dirname(logfile)))}\n"
               f"ExecStart={_unit_exec(command)}\n"
               f"StandardOutput=append:{log}\nStandardError=append:{log}\n")
    timer = (f"[Unit]\nDescription=graft run ({unit}) on schedule \"{schedule.text}\"\n\n"
             f"[Timer]\n"
             + "".join(f"OnCalendar={c}\n" for c in on_calendar(cron)) +
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
    schedule = check_cron(cron)
    try:
        return _upload_and_schedule(cfg, host, schedule, image, name,
                                    client or kfp.Client(host=host))
    except MaxRetryError as e:  # kfp's client retries; the last reason is the useful one
        why = re.sub(r"^<[^>]*>: ", "", str(e.reason))  # urllib3 names its connection object
        raise ScheduleError(f"cannot reach Kubeflow Pipelines at {host}: {why}") from e
    except (HTTPError, OSError) as e:
        raise ScheduleError(f"cannot reach Kubeflow Pipelines at {host}: {e}") from e
    except ApiException as e:
        raise ScheduleError(f"Kubeflow Pipelines at {host} answered {e.status} {e.reason}: "
                            f"{(e.body or '')[:300]}") from e


def _upload_and_schedule(cfg, host: str, cron: Cron, image: str, name: str, client):
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
            description=f"graft run on schedule {cron.text}",
            # KFP's cron (robfig/cron) has seconds first, and its weekdays end at 6
            cron_expression=f"0 {cron.normalized}",
            pipeline_id=pipeline.pipeline_id, version_id=versions[0].pipeline_version_id,
            params=params or None, pipeline_root=runtime.get("gcsOutputDirectory"),
            max_concurrency=1, no_catchup=True, enabled=True)
    return {"pipeline_id": pipeline.pipeline_id,
            "recurring_run_id": getattr(run, "recurring_run_id", "") or ""}
