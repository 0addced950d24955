"""`graft run` and `graft init`."""
from __future__ import annotations

import json
import os
import sys

from graft.pipeline import ingest


def register(sub) -> None:
    r = sub.add_parser("run", help="one pipeline run on local Beam: ingest, validate, transform, "
                                   "train, evaluate against the champion, push")
    r.add_argument("--config", help="graft.toml (graft init writes an example)")
    r.add_argument("--data", metavar="DIR", help="image folder DIR/<class>/<images>")
    r.add_argument("--data-format", choices=sorted(ingest.FORMATS),
                   help="; ".join(f"{f.name}: {f.help}" for f in ingest.FORMATS.values()))
    r.add_argument("--tfds-name", help="TFDS dataset name (with --data-format tfds)")
    r.add_argument("--backbone", metavar="HANDLE",
                   help="registered name, TF-Hub URL or SavedModel dir (default efficientnet_lite0)")
    r.add_argument("--model-name", metavar="NAME")
    r.add_argument("--serving-dir", metavar="DIR")
    r.add_argument("--pipeline-root", metavar="DIR")
    r.add_argument("--image-size", type=int, metavar="PX")
    r.add_argument("--fine-tune", dest="fine_tune", action="store_const", const="on")
    r.add_argument("--no-fine-tune", dest="fine_tune", action="store_const", const="off")
    r.add_argument("--min-accuracy", type=float, metavar="FRACTION")
    r.add_argument("--seed", type=int)
    r.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    r.set_defaults(handler=_run)

    c = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (KFP v2 JSON)")
    c.add_argument("--kubeflow", action="store_true", required=True,
                   help="target Kubeflow Pipelines v2 / Vertex AI Pipelines")
    c.add_argument("--image", required=True, help="container image with graft installed")
    c.add_argument("--config", help="graft.toml; use gs:// paths the cluster can reach")
    c.add_argument("--data", metavar="DIR")
    c.add_argument("--pipeline-root", metavar="DIR")
    c.add_argument("--output", default="pipeline.json")
    c.set_defaults(handler=_compile)

    i = sub.add_parser("init", help="write a commented example graft.toml")
    i.add_argument("path", nargs="?", default="graft.toml")
    i.set_defaults(handler=_init)


def overrides_from_args(args) -> dict:
    o = {"data": {}, "train": {}, "evaluate": {}, "push": {}, "pipeline": {}}
    pairs = [("data", "path", args.data), ("data", "format", args.data_format),
             ("data", "tfds_name", args.tfds_name), ("train", "backbone", args.backbone),
             ("pipeline", "model_name", args.model_name),
             ("push", "serving_dir", args.serving_dir), ("pipeline", "root", args.pipeline_root),
             ("train", "image_size", args.image_size), ("train", "fine_tune", args.fine_tune),
             ("evaluate", "min_accuracy", args.min_accuracy), ("train", "seed", args.seed)]
    for section, key, value in pairs:
        if value is not None:
            o[section][key] = value
    return {k: v for k, v in o.items() if v}


def _run(args) -> int:
    from graft.pipeline import config, run_lock, runner, summary
    cfg = config.load(args.config, overrides_from_args(args))
    try:
        result = runner.run(cfg)
    except runner.RunFailed as e:
        print(f"graft: error: {e}", file=sys.stderr)
        return 1
    except run_lock.RootBusy as e:
        print(f"graft: {e}", file=sys.stderr)
        return 3
    print(summary.format_text(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def _compile(args) -> int:
    from graft.pipeline import config, kubeflow
    o = {}
    if args.data:
        o.setdefault("data", {})["path"] = args.data
    if args.pipeline_root:
        o.setdefault("pipeline", {})["root"] = args.pipeline_root
    cfg = config.load(args.config, o)
    path = kubeflow.compile_pipeline(cfg, args.image, args.output)
    print(f"wrote {path}: submit it to Kubeflow Pipelines or Vertex AI Pipelines")
    return 0


def _init(args) -> int:
    from graft.pipeline import config
    if os.path.exists(args.path):
        print(f"graft: error: {args.path} exists; not overwriting it", file=sys.stderr)
        return 2
    with open(args.path, "w") as f:
        f.write(config.EXAMPLE_TOML)
    print(f"wrote {args.path}; edit it, then: graft run --config {args.path}")
    return 0
