"""`graft serve`'s flags: every flag of tensorflow_model_server's main.cc, so a launch
script written for TF Serving starts graft unchanged, plus graft's own limits.

Each flag is one row: its name and type as main.cc declares it, its default, and
whether graft honours it. Flags that cannot apply here (GPU, TPU, TFLite, XLA, the
profiler, ALTS) are accepted, and starting prints one warning line naming each one
given. Values are written as TF's own flag parser takes them: ``--name=value`` (or
``--name value``); a bare boolean ``--name`` means true.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, List, Optional


def _bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int64(text: str) -> int:
    """An integer flag, refused beyond int64 as TF's flag parser refuses it (a larger
    value reached protobuf fields and asyncio timers, which raise on it mid-request)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not -2 ** 63 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"value out of range: {text}")
    return value


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: type
    default: Any
    help: str
    honoured: bool = True


_TFS = [
    Flag("port", int, 8500, "gRPC port; 0 disables gRPC"),
    Flag("grpc_socket_path", str, "", "also serve gRPC on this Unix socket"),
    Flag("rest_api_port", int, 8501, "REST port; 0 disables REST (graft's default is 8501, "
                                     "TF Serving's 0)"),
    Flag("rest_api_num_threads", int, 0, "REST worker threads (0: automatic)"),
    Flag("rest_api_timeout_in_ms", int, 30000, "a REST call slower than this gets 504"),
    Flag("rest_api_enable_cors_support", bool, False, "send CORS headers, answer preflights"),
    Flag("enable_batching", bool, False, "merge concurrent predicts into one model call"),
    Flag("allow_version_labels_for_unavailable_models", bool, False,
         "a new label may point at a version that is not loaded yet"),
    Flag("batching_parameters_file", str, "", "BatchingParameters text proto (a field left "
                                              "out takes TF Serving's default)"),
    Flag("enable_per_model_batching_parameters", bool, False,
         "per-model batching_params.pbtxt", honoured=False),
    Flag("model_config_file", str, "", "ModelServerConfig text proto (several models, "
                                       "version policies, labels)"),
    Flag("model_config_file_poll_wait_seconds", float, 0.0,
         "re-read --model_config_file this often (0: read once)"),
    Flag("model_name", str, "default", "name of the model (without --model_config_file)"),
    Flag("model_base_path", str, "", "directory holding the model's integer versions"),
    Flag("num_load_threads", int, 0, "load thread pool", honoured=False),
    Flag("num_unload_threads", int, 0, "unload thread pool", honoured=False),
    Flag("max_num_load_retries", int, 5, "retries of a failed load (0: try once)"),
    Flag("load_retry_interval_micros", int, 60_000_000, "wait between load retries"),
    Flag("file_system_poll_wait_seconds", float, 1.0, "poll model dirs for versions this often"),
    Flag("flush_filesystem_caches", bool, True, "flush filesystem caches after loads",
         honoured=False),
    Flag("tensorflow_session_parallelism", int, 0, "threads per session (sets intra and inter)"),
    Flag("tensorflow_session_config_file", str, "", "ConfigProto text proto for sessions"),
    Flag("tensorflow_intra_op_parallelism", int, 0, "threads within one op (0: automatic; "
         "with several batch threads, the cores shared among them)"),
    Flag("tensorflow_inter_op_parallelism", int, 0, "ops run at once (0: automatic)"),
    Flag("use_alts_credentials", bool, False, "Google ALTS credentials", honoured=False),
    Flag("ssl_config_file", str, "", "SSLConfig text proto: serve gRPC over TLS"),
    Flag("platform_config_file", str, "", "PlatformConfigMap", honoured=False),
    Flag("per_process_gpu_memory_fraction", float, 0.0, "GPU memory", honoured=False),
    Flag("saved_model_tags", str, "serve", "comma-separated tags of the MetaGraphDef to serve"),
    Flag("grpc_channel_arguments", str, "", "gRPC server arguments, k=v,k=v"),
    Flag("grpc_max_threads", int, 0, "gRPC worker threads (0: automatic)"),
    Flag("enable_model_warmup", bool, True, "replay assets.extra/tf_serving_warmup_requests"),
    Flag("num_request_iterations_for_warmup", int, 1, "times each warmup request is replayed"),
    Flag("version", bool, False, "print the version and exit"),
    Flag("monitoring_config_file", str, "", "MonitoringConfig text proto (Prometheus)"),
    Flag("remove_unused_fields_from_bundle_metagraph", bool, True, "trim the MetaGraphDef",
         honoured=False),
    Flag("prefer_tflite_model", bool, False, "TFLite", honoured=False),
    Flag("num_tflite_pools", int, 0, "TFLite", honoured=False),
    Flag("num_tflite_interpreters_per_pool", int, 0, "TFLite", honoured=False),
    Flag("enable_signature_method_name_check", bool, False,
         "Classify/Regress require the signature's method_name to match"),
    Flag("xla_cpu_compilation_enabled", bool, False, "XLA", honoured=False),
    Flag("xla_gpu_compilation_enabled", bool, False, "XLA", honoured=False),
    Flag("enable_profiler", bool, True, "TF profiler service", honoured=False),
    Flag("thread_pool_factory_config_file", str, "", "thread pool factory", honoured=False),
    Flag("mixed_precision", str, "", "mixed precision", honoured=False),
    Flag("skip_initialize_tpu", bool, False, "TPU", honoured=False),
    Flag("enable_grpc_healthcheck_service", bool, False, "grpc.health.v1 Health service"),
    Flag("enable_serialization_as_tensor_content", bool, False,
         "gRPC outputs as packed tensor_content instead of typed value fields"),
]

_GRAFT = [
    Flag("host", str, "127.0.0.1", "bind address of both APIs (graft only)"),
    Flag("max_body_bytes", int, 64 << 20, "largest request body (REST 413, gRPC "
                                          "RESOURCE_EXHAUSTED) (graft only)"),
    Flag("max_request_elements", int, 1 << 24, "most elements one input tensor may declare; "
                                               "checked before allocating (graft only)"),
    Flag("max_instances_per_request", int, 1024, "most rows (images, examples) in one "
                                                 "request (graft only)"),
    Flag("rows_per_model_call", int, 64, "a larger request runs in slices of this many rows, "
                                         "bounding its memory (graft only)"),
    Flag("max_concurrent_model_calls", int, 4, "model calls running at once, all models "
                                               "together (graft only)"),
    Flag("enable_web_ui", bool, True, "the prediction page at / on the REST port; "
                                      "--enable_web_ui=false turns it off (graft only)"),
    Flag("rest_access_log", bool, False, "log a line per REST request, as web servers do; "
                                         "off, as TF Serving logs none (graft only)"),
]

TF_SERVING_FLAGS = {f.name: f for f in _TFS}
FLAGS = {f.name: f for f in _TFS + _GRAFT}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tfs = parser.add_argument_group("tensorflow_model_server flags")
    own = parser.add_argument_group("graft's own serving limits")
    for f in _TFS + _GRAFT:
        group = tfs if f.name in TF_SERVING_FLAGS else own
        # Unhonoured flags default to None, so a given one can be told from an absent one.
        default = f.default if f.honoured else None
        text = f.help + ("" if f.honoured else " (accepted, has no effect here)")
        if f.kind is bool:
            group.add_argument(f"--{f.name}", type=_bool, nargs="?", const=True,
                               default=default, metavar="BOOL", help=text)
        else:
            group.add_argument(f"--{f.name}", type=_int64 if f.kind is int else f.kind,
                               default=default, help=text)


def ignored_flags(args) -> List[str]:
    """The flags given that graft accepts but cannot honour here, as warning lines."""
    return [f"flag --{f.name} is accepted for compatibility with tensorflow_model_server "
            f"but has no effect in graft serve ({f.help})"
            for f in _TFS if not f.honoured and getattr(args, f.name, None) is not None]


def grpc_channel_arguments(text: str) -> List[tuple]:
    """"grpc.max_connection_age_ms=2000,grpc.x=y" -> [(key, value)], ints as ints, as TF
    Serving's server.cc splits them."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"--grpc_channel_arguments: {part!r} is not key=value")
        try:
            out.append((key.strip(), int(value)))
        except ValueError:
            out.append((key.strip(), value.strip()))
    return out


def port_or_none(port: Optional[int], flag: str = "port") -> Optional[int]:
    """TF Serving's convention: port 0 switches that API off. Out of range is an error,
    as TF Serving's failed bind is: gRPC would take 99999 as 99999 - 65536 = 34463."""
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"--{flag}={port}: a port is 0-65535 (0 switches that API off)")
    return None if not port else port
