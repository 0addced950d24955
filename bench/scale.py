"""Benchmark: does the cost of `graft run` grow with the data, and no faster?

Fashion-MNIST's train split (Debian dataset-fashion-mnist) at several sizes (default
5 000, 15 000 and all 60 000 images), the pipeline's default image size, phase 2 off,
held-out = the 10 000-image test split. For each size, a fresh pipeline root and a real
`graft run` in a child process:
- wall time per component and in total, and peak resident memory of the run's whole
  process tree (sampled every 0.2 s);
- EmbeddingGen's throughput against the limit measured in the same run: the same
  SavedModel called bare, in this process, on batches of the same images (decoding
  included, as EmbeddingGen does);
- held-out accuracy on the test split (the pushed model, serving_default on image bytes).
Then the incremental case: the middle set plus 10 % new images, in place, on the same
pipeline root - how long EmbeddingGen spends against that set's first embedding.

Prints a table and writes bench/results/scale.json. A benchmark, not a timed test.
Usage: .venv/bin/python bench/scale.py [--sizes 5000,15000,60000] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import graft  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import psutil
import tensorflow as tf

from graft import backbones
from graft.datasets import fashion_mnist
from graft.pipeline import config

HERE = os.path.dirname(os.path.abspath(__file__))
GOALS = {"peak_memory_gb_largest": 4.0, "memory_ratio": 1.5, "embed_vs_limit": 0.80,
         "time_ratio_per_12x": 13.0, "incremental_embed_share": 0.15, "accuracy_largest": 0.91}


def _peak_rss(proc: subprocess.Popen, log_path: str, out: dict) -> None:
    """Samples the summed RSS of proc and all its descendants until it exits; also the
    peak while each component ran (by the '-> Component ...' lines graft run prints)."""
    peak, per_component, current = 0, {}, "start"
    try:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                total = p.memory_info().rss + sum(c.memory_info().rss
                                                  for c in p.children(recursive=True))
            except psutil.Error:
                total = 0
            with open(log_path, errors="replace") as f:
                started = [line[3:].split(" ")[0] for line in f if line.startswith("-> ")]
            current = started[-1] if started else "start"
            peak = max(peak, total)
            per_component[current] = max(per_component.get(current, 0), total)
            time.sleep(0.2)
    finally:
        out["peak_rss_bytes"] = peak
        out["per_component"] = {k: round(v / 2**30, 2) for k, v in per_component.items()}


def run_graft(data: str, root: str, serving: str, json_out: str) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    cmd = [exe, "run", "--data", data, "--pipeline-root", root, "--serving-dir", serving,
           "--no-fine-tune", "--model-name", "fmnist", "--json", json_out]
    start = time.time()
    log = open(json_out + ".log", "w")
    # Unbuffered, so the progress lines (which component runs) reach the log as they happen.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    mem: dict = {}
    watcher = threading.Thread(target=_peak_rss, args=(proc, json_out + ".log", mem))
    watcher.start()
    proc.wait()
    watcher.join()
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"graft run failed ({proc.returncode}); see {json_out}.log")
    with open(json_out) as f:
        summary = json.load(f)
    return {"wall_seconds": round(wall, 1), "peak_rss_gb": round(mem["peak_rss_bytes"] / 2**30, 2),
            "peak_rss_gb_per_component": mem["per_component"],
            "components": summary.get("component_seconds", {}),
            "embedding": summary.get("embedding", {}),
            "pushed_path": summary.get("pushed_path"), "training": summary.get("training", {})}


def bare_model_limit(image_paths, image_size: int, batch: int = 64) -> float:
    """Images/s of the same SavedModel called directly on batches of encoded images
    (decode + backbone, one traced function), after one warm-up batch."""
    from graft.components.embedding_gen.executor import Embedder
    model = Embedder(backbones.resolve(config.TrainConfig().backbone), image_size)
    data = [open(p, "rb").read() for p in image_paths]
    model(data[:batch])
    start = time.time()
    for i in range(0, len(data), batch):
        model(data[i:i + batch])
    return len(data) / (time.time() - start)


def test_accuracy(model_dir: str, test_dir: str) -> float:
    m = tf.saved_model.load(model_dir).signatures["serving_default"]
    paths, labels = [], []
    for cls in sorted(os.listdir(test_dir)):
        if os.path.isdir(os.path.join(test_dir, cls)):
            for f in sorted(os.listdir(os.path.join(test_dir, cls))):
                paths.append(os.path.join(test_dir, cls, f))
                labels.append(cls)
    correct = 0
    for i in range(0, len(paths), 128):
        batch = [open(p, "rb").read() for p in paths[i:i + 128]]
        pred = [s.decode() for s in m(image_bytes=tf.constant(batch))["label"].numpy()]
        correct += sum(p == t for p, t in zip(pred, labels[i:i + 128]))
    return correct / len(paths)


def _images(d):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".png"))


def incremental(args, sizes, work, results, log) -> None:
    """One of the sets (--grow-base, default the middle size) plus --grow new images, in
    place, on the same pipeline root: only EmbeddingGen's cache carries over."""
    n0 = args.grow_base or sizes[len(sizes) // 2]
    data = os.path.join(work, f"fmnist-{n0}")
    root, serving = os.path.join(work, f"root-{n0}"), os.path.join(work, f"serving-{n0}")
    first = results["sizes"][n0]
    extra = os.path.join(work, "extra")
    fashion_mnist.prepare(extra, split="train", per_class=int(n0 * args.grow) // 10 * 3,
                          seed=1, log=lambda s: None)
    # Per class, the extra set's images the base set does not hold (same index, same name).
    added, per_class = 0, int(n0 * args.grow) // 10
    for cls in sorted(d for d in os.listdir(extra) if os.path.isdir(os.path.join(extra, d))):
        have = set(os.listdir(os.path.join(data, cls)))
        new = [f for f in sorted(os.listdir(os.path.join(extra, cls))) if f not in have]
        for f in new[:per_class]:
            shutil.copy(os.path.join(extra, cls, f), os.path.join(data, cls, f))
            added += 1
    log(f"== {n0} + {added} new images, same pipeline root: graft run ...")
    second = run_graft(data, root, serving, os.path.join(work, f"summary-{n0}-grown.json"))
    results["incremental"] = {
        "base_images": n0, "added_images": added,
        "first_embed_seconds": first["embedding"]["seconds"],
        "second_embed_seconds": second["embedding"]["seconds"],
        "second_embedded": second["embedding"]["embedded"],
        "second_reused": second["embedding"]["reused"],
        "share": round(second["embedding"]["seconds"] / first["embedding"]["seconds"], 3),
        # The backbone's own time (EmbeddingGen's model_seconds): the embedding work proper,
        # without the step's fixed costs (model load, cache read, writing every record).
        "first_model_seconds": first["embedding"].get("model_seconds"),
        "second_model_seconds": second["embedding"].get("model_seconds"),
        "model_share": round(second["embedding"]["model_seconds"]
                             / first["embedding"]["model_seconds"], 3)
        if first["embedding"].get("model_seconds") else None,
        "first_wall_seconds": first["wall_seconds"], "second_wall_seconds": second["wall_seconds"]}
    log(f"== incremental: +{added} images: embedding {second['embedding']['seconds']:.1f} s vs "
        f"{first['embedding']['seconds']:.1f} s on the first run "
        f"({results['incremental']['share']:.2f}; the backbone's own time "
        f"{results['incremental']['model_share']}); embedded {second['embedding']['embedded']}, "
        f"reused {second['embedding']['reused']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,15000,60000")
    ap.add_argument("--grow", type=float, default=0.10, help="0 skips the incremental run")
    ap.add_argument("--grow-base", type=int, default=0,
                    help="which size gets the new images (default: the middle one)")
    ap.add_argument("--work", default=None, help="scratch dir (default: a fresh temp dir)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "scale.json"))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="graft-scale-")
    size_px = config.TrainConfig().image_size
    log = lambda m: print(m, flush=True)  # noqa: E731
    backbones.resolve(config.TrainConfig().backbone)
    test_dir = os.path.join(work, "test")
    fashion_mnist.prepare(test_dir, split="test", per_class=0, seed=0, log=lambda s: None)

    results = {"image_size": size_px, "sizes": {}, "goals": GOALS}
    for n in sizes:
        data = os.path.join(work, f"fmnist-{n}")
        fashion_mnist.prepare(data, split="train", per_class=0 if n >= 60000 else n // 10,
                              seed=0, log=lambda s: None)
        os.remove(os.path.join(data, "graft_dataset.json"))
        log(f"== {n} images: graft run ...")
        r = run_graft(data, os.path.join(work, f"root-{n}"), os.path.join(work, f"serving-{n}"),
                      os.path.join(work, f"summary-{n}.json"))
        e = r["embedding"]
        r["embed_images_per_s"] = round(e["embedded"] / e["seconds"], 1) if e.get("seconds") else 0
        r["bare_limit_images_per_s"] = round(bare_model_limit(_images(data)[:2048], size_px), 1)
        r["embed_vs_limit"] = round(r["embed_images_per_s"] / r["bare_limit_images_per_s"], 3)
        r["test_accuracy"] = round(test_accuracy(r["pushed_path"], test_dir), 4)
        results["sizes"][n] = r
        log(f"   {r['wall_seconds']} s, peak {r['peak_rss_gb']} GB, EmbeddingGen "
            f"{r['embed_images_per_s']} img/s vs bare {r['bare_limit_images_per_s']} img/s "
            f"({r['embed_vs_limit']:.2f}), test accuracy {r['test_accuracy']:.4f}")
        log(f"   components: {r['components']}")
        log(f"   peak GB while each ran: {r['peak_rss_gb_per_component']}")

    if args.grow > 0:
        incremental(args, sizes, work, results, log)

    small, large = results["sizes"][sizes[0]], results["sizes"][sizes[-1]]
    scale = sizes[-1] / sizes[0]
    results["ratios"] = {
        "memory_largest_over_smallest": round(large["peak_rss_gb"] / small["peak_rss_gb"], 2),
        "time_largest_over_smallest": round(large["wall_seconds"] / small["wall_seconds"], 2),
        "data_largest_over_smallest": scale,
        "embed_vs_limit_largest": large["embed_vs_limit"],
        "incremental_embed_share": results.get("incremental", {}).get("share"),
    }
    print("\n| images | wall s | peak GB | EmbeddingGen img/s | bare limit img/s | ratio | "
          "test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for n, r in results["sizes"].items():
        print(f"| {n} | {r['wall_seconds']} | {r['peak_rss_gb']} | {r['embed_images_per_s']} | "
              f"{r['bare_limit_images_per_s']} | {r['embed_vs_limit']:.2f} | "
              f"{r['test_accuracy']:.4f} |")
    print(json.dumps(results["ratios"], indent=2))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
