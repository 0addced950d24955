"""dataset-fashion-mnist (Debian, MIT/Expat) -> DIR/<class_name>/<file>.png.

IDX files under /usr/share/datasets/fashion-mnist: images have a 16-byte
header (magic 2051, count, rows, cols), labels an 8-byte header (magic 2049,
count), then uint8 data. 60 000 train / 10 000 test, 28x28 grayscale.
"""
from __future__ import annotations

import gzip
import os
import struct
import time
from typing import Callable, Dict, Tuple

import numpy as np
from PIL import Image

from graft.contract import atomic_dir
from graft.datasets import folder_writer

PACKAGE = "dataset-fashion-mnist"
ROOT = "/usr/share/datasets/fashion-mnist"
# The ten real class names, folder-safe ("T-shirt/top" has a slash).
CLASS_NAMES = ("tshirt_top", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle_boot")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    with gzip.open(images_path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            raise folder_writer.DatasetError(f"{images_path}: not an IDX image file")
        data = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
        if data.size != n * rows * cols:
            raise folder_writer.DatasetError(f"{images_path}: truncated")
        imgs = data.reshape(n, rows, cols)
    with gzip.open(labels_path, "rb") as f:
        magic, m = struct.unpack(">II", f.read(8))
        if magic != 2049 or m != n:
            raise folder_writer.DatasetError(f"{labels_path}: not a matching IDX label file")
        labels = np.frombuffer(f.read(m), dtype=np.uint8)
        if labels.size != m:
            raise folder_writer.DatasetError(f"{labels_path}: truncated")
    return imgs, labels


def prepare(out_dir: str, split: str = "train", per_class: int = 100, seed: int = 0,
            size: int = 0, root: str = ROOT, log: Callable[[str], None] = print) -> Dict:
    if split not in _FILES:
        raise folder_writer.DatasetError(f"--split must be train or test, not {split!r}")
    paths = [os.path.join(root, f) for f in _FILES[split]]
    for p in paths:
        if not os.path.exists(p):
            raise folder_writer.missing_package(PACKAGE, p)
    request = {"source": PACKAGE, "split": split, "per_class": per_class, "seed": seed,
               "size": size}
    manifest = folder_writer.reuse_if_same(out_dir, request)
    if manifest:
        log(f"{out_dir} already holds this dataset ({manifest['total']} images); reusing it")
        return manifest
    start = time.time()
    imgs, labels = read_idx(*paths)
    rng = np.random.default_rng(seed)
    with atomic_dir(out_dir) as tmp:
        counts = {}
        for c, name in enumerate(CLASS_NAMES):
            idx = np.flatnonzero(labels == c)
            if per_class and per_class < len(idx):
                idx = np.sort(rng.choice(idx, size=per_class, replace=False))
            os.makedirs(os.path.join(tmp, name))
            for i in idx:
                img = Image.fromarray(imgs[i], mode="L")
                if size and size != img.size[0]:
                    img = img.resize((size, size), Image.BICUBIC)
                img.save(os.path.join(tmp, name, f"{split}_{i:05d}.png"))
            counts[name] = int(len(idx))
        manifest = {"request": request, "counts": counts, "total": sum(counts.values()),
                    "skipped": [], "licence": "MIT (Zalando Research)"}
        folder_writer.write_manifest(tmp, manifest)
    log(f"wrote {manifest['total']} {split} images in {len(CLASS_NAMES)} classes to {out_dir} "
        f"in {time.time() - start:.1f} s")
    return manifest
