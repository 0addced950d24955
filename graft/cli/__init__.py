"""graft.cli: the `graft` command - one entry point, sub-commands registered by topic.

Each module here (run, runs, serve, backbone, data) adds its sub-commands with
``register(subparsers)``, parses, calls into a room and prints; no work is done
here. A new command is a new module in TOPICS. May import every room; no room
imports this one (Kubeflow containers run the pipeline without it). Errors that the user can fix are
printed as one readable line (exit 2) instead of a traceback.
"""
from __future__ import annotations

import argparse
import errno
import sys
import warnings
from typing import List, Optional

import graft
from graft.cli import backbone, data, run, runs, serve

TOPICS = (run, runs, serve, backbone, data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graft",
        description="Transfer learning as a production pipeline: TF-Hub backbone -> "
                    "TFX pipeline -> TF Serving.")
    parser.add_argument("--version", action="version", version=f"graft {graft.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for topic in TOPICS:
        topic.register(sub)
    return parser


def user_errors():
    """Exception types whose message tells the user what to fix."""
    from graft import files, images
    from graft.backbones import BackboneError
    from graft.components.image_folder_example_gen.scan import DataError
    from graft.datasets.folder_writer import DatasetError
    from graft.pipeline.config import ConfigError
    from graft.pipeline.schedule import ScheduleError
    from graft.serving.source import SourceError
    from graft.serving.status import ServingError
    from graft.serving.tfs_config_protos import ConfigFileError
    return (BackboneError, ConfigError, ConfigFileError, DataError, DatasetError, ScheduleError,
            ServingError, SourceError, files.UnreadableFile, images.ImageError, FileNotFoundError)


def main(argv: Optional[List[str]] = None) -> int:
    # Google client libraries warn about Python 3.10 on every import; TFX 1.16
    # cannot run on a newer Python here, so the warning is noise for our users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except user_errors() as e:
        print(f"graft: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The machine refused (a full disk, a read-only or vanished mount, permissions):
        # nothing to fix in the command, but the file and the reason say where to look.
        # Files graft writes are written whole or not at all, so the old one stands.
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        hint = " - free space there and run again" if e.errno == errno.ENOSPC else ""
        print(f"graft: error: {e.strerror or e}{where}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("graft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
