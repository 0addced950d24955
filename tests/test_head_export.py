"""The model's head alone, exported for the Evaluator (trainer/export.py: export_head), and
the Trainer's check that it gives the full model's scores (trainer/task.py)."""
import json
import os
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from graft import contract
from graft.components.embedding_gen.executor import _OutputRecords
from graft.trainer import export, model, task
from graft.trainer.options import TrainerOptions

CLASSES = ["cat", "dog", "fish"]
DIM = 5


def _head():
    head = model.build_head(len(CLASSES), 0.2, DIM, seed=1)
    rng = np.random.default_rng(0)
    model.set_head_weights(head, rng.normal(size=(DIM, 3)).astype(np.float32),
                           rng.normal(size=3).astype(np.float32))
    return head


def _softmax(head, x):
    return tf.nn.softmax(head(x, training=False), axis=-1).numpy()


def test_the_head_export_scores_embedding_records_as_the_head_does(tmp_path):
    head = _head()
    out = str(tmp_path / "Head" / "Format-Serving")
    export.export_head(head, CLASSES, DIM, out, {"embedding_key": "k1"})
    x = np.random.default_rng(1).normal(size=(4, DIM)).astype(np.float32)
    # Records as EmbeddingGen writes them; "bird" is in this run's vocabulary, not the model's.
    write = _OutputRecords([DIM], [b"cat", b"dog", b"fish", b"bird"])
    records = [write(f"id{i}".encode(), label, b"h", x[i])
               for i, label in enumerate([2, 0, 3, 1])]
    loaded = tf.saved_model.load(out)
    scores = loaded.signatures["classify"](inputs=tf.constant(records))
    np.testing.assert_allclose(scores["scores"].numpy(), _softmax(head, x), atol=1e-6)
    assert [c.decode() for c in scores["classes"].numpy()[0]] == CLASSES
    ids = loaded.signatures["transform_features"](examples=tf.constant(records))
    assert ids[contract.FEATURE_LABEL_ID].numpy().tolist() == [2, 0, -1, 1]
    from tensorflow.core.protobuf import saved_model_pb2
    with open(os.path.join(out, "saved_model.pb"), "rb") as f:
        sigs = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].signature_def
    assert sigs["classify"].method_name == contract.CLASSIFY_METHOD
    with open(os.path.join(out, contract.ASSETS_EXTRA, contract.HEAD_INFO_FILE)) as f:
        info = json.load(f)
    assert info["embedding_key"] == "k1" and info["classes"] == CLASSES and info["dim"] == DIM


def _examples(path, n):
    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
    with tf.io.TFRecordWriter(path, "GZIP") as w:
        for i in range(n):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                contract.FEATURE_IMAGE: b(f"image {i}".encode()),
                contract.FEATURE_ID: b(f"id{i}".encode()),
                contract.FEATURE_LABEL: b(CLASSES[i % 3].encode())})).SerializeToString())


class _Model:
    """Stands in for the exported module: its scores for the inputs it is given, by id."""

    def __init__(self, head, feats, error):
        self.head, self.feats, self.error = head, feats, error

    def saved_serve(self, raw):
        rows = [int(r.decode().split()[1]) for r in raw.numpy()]
        return {"scores": tf.constant(_softmax(self.head, self.feats[rows]) + self.error)}


def _export(tmp_path, error):
    head = _head()
    feats = np.random.default_rng(2).normal(size=(12, DIM)).astype(np.float32)
    files = str(tmp_path / "train.gz")
    _examples(files, 12)
    ids = [f"id{i}".encode() for i in range(12)][::-1]  # the vectors' order is their own
    feats_by_row = feats[::-1].copy()
    out = str(tmp_path / "Head" / "Format-Serving")
    fn_args = SimpleNamespace(train_files=[files], embedding_key="k1")
    task._export_head(_Model(head, feats, error), head, feats_by_row, ids, fn_args, CLASSES,
                      TrainerOptions(), out)
    return out


def test_the_head_is_exported_when_it_gives_the_models_scores(tmp_path):
    out = _export(tmp_path, error=0.0)
    with open(os.path.join(out, contract.ASSETS_EXTRA, contract.HEAD_INFO_FILE)) as f:
        info = json.load(f)
    assert info["parity_inputs"] == task.PARITY_INPUTS and info["parity_max_abs_diff"] < 1e-6


def test_no_head_export_when_it_does_not_give_the_models_scores(tmp_path, capsys):
    out = _export(tmp_path, error=10 * task.PARITY_TOLERANCE)
    assert not os.path.exists(out)
    assert "no head export" in capsys.readouterr().out


def test_both_exports_write_on_a_filesystem_python_cannot_open():
    """Kubeflow and Vertex AI hand the Trainer gs:// URIs; ram:// stands in for one here."""
    import tf_keras as keras
    inputs = keras.Input((8, 8, 3))
    classifier = keras.Model(inputs, keras.layers.Dense(3)(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    base = f"ram://graft-export-{os.getpid()}/model"
    export.export(classifier, CLASSES, 8, f"{base}/Format-Serving", {"backbone": "b"},
                  warmup_images=[b"not decoded at export"])
    export.export_head(_head(), CLASSES, DIM, f"{base}/Head/Format-Serving",
                       {"embedding_key": "k1"})
    from tensorflow.core.protobuf import saved_model_pb2
    for d, info in (("Format-Serving", contract.MODEL_INFO_FILE),
                    ("Head/Format-Serving", contract.HEAD_INFO_FILE)):
        with tf.io.gfile.GFile(f"{base}/{d}/saved_model.pb", "rb") as f:
            sigs = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].signature_def
        assert sigs["classify"].method_name == contract.CLASSIFY_METHOD
        with tf.io.gfile.GFile(f"{base}/{d}/{contract.ASSETS_EXTRA}/{info}") as f:
            assert json.load(f)["classes"] == CLASSES
    assert tf.io.gfile.exists(f"{base}/Format-Serving/{contract.ASSETS_EXTRA}/"
                              f"{contract.WARMUP_FILE}")
