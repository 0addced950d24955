"""The ingest registry: one entry per input format, each naming its ExampleGen and its
pre-flight check. The config, the DAG, the runner and the CLI all ask this table, so a
new input format (CSV text, a folder of .txt files) is one entry here and one
ExampleGen in components/ - not an edit in four if/elif chains.

The pre-flight check runs before any TFX work: a folder that cannot train a
classifier stops the run in a second with a message that says what to fix, and its
counts give the eval split's majority-class accuracy (the trivial baseline the
Evaluator's floor must beat). TFX and TensorFlow are imported only when a format's
functions run, so reading the config stays light.
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from graft import contract

if TYPE_CHECKING:  # the config imports this module
    from graft.pipeline.config import DataConfig

Log = Callable[[str], None]


@dataclasses.dataclass
class Preflight:
    counts: Dict[str, int]          # examples per label
    eval_counts: Dict[str, int]     # eval-split examples per label
    left_out: Dict[str, List]       # ScanResult.left_out(): skipped files and duplicates, as JSON

    @property
    def majority_accuracy(self) -> float:
        return max(self.eval_counts.values()) / sum(self.eval_counts.values())


def absolute(path: str) -> str:
    """Local paths made absolute; gs:// and other URIs left as they are."""
    return path if "://" in path else os.path.abspath(path)


# ---- images: DIR/<class>/<image> ----------------------------------------------------

def span_window(data: "DataConfig") -> List[Tuple[int, str]]:
    """[(span, folder)] a run trains on, oldest first; [] when the data has no spans."""
    from graft.components.image_folder_example_gen import spans
    if data.format != "images" or not spans.layout(data.path):
        return []
    return spans.window(data.path, data.spans)


def folder_fingerprint(path: str) -> str:
    """Every file's relative path, size and mtime under ``path`` (stat only, nothing read:
    60 000 images take well under a second); "" for remote folders. A single file (a
    CSV of texts): its size and mtime."""
    if "://" in path:
        return ""
    if os.path.isfile(path):
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    return contract.tree_fingerprint(path)[:32]


def data_fingerprint(data: "DataConfig") -> Optional[str]:
    """What a run's data is: the window's span folders, or the whole folder; None when it
    cannot be known without reading it remotely (gs://, a TFDS dataset)."""
    if data.format == "tfds" or "://" in data.path or "://" in data.unlabeled:
        return None
    # The unlabelled images (AdaBN) are an input too: new ones are something new.
    extra = f",unlabeled:{folder_fingerprint(data.unlabeled)}" if data.unlabeled else ""
    window = span_window(data)
    if not window:
        return folder_fingerprint(data.path) + extra
    return ",".join(f"{name}:{folder_fingerprint(os.path.join(data.path, name))}"
                    for _, name in window) + extra


def images_example_gen(data: "DataConfig", span: Optional[int] = None):
    """ImageFolderExampleGen for the data folder: with span folders, TFX's span pattern
    (its driver takes the latest span, or ``span`` for a backfill)."""
    from graft.components.image_folder_example_gen import spans
    from graft.components.image_folder_example_gen.component import ImageFolderExampleGen
    pattern = spans.layout(data.path) or "*"
    folder = data.path
    if pattern != "*":
        found = dict(spans.folders(data.path))
        latest = span if span is not None else max(found)
        folder = os.path.join(data.path, found[latest])
    return ImageFolderExampleGen(input_base=absolute(data.path), eval_percent=data.eval_percent,
                                 pattern=pattern, data_fingerprint=folder_fingerprint(folder),
                                 span=span)


def _images_preflight(data: "DataConfig", log: Log) -> Preflight:
    from graft.components.image_folder_example_gen import scan
    window = span_window(data)
    if window:
        which = "every span" if data.spans == 0 else f"the latest {data.spans}"
        log(f"spans: {', '.join(name for _, name in window)} ({which} under {data.path})")
        result = scan.scan_many([os.path.join(data.path, name) for _, name in window],
                                id_root=data.path)
    else:
        result = scan.scan(data.path)
    dup = result.duplicate_counts()
    log(f"data: {len(result.records)} images in {len(result.counts)} classes under {data.path}"
        + (f", {len(result.skipped)} files skipped" if result.skipped else "")
        + (f", {dup[contract.DUPLICATE_COPY]} identical copies kept once" if dup[contract.DUPLICATE_COPY] else "")
        + (f", {dup[contract.DUPLICATE_LABEL_CONFLICT]} images left out: the same image is under two or "
           f"more classes" if dup[contract.DUPLICATE_LABEL_CONFLICT] else ""))
    return Preflight(result.counts, result.eval_counts(data.eval_percent), result.left_out())


# ---- tfrecord: tf.Examples with image_bytes, label, image_id -------------------------

def _tfrecord_gen(data: "DataConfig"):
    from tfx.components import ImportExampleGen  # not via tfx.v1: see pipeline/dag.py

    from graft.components.splits import hash_split
    return ImportExampleGen(input_base=absolute(data.path),
                            output_config=hash_split(data.eval_percent))


def _tfrecord_preflight(data: "DataConfig", log: Log) -> Preflight:
    from graft.pipeline import tfrecord_scan
    found = tfrecord_scan.scan(data.path, data.eval_percent)
    log(f"data: {sum(found.counts.values())} tf.Examples in {len(found.counts)} classes under "
        f"{data.path}")
    warning = found.duplicate_warning()
    if warning:
        log(warning)
    # ImportExampleGen ingests records as given: nothing is left out.
    return Preflight(found.counts, found.eval_counts, {"skipped": [], "duplicates": []})


# ---- text: a CSV or JSONL file, or DIR/<class>/*.txt -----------------------------------

def _text_gen(data: "DataConfig"):
    from graft.components.text_example_gen.component import TextExampleGen
    return TextExampleGen(absolute(data.path), eval_percent=data.eval_percent,
                          text_column=data.text_column, label_column=data.label_column)


def _text_preflight(data: "DataConfig", log: Log) -> Preflight:
    from graft.components.text_example_gen import scan
    result = scan.scan(data.path, data.text_column, data.label_column)
    kinds = [k for _, k, _ in result.duplicates]
    copies, conflicts = kinds.count(contract.DUPLICATE_COPY), kinds.count(
        contract.DUPLICATE_LABEL_CONFLICT)
    log(f"data: {len(result.records)} texts in {len(result.counts)} classes in {data.path}"
        + (f", {len(result.skipped)} rows skipped" if result.skipped else "")
        + (f", {copies} identical texts kept once" if copies else "")
        + (f", {conflicts} texts left out: the same text has two or more labels"
           if conflicts else ""))
    return Preflight(result.counts, result.eval_counts(data.eval_percent), result.left_out())


# ---- tfds: a TFDS image-classification dataset by name (needs internet) --------------

def _tfds_gen(data: "DataConfig"):
    from graft.components.tfds_example_gen.component import TfdsExampleGen
    return TfdsExampleGen(dataset=data.tfds_name, eval_percent=data.eval_percent)


@dataclasses.dataclass(frozen=True)
class IngestFormat:
    name: str
    help: str
    requires: str                                       # the DataConfig field it reads
    example_gen: Callable[["DataConfig"], object]       # -> a TFX ExampleGen component
    preflight: Optional[Callable[["DataConfig", Log], Preflight]] = None
    modality: str = "image"                             # backbones/modality.py

    def source(self, data: "DataConfig") -> str:
        """Where the data comes from, for provenance."""
        value = getattr(data, self.requires)
        return absolute(value) if self.requires == "path" else f"{self.name}:{value}"


FORMATS: Dict[str, IngestFormat] = {f.name: f for f in (
    IngestFormat("images", "an image folder DIR/<class>/<image files>", "path",
                 images_example_gen, _images_preflight),
    IngestFormat("tfrecord", "TFRecords of tf.Examples with image_bytes, label, image_id",
                 "path", _tfrecord_gen, _tfrecord_preflight),
    IngestFormat("tfds", "a TFDS image-classification dataset by name (needs internet)",
                 "tfds_name", _tfds_gen),
    IngestFormat("text", "labelled text: a .csv or .jsonl file (text and label columns), or "
                 "DIR/<class>/*.txt", "path", _text_gen, _text_preflight, modality="text"),
)}


def problem(data: "DataConfig") -> Optional[str]:
    """What is missing for the configured format, or None."""
    fmt = FORMATS.get(data.format)
    if fmt is None:
        return f"data.format must be one of {', '.join(FORMATS)}, not {data.format!r}"
    if not getattr(data, fmt.requires):
        if fmt.requires == "path":
            return "no data: pass --data DIR (a folder with one sub-folder per class)"
        return f"data.format = {fmt.name!r} needs data.{fmt.requires}"
    if fmt.name == "tfds":
        return _tfds_name_problem(data.tfds_name)
    return None


def _tfds_name_problem(name: str) -> Optional[str]:
    """TFDS's own parser of a builder name, before any component runs: a name it cannot
    parse used to stop TfdsExampleGen with TFDS's traceback."""
    from tensorflow_datasets.core import naming
    try:
        naming.parse_builder_name_kwargs(name)
    except ValueError:
        return (f"data.tfds_name {name!r} is not a TFDS dataset name: give NAME, NAME:VERSION "
                f"or NAME/CONFIG, e.g. tf_flowers or tf_flowers:3.*.*")
    return None


def preflight(data: "DataConfig", log: Log = print) -> Optional[Preflight]:
    """The format's pre-flight check; None for formats that have none (tfds)."""
    fmt = FORMATS[data.format]
    if fmt.preflight is None:
        return None
    result = fmt.preflight(data, log)
    if not result.eval_counts:
        from graft.components.image_folder_example_gen.scan import DataError
        noun = "text" if fmt.modality == "text" else "image"
        raise DataError(f"no {noun} falls in the eval split ({data.eval_percent}%): "
                        f"add {noun}s or raise data.eval_percent")
    return result
