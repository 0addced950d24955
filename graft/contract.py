"""graft's data contract: the names and numbers every room agrees on.

A leaf module: it imports nothing of graft and no TensorFlow, so the pipeline,
the components, the trainer, serving, the CLI and the tests can all read the
same spelling of a feature, a file, a signature, an artifact property or a
servable state. Change a name here and every room follows.

Also here, because they are part of the contract rather than of one room:
- the split hash (which split TFX's ExampleGen puts an example in), so the
  pre-flight check can predict the eval split before any TFX work;
- ``atomic_dir`` and ``atomic_write``: the one way graft publishes a directory or
  a file (write beside it, then rename), so no reader ever sees a half-written one.
"""
from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import os
import shutil
import tempfile
from typing import Iterator, List

# ---- images ---------------------------------------------------------------------
# The most pixels an image may declare, at ingest (graft.images, by Pillow's header)
# and inside every exported model (backbones.image_input, by the header in the graph,
# before decoding). Pillow's own bomb guard raises only at ~179 Mpx; the largest
# genuine image in our data is a few Mpx.
MAX_IMAGE_PIXELS = 50_000_000

# ---- tf.Example features (ingest -> transform -> train -> evaluate) ----------------
FEATURE_IMAGE = "image_bytes"   # encoded image file bytes, as read from disk
FEATURE_LABEL = "label"         # class name
FEATURE_ID = "image_id"         # "<class>/<relative path>": stable, the split is hashed on it
FEATURE_LABEL_ID = "label_id"   # the label's index in Transform's vocabulary
FEATURE_TEXT = "text"           # text examples: the raw UTF-8 text
FEATURE_TEXT_ID = "text_id"     # text examples: "sha256:<hex>" of the text - the split is hashed on it
LABEL_VOCABULARY = "label"      # Transform's vocabulary file name
FEATURE_EMBEDDING = "embedding"        # EmbeddingGen: the frozen backbone's feature vector
FEATURE_VIEW_DIMS = "view_dims"        # EmbeddingGen: each view's length in that vector
FEATURE_CONTENT_HASH = "content_sha256"  # sha256 of the image bytes: the embedding cache's key

SPLIT_TRAIN = "train"
SPLIT_EVAL = "eval"

# ---- SavedModel signatures and TF Serving method names -----------------------------
SERVING_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "classify"
TRANSFORM_SIGNATURE = "transform_features"   # TFMA's preprocessing function
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

# ---- files shared across rooms -----------------------------------------------------
ASSETS_EXTRA = "assets.extra"                     # inside a SavedModel: not part of the graph
MODEL_INFO_FILE = "graft_model.json"              # in assets.extra: classes, backbone, size
PROVENANCE_FILE = "graft_provenance.json"         # in assets.extra of a pushed version
MODEL_CARD_JSON = "model_card.json"               # in assets.extra of a pushed version
MODEL_CARD_MD = "model_card.md"                   # ... the same card, rendered
RUN_REPORT_TYPE = "graft.RunReport"               # its artifact type (KFP v2: <namespace>.<Name>)
RUN_REPORT_FILE = "report.html"                   # the RunReport artifact: one self-contained page
RUN_REPORT_JSON = "report.json"                   # ... and the facts it shows
WARMUP_FILE = "tf_serving_warmup_requests"        # in assets.extra: TF Serving's name
TRAINING_REPORT_FILE = "training_report.json"     # in the Trainer's model_run dir
# Inside a Model artifact, beside TFX's Format-Serving: the same model's head alone, over
# EmbeddingGen's records (trainer/export.py: export_head), written only when its backbones
# are the frozen ones that computed the vectors; the Evaluator scores it instead of running
# the backbones over the held-out images, and so does the run report's list of mistakes.
# Its assets.extra/HEAD_INFO_FILE says which vectors (the Embeddings' cache key) it takes.
HEAD_MODEL_DIR = "Head"
HEAD_INFO_FILE = "graft_head.json"
INGEST_REPORT_FILE = "ingest_report.json"         # beside the ExampleGen's splits
REASON_JSON = "reason.json"                       # the BlessingReport artifact
REASON_TEXT = "reason.txt"
METADATA_FILE = "metadata.sqlite"                 # ML Metadata under the pipeline root
LAST_VERSION_FILE = ".graft-last-version"         # under a model's serving base path
EMBEDDING_CACHE_DIR = "embedding_cache"           # under the pipeline root, kept across runs

# ---- artifact custom properties (ML Metadata) --------------------------------------
PROP_INGEST_REPORT = "ingest_report"              # Examples: skipped files, duplicates (JSON)
PROP_BLESSED = "blessed"                          # ModelBlessing, BlessingReport: 1 or 0
PROP_REASON = "reason"                            # BlessingReport: the headline
PROP_PUSHED = "pushed"                            # PushedModel: TFX's own key, 1 or 0
PROP_PUSHED_DESTINATION = "pushed_destination"    # PushedModel: TFX's own key
PROP_PUSHED_VERSION = "pushed_version"            # PushedModel: TFX's own key (a string)
PROP_VERSION = "graft_version"                    # PushedModel: the integer version
PROP_NOT_PUSHED_REASON = "graft_not_pushed_reason"
PROP_PRUNED = "graft_pruned"                      # versions removed by retention (JSON)
PROP_PROVENANCE = "graft_provenance"              # the pushed version's provenance (JSON)
PROP_SPLIT_NAMES = "split_names"                  # Embeddings: '["train", "eval"]' (JSON)
PROP_EMBEDDED = "graft_embedded"                  # Embeddings: vectors computed by this run
PROP_REUSED = "graft_reused"                      # Embeddings: vectors taken from the cache
PROP_EMBED_SECONDS = "graft_embed_seconds"        # Embeddings: wall time of the step (a string)
PROP_EMBED_MODEL_SECONDS = "graft_embed_model_seconds"  # ... of it, decoding + backbone calls
PROP_EMBEDDING_DIM = "graft_embedding_dim"        # Embeddings: the vector's length
PROP_EMBEDDING_KEY = "graft_cache_key"            # Embeddings: every view's cache key, joined
# ModelEvaluation: what the Evaluator scored - "vectors" (the models' heads on EmbeddingGen's
# held-out vectors) or "images: <why not vectors>" (the full models)
PROP_SCORED_ON = "graft_scored_on"
# Embeddings: the views (backbone x input size) whose vectors are concatenated, in order,
# with each one's length and cache key (JSON list of {"backbone", "image_size", "dim", ...})
PROP_VIEWS = "graft_views"
# AdaptedBackbones: per view, the adapted module's sub-directory and fingerprint (JSON)
PROP_ADAPTED = "graft_adapted_views"

# Why a byte-identical image was left out at ingest.
DUPLICATE_COPY = "copy"                      # same image, same class: kept once
DUPLICATE_LABEL_CONFLICT = "label_conflict"  # same image under several classes: all left out


class ServableState(enum.IntEnum):
    """A model version's state, with the numbers of TF Serving's
    ModelVersionStatus.State (get_model_status.proto)."""
    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


class VersionPolicy(str, enum.Enum):
    """Which versions on disk are served: the choices of TF Serving's
    FileSystemStoragePathSourceConfig.ServableVersionPolicy."""
    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


def is_version_name(name: str) -> bool:
    """A model version directory's name: ASCII digits only, as TF Serving parses them
    ("0007" is version 7; "²" passes str.isdigit but is no version)."""
    return name.isascii() and name.isdigit()


def safe_model_name(name: str) -> str:
    """A model name as graft writes it: it becomes a folder, a URL path segment and a
    container path, unquoted - letters, digits, '-' and '_' (others become '_')."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "model"


def is_model_name(name: str) -> bool:
    return bool(name) and safe_model_name(name) == name


def label_problem(label: str) -> str:
    """'' for a usable class name, else why it is not. tf.Transform keeps the label
    vocabulary as a text file, a label a line: a name with a line break (or another
    control character) does not survive it, and the run failed steps later."""
    bad = sorted({c for c in label if ord(c) < 32 or ord(c) == 127})
    if bad:
        return ("the class name " + repr(label) + " holds a control character ("
                + ", ".join(repr(c) for c in bad) + "): labels are kept one a line - rename it")
    if not is_unicode(label):
        return (f"the class name {label!r} is not valid Unicode (a lone surrogate, or a "
                f"folder name that is not UTF-8) - rename it")
    return ""


def is_unicode(text: str) -> bool:
    """False for a str that cannot be written as UTF-8: a lone surrogate, from JSON's
    "\\ud800" or from a file name that is not UTF-8 (os keeps its bytes that way)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- the split hash ----------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def partition_key(image_id: str) -> bytes:
    """The bytes TFX's ExampleGen hashes when it splits on the image_id feature: the
    serialized ``tf.train.Feature(bytes_list=BytesList(value=[image_id]))``.

    Encoded by hand (two length-delimited fields, tag 0x0a each) so this module needs
    no TensorFlow; a test checks it byte for byte against the proto's serialization."""
    value = image_id.encode("utf-8")
    bytes_list = b"\x0a" + _varint(len(value)) + value
    return b"\x0a" + _varint(len(bytes_list)) + bytes_list


def split_of(image_id: str, eval_percent: int) -> str:
    """Which split TFX 1.16 puts an example in, with buckets [100 - eval, eval]:
    sha256 of the partition feature modulo the bucket total (base_example_gen_executor)."""
    bucket = int(hashlib.sha256(partition_key(image_id)).hexdigest(), 16) % 100
    return SPLIT_TRAIN if bucket < 100 - eval_percent else SPLIT_EVAL


# ---- publishing a directory atomically ---------------------------------------------

TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_dir(dest: str, replace: bool = False) -> Iterator[str]:
    """Yields a fresh temp dir beside ``dest``; when the block succeeds it is renamed
    to ``dest`` (one rename: readers see nothing or everything), when it fails it is
    removed. An existing empty ``dest`` is taken over; a non-empty one is replaced
    whole with ``replace=True`` and refused otherwise (FileExistsError).

    The temp dir is named ``.tmp-<name>-<pid>-<random>``: TF Serving and graft serve
    ignore names that are not integers, and ``remove_stale_temps`` can tell one left
    by a killed process from one that is still being written."""
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.path.basename(dest)}-{os.getpid()}-",
                           dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide a model from a server run as another user
        yield tmp
        if os.path.isdir(dest) and not os.listdir(dest):
            os.rmdir(dest)
        if os.path.exists(dest):
            if not replace:
                raise FileExistsError(errno.EEXIST, "already exists; not replacing it", dest)
            old = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old-{os.getpid()}-", dir=parent)
            os.rename(dest, os.path.join(old, "d"))
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str, data) -> None:
    """Writes a file (str or bytes) beside its final name and renames it there, so a
    reader - a polling server, a resumed run - sees the old file or the new one, never
    half of one."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)}-{os.getpid()}-",
                               dir=parent)
    try:
        # mkstemp makes the file 0600; keep the old file's mode, or the usual 0644, so a
        # server running as another user (TF Serving in a container) can still read it.
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:  # a failed write names no file
            raise OSError(e.errno, e.strerror or str(e), path) from e
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(parent: str) -> List[str]:
    """Removes the temp dirs and files that ``atomic_dir`` and ``atomic_write`` left under
    ``parent`` in processes that no longer run (killed mid-write); returns their names.
    Others are left alone."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        # .tmp-<name>-<pid>-<random>: mkdtemp's random part has no '-', so the pid is
        # the second piece from the right whatever the name holds. Older graft versions
        # wrote .tmp-<version>-<pid>.
        parts = name.split("-")
        pid = parts[-2] if len(parts) >= 4 else (parts[-1] if len(parts) == 3 else "")
        if pid.isascii() and pid.isdigit() and not _alive(int(pid)):
            path = os.path.join(parent, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            removed.append(name)
    return removed


def tree_fingerprint(path: str) -> str:
    """sha256 over every file's relative path, size and mtime under ``path``, at any
    depth (stat only, nothing read). Changes when any file is added, grown, touched or
    removed: serving retries a version completed in place; a run sees new data."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mtime_ns}\n"
                     .encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def class_names(transform_output: str) -> List[str]:
    """Transform's label vocabulary (LABEL_VOCABULARY), in its order: a label's index here is
    its label_id everywhere - EmbeddingGen's records, the Trainer, the export, TFMA."""
    import tensorflow_transform as tft
    vocab = tft.TFTransformOutput(transform_output).vocabulary_by_name(LABEL_VOCABULARY)
    return [v.decode() if isinstance(v, bytes) else v for v in vocab]


def tfrecord_compression(files) -> str:
    """TFRecordDataset's compression_type for files of one artifact: TFX's Examples are
    gzipped (*.gz); EmbeddingGen's vectors are not (an artifact from before they were,
    still in TFX's cache, reads as it was written)."""
    return "GZIP" if any(str(f).endswith(".gz") for f in files) else ""
