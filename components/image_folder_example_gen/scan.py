"""Find and check the images of a class-per-folder dataset, before any Beam work.

Used by the ExampleGen executor and by `graft run`'s pre-flight check, so a
user hears about an empty class or a folder with no images in a second, not
after Beam has started. Bad files are listed, never fatal; a dataset that
cannot train a classifier (no images, one class, an empty class) is an error
that says what to fix.

Byte-identical files are found here too (sha256 of the file): image folders
collected from several sources are full of them (the demo's clip art is; the
README counts them). A copy under the same class is kept once
(the first by image id): otherwise copies land on both sides of the train/eval
split and the held-out accuracy - and so every champion/challenger decision -
counts images the model was trained on. An image filed under two or more
classes has no single right label: every copy is left out. Both are listed in
the run summary, with the files they duplicate; nothing on disk is touched.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Dict, List, Tuple

from graft import contract, files, images
from graft.components import dedupe, ingest_report

# Formats tf.io.decode_image reads in the model graph (serving takes raw bytes).
SUPPORTED = {"JPEG": "jpeg", "PNG": "png", "BMP": "bmp", "GIF": "gif"}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")



class DataError(ValueError):
    """The dataset cannot be used as it is; the message says what to fix."""


@dataclasses.dataclass
class ScanResult:
    root: str
    records: List[Tuple[str, str]]          # (image_id = "<class>/<relative path>", label)
    skipped: List[Tuple[str, str]]          # (image_id, reason): unreadable or not an image
    counts: Dict[str, int]
    # (image_id, kind, why it was left out); kind is contract.DUPLICATE_COPY or _LABEL_CONFLICT
    duplicates: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def duplicate_counts(self) -> Dict[str, int]:
        out = {contract.DUPLICATE_COPY: 0, contract.DUPLICATE_LABEL_CONFLICT: 0}
        for _, kind, _ in self.duplicates:
            out[kind] += 1
        return out

    def left_out(self) -> Dict[str, List[Dict[str, str]]]:
        """The files not ingested, and why, as JSON (ingest report and run summary)."""
        return ingest_report.left_out(self.skipped, self.duplicates)

    def eval_counts(self, eval_percent: int) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for image_id, label in self.records:
            if contract.split_of(image_id, eval_percent) == contract.SPLIT_EVAL:
                counts[label] = counts.get(label, 0) + 1
        return counts


def _is_remote(path: str) -> bool:
    return "://" in path


# No image this pipeline can use is near this size (50 Mpx of 32-bit BMP is 200 MB); a
# larger file with an image's name is not read into memory at all.
MAX_FILE_BYTES = 256 << 20


def read_bytes(path: str) -> bytes:
    """Local files with open() (files.open_data_file: regular files only); gs:// and other
    remote URIs through tf.io.gfile. OSError for a file over MAX_FILE_BYTES."""
    if _is_remote(path):
        import tensorflow as tf
        if tf.io.gfile.stat(path).length > MAX_FILE_BYTES:
            raise OSError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with files.open_data_file(path, MAX_FILE_BYTES) as f:
        return f.read()


def _walk(base: str):
    if _is_remote(base):
        import tensorflow as tf
        for dirpath, dirnames, filenames in tf.io.gfile.walk(base):
            yield dirpath, [d.rstrip("/") for d in dirnames], filenames
    else:
        yield from os.walk(base)


def _list_dirs(root: str):
    if _is_remote(root):
        import tensorflow as tf
        if not tf.io.gfile.isdir(root):
            raise DataError(f"data folder {root} does not exist")
        return [d.rstrip("/") for d in tf.io.gfile.listdir(root)
                if tf.io.gfile.isdir(os.path.join(root, d))]
    if not os.path.isdir(root):
        raise DataError(f"data folder {root} does not exist")
    out = []
    for d in os.listdir(root):
        path = os.path.join(root, d)
        if not _utf8(d):
            raise DataError(f"{shown(path)}: the name is not valid UTF-8 - rename it "
                            f"(class names become labels, which are UTF-8 text)")
        try:
            # TFX's ExampleGen fingerprints every entry of the data folder with a stat: a
            # symlink loop or a dangling link here would fail the run inside TFX.
            os.stat(path)
        except OSError as e:
            raise DataError(f"{shown(path)}: {e.strerror} (a symlink loop or a dangling "
                            f"link?) - remove or fix it") from e
        if os.path.isdir(path):
            out.append(d)
    return out


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
        return False


def shown(path: str) -> str:
    """A path as text that can always be printed: undecodable bytes as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if not _utf8(path) else path


def check_image(data: bytes) -> str:
    """Returns '' for a usable image (the file's bytes), else the reason it is skipped."""
    if not data:
        return "empty file (0 bytes)"
    try:
        img = images.open_checked(data)
        fmt = img.format
        img.verify()  # checks structure and checksums without decoding all pixels
    except images.ImageError as e:
        return str(e)
    except Exception as e:  # Pillow raises many types for corrupt files
        return f"corrupt image: {e}"
    if fmt not in SUPPORTED:
        return f"format {fmt} is not decodable by TensorFlow (use JPEG, PNG, BMP or GIF)"
    return ""


def scan(root: str, check: bool = True, id_root: str = "", validate: bool = True) -> ScanResult:
    """check=False skips the image-format check (the files are known to be good) but
    still reads every file, to find byte-identical copies. Image ids are relative to
    ``id_root`` (default ``root``): with span folders, the data root, so an id names
    its span ("span-2/cats/a.png") and stays unique across spans. validate=False
    (one span of several) leaves the can-this-train checks to ``scan_many``."""
    return scan_many([root], id_root or root, check, validate)


def scan_many(roots: List[str], id_root: str, check: bool = True,
              validate: bool = True) -> ScanResult:
    """Several folders of <class>/<image> (a window of spans) as one dataset."""
    classes_all: List[str] = []
    found, skipped = [], []
    for root in roots:
        classes = sorted(d for d in _list_dirs(root) if not d.startswith("."))
        problem = next(filter(None, map(contract.label_problem, classes)), "")
        if problem:
            raise DataError(f"{shown(root)}: {problem}")
        if not classes and validate and len(roots) == 1:
            raise DataError(f"no class folders in {root}: expected {root}/<class_name>/<image "
                            f"files>")
        classes_all += [c for c in classes if c not in classes_all]
        _collect(root, classes, id_root, check, found, skipped)
    classes = sorted(classes_all)
    root = roots[0] if len(roots) == 1 else id_root
    if not classes:
        raise DataError(f"no class folders in {root}: expected {root}/<class_name>/<image files>")
    records, duplicates = dedupe.deduplicate(found)
    counts = {cls: 0 for cls in classes}
    for _, cls in records:
        counts[cls] += 1
    result = ScanResult(root=root, records=records, skipped=skipped, counts=counts,
                        duplicates=duplicates)
    if validate:
        _validate(result, root)
    return result


def _collect(root, classes, id_root, check, found, skipped) -> None:
    for cls in classes:
        base = os.path.join(root, cls)
        for dirpath, dirnames, filenames in _walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                image_id = os.path.relpath(os.path.join(dirpath, name), id_root).replace(os.sep, "/")
                if not _utf8(image_id):
                    skipped.append((shown(image_id), "the file name is not valid UTF-8 - "
                                                     "rename it to include it"))
                    continue
                if not name.lower().endswith(EXTENSIONS):
                    skipped.append((image_id, "not an image file (by extension)"))
                    continue
                try:
                    data = read_bytes(os.path.join(dirpath, name))
                except Exception as e:  # noqa: BLE001 - OSError here, tf.errors.OpError on gs://
                    skipped.append((image_id, f"unreadable: {e}"))
                    continue
                reason = check_image(data) if check else ""
                if reason:
                    skipped.append((image_id, reason))
                    continue
                found.append((image_id, cls, hashlib.sha256(data).hexdigest()))


def _validate(result: ScanResult, root: str) -> None:
    counts, skipped, duplicates = result.counts, result.skipped, result.duplicates
    classes = sorted(counts)
    empty = [c for c, n in counts.items() if n == 0]
    if not result.records:
        raise DataError(f"no usable images under {root}: expected {root}/<class_name>/<image "
                        f"files> ({', '.join(EXTENSIONS)})"
                        + (f"; {len(skipped)} files were skipped" if skipped else ""))
    if empty:
        conflicts = sum(kind == contract.DUPLICATE_LABEL_CONFLICT for _, kind, _ in duplicates)
        raise DataError(f"class folder(s) with no usable images: {', '.join(empty)} - add images "
                        f"or remove the folder(s) from {root}"
                        + (f" ({conflicts} images were left out because the same image is also "
                           f"filed under another class)" if conflicts else ""))
    if len(classes) < 2:
        raise DataError(f"only one class ({classes[0]}) in {root}: a classifier needs at least "
                        f"two class folders")
