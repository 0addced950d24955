"""The model card and the confusion-matrix arithmetic behind it and the run report
(pure logic, no TensorFlow)."""
from graft.components.blessing_report import reading
from graft.components.versioned_pusher import model_card


def test_confusion_matrix_counts_rows_as_true_classes_and_drops_no_prediction():
    entries = [[0, 0, 8], [0, 1, 2], [1, 1, 5], [1, 0, 1], [1, -1, 4]]
    assert reading.confusion_matrix(entries, 2) == [[8, 2], [1, 5]]


def test_precision_and_recall_per_class():
    rows = reading.precision_recall([[8, 2, 0], [1, 5, 0], [0, 0, 0]], ["a", "b", "c"])
    a, b, c = rows
    assert (a["support"], round(a["precision"], 4), a["recall"]) == (10, round(8 / 9, 4), 0.8)
    assert (b["support"], round(b["precision"], 4), round(b["recall"], 4)) == (
        6, round(5 / 7, 4), round(5 / 6, 4))
    assert c["precision"] is None and c["recall"] is None  # never seen, never predicted


def _card(counts, per_class, accuracy):
    info = {"classes": ["cat", "dog"], "backbone": "efficientnet_lite0", "image_size": 160,
            "report": {"class_counts": counts, "phase2": {"kept": False}}}
    reason = {"accuracy": accuracy, "champion_accuracy": 0.7, "headline": "BLESSED: ok",
              "per_class_accuracy": per_class,
              "confusion": {"candidate": [[0, 0, 9], [0, 1, 1], [1, 1, 6], [1, 0, 4]]}}
    prov = {"model_name": "pets", "pipeline_name": "graft-pets", "data": "photos/",
            "pushed_at": "2026-11-29T03:00:00Z", "pipeline_run_id": "r1"}
    return model_card.build(info, reason, prov, 7)


def test_card_carries_the_measured_metrics_and_derived_limitations():
    card = _card({"cat": 120, "dog": 12}, {"cat": 0.9, "dog": 0.6}, 0.75)
    assert card["model_details"]["name"] == "pets"
    assert card["model_details"]["version"]["name"] == "7"
    metrics = {(m["type"], m["slice"]): m["value"]
               for m in card["quantitative_analysis"]["performance_metrics"]}
    assert metrics[("accuracy", "overall")] == "0.750"
    assert metrics[("precision", "label=cat")] == f"{9 / 13:.3f}"
    assert metrics[("precision", "label=dog")] == f"{6 / 7:.3f}"
    limits = " ".join(x["description"] for x in card["considerations"]["limitations"])
    assert "Few training images (< 30) for: dog" in limits
    assert "more than 10 points below) on: dog" in limits
    md = model_card.render_markdown(card)
    assert md.startswith("# Model card: pets (version 7)")
    assert "| dog | 12 |" in md and "| precision | label=cat | 0.692 |" in md
    assert "against the previous model's 0.700" in md


def test_card_without_thin_or_weak_classes_does_not_invent_them():
    card = _card({"cat": 120, "dog": 130}, {"cat": 0.9, "dog": 0.88}, 0.89)
    limits = " ".join(x["description"] for x in card["considerations"]["limitations"])
    assert "Few training images" not in limits and "Clearly weaker" not in limits
