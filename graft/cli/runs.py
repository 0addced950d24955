"""`graft runs` (what each run did), `graft report` (a run's HTML report) and
`graft schedule` (run on a timer)."""
from __future__ import annotations

import json
import os
import sys


def register(sub) -> None:
    r = sub.add_parser("runs", help="one line per run of a pipeline root, from ML Metadata")
    r.add_argument("--config", help="graft.toml (for its pipeline root)")
    r.add_argument("--pipeline-root", metavar="DIR")
    r.add_argument("--json", action="store_true", help="one JSON object per run")
    r.set_defaults(handler=_runs)

    rp = sub.add_parser("report", help="the HTML report of a run (default: the newest)")
    rp.add_argument("run", nargs="?", default="", metavar="RUN",
                    help="a run id as `graft runs` lists it (default: the newest with a report)")
    rp.add_argument("--config", help="graft.toml (for its pipeline root)")
    rp.add_argument("--pipeline-root", metavar="DIR")
    rp.add_argument("--open", action="store_true", help="open it in the default browser")
    rp.set_defaults(handler=_report)

    s = sub.add_parser("schedule", help="run `graft run` on a cron schedule: systemd timer or "
                                        "crontab locally, a recurring run on Kubeflow")
    s.add_argument("--cron", required=True, help='cron expression in local time, e.g. "0 3 * * *", '
                   '"30 2 * * mon-fri" or "@daily"; a day-of-month and a day-of-week '
                   'together run on a day matching either, as in cron')
    s.add_argument("--config", help="graft.toml the scheduled run uses")
    s.add_argument("--print", action="store_true", help="print the files instead of writing")
    s.add_argument("--out", help="where to write the unit files (default ~/.config/systemd/user)")
    s.add_argument("--kubeflow", action="store_true", help="a recurring run on Kubeflow Pipelines")
    s.add_argument("--host", help="Kubeflow Pipelines API URL (with --kubeflow)")
    s.add_argument("--image", help="container image with graft installed (with --kubeflow)")
    s.add_argument("--name", help="schedule name (default: graft-<model name>)")
    s.set_defaults(handler=_schedule)


def _root(args) -> str:
    from graft.pipeline import config
    o = {"pipeline": {"root": args.pipeline_root}} if args.pipeline_root else None
    cfg = config.load(args.config, o, validate=False)
    return cfg.metadata_path


def _runs(args) -> int:
    from graft.pipeline import history
    path = _root(args)
    runs = history.all_runs(path)
    if not runs:
        print(f"no runs recorded in {os.path.dirname(path)}", file=sys.stderr)
        return 0
    for r in runs:
        print(json.dumps(r.to_json()) if args.json else history.format_line(r))
    return 0


def _report(args) -> int:
    from graft.pipeline import history
    path = history.report_of(_root(args), None, args.run)
    if path is None or not os.path.exists(path):
        what = f"run {args.run}" if args.run else "any run"
        print(f"graft: error: no report for {what} under {os.path.dirname(_root(args))} - "
              f"`graft runs` lists the runs; reports exist for runs that reached their end",
              file=sys.stderr)
        return 2
    print(path)
    if args.open:
        import webbrowser
        if not webbrowser.open("file://" + os.path.abspath(path)):
            print("no browser found here: open the file above in one", file=sys.stderr)
    return 0


def _schedule(args) -> int:
    from graft.pipeline import config, schedule
    cfg = config.load(args.config, validate=False)
    name = args.name or f"graft-{cfg.model_name}"
    schedule.check_cron(args.cron)
    if args.kubeflow:
        if not args.host or not args.image:
            print("graft: error: --kubeflow needs --host URL and --image IMG", file=sys.stderr)
            return 2
        info = schedule.kubeflow(cfg, args.host, args.cron, args.image, name)
        print(f"Kubeflow: uploaded pipeline {info['pipeline_id']} and created recurring run "
              f"{info['recurring_run_id']} ({args.cron})")
        return 0
    files = schedule.local_files(cfg, args.cron, args.config, name)
    if args.print:
        for fname, text in files.items():
            print(f"# ---- {fname}\n{text}")
        return 0
    written = schedule.install(files, args.out)
    for path in written:
        print(f"wrote {path}")
    print(schedule.next_steps(files, name, args.out))
    return 0
