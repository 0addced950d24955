"""The real TFX pipeline on tiny real data (openclipart), end to end.

Run 1 (first run, no champion): pushes version 1, reports skipped files.
Run 2 (same data, a head regularised to uselessness + fine-tuning): not blessed
against the champion, pushes nothing, says why; unchanged components are cached;
phase 2 changed only the chosen top blocks.
"""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from graft import contract
from graft.components.image_folder_example_gen import scan
from graft.pipeline import config, runner, summary
from graft.datasets import openclipart
from tests.conftest import pipeline_cfg as _cfg, run_graft

pytestmark = pytest.mark.slow


def test_first_run_is_blessed_and_pushes_version_1(first_run, workspace):
    assert first_run["pushed"] is True, summary.format_text(first_run)
    assert first_run["pushed_version"] == 1
    path = workspace["root"] / "serving" / "clipart" / "1"
    assert first_run["pushed_path"] == str(path)
    assert (path / "saved_model.pb").exists() and (path / "variables").is_dir()
    assert not [d for d in os.listdir(path.parent) if d.startswith(".tmp-")]
    ev = first_run["evaluation"]
    assert ev["blessed"] and ev["champion_accuracy"] is None
    assert ev["accuracy"] > 1 / 3 + 0.1  # clearly better than chance on 3 classes
    assert set(ev["per_class_accuracy"]) == {"animals", "food", "transportation"}
    assert "first run" in ev["text"]


def test_first_run_reports_skipped_files(first_run):
    skipped = {s["image_id"]: s["reason"] for s in first_run["data"]["ingest"]["skipped"]}
    assert set(skipped) == {"food/broken.png", "animals/notes.txt"}
    assert "not an image" in skipped["animals/notes.txt"]
    text = summary.format_text(first_run)
    assert "skipped 2 files" in text and "food/broken.png" in text


def test_first_run_embeds_every_image_once(first_run):
    e = first_run["embedding"]
    n = sum(first_run["data"]["counts"].values())
    assert (e["embedded"], e["reused"], e["dim"]) == (n, 0, 2704)
    assert f"embedding: embedded {n} new images, reused 0 from cache" in \
        summary.format_text(first_run)


def test_phase_1_reads_embeddings_not_images(first_run, workspace, tmp_path):
    """The trainer, given the run's embeddings but examples whose image bytes no decoder
    can read, fits the same head: phase 1 never decodes an image."""
    import glob
    from types import SimpleNamespace

    from graft.trainer import task
    from graft.trainer.options import OPTIONS_KEY
    arts = str(workspace["root"] / "pipeline" / "artifacts")
    [graph] = glob.glob(f"{arts}/Transform/transform_graph/*")
    [examples] = glob.glob(f"{arts}/ImageFolderExampleGen/examples/*")
    [embeddings] = glob.glob(f"{arts}/EmbeddingGen/embeddings/*")
    garbage = str(tmp_path / "examples.gz")
    with tf.io.TFRecordWriter(garbage, "GZIP") as w:
        for r in tf.data.TFRecordDataset(glob.glob(f"{examples}/Split-train/*"), "GZIP"):
            ex = tf.train.Example.FromString(r.numpy())
            ex.features.feature[contract.FEATURE_IMAGE].bytes_list.value[0] = b"not an image"
            w.write(ex.SerializeToString())
    fn_args = SimpleNamespace(
        custom_config={OPTIONS_KEY: _cfg(workspace).train.to_json()}, transform_output=graph,
        train_files=[garbage], embeddings={"train": [f"{embeddings}/Split-train/*"]},
        serving_model_dir=str(tmp_path / "model"), model_run_dir=str(tmp_path / "run"))
    report = task.train(fn_args)
    assert report.phase1.fit_images == first_run["training"]["phase1"]["fit_images"]
    assert not report.phase2.ran
    images = [os.path.join(workspace["data"], "animals", f)
              for f in sorted(os.listdir(os.path.join(workspace["data"], "animals")))
              if f.endswith(".png")][:4]
    batch = tf.constant([open(p, "rb").read() for p in images])
    ours = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    pushed = tf.saved_model.load(first_run["pushed_path"]).signatures["serving_default"]
    np.testing.assert_allclose(ours(image_bytes=batch)["scores"].numpy(),
                               pushed(image_bytes=batch)["scores"].numpy(), atol=1e-5)


def test_phase_1_leaves_the_backbone_bit_identical(first_run):
    t = first_run["training"]
    assert t["phase1"]["backbone_variables_changed"] == []
    assert t["phase2"]["ran"] is False  # auto: too few images for fine-tuning


def test_pushed_model_serves_image_bytes_and_classify(first_run, workspace):
    path = first_run["pushed_path"]
    model = tf.saved_model.load(path)
    img = sorted((p for p in os.scandir(os.path.join(workspace["data"], "transportation"))),
                 key=lambda e: e.name)[0].path
    out = model.signatures["serving_default"](image_bytes=tf.constant([open(img, "rb").read()]))
    assert out["scores"].shape == (1, 3)
    assert abs(float(tf.reduce_sum(out["scores"])) - 1.0) < 1e-4
    assert out["label"].numpy()[0].decode() in {"animals", "food", "transportation"}
    assert sorted(c.decode() for c in out["classes"].numpy()[0]) == \
        ["animals", "food", "transportation"]
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel.FromString(open(os.path.join(path, "saved_model.pb"),
                                                    "rb").read())
    sigs = sm.meta_graphs[0].signature_def
    assert sigs["classify"].method_name == "tensorflow/serving/classify"
    assert set(sigs["serving_default"].inputs) == {"image_bytes"}
    prov = json.load(open(os.path.join(path, "assets.extra", "graft_provenance.json")))
    assert prov["version"] == 1 and prov["backbone"] == workspace["backbone"]
    assert prov["evaluation"]["accuracy"] == pytest.approx(first_run["evaluation"]["accuracy"])
    assert prov["pipeline_run_id"] == first_run["run_id"]
    assert os.path.exists(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))


def test_the_evaluator_scores_heads_on_vectors_as_the_full_model_scores_images(first_run):
    """The Evaluator scored the challenger's head on EmbeddingGen's held-out vectors; the
    pushed model itself, run on the held-out images, is exactly as accurate."""
    ev = first_run["evaluation"]
    assert ev["scored_on"] == "vectors"
    assert "scored: the models' heads on its cached vectors" in summary.format_text(first_run)
    with open(first_run["report"]) as f:
        assert "Scored as the models' heads on the held-out images' cached vectors" in f.read()
    files = tf.io.gfile.glob(os.path.join(first_run["examples_uri"], "Split-eval", "*.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    labels = [tf.train.Example.FromString(r).features.feature["label"].bytes_list.value[0]
              for r in records]
    out = tf.saved_model.load(first_run["pushed_path"]).signatures["classify"](
        inputs=tf.constant(records))
    best = out["classes"].numpy()[np.arange(len(records)), out["scores"].numpy().argmax(1)]
    assert len(records) > 10
    assert ev["accuracy"] == pytest.approx(float(np.mean(best == np.array(labels))), abs=1e-9)


def test_split_preview_matches_the_real_example_gen(first_run, workspace):
    examples = first_run["examples_uri"]
    eval_files = tf.io.gfile.glob(os.path.join(examples, "Split-eval", "*.gz"))
    ids = set()
    for r in tf.data.TFRecordDataset(eval_files, compression_type="GZIP"):
        ex = tf.train.Example.FromString(r.numpy())
        ids.add(ex.features.feature["image_id"].bytes_list.value[0].decode())
    result = scan.scan(workspace["data"])
    predicted = {i for i, _ in result.records if contract.split_of(i, 30) == "eval"}
    assert ids == predicted and len(ids) > 10


def test_worse_model_is_not_blessed_and_nothing_is_pushed(second_run, workspace):
    assert second_run["pushed"] is False
    assert sorted(os.listdir(workspace["root"] / "serving" / "clipart")) == \
        [".graft-last-version", "1"]
    ev = second_run["evaluation"]
    assert not ev["blessed"]
    assert ev["champion_accuracy"] is not None
    assert "vs champion" in ev["text"] and "FAILED" in ev["text"]
    text = summary.format_text(second_run)
    assert "NOT BLESSED" in text and "model in production is unchanged" in text


def test_a_fine_tuned_challenger_is_scored_as_a_whole_on_the_images(second_run):
    """Phase 2 kept changes the backbone, so the head on the cached vectors is not the
    model: the Evaluator runs both full models on the images then."""
    assert second_run["training"]["phase2"]["kept"] is True
    how = second_run["evaluation"]["scored_on"]
    assert how.startswith("images: the challenger has no head export"), how
    assert "scored: the full models on its images (the challenger has no head export: " \
        "a fine-tuned backbone" in summary.format_text(second_run)
    with open(second_run["report"]) as f:
        assert "Scored as the full exported models on the held-out images (the challenger " \
            "has no head export: a fine-tuned backbone" in f.read()


def test_unchanged_components_are_cached(second_run):
    # Only the trainer's options changed: the embeddings are reused, not recomputed.
    for name in ("ImageFolderExampleGen", "StatisticsGen", "Transform", "EmbeddingGen"):
        assert name in second_run["cached"]
    assert "Trainer" not in second_run["cached"]


def test_fine_tuning_changes_only_the_top_blocks(second_run):
    p2 = second_run["training"]["phase2"]
    assert p2["ran"] is True
    changed = p2["backbone_variables_changed"]
    assert changed, "one fine-tuning epoch changed no backbone variable"
    assert set(changed) <= set(p2["trainable_variables"])
    assert all(n.startswith(("block15_", "head_")) for n in changed)
    # BatchNorm stays in inference mode: its moving statistics never change.
    assert not [n for n in changed if "moving_" in n]


def test_cli_empty_dataset_fails_clearly(tmp_path):
    (tmp_path / "photos").mkdir()
    r = run_graft("run", "--data", str(tmp_path / "photos"),
                  "--pipeline-root", str(tmp_path / "root"))
    assert r.returncode == 2
    assert "no class folders" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "root").exists()


def test_an_unwritable_serving_dir_or_json_path_stops_the_run_before_tfx(workspace, tmp_path):
    """Both failed only after the whole pipeline had run (the Pusher, or writing --json)."""
    (tmp_path / "a-file").write_text("")
    r = run_graft("run", "--data", str(workspace["data"]), "--pipeline-root",
                  str(tmp_path / "root"), "--serving-dir", str(tmp_path / "a-file" / "models"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "push.serving_dir" in r.stderr and "cannot be created: Not a directory" in r.stderr
    assert not (tmp_path / "root").exists()           # the check leaves nothing behind
    r = run_graft("run", "--data", str(workspace["data"]), "--pipeline-root",
                  str(tmp_path / "root"), "--json", str(tmp_path / "nowhere" / "run.json"))
    assert r.returncode == 2 and "its folder does not exist" in r.stderr, r.stderr


def test_new_label_against_a_curated_schema_stops_before_training(first_run, workspace, tmp_path):
    """Data drift: a class the curated schema does not know. The run stops at the
    AnomaliesGate, before Transform and the Trainer, and says what is wrong."""
    import glob
    schema = glob.glob(str(workspace["root"] / "pipeline" / "artifacts" / "SchemaGen" /
                           "schema" / "*" / "schema.pbtxt"))[0]
    data = tmp_path / "clipart"
    shutil.copytree(workspace["data"], data)
    openclipart.prepare(str(tmp_path / "more"), classes=("plants", "tools"), max_per_class=6,
                        size=96, log=lambda s: None)
    shutil.copytree(tmp_path / "more" / "plants", data / "plants")
    cfg = config.load(None, {
        "data": {"path": str(data)},
        "train": {"backbone": workspace["backbone"], "image_size": 96},
        "push": {"serving_dir": str(tmp_path / "serving")},
        "pipeline": {"root": str(tmp_path / "root"), "model_name": "drift", "schema": schema},
    })
    with pytest.raises(runner.RunFailed) as e:
        runner.run(cfg, log=lambda s: None)
    msg = str(e.value)
    assert "AnomaliesGate" in msg and "training was not started" in msg
    assert "'label'" in msg and "plants" in msg
    assert not (tmp_path / "serving").exists()
    assert not glob.glob(str(tmp_path / "root" / "artifacts" / "Trainer" / "model" / "*"))


def test_tfrecord_input_runs_through_import_example_gen(first_run, tmp_path):
    """Users with tf.Examples already (image_bytes, label, image_id) skip the folder layout."""
    data = tmp_path / "tfrecords"
    data.mkdir()
    for i, f in enumerate(sorted(tf.io.gfile.glob(os.path.join(first_run["examples_uri"],
                                                              "Split-*", "*.gz")))):
        shutil.copy(f, data / f"part-{i}.gz")
    r = run_graft("run", "--data", str(data), "--data-format", "tfrecord", "--model-name", "tfr",
                  "--serving-dir", str(tmp_path / "serving"), "--pipeline-root",
                  str(tmp_path / "root"), "--image-size", "96", "--no-fine-tune",
                  "--backbone", first_run_backbone(first_run))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "-> ImportExampleGen" in r.stdout
    assert (tmp_path / "serving" / "tfr" / "1" / "saved_model.pb").exists()


def first_run_backbone(first_run):
    prov = json.load(open(os.path.join(first_run["pushed_path"], "assets.extra",
                                       "graft_provenance.json")))
    return prov["backbone"]


def _split_into_spans(src, dst, later):
    """span-1 gets 90 % of each class's files, span-2 (in ``later``, added later) the rest."""
    for cls in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, cls)):
            continue
        files = sorted(f for f in os.listdir(os.path.join(src, cls)) if f.endswith(".png"))
        cut = len(files) * 9 // 10
        for span, chunk, base in (("span-1", files[:cut], dst), ("span-2", files[cut:], later)):
            os.makedirs(os.path.join(base, span, cls), exist_ok=True)
            for f in chunk:
                shutil.copy(os.path.join(src, cls, f), os.path.join(base, span, cls, f))


def test_spans_nothing_new_and_the_run_history(workspace, tmp_path):
    import time
    data, later = tmp_path / "data", tmp_path / "later"
    _split_into_spans(workspace["data"], str(data), str(later))
    cfg = config.load(None, {
        "data": {"path": str(data), "spans": 0},
        "train": {"backbone": workspace["backbone"], "image_size": 96},
        "push": {"serving_dir": str(tmp_path / "serving")},
        "pipeline": {"root": str(tmp_path / "root"), "model_name": "spans"}})
    first = runner.run(cfg, log=lambda s: None)
    assert first["spans"] == ["span-1"] and first["pushed_version"] == 1

    t = time.time()
    again = runner.run(cfg, log=lambda s: None)
    assert time.time() - t < 5
    assert again["nothing_new"] and again["since_run"] == first["graft_run_id"]
    assert "nothing new since run" in summary.format_text(again)

    shutil.move(str(later / "span-2"), str(data / "span-2"))
    second = runner.run(cfg, log=lambda s: None)
    assert second["spans"] == ["span-1", "span-2"]
    # Trained on both spans, embedding only the new span's images.
    emb = second["embedding"]
    assert 0 < emb["embedded"] <= 12 and emb["reused"] >= first["embedding"]["embedded"]
    assert second["evaluation"]["champion_accuracy"] is not None  # compared with v1

    r = run_graft("runs", "--pipeline-root", str(tmp_path / "root"))
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 3, r.stdout + r.stderr
    assert "spans span-1 " in lines[0] and "pushed v1" in lines[0]
    assert f"nothing new since run {first['graft_run_id']}" in lines[1]
    assert "spans span-1,span-2" in lines[2]


def test_a_run_killed_during_training_leaves_nothing_behind(workspace, tmp_path):
    """Also the one run on Beam's direct runner in multi-process mode: nothing may rely
    on running in one process (as on Dataflow or Flink)."""
    import signal
    import subprocess
    import sys
    cfg = tmp_path / "graft.toml"
    cfg.write_text('[pipeline]\nbeam_args = ["--direct_running_mode=multi_processing", '
                   '"--direct_num_workers=2"]\n')
    args = ["run", "--config", str(cfg), "--data", workspace["data"],
            "--backbone", workspace["backbone"],
            "--image-size", "96", "--model-name", "killed", "--pipeline-root",
            str(tmp_path / "root"), "--serving-dir", str(tmp_path / "serving")]
    exe = os.path.join(os.path.dirname(sys.executable), "graft")
    proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("graft trainer:"):  # printed by the Trainer's run_fn: it is training
            break
    assert seen and seen[-1].startswith("graft trainer:"), "".join(seen)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    serving = tmp_path / "serving" / "killed"
    assert not serving.exists() or not os.listdir(serving)

    r = run_graft(*args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "scored: the models' heads on its cached vectors" in r.stdout  # TFMA's workers too
    assert [d for d in os.listdir(serving) if not d.startswith(".graft-")] == ["1"]
    r = run_graft("runs", "--pipeline-root", str(tmp_path / "root"))
    assert "stopped during Trainer" in r.stdout and "pushed v1" in r.stdout, r.stdout
