"""`graft serve`, `graft predict`, `graft versions`, `graft label`, `graft rollback`,
`graft serving-config`: serving and version management."""
from __future__ import annotations

import logging
import os
import sys


def register(sub) -> None:
    s = sub.add_parser("serve", help="TF-Serving-compatible server: REST (8501) + gRPC (8500), "
                                     "hot-reloads versions",
                       description="Takes every flag of tensorflow_model_server (as --name=value), "
                                   "so its launch scripts run unchanged; flags that cannot apply "
                                   "here (GPU, TPU, TFLite, XLA) start with a warning.",
                       allow_abbrev=False)
    from graft.serving import flags
    flags.add_arguments(s)
    s.set_defaults(handler=_serve)

    p = sub.add_parser("predict", help="classify images (or, with --text, texts) with a served "
                                       "model (REST or gRPC)")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--text", action="append", default=[], metavar="TEXT",
                   help="a text to classify (a text model; repeat for several)")
    p.add_argument("--server", default=None, help="HOST:PORT (default localhost:8501, "
                                                  "or :8500 with --grpc)")
    p.add_argument("--grpc", action="store_true")
    p.add_argument("--model", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--version", type=int)
    g.add_argument("--label")
    p.set_defaults(handler=_predict)

    v = sub.add_parser("versions", help="versions on disk with provenance, what is served, labels")
    v.add_argument("name")
    v.add_argument("--model_base_path", help="default: from --model_config_file")
    v.add_argument("--model_config_file")
    v.add_argument("--server", help="HOST:PORT of a running REST API, to show what it serves")
    v.set_defaults(handler=_versions)

    lb = sub.add_parser("label", help="point LABEL at VERSION in models.config (atomic rewrite)")
    lb.add_argument("name")
    lb.add_argument("label")
    lb.add_argument("version", type=int)
    lb.add_argument("--model_config_file", default="models.config")
    lb.add_argument("--model_base_path")
    lb.set_defaults(handler=_label)

    rb = sub.add_parser("rollback", help="pin the model to an earlier version in models.config")
    rb.add_argument("name")
    rb.add_argument("--to", default=None, help="version number, or 'latest' to unpin "
                                                "(default: the version before the newest)")
    rb.add_argument("--model_config_file", default="models.config")
    rb.add_argument("--model_base_path")
    rb.add_argument("--pipeline-root", help="restore a version no longer on disk from here")
    rb.set_defaults(handler=_rollback)

    sc = sub.add_parser("serving-config", help="configs for real tensorflow/serving: "
                                               "models.config, batching, monitoring, docker, k8s")
    sc.add_argument("--model_name", required=True)
    sc.add_argument("--model_base_path", required=True)
    sc.add_argument("--out", default="serving_config")
    sc.set_defaults(handler=_serving_config)


def _serve(args) -> int:
    import dataclasses
    from graft import files
    from graft.serving import flags
    from graft.serving.server import Server, ServerOptions
    from graft.serving.status import ServingError
    if args.version:
        import graft
        import tensorflow as tf
        print(f"TensorFlow ModelServer: graft-{graft.__version__}\n"
              f"TensorFlow Library: {tf.__version__}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for line in flags.ignored_flags(args):
        logging.getLogger("graft.serving").warning("%s", line)
    known = {f.name for f in dataclasses.fields(ServerOptions)}
    values = {k: v for k, v in vars(args).items() if k in known}
    try:
        ports = dict(port=flags.port_or_none(args.port),
                     rest_api_port=flags.port_or_none(args.rest_api_port, "rest_api_port"))
    except ValueError as e:
        print(f"graft serve: {e}", file=sys.stderr)
        return 2
    values.update(warmup=args.enable_model_warmup,
                  model_config_file=args.model_config_file or None,
                  model_base_path=args.model_base_path or None,
                  batching_parameters_file=args.batching_parameters_file or None,
                  monitoring_config_file=args.monitoring_config_file or None, **ports)
    try:
        server = Server(ServerOptions(**values))
    except ServingError as e:  # a model config that does not parse or says nothing servable
        print(f"graft serve: {e.message}", file=sys.stderr)
        return 2
    except (ValueError, files.UnreadableFile) as e:  # --grpc_channel_arguments, a config file
        print(f"graft serve: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"graft serve: could not read {e.filename or 'a config file'}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except OSError as e:  # a port in use
        print(f"graft serve: {e}", file=sys.stderr)
        return 1
    return 0


def _predict(args) -> int:
    from graft.serving.client import Client
    from graft.serving.status import ServingError
    server = args.server or ("localhost:8500" if args.grpc else "localhost:8501")
    client = Client(server, use_grpc=args.grpc)
    if bool(args.images) == bool(args.text):
        print("graft: error: give image files, or --text \"...\" for a text model (not both)",
              file=sys.stderr)
        return 2
    from graft import files
    images = []
    for path in args.images:
        try:  # a regular file, at most what a server takes in one body by default
            with files.open_data_file(path, 64 << 20) as f:
                images.append(f.read())
        except OSError as e:
            print(f"graft: error: {path}: {e.strerror or e}", file=sys.stderr)
            return 2
    try:
        if args.text:
            results = client.predict_texts(args.model, args.text, args.version, args.label)
        else:
            results = client.predict_images(args.model, images, args.version, args.label)
    except ServingError as e:
        print(f"graft: error: {e.message}", file=sys.stderr)
        return 1
    for what, (label, score) in zip(args.text or args.images, results):
        print(f"{what}\t{label}\t{score:.3f}")
    return 0


def _model_config(args):
    """The model's entry in --model_config_file, if it has one."""
    if args.model_config_file and os.path.exists(args.model_config_file):
        from graft.serving import model_config
        return next((c for c in model_config.load(args.model_config_file)
                     if c.name == args.name), None)
    return None


def _versions(args) -> int:
    from graft.contract import VersionPolicy
    from graft.serving import version_admin
    cfg = _model_config(args)
    base = args.model_base_path or (cfg.base_path if cfg else None)
    if not base:
        raise FileNotFoundError("pass --model_base_path (or a --model_config_file that has "
                                "the model)")
    labels = cfg.labels if cfg else {}
    served = {}
    if args.server:
        from graft.serving.client import Client
        served = dict(Client(args.server).status(args.name))
    rows = version_admin.describe_versions(base)
    policy = (cfg.policy.value + (f" {list(cfg.versions)}" if cfg.policy == VersionPolicy.SPECIFIC
                                  else "")) if cfg else "latest (default)"
    print(f"model {args.name} at {base}; version policy: {policy}")
    for r in rows:
        v = r["version"]
        tags = [l for l, lv in labels.items() if lv == v]
        state = served.get(v, "")
        prov = r.get("provenance", {})
        evaluation = prov.get("evaluation")
        acc = evaluation.get("accuracy") if isinstance(evaluation, dict) else None
        print(f"  {v:>4}  {state:10s} labels: {','.join(tags) or '-':12s} "
              f"pushed {prov.get('pushed_at', '?')}  backbone {prov.get('backbone', '?')}  "
              f"eval accuracy {round(acc, 3) if isinstance(acc, (int, float)) else '?'}  run {prov.get('pipeline_run_id', '?')}")
        for problem in r.get("problems", ()):
            print(f"        ({problem})")
    if not rows:
        print("  (no versions on disk)")
    return 0


def _label(args) -> int:
    from graft.serving import version_admin
    from graft.serving.status import ServingError
    try:
        cfg = version_admin.set_label(args.model_config_file, args.name, args.label, args.version,
                                      args.model_base_path)
    except ServingError as e:
        print(f"graft: error: {e.message}", file=sys.stderr)
        return 2
    print(f"{args.model_config_file}: {args.name} label {args.label} -> {args.version} "
          f"(labels now {cfg.labels})")
    return 0


def _rollback(args) -> int:
    from graft.serving import version_admin
    from graft.serving.status import ServingError
    try:
        if args.to == "latest":
            cfg = version_admin.unpin(args.model_config_file, args.name)
            print(f"{args.model_config_file}: {args.name} serves the latest version again")
            return 0
        to = int(args.to) if args.to is not None else None
        cfg = version_admin.rollback(args.model_config_file, args.name, to,
                                     args.model_base_path, args.pipeline_root)
    except ServingError as e:
        print(f"graft: error: {e.message}", file=sys.stderr)
        return 2
    except ValueError:
        print("graft: error: --to takes a version number or 'latest'", file=sys.stderr)
        return 2
    print(f"{args.model_config_file}: {args.name} pinned to version {cfg.versions[0]}; a server "
          f"polling this file switches without a restart (undo: graft rollback {args.name} "
          f"--to latest)")
    return 0


def _serving_config(args) -> int:
    from graft.serving import config_gen
    files = config_gen.generate(args.model_name, args.model_base_path, args.out)
    for name, path in files.items():
        print(path)
    print(f"run the real server: sh {files['docker-run.sh']}")
    return 0
