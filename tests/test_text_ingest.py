"""Text ingest: CSV, JSONL and DIR/<class>/*.txt, checked and deduplicated as images are,
then turned into tf.Examples by the real TextExampleGen; and `graft data tweets`."""
import csv
import glob
import json
import os

import pytest
import tensorflow as tf

from graft import contract
from graft.components.image_folder_example_gen.scan import DataError
from graft.components.text_example_gen import scan
from tests.conftest import run_graft


def _csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_csv_rows_are_checked_deduplicated_and_named_by_line(tmp_path):
    path = _csv(tmp_path / "reviews.csv", [
        ("great service", "pos"),          # line 2
        ("terrible, never again", "neg"),  # 3
        ("   ", "pos"),                    # 4: empty
        ("great service", "pos"),          # 5: a copy of line 2
        ("it was fine", ""),               # 6: no label
        ("so-so", "pos"),                  # 7: also filed as neg below
        ("so-so", "neg"),                  # 8
        ("  slow delivery ", "neg"),       # 9: trimmed
        ("a line break in the label", "n\neg"),  # 10 (and 11: the quoted field's break)
    ])
    r = scan.scan(path)
    assert sorted((lbl, t) for _, lbl, t in r.records) == [
        ("neg", "slow delivery"), ("neg", "terrible, never again"), ("pos", "great service")]
    assert r.counts == {"pos": 1, "neg": 2}
    skipped = dict(r.skipped)
    assert "class name 'n\\neg' holds a control character" in skipped.pop("reviews.csv:11")
    assert skipped == {"reviews.csv:4": "empty text", "reviews.csv:6": "no label"}
    kinds = {i: k for i, k, _ in r.duplicates}
    assert kinds == {"reviews.csv:5": contract.DUPLICATE_COPY,
                     "reviews.csv:7": contract.DUPLICATE_LABEL_CONFLICT,
                     "reviews.csv:8": contract.DUPLICATE_LABEL_CONFLICT}
    why = {i: w for i, _, w in r.duplicates}
    assert why["reviews.csv:5"] == "identical to reviews.csv:2: kept once"
    assert "filed under 2 classes (neg, pos)" in why["reviews.csv:7"]


def test_a_text_longer_than_csvs_field_limit_is_skipped_and_a_nul_is_named(tmp_path):
    """Both were csv.Error tracebacks: Python's csv refuses fields over 131 072 characters
    and (before 3.11) lines with a NUL byte."""
    rows = [(f"text number {i}", "pos" if i % 2 else "neg") for i in range(6)]
    path = _csv(tmp_path / "long.csv", rows + [("word " * 40_000, "pos")])
    r = scan.scan(path)
    assert r.counts == {"pos": 3, "neg": 3}
    assert dict(r.skipped) == {"long.csv:8": "longer than 100000 characters"}
    (tmp_path / "nul.csv").write_bytes(b"text,label\nhello,a\nbye\x00there,b\n")
    with pytest.raises(DataError, match=r"nul.csv, after line 2: line contains NUL"):
        scan.scan(str(tmp_path / "nul.csv"))


def test_ids_depend_on_the_text_alone(tmp_path):
    a = scan.scan(_csv(tmp_path / "a.csv", [("x one", "p"), ("y two", "n"), ("z three", "n")]))
    b = scan.scan(_csv(tmp_path / "b.csv", [("z three", "n"), ("new row", "p"), ("x one", "p"),
                                            ("y two", "n")]))
    ids_a = {t: i for i, _, t in a.records}
    ids_b = {t: i for i, _, t in b.records}
    assert all(ids_b[t] == i for t, i in ids_a.items())
    assert ids_a["x one"] == scan.text_id("x one")


def test_columns_are_configurable_and_a_missing_one_says_which(tmp_path):
    path = _csv(tmp_path / "t.csv", [("good", "p"), ("bad", "n")], header=("body", "sentiment"))
    assert len(scan.scan(path, text_column="body", label_column="sentiment").records) == 2
    with pytest.raises(DataError, match=r"no column 'text' or 'label' \(the columns are: body, "
                                        r"sentiment\).*text_column"):
        scan.scan(path)


def test_one_class_and_no_texts_are_errors_that_say_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="only one label"):
        scan.scan(_csv(tmp_path / "one.csv", [("a", "x"), ("b", "x")]))
    with pytest.raises(DataError, match="no usable texts.*2 rows were skipped"):
        scan.scan(_csv(tmp_path / "empty.csv", [("", "x"), (" ", "y")]))
    (tmp_path / "notes.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="expected a .csv or .jsonl file"):
        scan.scan(str(tmp_path / "notes.xlsx"))
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 14, line 2\)"):
        scan.scan(str(tmp_path / "latin1.csv"))
    # The file is read as it streams, in chunks: a bad byte far in is still placed exactly.
    rows = "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(20000))
    (tmp_path / "late.csv").write_bytes(("text,label\n" + rows).encode() + b"caf\xe9,a\n")
    at = len(("text,label\n" + rows).encode()) + 3
    with pytest.raises(DataError, match=rf"not UTF-8 text \(byte {at}, line 20002\)"):
        scan.scan(str(tmp_path / "late.csv"))


def test_jsonl_bad_lines_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps({"text": "love it", "label": "pos"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"text": "hate it"}),
        json.dumps({"text": "meh", "label": 3}),
        json.dumps({"text": "awful", "label": "neg"}),
    ]) + "\n")
    r = scan.scan(str(path))
    assert sorted(lbl for _, lbl, _ in r.records) == ["3", "neg", "pos"]
    reasons = dict(r.skipped)
    assert reasons["t.jsonl:2"].startswith("not a JSON object")
    assert reasons["t.jsonl:3"] == "not a JSON object"
    assert reasons["t.jsonl:4"] == "no key 'label'"


def test_jsonl_nested_too_deeply_or_not_unicode_is_skipped(tmp_path):
    """Each stopped graft run with a traceback: json's parser recursing on [[[[..., and a
    lone surrogate ("\\ud800") that no UTF-8 encoder takes."""
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps({"text": "love it", "label": "pos"}),
        "[" * 100000 + "]" * 100000,
        '{"text": "ok \\ud800", "label": "pos"}',
        '{"text": "fine", "label": "p\\udc80s"}',
        json.dumps({"text": "awful", "label": "neg"}),
    ]) + "\n")
    r = scan.scan(str(path))
    assert sorted(lbl for _, lbl, _ in r.records) == ["neg", "pos"]
    reasons = dict(r.skipped)
    assert reasons["t.jsonl:2"] == "not a JSON object: nested too deeply"
    assert "not valid Unicode" in reasons["t.jsonl:3"]
    assert "not valid Unicode" in reasons["t.jsonl:4"]


def test_folders_of_txt_files(tmp_path):
    for cls, texts in {"spam": ["win money now", "cheap pills"], "ham": ["lunch at 1?"]}.items():
        (tmp_path / "d" / cls).mkdir(parents=True)
        for n, t in enumerate(texts):
            (tmp_path / "d" / cls / f"{n}.txt").write_text(t)
    (tmp_path / "d" / "ham" / "photo.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "d" / "ham" / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    # A pipe named as a text file blocked a plain open() for ever; a dangling link was a
    # FileNotFoundError traceback. Both are skipped, in words.
    os.mkfifo(tmp_path / "d" / "ham" / "pipe.txt")
    os.symlink(tmp_path / "nowhere.txt", tmp_path / "d" / "spam" / "gone.txt")
    r = scan.scan(str(tmp_path / "d"))
    assert r.counts == {"ham": 1, "spam": 2}
    assert dict(r.skipped) == {
        os.path.join("ham", "bad.txt"): "not UTF-8 text (byte 0)",
        os.path.join("ham", "photo.jpg"): "not a .txt file",
        os.path.join("ham", "pipe.txt"): "unreadable: not a regular file (a pipe, socket or device)",
        os.path.join("spam", "gone.txt"): "unreadable: No such file or directory"}
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match="not a regular file"):
        scan.scan(str(tmp_path / "pipe.csv"))
    with pytest.raises(DataError, match="no class folders"):
        scan.scan(str(tmp_path / "d" / "spam"))


def test_graft_data_tweets_writes_a_csv_per_class(tmp_path):
    out = tmp_path / "tweets"
    r = run_graft("data", "tweets", "--out", str(out), "--per-class", "30", "--seed", "1")
    assert r.returncode == 0, r.stderr
    with open(out / "tweets.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [k for k in rows[0]] == ["text", "label"]
    labels = [row["label"] for row in rows]
    assert {lbl: labels.count(lbl) for lbl in set(labels)} == {
        "negative": 30, "neutral": 30, "positive": 30}
    again = run_graft("data", "tweets", "--out", str(out), "--per-class", "30", "--seed", "1")
    assert again.returncode == 0 and "reusing it" in again.stdout


@pytest.mark.slow
def test_text_example_gen_writes_the_scanned_texts_split_by_their_ids(tmp_path):
    from tfx import v1 as tfx
    from graft.components.text_example_gen.component import TextExampleGen
    from graft.datasets import tweets
    tweets.prepare(str(tmp_path / "data"), per_class=40, seed=0, log=lambda s: None)
    csv_path = str(tmp_path / "data" / "tweets.csv")
    gen = TextExampleGen(csv_path, eval_percent=30)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="text-ingest", pipeline_root=str(tmp_path / "root"), components=[gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite"))))
    expected = scan.scan(csv_path)
    got = {}
    for split in (contract.SPLIT_TRAIN, contract.SPLIT_EVAL):
        files = glob.glob(str(tmp_path / "root" / "TextExampleGen" / "examples" / "*" /
                              f"Split-{split}" / "*.gz"))
        for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            ex = tf.train.Example.FromString(raw.numpy())
            f = {k: v.bytes_list.value[0].decode() for k, v in ex.features.feature.items()}
            assert contract.split_of(f[contract.FEATURE_TEXT_ID], 30) == split
            got[f[contract.FEATURE_TEXT_ID]] = (f[contract.FEATURE_LABEL], f[contract.FEATURE_TEXT])
    assert got == {i: (lbl, t) for i, lbl, t in expected.records}
    report = json.loads(open(glob.glob(str(tmp_path / "root" / "TextExampleGen" / "examples" /
                                           "*" / contract.INGEST_REPORT_FILE))[0]).read())
    assert report["counts"] == expected.counts
