"""Benchmark: recurring runs on the demo data (openclipart, 7 classes, 160 px).

Every run is a fresh `graft run --config F` process, as a schedule starts it (its wall
time includes the interpreter's start and TensorFlow's, Beam's and TFX's imports, about
5 s here); the components' own seconds (from ML Metadata) are reported beside it.

1. A first run on span-1 (90 % of each class's files) on a fresh pipeline root.
2. The same run again: nothing new -> wall time (goal <= 5 s; a cached re-run took 60+ s).
3. span-2 added (the other 10 %), training on both spans: wall time as a fraction of
   the first run's (goal <= 40 %), with the components' times.
4. span-3 added: one new image per class (held back from span-1). What a recurring run
   of this pipeline on this data costs on this machine with next to nothing new - the
   limit a new span's run can approach; span-2's run is reported against it too.
5. The default window instead (data.spans = 1: a run trains and evaluates on the latest
   span alone): span-4 added, span-2's images mirrored - as many new pictures as span-2,
   none of them in the embedding cache.
6. The default window's floor: span-5 added, three of span-2's images per class turned a
   quarter turn - what a run on the latest span costs with next to nothing in it, the
   limit span-4's run can approach.
Writes bench/results/recurring.json (or --out).

    .venv/bin/python bench/recurring.py [--data build/data/clipart] [--no-fine-tune] [--out F]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import graft  # noqa: F401
from graft.contract import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))


def split(src: str, dst: str, later: str) -> None:
    """span-1: 90 % of each class's files less one (into dst); span-2: the other 10 %, and
    span-3: that one file (into later)."""
    for cls in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, cls)):
            continue
        files = sorted(os.listdir(os.path.join(src, cls)))
        cut = len(files) * 9 // 10
        for span, chunk, base in (("span-1", files[:cut - 1], dst),
                                  ("span-2", files[cut:], later),
                                  ("span-3", files[cut - 1:cut], later)):
            os.makedirs(os.path.join(base, span, cls), exist_ok=True)
            for f in chunk:
                shutil.copy(os.path.join(src, cls, f), os.path.join(base, span, cls, f))


def mirrored(src: str, dst: str, per_class: int = 0, turn: bool = False) -> None:
    """dst: the images of src flipped left to right (or, with ``turn``, turned a quarter
    turn) - new pictures of the same classes; ``per_class`` of each class (0: all)."""
    from PIL import Image, ImageOps
    for cls in sorted(os.listdir(src)):
        os.makedirs(os.path.join(dst, cls), exist_ok=True)
        for f in sorted(os.listdir(os.path.join(src, cls)))[:per_class or None]:
            with Image.open(os.path.join(src, cls, f)) as im:
                new = im.transpose(Image.Transpose.ROTATE_90) if turn else ImageOps.mirror(im)
                new.save(os.path.join(dst, cls, ("turned-" if turn else "mirrored-") + f))


def timed_run(tmp: str, data: str, spans: int, train: str = ""):
    """One `graft run` process on the bench's pipeline root: (wall seconds, its summary).
    ``train``: lines for the config's [train] section."""
    conf, out = os.path.join(tmp, "graft.toml"), os.path.join(tmp, "summary.json")
    with open(conf, "w") as f:  # json.dumps quotes a path as a TOML basic string
        f.write(f"[train]\n{train}[data]\npath = {json.dumps(data)}\nspans = {spans}\n"
                f"[push]\nserving_dir = {json.dumps(os.path.join(tmp, 'serving'))}\n"
                f"[pipeline]\nroot = {json.dumps(os.path.join(tmp, 'root'))}\n"
                f"model_name = \"clipart\"\n")
    t = time.time()
    done = subprocess.run([sys.executable, "-m", "graft", "run", "--config", conf,
                           "--json", out], capture_output=True, text=True)
    wall = time.time() - t
    if done.returncode != 0:
        raise SystemExit(f"graft run failed ({done.returncode}):\n{done.stdout[-3000:]}"
                         f"\n{done.stderr[-3000:]}")
    with open(out) as f:
        return wall, json.load(f)


def components(result) -> float:
    """The run's components' seconds, summed: the DAG without the process around it."""
    return round(sum((result.get("component_seconds") or {}).values()), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="build/data/clipart")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "recurring.json"))
    ap.add_argument("--no-fine-tune", action="store_true",
                    help="phase 2 off (its default, auto, turns it on from 2 000 images), as "
                         "bench/scale.py runs: for a larger --data")
    args = ap.parse_args(argv)
    train = 'fine_tune = "off"\n' if args.no_fine_tune else ""
    tmp = tempfile.mkdtemp(prefix="graft-recurring-")
    data, later = os.path.join(tmp, "data"), os.path.join(tmp, "later")
    split(args.data, data, later)
    first_s, first = timed_run(tmp, data, 0, train)
    print(f"first run (span-1): {first_s:.1f} s (components {components(first)} s), "
          f"{first.get('pushed_version')}", flush=True)
    same_s, same = timed_run(tmp, data, 0, train)
    print(f"nothing new: {same_s:.2f} s ({same.get('nothing_new')})", flush=True)
    shutil.move(os.path.join(later, "span-2"), os.path.join(data, "span-2"))
    grow_s, grow = timed_run(tmp, data, 0, train)
    print(f"span-2 added: {grow_s:.1f} s = {grow_s / first_s:.2f} of the first run; "
          f"components {components(grow)} s = {components(grow) / components(first):.2f} "
          f"(embedded {grow['embedding']['embedded']}, reused {grow['embedding']['reused']})",
          flush=True)
    shutil.move(os.path.join(later, "span-3"), os.path.join(data, "span-3"))
    floor_s, floor = timed_run(tmp, data, 0, train)
    print(f"span-3 added (one new image per class): {floor_s:.1f} s = {floor_s / first_s:.2f} "
          f"of the first run; span-2's run was {grow_s / floor_s:.2f}x this "
          f"(embedded {floor['embedding']['embedded']})", flush=True)
    mirrored(os.path.join(data, "span-2"), os.path.join(data, "span-4"))
    latest_s, latest = timed_run(tmp, data, 1, train)
    print(f"span-4 added (span-2's images mirrored), the default window (the latest span "
          f"alone): {latest_s:.1f} s = {latest_s / first_s:.2f} of the first run; components "
          f"{components(latest)} s = {components(latest) / components(first):.2f} (embedded "
          f"{latest['embedding']['embedded']}; {latest.get('pushed_version') or 'not pushed'})",
          flush=True)
    mirrored(os.path.join(data, "span-2"), os.path.join(data, "span-5"), per_class=3, turn=True)
    least_s, least = timed_run(tmp, data, 1, train)
    print(f"span-5 added (3 new images per class), the default window: {least_s:.1f} s = "
          f"{least_s / first_s:.2f} of the first run - the floor of a run on the latest span; "
          f"span-4's run was {latest_s / least_s:.2f}x this (embedded "
          f"{least['embedding']['embedded']})", flush=True)
    results = {
        "data": args.data, "fine_tune": "off" if args.no_fine_tune else "default (auto)",
        "runs": "each a fresh `graft run` process; *_run_s its wall time, *_components_s "
                "the components' own seconds",
        "first_run_s": round(first_s, 1), "first_components_s": first.get("component_seconds"),
        "first_components_total_s": components(first),
        "nothing_new_s": round(same_s, 2), "nothing_new": bool(same.get("nothing_new")),
        "new_span_run_s": round(grow_s, 1),
        "new_span_components_s": grow.get("component_seconds"),
        "new_span_over_first": round(grow_s / first_s, 3),
        "new_span_components_over_first": round(components(grow) / components(first), 3),
        "new_span_scored_on": (grow.get("evaluation") or {}).get("scored_on"),
        "new_span_embedded": grow["embedding"]["embedded"],
        "new_span_reused": grow["embedding"]["reused"],
        "one_per_class_span_run_s": round(floor_s, 1),
        "one_per_class_span_components_s": floor.get("component_seconds"),
        "one_per_class_span_over_first": round(floor_s / first_s, 3),
        "new_span_over_one_per_class_span": round(grow_s / floor_s, 3),
        "one_per_class_span_embedded": floor["embedding"]["embedded"],
        "latest_span_only_run_s": round(latest_s, 1),
        "latest_span_only_components_s": latest.get("component_seconds"),
        "latest_span_only_over_first": round(latest_s / first_s, 3),
        "latest_span_only_components_over_first": round(
            components(latest) / components(first), 3),
        "latest_span_only_embedded": latest["embedding"]["embedded"],
        "latest_span_only_pushed": latest.get("pushed_version"),
        "latest_span_floor_run_s": round(least_s, 1),
        "latest_span_floor_components_s": least.get("component_seconds"),
        "latest_span_floor_over_first": round(least_s / first_s, 3),
        "latest_span_only_over_floor": round(latest_s / least_s, 3),
        "latest_span_floor_embedded": least["embedding"]["embedded"],
        "goals": {"nothing_new_s": 5.0, "new_span_over_first": 0.40},
    }
    # The project's one way to publish a file: a killed bench never leaves half a JSON.
    atomic_write(args.out, json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
