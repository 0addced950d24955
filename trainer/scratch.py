"""--compare-scratch: is transfer worth it on this data?

Trains a small CNN from scratch on the same training images the transfer model saw and
scores it on the same held-out images the Evaluator scores the transfer model on, so the
run summary can say "transfer +29.6 points over training from scratch on your data".
Images stream from the examples (decoded as they go, a bounded shuffle buffer), as in
phase 2. The CNN is the usual baseline - three conv blocks, global pooling, dropout -
at 64 px, with flips and shifts, early-stopped on a validation slice of the train split.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from graft import contract
from graft.backbones import image_input
from graft.trainer import data
from graft.trainer.report import ScratchReport

IMAGE_SIZE = 64
MAX_EPOCHS = 60
PATIENCE = 8
BATCH = 32
SHUFFLE_BUFFER = 2048
VAL_PERCENT = 10


def small_cnn(num_classes: int, size: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (32, 64, 128):
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.BatchNormalization(momentum=0.9)(x)  # few steps: statistics must settle fast
        x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.3)(x)
    model = keras.Model(inputs, L.Dense(num_classes)(x), name="scratch_cnn")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    return model


def augmenter(seed: int) -> keras.Model:
    # White fill: graft pads images with white (image_input), so a shift adds white.
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, seed=seed, fill_mode="constant",
                                       fill_value=1.0)])


def _stream(patterns: Sequence[str], class_names: Sequence[str], size: int
            ) -> tf.data.Dataset:
    return data.records(patterns, class_names).map(
        lambda e: (image_input.decode_one(e[contract.FEATURE_IMAGE], size),
                   e[contract.FEATURE_LABEL_ID],
                   data.in_validation(e[contract.FEATURE_ID], VAL_PERCENT)),
        num_parallel_calls=tf.data.AUTOTUNE)


def compare(train_files: Sequence[str], eval_files: Sequence[str], class_names: Sequence[str],
            seed: int, size: int = IMAGE_SIZE, max_epochs: int = MAX_EPOCHS) -> ScratchReport:
    """Trains the small CNN on train_files, returns its accuracy on eval_files."""
    t = time.time()
    stream = _stream(train_files, class_names, size)
    drop_flag = lambda x, y, v: (x, y)  # noqa: E731
    train = stream.filter(lambda x, y, v: tf.logical_not(v)).map(drop_flag)
    val = stream.filter(lambda x, y, v: v).map(drop_flag)
    if not any(True for _ in val.take(1)):  # tiny data: no validation slice; fixed epochs
        val = None
    aug = augmenter(seed)
    train = (train.shuffle(SHUFFLE_BUFFER, seed=seed).batch(BATCH)
             .map(lambda x, y: (aug(x, training=True), y)).prefetch(2))
    model = small_cnn(len(class_names), size, seed)
    callbacks = [keras.callbacks.EarlyStopping("val_loss", patience=PATIENCE,
                                               restore_best_weights=True)] if val else []
    hist = model.fit(train, validation_data=val.batch(BATCH) if val else None,
                     epochs=max_epochs, verbose=0, callbacks=callbacks)
    correct = total = 0
    for x, y in _stream(eval_files, class_names, size).map(drop_flag).batch(256):
        pred = model.predict_on_batch(x).argmax(1)
        correct += int(np.sum(pred == y.numpy()))
        total += int(len(pred))
    report = ScratchReport(ran=True, image_size=size, epochs=len(hist.history["loss"]),
                           parameters=int(model.count_params()), held_out_images=total,
                           held_out_accuracy=(correct / total) if total else None,
                           seconds=round(time.time() - t, 1))
    print(f"  [scratch] small CNN from scratch at {size} px: {report.epochs} epochs, "
          f"held-out accuracy {report.held_out_accuracy or 0:.3f} on {total} images "
          f"({report.seconds:.0f} s)", flush=True)
    return report
