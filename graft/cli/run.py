"""`graft run` and `graft init`."""
from __future__ import annotations

import argparse
import json
import os
import sys

from graft.pipeline import ingest


RUN_DESCRIPTION = """\
One pipeline run: ingest -> validate -> transform -> [adapt BatchNorm] -> embed -> train
-> evaluate against the model in production -> push -> report.

Transfer options - when each helps, and what it costs at serving time
(measured on clip art, and on tweets for text; README "Measured here"):
  --backbone a,b        an ensemble: features of several pretrained backbones. Helps when
                        no single backbone fits your images well (clip art: +3.0 points
                        with EfficientNet-Lite0 + Lite1@240, +3.5 with Lite2@260 too).
                        Serving runs every backbone: one-image latency 2.4x and 3.4x
                        of Lite0's.
  --backbone mpnet_base text: all-mpnet-base-v2 instead of the default all-MiniLM-L6-v2.
                        Helps on hard text (tweets: +6.0 points over TF-IDF at 100 per
                        class, MiniLM +2.6; +5.0 at 1 000). Costs about 5x the time
                        per text: embedding, and serving (one sentence 40 ms vs 8 ms).
  --multi-scale PX      the backbone also at another input size. Helps when objects vary
                        in scale (clip art: +1.6 points at 160+224 px); serving pays for
                        every size (1.8x).
  --combine             several views: concat = one head on all features; average = a
                        head per view, probabilities averaged; auto (default) = by
                        cross-validation. No serving cost either way.
  --head logistic,lda   phase 1's linear head: logistic (default), lda (shrinkage LDA), or
                        one of each averaged. With an ensemble it pays (three backbones:
                        +1.1 points on clip art, +0.4 on Fashion-MNIST, 89.3 %); on one
                        backbone it changes nothing measurable. No serving cost; training
                        pays the extra fits.
  --adapt-batchnorm     AdaBN: BatchNorm statistics re-estimated on your images (and
                        --unlabeled DIR). Meant for a domain shift in image statistics
                        (other sensors, lighting); it hurt on clip art (-4.8 points) and
                        Fashion-MNIST - check the report. No serving cost; every view is re-embedded when
                        the images it was adapted on change.
  --compare-scratch     also trains a small CNN from scratch on the same split and prints
                        the gain of transfer over it. Costs training time only.
"""


def register(sub) -> None:
    r = sub.add_parser("run", help="one pipeline run on local Beam: ingest, validate, transform, "
                                   "train, evaluate against the champion, push",
                       description=RUN_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--config", help="graft.toml (graft init writes an example)")
    r.add_argument("--data", metavar="DIR", help="image folder DIR/<class>/<images>")
    r.add_argument("--data-format", choices=sorted(ingest.FORMATS),
                   help="; ".join(f"{f.name}: {f.help}" for f in ingest.FORMATS.values()))
    r.add_argument("--tfds-name", help="TFDS dataset name (with --data-format tfds)")
    r.add_argument("--backbone", metavar="HANDLE[,HANDLE...]",
                   help="registered name, TF-Hub URL or SavedModel dir (default "
                        "efficientnet_lite0); several, comma-separated, make an ensemble; "
                        "NAME@PX runs that one at its own input size (efficientnet_lite1@240)")
    r.add_argument("--model-name", metavar="NAME")
    r.add_argument("--serving-dir", metavar="DIR")
    r.add_argument("--pipeline-root", metavar="DIR")
    r.add_argument("--image-size", type=int, metavar="PX")
    r.add_argument("--fine-tune", dest="fine_tune", action="store_const", const="on")
    r.add_argument("--no-fine-tune", dest="fine_tune", action="store_const", const="off")
    r.add_argument("--multi-scale", metavar="PX[,PX...]",
                   help="also run the backbone(s) at these input sizes, features combined")
    r.add_argument("--combine", choices=["auto", "concat", "average"],
                   help="several views: one head on all features (concat), a head per view "
                        "with probabilities averaged (average), or by cross-validation (auto)")
    r.add_argument("--head", metavar="KIND[,KIND]",
                   help="phase 1's linear head: logistic (default), lda (linear discriminant "
                        "analysis, Ledoit-Wolf shrinkage), or logistic,lda (both, "
                        "probabilities averaged)")
    r.add_argument("--adapt-batchnorm", dest="adapt_batchnorm", action="store_const", const=True,
                   help="domain adaptation (AdaBN): re-estimate the backbone's BatchNorm "
                        "statistics on your images before fitting the head")
    r.add_argument("--unlabeled", metavar="DIR",
                   help="unlabelled images from where the model will serve, for "
                        "--adapt-batchnorm")
    r.add_argument("--compare-scratch", dest="compare_scratch", action="store_const", const=True,
                   help="also train a small CNN from scratch on the same split and print "
                        "the transfer gain")
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
             ("evaluate", "min_accuracy", args.min_accuracy), ("train", "seed", args.seed),
             ("train", "combine", getattr(args, "combine", None)),
             ("train", "head", getattr(args, "head", None)),
             ("train", "adapt_batchnorm", getattr(args, "adapt_batchnorm", None)),
             ("data", "unlabeled", getattr(args, "unlabeled", None)),
             ("train", "compare_scratch", getattr(args, "compare_scratch", None))]
    scales = getattr(args, "multi_scale", None)
    if scales is not None:
        try:
            o["train"]["multi_scale"] = [int(x) for x in scales.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"graft run: error: --multi-scale takes sizes in pixels, "
                             f"e.g. --multi-scale 224 or 192,224 (got {scales!r})") from None
    for section, key, value in pairs:
        if value is not None:
            o[section][key] = value
    return {k: v for k, v in o.items() if v}


def _run(args) -> int:
    from graft.pipeline import config, run_lock, runner, summary
    cfg = config.load(args.config, overrides_from_args(args))
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        # Found now, not after the whole run.
        print(f"graft: error: --json {args.json}: its folder does not exist", file=sys.stderr)
        return 2
    try:
        result = runner.run(cfg)
    except runner.RunFailed as e:
        print(f"graft: error: {e}", file=sys.stderr)
        print("next: fix that and run again - the components that finished are reused from "
              "TFX's cache; `graft runs` lists this run as failed", file=sys.stderr)
        return 1
    except run_lock.RootBusy as e:
        print(f"graft: {e}", file=sys.stderr)
        return 3
    print(summary.format_text(result))
    if args.json:
        from graft.contract import atomic_write
        atomic_write(args.json, json.dumps(result, indent=2))
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
