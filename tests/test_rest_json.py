"""TF Serving's REST JSON <-> numpy (serving/rest_json.py), without a server."""
import base64

import numpy as np
import pytest
import tensorflow as tf

from graft.serving import rest_json
from graft.serving.status import ServingError

ONE_FLOAT = {"x": tf.TensorSpec([None], tf.float32)}
TWO = {"a": tf.TensorSpec([None], tf.float32), "img_bytes": tf.TensorSpec([None], tf.string)}


def test_row_format_one_input_plain_or_named():
    inputs, fmt = rest_json.decode_predict({"instances": [1.0, 2]}, ONE_FLOAT)
    assert fmt == "row" and inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1, 2]
    inputs, _ = rest_json.decode_predict({"instances": [{"x": 3.5}]}, ONE_FLOAT)
    assert inputs["x"].tolist() == [3.5]


def test_row_format_several_inputs_and_b64():
    raw = b"\x89PNG\x00"
    body = {"instances": [{"a": 1.0, "img_bytes": {"b64": base64.b64encode(raw).decode()}}]}
    inputs, fmt = rest_json.decode_predict(body, TWO)
    assert fmt == "row" and inputs["img_bytes"][0] == raw and inputs["a"].tolist() == [1.0]


def test_columnar_format():
    inputs, fmt = rest_json.decode_predict({"inputs": {"a": [1, 2], "img_bytes": ["p", "q"]}},
                                           TWO)
    assert fmt == "columnar" and inputs["img_bytes"].tolist() == [b"p", b"q"]


@pytest.mark.parametrize("specs, body, fragment", [
    (ONE_FLOAT, [1, 2], "must be a JSON object"),
    (ONE_FLOAT, {"instances": [1], "inputs": [1]}, "only one of 'inputs' or 'instances'"),
    (ONE_FLOAT, {}, "Missing 'inputs' or 'instances'"),
    (ONE_FLOAT, {"instances": []}, "No values in 'instances'"),
    (ONE_FLOAT, {"instances": "x"}, "list/array"),
    (ONE_FLOAT, {"instances": ["a"]}, "not a number"),
    (ONE_FLOAT, {"instances": [True]}, "not a number"),
    (ONE_FLOAT, {"instances": [[1.0], [1.0, 2.0]]}, "ragged"),
    (ONE_FLOAT, {"instances": [{"y": 1.0}]}, "do not match"),
    (TWO, {"instances": [{"y": 1.0, "a": 1.0, "img_bytes": ""}]}, "does not have named input: y"),
    (TWO, {"instances": [{"a": 1.0}]}, "Missing named input: img_bytes"),
    (TWO, {"instances": [{"a": 1.0, "img_bytes": {"b64": "!!"}}]}, "base64"),
    (TWO, {"instances": [{"a": 1.0, "img_bytes": {"b64": "QQ==", "x": 1}}]}, "exactly one key"),
])
def test_bad_bodies_are_invalid_argument_with_tf_servings_words(specs, body, fragment):
    with pytest.raises(ServingError, match=fragment) as e:
        rest_json.decode_predict(body, specs)
    assert e.value.http_status == 400


def test_outputs_row_and_columnar_bytes_as_b64_nan_as_text():
    out = {"scores": np.array([[0.1, np.nan]], np.float32),
           "label": np.array([b"cat"], object), "thumb_bytes": np.array([b"\x00"], object)}
    row = rest_json.encode_predict(out, "row")
    assert row == {"predictions": [{"scores": [0.1, "NaN"], "label": "cat",
                                    "thumb_bytes": {"b64": "AA=="}}]}
    col = rest_json.encode_predict({"y": np.array([1.5], np.float32)}, "columnar")
    assert col == {"outputs": [1.5]}  # one output: its name is left out


def test_float32_is_printed_shortest_round_trip():
    assert rest_json.encode_predict({"y": np.array([0.1], np.float32)}, "row") == {
        "predictions": [0.1]}


def test_rows_need_one_batch_size():
    with pytest.raises(ServingError, match="different batch sizes"):
        rest_json.encode_predict({"a": np.zeros(2), "b": np.zeros(3)}, "row")


def test_examples_with_context_become_tf_examples():
    ser = rest_json.decode_examples({"examples": [{"x": 1}, {"x": [1.5, 2.0], "s": "a"}],
                                     "context": {"c": {"b64": "AA=="}}})
    first, second = (tf.train.Example.FromString(s) for s in ser)
    assert first.features.feature["x"].int64_list.value == [1]
    assert first.features.feature["c"].bytes_list.value == [b"\x00"]
    assert list(second.features.feature["x"].float_list.value) == [1.5, 2.0]
    assert second.features.feature["s"].bytes_list.value == [b"a"]


@pytest.mark.parametrize("body, fragment", [
    ({}, "Missing 'examples'"), ({"examples": []}, "non-empty"),
    ({"examples": [1]}, "must be an object"), ({"examples": [{"x": [1, "a"]}]}, "Unsupported"),
    ({"examples": [{"x": 1}], "context": [1]}, "'context' must be an object"),
])
def test_bad_examples(body, fragment):
    with pytest.raises(ServingError, match=fragment):
        rest_json.decode_examples(body)


def test_classify_results_pair_labels_and_scores():
    classes = np.array([[b"cat", b"dog"]], object)
    scores = np.array([[0.75, 0.25]], np.float32)
    assert rest_json.encode_classify(classes, scores) == {
        "results": [[["cat", 0.75], ["dog", 0.25]]]}


def test_a_lone_surrogate_in_a_string_is_the_clients_error():
    import json as _json
    body = _json.loads('{"instances": ["\\udcff x"]}')
    with pytest.raises(ServingError, match="not valid Unicode"):
        rest_json.decode_predict(body, {"text": tf.TensorSpec([None], tf.string)})


@pytest.mark.parametrize("text", [
    "QQ=",          # padding short
    "QQ===",        # padding long
    "Q",            # not a whole quantum
    "QQ==QQ==",     # padding inside
    "-_8=",         # URL-safe alphabet
    "QU JD",        # whitespace
    "QUJD\n",       # a newline
    "QUJDé===",     # not ASCII
])
def test_b64_is_strict_standard_base64(text):
    with pytest.raises(ServingError, match="Unable to base64 decode") as e:
        rest_json.decode_predict({"instances": [{"a": 1.0, "img_bytes": {"b64": text}}]}, TWO)
    assert e.value.http_status == 400


def test_b64_decodes_every_padding_and_large_images():
    for raw in (b"", b"A", b"AB", b"ABC", bytes(range(256)) * 400):
        body = {"instances": [{"a": 1.0, "img_bytes": {"b64": base64.b64encode(raw).decode()}}]}
        inputs, _ = rest_json.decode_predict(body, TWO)
        assert inputs["img_bytes"][0] == raw


def test_request_json_parses_as_tf_serving_does():
    # orjson first, json for what it refuses: the two must read every body alike.
    import math
    from graft.serving.rest import _loads
    assert _loads(b"") is None
    assert _loads(b'{"a": [1, 2.5, -0.0], "a": {"b": "\\u00e9"}}') == {"a": {"b": "\u00e9"}}
    nan_inf = _loads(b'{"instances": [NaN, Infinity, -Infinity]}')["instances"]
    assert math.isnan(nan_inf[0]) and nan_inf[1:] == [math.inf, -math.inf]
    assert _loads('{"x": 1}'.encode("utf-16")) == {"x": 1}       # json detects the encoding
    assert _loads(b'"\\ud800"') == "\ud800"                       # a lone surrogate, as json
    assert _loads(b"[0.1, 1e308, 123456789]") == [0.1, 1e308, 123456789]
    with pytest.raises(ValueError, match="Number too big to be stored in double"):
        _loads(b"[1e999]")
    # The one difference, and why classify/regress bodies parse with json alone.
    assert _loads(b"[1000000000000000000000000000000]", fast=False) == [10 ** 30]
    assert _loads(b"[1000000000000000000000000000000]") == [1e30]
    with pytest.raises(ValueError):
        _loads(b'{"instances": [1,]}')
