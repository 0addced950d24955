"""The run report, the model card and the prediction page, on the session's real
pipeline runs (tests/conftest.py: run 1 blessed with no champion, run 2 not blessed
after one fine-tuning epoch); the report and the page are checked in headless Chromium."""
import base64
import glob
import json
import os
import re
import urllib.request

import pytest

from graft import contract
from graft.serving.server import Server, ServerOptions
from tests.conftest import run_graft
from tests.headless_chromium import browser, console_errors, screenshot
from tests.test_serving_contract import rest

pytestmark = pytest.mark.slow


def _facts(run):
    with open(os.path.join(os.path.dirname(run["report"]), contract.RUN_REPORT_JSON)) as f:
        return json.load(f)


def _html(run):
    with open(run["report"]) as f:
        return f.read()


def test_first_run_report_is_one_self_contained_file(first_run):
    assert first_run["report"].endswith(contract.RUN_REPORT_FILE)
    html = _html(first_run)
    # Nothing is fetched: no external src/href, no scripts; plots inline.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html
    assert html.count("<svg") >= 4   # class counts, CV curve, per class, 2 confusion
    assert "BLESSED: the new model passed every threshold" in html
    assert "none yet (first run)" in html and "Confusion matrix: champion" not in html
    assert f"Pushed as version <b>{first_run['pushed_version']}</b>" in html
    assert f"report: {first_run['report']}" in __import__(
        "graft.pipeline.summary", fromlist=["x"]).format_text(first_run)


def test_report_facts_agree_with_each_other(first_run):
    f = _facts(first_run)
    classes = f["classes"]
    assert sorted(classes) == ["animals", "food", "transportation"]
    held_out = f["statistics"]["eval"]["examples"]
    # TFMA's confusion matrix counts every held-out example once, and the report's own
    # pass over the held-out examples saw the same number.
    assert sum(f["held_out_counts"].values()) == held_out
    assert f["mistakes"]["examined"] == held_out
    wrong = held_out - sum(round(r["recall"] * r["support"]) for r in f["precision_recall"])
    assert f["mistakes"]["wrong"] == wrong
    assert len(f["mistakes"]["worst"]) == min(wrong, 12)
    scores = [m["score"] for m in f["mistakes"]["worst"]]
    assert scores == sorted(scores, reverse=True)
    for m in f["mistakes"]["worst"]:
        assert m["true"] != m["predicted"] and m["thumbnail"].startswith("data:image/png;base64,")
    p1 = f["training"]["phase1"]
    assert len(p1["cv_curve"]) == len(first_run["training"]["phase1"]["cv_curve"]) > 1
    assert p1["c"] in [c for c, _ in p1["cv_curve"]]
    assert sum(f["training"]["class_counts"].values()) == f["training"]["train_images"]
    assert f["push"]["pushed"] and f["push"]["version"] == first_run["pushed_version"]


def test_report_scores_the_held_out_vectors_exactly_as_the_exported_model(first_run, second_run):
    # Run 1 has no phase 2: the Trainer exported its head alone, and the report scored
    # EmbeddingGen's held-out vectors with it. Its findings equal those of the exported
    # model run over the held-out images themselves.
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import path_utils
    from graft.components.run_report import mistakes
    found = _facts(first_run)["mistakes"]
    def head_export(model_uri):
        return os.path.join(path_utils.serving_model_path(
            os.path.join(model_uri, contract.HEAD_MODEL_DIR)), "saved_model.pb")
    assert os.path.exists(head_export(first_run["model_uri"]))
    assert found["scored_from"] == "embeddings"
    examples = standard_artifacts.Examples()
    examples.uri = first_run["examples_uri"]
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    served = mistakes.examine(path_utils.serving_model_path(first_run["model_uri"]),
                              [examples], 2000, 12)
    assert served["scored_from"] == "model"
    for key in ("examined", "wrong", "formats", "sizes"):
        assert served[key] == found[key], key
    assert [(m["image_id"], m["true"], m["predicted"]) for m in served["worst"]] == \
        [(m["image_id"], m["true"], m["predicted"]) for m in found["worst"]]
    assert [m["score"] for m in served["worst"]] == pytest.approx(
        [m["score"] for m in found["worst"]], abs=1e-4)
    # A fine-tuned backbone is not what EmbeddingGen ran: then no head export, and the
    # report runs the exported model.
    if (second_run["training"].get("phase2") or {}).get("kept"):
        assert not os.path.exists(head_export(second_run["model_uri"]))
        assert _facts(second_run)["mistakes"]["scored_from"] == "model"


def test_not_blessed_report_shows_the_reason_the_champion_and_the_epochs(second_run):
    html = _html(second_run)
    reason = second_run["evaluation"]["headline"]
    assert reason.startswith("NOT BLESSED") and reason in html.replace("&lt;", "<")
    assert "Confusion matrix: champion" in html
    assert "the model in production is unchanged" in html
    f = _facts(second_run)
    history = f["training"]["phase2"]["history"]
    assert [h["epoch"] for h in history] == [1] and "val_loss" in history[0]
    assert "loss and accuracy per epoch" in html
    # Phase 2 wrote TensorBoard logs into the model run dir, and the report says how to look.
    logdir = f["training"]["phase2"]["tensorboard_dir"]
    assert glob.glob(os.path.join(logdir, "**", "events.out.tfevents*"), recursive=True)
    assert f"tensorboard --logdir {logdir}" in html


def test_model_card_is_generated_beside_the_pushed_version(first_run):
    extra = os.path.join(first_run["pushed_path"], contract.ASSETS_EXTRA)
    with open(os.path.join(extra, contract.MODEL_CARD_JSON)) as f:
        card = json.load(f)
    with open(os.path.join(extra, contract.MODEL_CARD_MD)) as f:
        md = f.read()
    ev = first_run["evaluation"]
    assert card["model_details"]["version"]["name"] == str(first_run["pushed_version"])
    metrics = {(m["type"], m["slice"]): m["value"]
               for m in card["quantitative_analysis"]["performance_metrics"]}
    assert metrics[("accuracy", "overall")] == f"{ev['accuracy']:.3f}"
    for cls, acc in ev["per_class_accuracy"].items():
        assert metrics[("accuracy (recall)", f"label={cls}")] == f"{acc:.3f}"
        assert ("precision", f"label={cls}") in metrics
        assert f"| accuracy (recall) | label={cls} | {acc:.3f} |" in md
    assert card["considerations"]["limitations"] and "## Limitations" in md


def test_graft_report_finds_a_run_by_id_and_says_when_there_is_none(first_run, workspace):
    root = str(workspace["root"] / "pipeline")
    r = run_graft("report", first_run["graft_run_id"], "--pipeline-root", root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == first_run["report"]
    r = run_graft("report", "no-such-run", "--pipeline-root", root)
    assert r.returncode == 2 and "no report for run no-such-run" in r.stderr


def test_report_renders_in_headless_chromium(first_run, second_run):
    for run, name in ((second_run, "report-not-blessed.png"), (first_run, "report.png")):
        with browser() as d:
            d.get("file://" + run["report"])
            boxes = d.execute_script(
                "return [...document.querySelectorAll('svg')].map(s => {"
                "const r = s.getBoundingClientRect(); return [r.width, r.height,"
                " s.querySelectorAll('path, text, use').length]; })")
            assert len(boxes) >= 4
            assert all(w > 50 and h > 50 and n > 5 for w, h, n in boxes), boxes
            thumbs = d.execute_script(
                "return [...document.querySelectorAll('.mistake img')].map(i => i.naturalWidth)")
            assert all(t > 0 for t in thumbs)
            assert d.find_element("id", "verdict").text == run["evaluation"]["headline"]
            assert console_errors(d) == []
            screenshot(d, name)


@pytest.fixture
def page_server(first_run):
    s = Server(ServerOptions(port=None, rest_api_port=0, model_name="clipart",
                             model_base_path=os.path.dirname(first_run["pushed_path"])))
    s.start()
    assert s.manager.wait_until_available("clipart", timeout=60)
    yield s
    s.stop()


def _predict(server, data: bytes):
    return rest(server, "/v1/models/clipart:predict",
                {"instances": [{"b64": base64.b64encode(data).decode()}]})


def test_prediction_page_in_headless_chromium(page_server, workspace, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait
    image = sorted(glob.glob(os.path.join(workspace["data"], "animals", "*.png")))[0]
    with open(image, "rb") as f:
        status, expected = _predict(page_server, f.read())
    assert status == 200
    not_image = tmp_path / "notes.txt"
    not_image.write_text("this is not an image")
    status, refused = _predict(page_server, not_image.read_bytes())
    assert status == 400 and refused["error"]

    with browser(900, 1000) as d:
        d.get(f"http://127.0.0.1:{page_server.rest_port}/")
        WebDriverWait(d, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        assert d.find_element("id", "model").get_attribute("value") == "clipart"
        d.find_element("id", "file").send_keys(image)
        WebDriverWait(d, 30).until(lambda d: d.find_element("id", "label").text)
        # The page shows what the REST API answers for the same bytes.
        assert d.find_element("id", "label").text == expected["predictions"][0]["label"]
        bars = d.find_elements("css selector", "#bars .bar")
        assert len(bars) == 3
        assert float(d.find_element("id", "latency").text) > 0
        assert "clipart version 1" in d.find_element("id", "served-by").text
        assert "model_name" in d.find_element("id", "provenance").text
        assert console_errors(d) == []
        screenshot(d, "prediction-page.png")

        d.find_element("id", "file").send_keys(str(not_image))
        WebDriverWait(d, 30).until(lambda d: d.find_element("id", "error").is_displayed())
        shown = d.find_element("id", "error").text
        assert "HTTP 400" in shown and refused["error"].split("[[")[0].strip() in shown
        assert not d.find_element("id", "result").is_displayed()


def test_web_ui_can_be_switched_off(first_run):
    s = Server(ServerOptions(port=None, rest_api_port=0, model_name="clipart", enable_web_ui=False,
                             model_base_path=os.path.dirname(first_run["pushed_path"])))
    s.start()
    try:
        for path in ("/", "/ui/app.js", "/ui/models"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{s.rest_port}{path}", timeout=10)
            assert e.value.code == 404
            assert json.loads(e.value.read())["error"].startswith("Malformed request")
    finally:
        s.stop()
