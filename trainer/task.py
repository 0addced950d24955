"""TFX Trainer entry point: ``run_fn`` (the transfer, in two phases).

Phase 1: the backbone is frozen; its features are computed ONCE for every
image (inference mode) and a new linear head is fit on them: L2-regularised
logistic regression, strength chosen by cross-validation (linear_head.py).
Phase 2 (optional): the top k blocks are unfrozen and trained end to end with
a low learning rate and light augmentation, BatchNorm kept in inference mode;
the best epoch (by loss on a validation slice of the train split) is kept,
and phase 2 is dropped altogether if it never beats phase 1 there (phase 1's
head is then refit on every training image).

Writes training_report.json beside the model: per phase, how it was fit (C
and its cross-validation accuracy; epochs and best validation accuracy) and
which backbone variables changed - measured by comparing values before and
after, so tests can prove the freeze.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List

import graft  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from graft.trainer import data, export, linear_head, model, preprocess, transform

REPORT_FILE = "training_report.json"


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by validation loss (smoother than
    accuracy on a small validation slice); restores them at the end."""

    def __init__(self, baseline_loss: float = float("inf")):
        super().__init__()
        self.best_loss, self.best_epoch, self.weights = baseline_loss, -1, None
        self.best_accuracy = float("nan")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("val_loss", float("inf"))
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_accuracy = logs.get("val_accuracy", float("nan"))
            self.weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, phase: str, epochs: int):
        super().__init__()
        self.phase, self.epochs, self.t = phase, epochs, time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        print(f"  [{self.phase}] epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', 0):.3f} "
              f"acc {logs.get('accuracy', 0):.3f} val_acc {logs.get('val_accuracy', 0):.3f} "
              f"({time.time() - self.t:.0f} s)", flush=True)


def _load_split(files: List[str], cfg: Dict):
    """Decoded images, labels, ids and raw bytes of one split, in memory (small data)."""
    ds = data.records(files)
    imgs, labels, ids, raw = [], [], [], []
    for ex in ds.map(lambda e: (preprocess.decode_one(e[transform.IMAGE_KEY],
                                                           cfg["image_size"]),
                                e[transform.LABEL_ID_KEY], e[transform.ID_KEY],
                                e[transform.IMAGE_KEY]),
                     num_parallel_calls=tf.data.AUTOTUNE).batch(256):
        imgs.append(ex[0].numpy()), labels.append(ex[1].numpy())
        ids.extend(ex[2].numpy()), raw.extend(ex[3].numpy())
    return np.concatenate(imgs), np.concatenate(labels), ids, raw


def _features(backbone, images: np.ndarray, batch: int) -> np.ndarray:
    out = [backbone(images[i:i + batch], training=False).numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def _snapshot(layer) -> Dict[str, np.ndarray]:
    return {w.name: w.numpy().copy() for w in layer.weights}


def _changed(before: Dict[str, np.ndarray], layer) -> List[str]:
    return sorted(w.name for w in layer.weights if not np.array_equal(before[w.name], w.numpy()))


def train(fn_args_like) -> Dict:
    """The work of run_fn, on a plain object (tests call it directly too)."""
    cfg = dict(fn_args_like.custom_config)
    # Resolved here, where training runs (a Kubeflow container imports a registered
    # backbone on first use); locally `graft run` has imported it already.
    from graft.trainer import backbones
    cfg["backbone"] = backbones.resolve(cfg["backbone"])
    tf.keras.utils.set_random_seed(cfg["seed"])
    tft_output = tft.TFTransformOutput(fn_args_like.transform_output)
    class_names = [c.decode() if isinstance(c, bytes) else c
                   for c in tft_output.vocabulary_by_name(transform.LABEL_VOCAB)]
    n_classes = len(class_names)

    print(f"graft trainer: {n_classes} classes, backbone {cfg['backbone']}, "
          f"{cfg['image_size']} px", flush=True)
    x, y, ids, raw = _load_split(fn_args_like.train_files, cfg)
    fine_tune = cfg["fine_tune"] == "on" or (cfg["fine_tune"] == "auto"
                                             and len(y) >= cfg["fine_tune_min_images"])
    fine_tune = fine_tune and cfg["fine_tune_epochs"] > 0
    # Phase 2 picks its best epoch (and whether to keep it at all) on a validation
    # slice of the train split; without phase 2 every training image fits the head.
    val = np.zeros(len(y), bool)
    if fine_tune:
        val = np.array([bool(v) for v in data.in_validation(tf.constant(ids),
                                                            cfg["val_percent"]).numpy()])
        if val.sum() < n_classes or (~val).sum() < n_classes:
            val = np.zeros(len(y), bool)
            val[::max(2, 100 // max(1, cfg["val_percent"]))] = True  # tiny data: every k-th
    report: Dict = {"classes": class_names, "train_images": int((~val).sum()),
                    "validation_images": int(val.sum())}

    # ---- phase 1: frozen backbone, cached features, new linear head ----
    frozen = model.PartiallyTrainableKerasLayer(cfg["backbone"], train_only=())
    initial = _snapshot(frozen)
    t0 = time.time()
    feats = _features(frozen, x, cfg["batch_size"] * 2)
    print(f"  [features] {len(x)} images through the frozen backbone in "
          f"{time.time() - t0:.1f} s", flush=True)
    lin = linear_head.train(feats[~val], y[~val], n_classes, cfg["head_c_grid"],
                            cfg["head_cv_folds"], cfg["seed"])
    head = model.build_head(n_classes, cfg["dropout"], feats.shape[1], cfg["seed"])
    model.set_head_weights(head, lin.kernel, lin.bias)
    train_acc = float(np.mean(lin.logits(feats[~val]).argmax(1) == y[~val]))
    cv = (f"C={lin.c:g} by {lin.cv_folds}-fold CV (accuracy {lin.cv_accuracy:.3f})"
          if lin.cv_folds else f"C={lin.c:g} (too few images per class to cross-validate)")
    print(f"  [head] logistic regression on {int((~val).sum())} images, {cv}; "
          f"train accuracy {train_acc:.3f}", flush=True)
    report["phase1"] = {"head": "logistic regression (L-BFGS) on standardised features",
                        "c": lin.c, "cv_folds": lin.cv_folds, "cv_accuracy": lin.cv_accuracy,
                        "converged": lin.converged, "train_accuracy": train_acc,
                        "fit_images": int((~val).sum()),
                        "backbone_variables_changed": _changed(initial, frozen)}
    classifier = model.build_classifier(frozen, head, cfg["image_size"])

    # ---- phase 2: unfreeze the top k blocks ----
    report["phase2"] = {"ran": False}
    if fine_tune:
        head.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])  # only evaluated: phase 1's validation baseline
        p1_loss, p1_acc = head.evaluate(feats[val], y[val], verbose=0)
        report["phase1"].update(val_loss=float(p1_loss), val_accuracy=float(p1_acc))
        names = model.backbone_variable_names(cfg["backbone"])
        selected = model.select_top_blocks(names, cfg["fine_tune_blocks"])
        tuned = model.PartiallyTrainableKerasLayer(cfg["backbone"], train_only=selected)
        before = _snapshot(tuned)
        ft = model.build_classifier(tuned, head, cfg["image_size"])
        ft.compile(optimizer=keras.optimizers.Adam(cfg["fine_tune_learning_rate"]),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
        size = cfg["image_size"]
        train_ds = tf.data.Dataset.from_tensor_slices((x[~val], y[~val])).shuffle(
            len(y), seed=cfg["seed"])
        if cfg["augment"]:
            train_ds = train_ds.map(lambda a, b: (preprocess.augment(a, size), b))
        best2 = _BestWeights(baseline_loss=float(p1_loss))
        hist = ft.fit(train_ds.batch(cfg["batch_size"]), validation_data=(x[val], y[val]),
                      epochs=cfg["fine_tune_epochs"], verbose=0,
                      callbacks=[best2, _EpochLog("fine-tune", cfg["fine_tune_epochs"])])
        kept = best2.weights is not None
        report["phase2"] = {"ran": True, "epochs": len(hist.history["loss"]),
                            "trainable_variables": selected,
                            "best_epoch": best2.best_epoch + 1,
                            "best_val_loss": float(best2.best_loss),
                            "best_val_accuracy": float(best2.best_accuracy),
                            "kept": kept,
                            "backbone_variables_changed": _changed(before, tuned)}
        if kept:
            classifier = ft
        else:
            # Phase 1 wins: refit its head on every training image, validation slice included.
            lin = linear_head.fit(feats, y, n_classes, lin.c)
            model.set_head_weights(head, lin.kernel, lin.bias)
            report["phase1"]["fit_images"] = len(y)
            print("  [fine-tune] no epoch beat phase 1 on validation loss; keeping phase 1 "
                  f"(head refit on all {len(y)} training images)", flush=True)

    info = {"backbone": cfg["backbone"], "report": report}
    export.export(classifier, class_names, cfg["image_size"], fn_args_like.serving_model_dir,
                  info, warmup_images=raw[:3])
    os.makedirs(fn_args_like.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args_like.model_run_dir, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=2)
    return report


def run_fn(fn_args) -> None:
    """Called by TFX's Trainer (GenericExecutor)."""
    train(fn_args)
