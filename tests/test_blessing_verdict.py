"""The blessing verdict in words (components/blessing_report/reading.verdict), as pure logic."""
from graft.components.blessing_report.reading import BASELINE, CANDIDATE, verdict

THRESHOLDS = {"min_accuracy": 0.6, "floor_reason": "configured floor", "max_regression": 0.01,
              "per_class_max_regression": 0.10}


def test_first_run_checks_the_floor_only():
    v = verdict({CANDIDATE: {"overall": 0.8, "label=cat": 0.9, "label=dog": 0.7}}, [], True,
                THRESHOLDS)
    assert v["blessed"] and v["headline"].startswith("BLESSED")
    assert "no model in production yet" in v["text"]
    assert v["per_class_accuracy"] == {"cat": 0.9, "dog": 0.7}
    assert v["champion_accuracy"] is None


def test_below_the_floor_says_so_with_the_numbers():
    v = verdict({CANDIDATE: {"overall": 0.5}}, ["overall: accuracy below 0.6"], False, THRESHOLDS)
    assert v["headline"] == ("NOT BLESSED: accuracy 0.500 < floor 0.600 (configured floor): "
                             "FAILED")


def test_regression_against_the_champion_overall_and_per_class():
    acc = {CANDIDATE: {"overall": 0.80, "label=cat": 0.95, "label=dog": 0.60},
           BASELINE: {"overall": 0.82, "label=cat": 0.80, "label=dog": 0.85}}
    v = verdict(acc, [], False, THRESHOLDS)
    assert "vs champion: 0.800 vs 0.820 (-0.020; may trail by at most 0.010): FAILED" in v["text"]
    assert "label=dog: 0.600 vs champion 0.850 (-0.250, limit -0.100)" in v["text"]
    assert "label=cat" not in v["headline"]
    assert v["champion_accuracy"] == 0.82


def test_within_tolerance_passes():
    acc = {CANDIDATE: {"overall": 0.815, "label=cat": 0.9},
           BASELINE: {"overall": 0.82, "label=cat": 0.95}}
    v = verdict(acc, [], True, THRESHOLDS)
    assert "FAILED" not in v["text"] and v["blessed"]


def test_tfma_failure_without_a_failed_check_is_still_explained():
    v = verdict({CANDIDATE: {"overall": 0.9}}, ["label=cat: change threshold"], False, THRESHOLDS)
    assert v["headline"] == "NOT BLESSED: label=cat: change threshold"
