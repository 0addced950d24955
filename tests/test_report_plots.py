"""The run report's confusion matrices stay readable and small as the classes grow: the
per-cell numbers made the SVG grow with the square of the classes (120 classes: 28 s and
9 MB for one model's two plots)."""
import random

from graft.components.run_report import render


def _matrix(n, seed=0):
    rng = random.Random(seed)
    return [[rng.randint(0, 5) for _ in range(n)] for _ in range(n)]


def test_a_few_classes_get_their_numbers_in_every_cell():
    m = [[5, 1, 0], [2, 7, 0], [0, 0, 9]]
    svg = render.confusion_plot(m, ["cat", "dog", "owl"], False, "challenger: counts")
    assert svg.startswith("<svg") and "cat" in svg and "owl" in svg
    # matplotlib writes each text as <g id="text_N">, its string in a comment
    assert svg.count('<g id="text_') >= 9 and "<!-- 2 -->" in svg


def test_many_classes_are_drawn_without_cell_numbers_or_labels():
    n = 200
    names = [f"class_{i}" for i in range(n)]
    svg = render.confusion_plot(_matrix(n), names, True, "challenger: share")
    assert len(svg) < 1_000_000 and svg.count('<g id="text_') < 30  # axes and colorbar only
    assert "class_17" not in svg and f"{n} classes, in the label vocabulary" in svg
    mid = render.confusion_plot(_matrix(60), [f"c{i}" for i in range(60)], False, "t")
    assert "c59" in mid and len(mid) < 1_000_000   # labelled, not numbered


def test_the_most_confused_pairs_are_the_largest_off_diagonal_cells():
    m = [[8, 3, 0, 1],
         [0, 9, 0, 0],
         [5, 0, 2, 5],
         [0, 0, 0, 4]]
    pairs = render.most_confused(m, ["a", "b", "c", "d"], k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("c", "a", 5), ("c", "d", 5), ("a", "b", 3)]
    assert abs(pairs[0]["share"] - 5 / 12) < 1e-9
    assert render.most_confused([[3, 0], [0, 4]], ["x", "y"]) == []
