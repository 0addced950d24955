"""Text classification on the same pipeline and server: 300 real tweets (3 classes) through
TextExampleGen, EmbeddingGen with the MiniLM sentence encoder, the linear head, TFMA against
the champion and the versioned push; then served with raw strings over REST and gRPC."""
import base64
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from graft import contract
from graft.pipeline import config, runner, summary
from graft.serving.server import Server, ServerOptions
from tests.test_serving_contract import rest

pytestmark = pytest.mark.slow

TEXTS = ["I love my self-driving car, it is amazing", "driverless cars will kill people",
         "Google tests its autonomous car in California"]


def _cfg(ws, **train):
    return config.load(None, {
        "data": {"path": ws["csv"], "format": "text"},
        "train": dict({"backbone": ws["backbone"]}, **train),
        "push": {"serving_dir": str(ws["root"] / "serving")},
        "pipeline": {"root": str(ws["root"] / "pipeline"), "model_name": "tweets"}})


@pytest.fixture(scope="module")
def ws(tmp_path_factory, text_backbone):
    from graft.datasets import tweets
    root = tmp_path_factory.mktemp("text")
    tweets.prepare(str(root / "data"), per_class=100, seed=0, log=lambda s: None)
    return {"root": root, "csv": str(root / "data" / "tweets.csv"), "backbone": text_backbone}


@pytest.fixture(scope="module")
def first(ws):
    return runner.run(_cfg(ws), log=lambda s: None)


@pytest.fixture(scope="module")
def second(ws, first):
    """A head regularised to uselessness plus one epoch of fine-tuning the encoder's top
    layer (phase 2 for text): not blessed."""
    return runner.run(_cfg(ws, head_c_grid=[1e-9], fine_tune="on", fine_tune_epochs=1,
                           fine_tune_blocks=1, fine_tune_learning_rate=1e-6),
                      log=lambda s: None)


def test_a_text_run_is_blessed_and_pushed(first):
    assert first["pushed"] is True, summary.format_text(first)
    ev = first["evaluation"]
    assert ev["accuracy"] > first["data"]["majority_accuracy"] + 0.1
    text = summary.format_text(first)
    assert "data: 296 texts, 3 classes" in text and "identical copies kept once: 4" in text
    assert "embedded 296 new texts" in text
    assert ev["scored_on"] == "vectors"  # the text head on the encoder's cached vectors
    info = first["training"]
    assert info["phase1"]["fit_images"] > 150 and not info["phase2"]["ran"]
    with open(os.path.join(first["pushed_path"], contract.ASSETS_EXTRA,
                           contract.MODEL_CARD_MD)) as f:
        assert "A text classifier for 3 classes" in f.read()
    with open(first["report"]) as f:
        html = f.read()
    assert "<blockquote>" in html and "held-out texts examined" in html


def test_a_worse_text_model_is_not_blessed(second, first):
    assert second["pushed"] is False
    assert "FAILED" in second["evaluation"]["text"]
    assert "EmbeddingGen" in second["cached"]


def test_fine_tuning_text_changes_only_the_encoders_top_layer(second, ws):
    import glob
    p2 = second["training"]["phase2"]
    assert p2["ran"] is True and p2["epochs"] == 1
    changed = p2["backbone_variables_changed"]
    assert changed, "one fine-tuning epoch changed no encoder variable"
    assert set(changed) <= set(p2["trainable_variables"])
    assert all(n.startswith("layer_5_") for n in p2["trainable_variables"])
    # Whichever phase won, the Trainer's export still takes raw strings.
    model_dir = max(glob.glob(str(ws["root"] / "pipeline" / "artifacts" / "Trainer" / "model"
                                  / "*" / "Format-Serving")), key=os.path.getmtime)
    out = tf.saved_model.load(model_dir).signatures["serving_default"](
        text=tf.constant(TEXTS))
    assert out["scores"].shape == (3, 3) and out["label"].shape == (3,)


@pytest.fixture(scope="module")
def server(first):
    s = Server(ServerOptions(port=0, rest_api_port=0, model_name="tweets",
                             model_base_path=os.path.dirname(first["pushed_path"])))
    s.start()
    assert s.manager.wait_until_available("tweets", timeout=60)
    yield s
    s.stop()


def test_served_with_raw_strings_over_rest_and_grpc(server):
    code, rows = rest(server, "/v1/models/tweets:predict", {"instances": TEXTS})
    assert code == 200, rows
    labels = [p["label"] for p in rows["predictions"]]
    assert set(labels) <= {"negative", "neutral", "positive"}
    code, named = rest(server, "/v1/models/tweets:predict",
                       {"instances": [{"text": t} for t in TEXTS]})
    assert code == 200 and [p["label"] for p in named["predictions"]] == labels
    code, classified = rest(server, "/v1/models/tweets:classify",
                            {"examples": [{"text": t} for t in TEXTS]})
    assert code == 200 and len(classified["results"]) == 3

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "tweets"
    req.inputs[contract.FEATURE_TEXT].CopyFrom(
        tf.make_tensor_proto([t.encode() for t in TEXTS], dtype=tf.string))
    resp = stub.Predict(req, timeout=30)
    assert [b.decode() for b in tf.make_ndarray(resp.outputs["label"])] == labels


def test_hostile_text_gets_400_not_500(server):
    code, body = rest(server, "/v1/models/tweets:predict", raw=b'{"instances": ["\\udcff x"]}')
    assert code == 400 and "not valid Unicode" in body["error"]
    bad = base64.b64encode(b"\xff\xfe invalid utf-8").decode()
    code, body = rest(server, "/v1/models/tweets:predict", {"instances": [{"b64": bad}]})
    assert code in (200, 400), body
    code, body = rest(server, "/v1/models/tweets:predict", {"instances": [""]})
    assert code == 200  # an empty text is [CLS] [SEP]: a prediction, not an error


def test_prediction_page_takes_text_in_headless_chromium(server):
    from selenium.webdriver.support.ui import WebDriverWait
    from tests.headless_chromium import browser, console_errors
    code, expected = rest(server, "/v1/models/tweets:predict", {"instances": TEXTS[:1]})
    with browser(900, 900) as d:
        d.get(f"http://127.0.0.1:{server.rest_port}/")
        WebDriverWait(d, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        assert d.find_element("id", "text-box").is_displayed()
        assert not d.find_element("id", "drop").is_displayed()
        d.find_element("id", "text").send_keys(TEXTS[0])
        d.find_element("id", "classify-text").click()
        WebDriverWait(d, 30).until(lambda d: d.find_element("id", "label").text)
        assert d.find_element("id", "label").text == expected["predictions"][0]["label"]
        assert len(d.find_elements("css selector", "#bars .bar")) == 3
        assert console_errors(d) == []


def test_the_stronger_encoder_runs_the_same_pipeline(tmp_path_factory, mpnet_backbone):
    """all-mpnet-base-v2 (`--backbone mpnet_base`) through the same components, pushed, and
    its export answering raw strings in graft serve's engine."""
    from graft.datasets import tweets
    from graft.serving.loader import Servable
    root = tmp_path_factory.mktemp("text-mpnet")
    tweets.prepare(str(root / "data"), per_class=40, seed=1, log=lambda s: None)
    ws = {"root": root, "csv": str(root / "data" / "tweets.csv"), "backbone": mpnet_backbone}
    result = runner.run(_cfg(ws), log=lambda s: None)
    assert result["pushed"] is True, summary.format_text(result)
    assert result["evaluation"]["accuracy"] > result["data"]["majority_accuracy"] + 0.1
    assert not result["training"]["phase2"]["ran"]
    sig = Servable("tweets", 1, result["pushed_path"]).signature(contract.SERVING_SIGNATURE)
    out = sig({contract.FEATURE_TEXT: np.array([t.encode() for t in TEXTS], dtype=object)})
    assert out["scores"].shape == (3, 3)
    assert {x.decode() for x in out["label"]} <= {"negative", "neutral", "positive"}
