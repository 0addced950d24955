"""TFX Trainer entry point: ``run_fn`` (the transfer, in two phases).

Phase 1: the backbone is frozen; EmbeddingGen has computed its features for
every image (once, cached across runs) and a new linear head is fit on them:
L2-regularised logistic regression, strength chosen by cross-validation
(linear_head.py). No image is decoded in this phase.
Phase 2 (optional): the top k blocks are unfrozen and trained end to end with
a low learning rate and light augmentation, BatchNorm kept in inference mode;
the best epoch (by loss on a validation slice of the train split) is kept,
and phase 2 is dropped altogether if it never beats phase 1 there (phase 1's
head is then refit on every training image).

``train`` runs named steps - features, head, fine-tune, export - and
returns a TrainingReport (trainer/report.py), also written as
training_report.json beside the model: per phase, how it was fit and which
backbone variables changed, measured by comparing values before and after.
"""
from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Tuple

import graft  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from graft import contract, files
from graft.backbones import modality as modalities
from graft.trainer import augment, data, ensemble, export, linear_head, model
from graft.trainer.options import OPTIONS_KEY, TrainerOptions
from graft.trainer.report import HEAD_NAMES, Phase1Report, Phase2Report, TrainingReport

# Phase 2's shuffle buffer, in examples (encoded bytes, decoded after shuffling): bounds
# its memory whatever the data's size.
SHUFFLE_BUFFER = 2048


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch on the validation slice, and restores them at
    the end; an epoch counts only if it beats phase 1 (the baseline). ``keep``:
    "val_loss" - the lowest loss (smoother than accuracy on a small slice) - or
    "val_accuracy" - the highest accuracy, ties to the lower loss."""

    def __init__(self, baseline_loss: float = float("inf"),
                 baseline_accuracy: float = float("-inf"), keep: str = "val_loss"):
        super().__init__()
        self.keep = keep
        self.best_loss, self.best_epoch, self.weights = baseline_loss, -1, None
        self.best_accuracy = baseline_accuracy if keep == "val_accuracy" else float("nan")

    def _better(self, loss: float, accuracy: float) -> bool:
        if self.keep == "val_accuracy":
            if self.best_epoch < 0:  # against phase 1: strictly more accurate
                return accuracy > self.best_accuracy
            return (accuracy, -loss) > (self.best_accuracy, -self.best_loss)
        return loss < self.best_loss

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("val_loss", float("inf"))
        accuracy = logs.get("val_accuracy", float("-inf"))
        if self._better(loss, accuracy):
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


def validation_mask(ids: List[bytes], labels: np.ndarray, n_classes: int,
                    opts: TrainerOptions, fine_tune: bool) -> np.ndarray:
    """Phase 2 picks its best epoch (and whether to keep it at all) on a validation
    slice of the train split; without phase 2 every training image fits the head."""
    val = np.zeros(len(labels), bool)
    if not fine_tune:
        return val
    val = data.in_validation(tf.constant(ids), opts.val_percent).numpy().astype(bool)
    if val.sum() < n_classes or (~val).sum() < n_classes:
        val = np.zeros(len(labels), bool)
        val[::max(2, 100 // max(1, opts.val_percent))] = True  # tiny data: every k-th
    return val


def _snapshot(layer) -> Dict[str, np.ndarray]:
    return {w.name: w.numpy().copy() for w in layer.weights}


def _changed(before: Dict[str, np.ndarray], layer) -> List[str]:
    return sorted(w.name for w in layer.weights if not np.array_equal(before[w.name], w.numpy()))


def fit_head(feats: np.ndarray, labels: np.ndarray, n_classes: int, opts: TrainerOptions,
             fitted: Optional[linear_head.LinearHead] = None
             ) -> Tuple[keras.Model, linear_head.LinearHead, Phase1Report]:
    """Phase 1: one linear head on frozen features, folded into a Dense layer."""
    t0 = time.time()
    lin = fitted or ensemble.train_head(opts.heads[0], feats, labels, n_classes, opts)
    head = model.build_head(n_classes, opts.dropout, feats.shape[1], opts.seed)
    model.set_head_weights(head, lin.kernel, lin.bias)
    train_acc = float(np.mean(lin.logits(feats).argmax(1) == labels))
    if lin.kind == "lda":
        cv = (f"{lin.cv_folds}-fold CV accuracy {lin.cv_accuracy:.3f} on {lin.cv_rows} "
              f"{opts.modality}s" if lin.cv_folds else "too few images per class to "
              "cross-validate")
    else:
        cv = (f"C={lin.c:g} by {lin.cv_folds}-fold CV on {lin.cv_rows} {opts.modality}s "
              f"(accuracy {lin.cv_accuracy:.3f})"
              if lin.cv_folds else f"C={lin.c:g} (too few images per class to cross-validate)")
    print(f"  [head] {HEAD_NAMES[lin.kind]} on {len(labels)} {opts.modality}s, {cv}; "
          f"train accuracy {train_acc:.3f} ({time.time() - t0:.1f} s)", flush=True)
    report = Phase1Report(c=lin.c, cv_folds=lin.cv_folds, cv_accuracy=lin.cv_accuracy,
                          cv_rows=lin.cv_rows, cv_curve=lin.cv_curve, converged=lin.converged,
                          train_accuracy=train_acc, fit_images=len(labels), heads=[lin.kind])
    if lin.kind == "lda":
        report.head = HEAD_NAMES["lda"]
    return head, lin, report


def fine_tune(backbone_path: str, head: keras.Model, example_files: List[str],
              class_names: List[str], feats: np.ndarray, labels: np.ndarray,
              ids: List[bytes], val: np.ndarray, opts: TrainerOptions, phase1: Phase1Report,
              log_dir: str = ""
              ) -> Tuple[Optional[keras.Model], Phase2Report]:
    """Phase 2: the top k blocks (a text encoder's top k layers) unfrozen, end to end, low
    learning rate, on images decoded as they stream from the examples, or texts (a
    bounded shuffle buffer; no split in memory).
    Returns the fine-tuned classifier, or None when no epoch beat phase 1 on the
    validation slice. With ``log_dir`` (TFX's model run dir) it writes TensorBoard logs
    there, as TFX's own trainers do."""
    head.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])  # only evaluated: phase 1's validation baseline
    p1_loss, p1_acc = head.evaluate(feats[val], labels[val], verbose=0)
    phase1.val_loss, phase1.val_accuracy = float(p1_loss), float(p1_acc)
    names = model.backbone_variable_names(backbone_path)
    selected = model.select_top_blocks(names, opts.fine_tune_blocks)
    tuned = model.PartiallyTrainableKerasLayer(backbone_path, train_only=selected)
    before = _snapshot(tuned)
    ft = model.build_classifier(tuned, head, opts.image_size, opts.modality)
    ft.compile(optimizer=keras.optimizers.Adam(opts.fine_tune_learning_rate),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               metrics=["accuracy"])
    size = opts.image_size
    val_ids = [i for i, v in zip(ids, val) if v]
    train_ds = data.input_stream(example_files, class_names, val_ids, False, opts.modality,
                                 size).shuffle(SHUFFLE_BUFFER, seed=opts.seed)
    if opts.augment and opts.modality == "image":
        train_ds = train_ds.map(lambda a, b: (augment.augment(a, size), b),
                                num_parallel_calls=tf.data.AUTOTUNE)
    val_ds = data.input_stream(example_files, class_names, val_ids, True, opts.modality, size)
    best = _BestWeights(baseline_loss=float(p1_loss), baseline_accuracy=float(p1_acc),
                        keep=opts.fine_tune_keep)
    callbacks = [best, _EpochLog("fine-tune", opts.fine_tune_epochs)]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    hist = ft.fit(train_ds.batch(opts.batch_size).prefetch(2),
                  validation_data=val_ds.batch(opts.batch_size),
                  epochs=opts.fine_tune_epochs, verbose=0, callbacks=callbacks)
    kept = best.weights is not None
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    history = [dict({"epoch": i + 1}, **{k: float(hist.history[k][i]) for k in keys
                                         if k in hist.history})
               for i in range(len(hist.history["loss"]))]
    report = Phase2Report(ran=True, epochs=len(hist.history["loss"]),
                          trainable_variables=selected, best_epoch=best.best_epoch + 1,
                          best_val_loss=float(best.best_loss),
                          best_val_accuracy=float(best.best_accuracy), kept=kept,
                          backbone_variables_changed=_changed(before, tuned),
                          history=history, tensorboard_dir=log_dir)
    return (ft if kept else None), report


def _backbone_paths(fn_args_like, opts: TrainerOptions) -> List[str]:
    """Each view's module: the BatchNorm-adapted copy when AdaBN ran (the executor puts
    their paths on fn_args), else the handle resolved here, where training runs (a
    Kubeflow container imports a registered backbone on first use)."""
    adapted = getattr(fn_args_like, "adapted_backbone_paths", None)
    if adapted:
        return list(adapted)
    from graft import backbones
    return [backbones.resolve(v.backbone) for v in opts.views()]


def fit_phase1(feats: np.ndarray, labels: np.ndarray, n_classes: int, dims: List[int],
               opts: TrainerOptions) -> Tuple[keras.Model, Optional[linear_head.LinearHead],
                                              Phase1Report]:
    """Phase 1 for one view and one kind of head (fit_head), or several (ensemble.fit_views:
    heads on the concatenation, or on each view, probabilities averaged)."""
    if len(dims) <= 1 and len(opts.heads) == 1:
        return fit_head(feats, labels, n_classes, opts)
    heads, facts = ensemble.fit_views(feats, labels, n_classes, dims, opts)
    names = [v.name for v in opts.views()]
    several_views = len(dims) > 1
    if heads.single is not None:
        head, lin, phase1 = fit_head(feats, labels, n_classes, opts, fitted=heads.single)
    else:
        head = heads.build(n_classes)
        lin = None
        train_acc = float(np.mean(head.predict(feats, batch_size=4096, verbose=0).argmax(1)
                                  == labels))
        first = heads.members[0][1]
        where = "per view" if heads.combine == "average" else "on all the features"
        kinds = opts.heads
        text = (f"one {HEAD_NAMES[kinds[0]]} head {where}" if len(kinds) == 1 else
                " and ".join(HEAD_NAMES[k] for k in kinds) + f", one of each {where}")
        phase1 = Phase1Report(head=text + ", probabilities averaged",
                              c=first.c, cv_folds=first.cv_folds,
                              cv_accuracy=facts["cv_accuracy"].get(heads.combine),
                              cv_rows=first.cv_rows, train_accuracy=train_acc,
                              fit_images=len(labels), heads=list(opts.heads))
    phase1.heads = list(opts.heads)
    if several_views:
        phase1.combine, phase1.combine_cv = heads.combine, facts["cv_accuracy"]
        per_view = facts["views"] or [{} for _ in dims]
        if len(per_view) == len(dims):
            phase1.views = [dict({"view": n, "dim": int(d)},
                                 **{k: v for k, v in f.items() if k != "dim"})
                            for n, d, f in zip(names, dims, per_view)]
        else:  # several kinds per view: a row per head
            kinds = len(opts.heads)
            phase1.views = [dict({"view": names[i // kinds]},
                                 **{k: v for k, v in f.items()})
                            for i, f in enumerate(per_view)]
        print(f"  [head] {len(dims)} views ({', '.join(names)}): combined by {heads.combine} "
              + "(CV accuracy " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(
                  facts["cv_accuracy"].items()) if v is not None and v == v) + ")", flush=True)
    else:
        print(f"  [head] {' and '.join(opts.heads)} averaged on {len(labels)} "
              f"{opts.modality}s: CV accuracy {phase1.cv_accuracy:.3f}, each alone "
              + ", ".join(f"{h.kind} {h.cv_accuracy:.3f}" for _, h in heads.members
                          if h.cv_accuracy is not None), flush=True)
    return head, lin, phase1


def train(fn_args_like) -> TrainingReport:
    """The work of run_fn, on a plain object (tests call it directly too)."""
    opts = TrainerOptions.from_json(dict(fn_args_like.custom_config)[OPTIONS_KEY])
    views = opts.views()
    paths = _backbone_paths(fn_args_like, opts)
    tf.keras.utils.set_random_seed(opts.seed)
    class_names = contract.class_names(fn_args_like.transform_output)
    n_classes = len(class_names)
    print(f"graft trainer: {n_classes} classes, backbone {opts.backbone}, "
          + (", ".join(f"{v.image_size}" for v in views[:1]) + " px"
             if opts.modality == "image" else opts.modality)
          + (f" ({len(views)} views: {', '.join(v.name for v in views)})"
             if len(views) > 1 else ""), flush=True)

    t0 = time.time()
    patterns = fn_args_like.embeddings[contract.SPLIT_TRAIN]
    feats, labels, ids = data.embeddings(patterns)
    dims = data.view_dims(patterns)
    if len(dims) != len(views):
        raise ValueError(f"EmbeddingGen wrote {len(dims)} views, the options name "
                         f"{len(views)}: the pipeline and the trainer disagree")
    print(f"  [features] {len(labels)} vectors of {feats.shape[1]} read from EmbeddingGen "
          f"in {time.time() - t0:.1f} s", flush=True)
    phase2_on = opts.runs_fine_tune(len(labels))
    val = validation_mask(ids, labels, n_classes, opts, phase2_on)

    # Without a validation slice (phase 2 off) the matrix is passed as it is: feats[~val]
    # would copy all of it (0.45 GB at 60 000 images).
    fit_x, fit_y = (feats[~val], labels[~val]) if val.any() else (feats, labels)
    head, lin, phase1 = fit_phase1(fit_x, fit_y, n_classes, dims, opts)
    del fit_x, fit_y
    phase1.adaptation = list(getattr(fn_args_like, "adaptation", None) or [])
    if opts.modality == "text":
        import tensorflow_text  # noqa: F401  (the text backbone's tokeniser ops)
    # One layer per distinct module: multi-scale calls the same backbone at each size.
    layers = {p: model.PartiallyTrainableKerasLayer(p, train_only=()) for p in
              dict.fromkeys(paths)}
    initial = {p: _snapshot(layer) for p, layer in layers.items()}
    if len(views) == 1:
        classifier = model.build_classifier(layers[paths[0]], head, opts.image_size,
                                            opts.modality)
    else:
        classifier = model.build_multi_view_classifier(
            [(layers[p], v.image_size) for p, v in zip(paths, views)], head)

    phase2 = Phase2Report()
    if phase2_on:
        tuned, phase2 = fine_tune(paths[0], head, fn_args_like.train_files, class_names,
                                  feats, labels, ids, val, opts, phase1,
                                  log_dir=fn_args_like.model_run_dir)
        if tuned is not None:
            classifier = tuned
        else:
            # Phase 1 wins: refit its head on every training image, validation slice included.
            lin = ensemble.refit(lin, feats, labels, n_classes)
            model.set_head_weights(head, lin.kernel, lin.bias)
            phase1.fit_images = len(labels)
            print(f"  [fine-tune] no epoch beat phase 1 on {opts.fine_tune_keep}; keeping phase 1 "
                  f"(head refit on all {len(labels)} training images)", flush=True)

    # Measured, not assumed: the exported backbones' values against the modules' own.
    phase1.backbone_variables_changed = sorted(
        n for p, layer in layers.items() for n in _changed(initial[p], layer))
    report = TrainingReport(classes=class_names, train_images=int((~val).sum()),
                            validation_images=int(val.sum()), phase1=phase1, phase2=phase2,
                            class_counts={name: int(n) for name, n in zip(
                                class_names, np.bincount(labels, minlength=n_classes))})
    if opts.compare_scratch:
        from graft.trainer import scratch
        report.scratch = scratch.compare(fn_args_like.train_files, fn_args_like.eval_files,
                                         class_names, opts.seed)
    sizes = model.distinct_sizes(v.image_size for v in views)
    t0 = time.time()
    module = export.export(
        classifier, class_names, opts.image_size, fn_args_like.serving_model_dir,
        {"backbone": opts.backbone, "report": report.to_json(),
         "views": [v.name for v in views], "combine": phase1.combine or None,
         "head": opts.heads, "adapt_batchnorm": opts.adapt_batchnorm},
        warmup_images=data.first_inputs(fn_args_like.train_files, 3,
                                        modalities.of(opts.modality).feature),
        max_image_pixels=opts.max_image_pixels, modality=opts.modality,
        image_sizes=sizes if opts.modality == "image" else None)
    print(f"  [export] SavedModel with its signatures and warmup requests written in "
          f"{time.time() - t0:.1f} s", flush=True)
    head_dir = getattr(fn_args_like, "head_model_dir", None)
    if head_dir and not phase2.kept and getattr(fn_args_like, "embedding_key", ""):
        _export_head(module, head, feats, ids, fn_args_like, class_names, opts, head_dir)
    files.makedirs(fn_args_like.model_run_dir)
    report.write(os.path.join(fn_args_like.model_run_dir, contract.TRAINING_REPORT_FILE))
    return report


# The head export is checked on this many training inputs, and written only if the full
# model's probabilities and the head's on their vectors differ by at most PARITY_TOLERANCE.
PARITY_INPUTS = 8
PARITY_TOLERANCE = 1e-3


def head_parity(module, head: keras.Model, feats: np.ndarray, ids: List[bytes],
                example_files: List[str], class_names: List[str], modality: str,
                n: int = PARITY_INPUTS) -> Tuple[Optional[float], int]:
    """(the largest difference in any class's probability, inputs compared) between the
    exported model on the first n training inputs and its head on their EmbeddingGen
    vectors. What makes scoring the head on vectors stand for scoring the model: both
    decode, resize and run the backbones the same way, and this says they did."""
    m = modalities.of(modality)
    row = {image_id: k for k, image_id in enumerate(ids)}
    raws, rows = [], []
    for e in data.records(example_files, class_names, modality).take(n):
        k = row.get(e[m.id_feature].numpy())
        if k is not None:
            raws.append(e[m.feature].numpy())
            rows.append(k)
    if not rows:
        return None, 0
    full = module.saved_serve(tf.constant(raws))["scores"].numpy()  # the graph as saved
    part = tf.nn.softmax(head(feats[rows], training=False), axis=-1).numpy()
    return float(np.abs(full - part).max()), len(rows)


def _export_head(module, head, feats, ids, fn_args_like, class_names, opts, head_dir) -> None:
    """The model's head alone, for the Evaluator (export.export_head), if it reproduces
    the exported model's scores on the vectors."""
    t0 = time.time()
    diff, n = head_parity(module, head, feats, ids, fn_args_like.train_files, class_names,
                          opts.modality)
    if diff is None or diff > PARITY_TOLERANCE:
        why = ("no training input had a vector" if diff is None else
               f"its probabilities differ from the full model's by up to {diff:.2g}")
        print(f"  [export] no head export: {why}; the Evaluator runs the full model", flush=True)
        return
    export.export_head(head, class_names, int(feats.shape[1]), head_dir,
                       {"embedding_key": fn_args_like.embedding_key,
                        "parity_max_abs_diff": diff, "parity_inputs": n})
    print(f"  [export] the head alone, for the Evaluator on EmbeddingGen's vectors: within "
          f"{diff:.1g} of the full model on {n} training {opts.modality}s "
          f"({time.time() - t0:.1f} s)", flush=True)


def run_fn(fn_args) -> None:
    """Called by TFX's Trainer (GenericExecutor)."""
    train(fn_args)
