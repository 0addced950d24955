"""Find and check labelled texts before any Beam work: a CSV or JSONL file (a text and a
label column, names configurable) or a folder of DIR/<class>/*.txt files.

As the image scan does: unusable rows are listed, never fatal (an empty text, a JSONL
line that does not parse, a .txt file that is not UTF-8); a dataset that cannot train a
classifier (no texts, one class, a missing column) is a DataError that says what to fix.
Identical texts (after trimming surrounding whitespace) are kept once per class, and a
text filed under two or more labels is left out (components/dedupe.py).

Each text's id is "sha256:" + the first 20 hex digits of its sha256, so the hash split
(contract.split_of) depends on the text alone: rows added, removed or reordered never
move the others across splits. Messages name rows by file and line ("tweets.csv:17").
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from graft import contract, files
from graft.components import dedupe, ingest_report
from graft.components.image_folder_example_gen.scan import DataError

MAX_TEXT_CHARS = 100_000   # a longer "text" is a file mistaken for a row; it is skipped
FORMATS = ("csv", "jsonl", "folder")


@dataclasses.dataclass
class TextScanResult:
    root: str
    records: List[Tuple[str, str, str]]      # (text_id, label, text)
    skipped: List[Tuple[str, str]]           # (where, reason)
    counts: Dict[str, int]
    duplicates: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def left_out(self) -> Dict[str, List[Dict[str, str]]]:
        return ingest_report.left_out(self.skipped, self.duplicates)

    def eval_counts(self, eval_percent: int) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for text_id, label, _ in self.records:
            if contract.split_of(text_id, eval_percent) == contract.SPLIT_EVAL:
                counts[label] = counts.get(label, 0) + 1
        return counts


def text_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def detect_format(path: str) -> str:
    if os.path.isdir(path):
        return "folder"
    ext = os.path.splitext(path)[1].lower()
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise DataError(f"{path}: expected a .csv or .jsonl file, or a folder of <class>/*.txt")


def _check_text(value) -> str:
    """'' if usable, else why not."""
    if not isinstance(value, str):
        return f"the text is {type(value).__name__}, not a string"
    if not value.strip():
        return "empty text"
    if len(value) > MAX_TEXT_CHARS:
        return f"longer than {MAX_TEXT_CHARS} characters"
    if not contract.is_unicode(value):
        return "the text is not valid Unicode (a lone surrogate such as \\ud800)"
    return ""


def _label(value) -> Optional[str]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _open(path: str):
    """The data file, or DataError saying why it cannot be read (a pipe, a folder, ...)."""
    try:
        return files.open_data_file(path)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from e


def _not_utf8(path: str) -> str:
    """Where a file stops being UTF-8, found again on the error path: the streaming
    decoder's own offset counts from its last chunk, not from the file's start."""
    import codecs
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with _open(path) as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                # the decoder may hold back up to 3 bytes of an unfinished character
                at = max(0, offset + e.start - len(decoder.getstate()[0]))
                f.seek(0)
                for start in range(0, at, 1 << 16):
                    lines += f.read(min(1 << 16, at - start)).count(b"\n")
                return f"{path} is not UTF-8 text (byte {at}, line {lines}): save it as UTF-8"
            offset += len(chunk)
    return f"{path} is not UTF-8 text: save it as UTF-8"


def _csv_rows(path: str, text_col: str, label_col: str) -> Iterator[Tuple[str, object, object]]:
    """The rows, read as they come: the file is never held whole (bytes, text and a copy
    of it were 3x the file before a row was parsed)."""
    name = os.path.basename(path)
    dialect = "excel-tab" if path.lower().endswith(".tsv") else "excel"
    with _open(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(f, dialect=dialect)
        # A field may be as long as the file: csv's own limit (131 072 characters) made a
        # long text a traceback, where _check_text skips it in words. The limit is the csv
        # module's global; it is put back after the file.
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, size + 1))
        try:
            try:
                columns = reader.fieldnames or []
            except UnicodeDecodeError as e:
                raise DataError(_not_utf8(path)) from e
            except csv.Error as e:
                raise DataError(f"{path}, line 1: {e} - is it a CSV text file?") from e
            missing = [c for c in (text_col, label_col) if c not in columns]
            if missing:
                raise DataError(f"{path}: no column {' or '.join(repr(c) for c in missing)} (the "
                                f"columns are: {', '.join(columns) or 'none'}) - set [data] "
                                f"text_column and label_column to the names your file uses")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as e:
                    raise DataError(_not_utf8(path)) from e
                except csv.Error as e:  # a NUL byte, and the like
                    raise DataError(f"{path}, after line {reader.line_num}: {e} - is it a CSV "
                                    f"text file?") from e
                yield f"{name}:{reader.line_num}", row.get(text_col), row.get(label_col)
        finally:
            csv.field_size_limit(limit)


def _jsonl_rows(path: str, text_col: str, label_col: str):
    name = os.path.basename(path)
    with _open(path) as f:
        for n, raw in enumerate(f, start=1):
            where = f"{name}:{n}"
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                yield where, None, None, f"not a JSON object: {e}"
                continue
            except RecursionError:  # [[[[... : json's parser recurses per level
                yield where, None, None, "not a JSON object: nested too deeply"
                continue
            if not isinstance(obj, dict):
                yield where, None, None, "not a JSON object"
                continue
            missing = [c for c in (text_col, label_col) if c not in obj]
            if missing:
                yield where, None, None, f"no key {' or '.join(repr(c) for c in missing)}"
                continue
            yield where, obj[text_col], obj[label_col], ""


def _folder_rows(root: str):
    classes = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError(f"no class folders in {root}: expected {root}/<class_name>/<file>.txt, "
                        f"or a .csv / .jsonl file")
    for cls in classes:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, cls)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                where = os.path.relpath(os.path.join(dirpath, name), root)
                if not name.lower().endswith(".txt"):
                    yield where, None, None, "not a .txt file"
                    continue
                try:
                    with files.open_data_file(os.path.join(dirpath, name)) as f:
                        data = f.read(MAX_TEXT_CHARS * 4 + 1)
                except OSError as e:
                    yield where, None, None, f"unreadable: {e.strerror or e}"
                    continue
                try:
                    yield where, data.decode("utf-8-sig"), cls, ""
                except UnicodeDecodeError as e:
                    yield where, None, None, f"not UTF-8 text (byte {e.start})"


def scan(path: str, text_column: str = "text", label_column: str = "label",
         validate: bool = True) -> TextScanResult:
    if not os.path.exists(path):
        raise DataError(f"data {path} does not exist")
    fmt = detect_format(path)
    if fmt == "csv":
        rows = ((w, t, lbl, "") for w, t, lbl in _csv_rows(path, text_column, label_column))
    elif fmt == "jsonl":
        rows = _jsonl_rows(path, text_column, label_column)
    else:
        rows = _folder_rows(path)
    found: List[Tuple[str, str, str]] = []
    texts: Dict[str, str] = {}
    where_of: Dict[str, str] = {}
    skipped: List[Tuple[str, str]] = []
    for where, text, label, reason in rows:
        if not reason:
            reason = _check_text(text)
        if not reason and _label(label) is None:
            reason = "no label"
        if not reason:
            reason = contract.label_problem(_label(label))
        if reason:
            skipped.append((where, reason))
            continue
        text = text.strip()
        tid = text_id(text)
        found.append((where, _label(label), tid))  # deduplicated by the text's digest
        texts.setdefault(tid, text)
        where_of[where] = tid
    kept, duplicates = dedupe.deduplicate(found, noun="text", first_in_order=True)
    records = [(where_of[w], lbl, texts[where_of[w]]) for w, lbl in kept]
    counts: Dict[str, int] = {}
    for _, lbl, _ in records:
        counts[lbl] = counts.get(lbl, 0) + 1
    result = TextScanResult(root=path, records=records, skipped=skipped, counts=counts,
                            duplicates=duplicates)
    if validate:
        _validate(result, fmt, text_column, label_column)
    return result


def _validate(result: TextScanResult, fmt: str, text_col: str, label_col: str) -> None:
    if not result.records:
        what = (f"{result.root}/<class>/*.txt" if fmt == "folder"
                else f"rows with a {text_col!r} and a {label_col!r}")
        raise DataError(f"no usable texts in {result.root}: expected {what}"
                        + (f"; {len(result.skipped)} rows were skipped (first: "
                           f"{result.skipped[0][0]}: {result.skipped[0][1]})"
                           if result.skipped else ""))
    if len(result.counts) < 2:
        only = next(iter(result.counts))
        raise DataError(f"only one label ({only}) in {result.root}: a classifier needs at least "
                        f"two classes")
