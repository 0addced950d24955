"""openclipart-png (Debian, public domain) -> DIR/<category>/<file>.png.

About 8 000 clip-art PNGs under /usr/share/openclipart/png/<category>/ with
sub-folders. Each image is composited onto white (most are RGBA with a
transparent background) and downscaled to --size. Decompression bombs are
refused from their header, before decoding, and reported.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from graft import images
from graft.contract import atomic_dir
from graft.datasets import folder_writer

PACKAGE = "openclipart-png"
ROOT = "/usr/share/openclipart/png"
DEFAULT_CLASSES = ("animals", "food", "people", "plants", "transportation", "buildings", "tools")


def list_category(root: str, category: str) -> List[str]:
    """PNG paths under root/category, relative to it, sorted (deterministic)."""
    base = os.path.join(root, category)
    found = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(".png"):
                found.append(os.path.relpath(os.path.join(dirpath, name), base))
    return sorted(found)


def _convert(job: Tuple[str, str, int]) -> Tuple[str, Optional[str]]:
    src, dst, size = job
    try:
        img = images.to_rgb(images.open_checked(src))
        if size:
            img = images.fit_within(img, size)
        img.save(dst, format="PNG")
        return src, None
    except images.ImageError as e:
        return src, str(e)
    except OSError as e:
        return src, f"unreadable: {e}"


def prepare(out_dir: str, classes: Sequence[str] = DEFAULT_CLASSES,
            max_per_class: int = 0, size: int = 256, seed: int = 0, root: str = ROOT,
            log: Callable[[str], None] = print) -> Dict:
    if not os.path.isdir(root):
        raise folder_writer.missing_package(PACKAGE, root)
    available = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    unknown = [c for c in classes if c not in available]
    if unknown:
        raise folder_writer.DatasetError(
            f"unknown openclipart categories {unknown}; available: {', '.join(available)}")
    if len(set(classes)) < 2:
        raise folder_writer.DatasetError("a classification dataset needs at least 2 classes")
    request = {"source": PACKAGE, "classes": list(classes), "max_per_class": max_per_class,
               "size": size, "seed": seed}
    manifest = folder_writer.reuse_if_same(out_dir, request)
    if manifest:
        log(f"{out_dir} already holds this dataset ({manifest['total']} images); reusing it")
        return manifest

    start = time.time()
    with atomic_dir(out_dir) as tmp:
        jobs = []
        for cls in classes:
            files = list_category(root, cls)
            if max_per_class and len(files) > max_per_class:
                files = sorted(random.Random(f"{seed}:{cls}").sample(files, max_per_class))
            os.makedirs(os.path.join(tmp, cls))
            for rel in files:
                flat = rel[:-4].replace(os.sep, "__") + ".png"
                jobs.append((os.path.join(root, cls, rel), os.path.join(tmp, cls, flat), size))
        log(f"converting {len(jobs)} images from {root} ({len(classes)} classes) ...")
        skipped: List[Tuple[str, str]] = []
        with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
            for i, (src, err) in enumerate(pool.imap_unordered(_convert, jobs, chunksize=8), 1):
                if err:
                    skipped.append((src, err))
                    log(f"  skipped {src}: {err}")
                if i % 250 == 0 or i == len(jobs):
                    log(f"  {i}/{len(jobs)} images")
        counts = {cls: len(os.listdir(os.path.join(tmp, cls))) for cls in classes}
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise folder_writer.DatasetError(f"no usable images in classes {empty}")
        manifest = {"request": request, "counts": counts, "total": sum(counts.values()),
                    "skipped": [{"file": s, "reason": r} for s, r in sorted(skipped)],
                    "licence": "public domain (see /usr/share/doc/openclipart-png/copyright)"}
        folder_writer.write_manifest(tmp, manifest)
    log(f"wrote {manifest['total']} images in {len(classes)} classes to {out_dir} "
        f"in {time.time() - start:.0f} s; skipped {len(skipped)} "
        f"(listed in {os.path.join(out_dir, folder_writer.MANIFEST)})")
    return manifest
