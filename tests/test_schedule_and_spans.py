"""Span folders, run history and schedules: the pure parts, fast."""
import os
import shutil
import subprocess

import pytest

from graft.components.image_folder_example_gen import scan, spans
from graft.pipeline import config, history, schedule


def _mk(root, *names):
    for n in names:
        os.makedirs(os.path.join(root, n), exist_ok=True)


def test_span_layouts_are_recognised(tmp_path):
    _mk(tmp_path / "plain", "cats", "dogs")
    assert spans.layout(str(tmp_path / "plain")) is None
    _mk(tmp_path / "numbered", "span-1", "span-2", "span-10")
    assert spans.layout(str(tmp_path / "numbered")) == spans.SPAN_PATTERN
    assert spans.folders(str(tmp_path / "numbered")) == [(1, "span-1"), (2, "span-2"),
                                                         (10, "span-10")]
    assert spans.window(str(tmp_path / "numbered"), 2) == [(2, "span-2"), (10, "span-10")]
    assert spans.window(str(tmp_path / "numbered"), 0)[0] == (1, "span-1")
    _mk(tmp_path / "dated", "2026-11-28", "2026-11-29")
    assert spans.layout(str(tmp_path / "dated")) == spans.DATE_PATTERN
    # TFX's own date span numbers (days since the Unix epoch).
    from tfx.components.example_gen.utils import date_to_span_number
    assert spans.folders(str(tmp_path / "dated"))[-1][0] == date_to_span_number(2026, 11, 29)
    _mk(tmp_path / "mixed", "span-1", "cats")
    with pytest.raises(scan.DataError, match="mixes span folders"):
        spans.layout(str(tmp_path / "mixed"))
    _mk(tmp_path / "baddate", "2026-02-30")
    with pytest.raises(scan.DataError, match="not a valid date"):
        spans.layout(str(tmp_path / "baddate"))


def test_a_window_of_spans_is_checked_as_one_dataset(tmp_path):
    from PIL import Image
    for span, classes in (("span-1", ("cats", "dogs")), ("span-2", ("cats",))):
        for cls in classes:
            os.makedirs(tmp_path / span / cls)
            for i in range(4):
                Image.new("RGB", (8, 8), (i * 40, 10 if cls == "cats" else 200, int(span[-1]) * 90)
                          ).save(tmp_path / span / cls / f"{span}-{i}.png")
    # span-2 alone has one class: fine inside a window, which is checked as a whole.
    r = scan.scan_many([str(tmp_path / "span-1"), str(tmp_path / "span-2")], str(tmp_path))
    assert r.counts == {"cats": 8, "dogs": 4}
    assert all(i.startswith(("span-1/", "span-2/")) for i, _ in r.records)
    with pytest.raises(scan.DataError, match="only one class"):
        scan.scan(str(tmp_path / "span-2"))


@pytest.mark.parametrize("cron,calendar", [
    ("0 3 * * *", ["*-*-* 03:00:00"]),
    ("*/15 * * * *", ["*-*-* *:00,15,30,45:00"]),
    ("30 2 * * 1-5", ["Mon..Fri *-*-* 02:30:00"]),
    ("0 0 1,15 * *", ["*-*-01,15 00:00:00"]),
    ("0 3 * * 0-2", ["Mon,Tue,Sun *-*-* 03:00:00"]),   # systemd's week starts on Monday
    ("0 3 * * MON-FRI", ["Mon..Fri *-*-* 03:00:00"]),
    ("@daily", ["*-*-* 00:00:00"]),
    ("0 3 1 * 1", ["Mon *-*-* 03:00:00", "*-*-01 03:00:00"]),  # cron: the 1st OR a Monday
])
def test_cron_becomes_systemd_calendar(cron, calendar):
    texts = schedule.on_calendar(cron)
    assert len(texts) == len(calendar)
    if shutil.which("systemd-analyze"):  # systemd's own parser is the judge
        for text, want in zip(texts, calendar):
            out = subprocess.run(["systemd-analyze", "calendar", text], capture_output=True,
                                 text=True)
            assert out.returncode == 0, out.stderr
            assert f"Normalized form: {want}" in out.stdout


_SAME_TIMES = ["0 3 * * *", "*/15 * * * *", "30 2 * * 1-5", "0 3 * * 0-2", "0 3 * * 5-7",
               "0 3 1 * 1", "0 3 */2 * 1", "5-1 * * * *", "0 3 * jan,jul sun", "@weekly",
               "@monthly", "0 0 29 2 *", "0 22 * * mon-fri/2", "1-10/3 9-17 * * *",
               "0 3 13 * fri", "0 */6 * * 6,0", "0 3 1 * 0,1,2,3,4,5,6", "0 3 1-31 * 1"]


@pytest.mark.parametrize("cron", _SAME_TIMES)
def test_the_timer_fires_when_cron_would(cron):
    """The systemd calendars graft writes fire at the times croniter (cron's rules: the
    day-of-month OR day-of-week rule included) gives for the expression, and so does the
    normalized expression the crontab line and Kubeflow's recurring run get."""
    import datetime
    from croniter import croniter
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is what reads a calendar as systemd does")
    base = datetime.datetime(2026, 12, 1, 0, 0)
    n = 12

    def cron_times(expr):
        it = croniter(expr, base)
        return [it.get_next(datetime.datetime) for _ in range(n)]

    want = cron_times(cron)
    assert cron_times(schedule.check_cron(cron).normalized) == want
    got = set()
    for text in schedule.on_calendar(cron):
        out = subprocess.run(["systemd-analyze", "calendar", f"--iterations={n}",
                              "--base-time=2026-12-01 00:00:00 UTC", text],
                             capture_output=True, text=True, env={**os.environ, "TZ": "UTC"})
        assert out.returncode == 0, out.stderr
        for line in out.stdout.splitlines():
            if "elapse:" in line or "Iter. #" in line:
                stamp = " ".join(line.split(":", 1)[1].split()[1:3])
                got.add(datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    assert sorted(got)[:n] == want


@pytest.mark.parametrize("bad", [
    "0 3 * *", "61 * * * *", "a b c d e", "*/0 * * * *", "0 0 30 2 *", "0 3 L * *",
    "0 3 * * 1#2", "H * * * *", "R 3 * * *", "0 3 * * 7-7", "0 0 1 * * *", "@reboot",
    "@every 5m", "0 3 * * 8", "1- * * * *"])
def test_bad_cron_is_refused_in_words(bad):
    with pytest.raises(schedule.ScheduleError, match="--cron"):
        schedule.check_cron(bad)


def test_schedule_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg_path = tmp_path / "graft.toml"
    data, root = tmp_path / "data", tmp_path / "pipeline-root"
    cfg_path.write_text(f'[data]\npath = "{data}"\n[pipeline]\nroot = "{root}"\n')
    log = root / "logs" / "graft-run.log"
    cfg = config.load(str(cfg_path), validate=False)
    files = schedule.local_files(cfg, "0 3 * * *", str(cfg_path), "graft-x", kind="systemd")
    service, timer = files["graft-x.service"], files["graft-x.timer"]
    assert f"run --config {cfg_path}" in service and f"WorkingDirectory={tmp_path}" in service
    assert f"append:{log}" in service
    assert "OnCalendar=*-*-* 3:0:00" in timer and "Persistent=true" in timer
    if shutil.which("systemd-analyze"):
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        out = subprocess.run(["systemd-analyze", "verify", "--user", str(tmp_path / "graft-x.timer")],
                             capture_output=True, text=True)
        assert "graft-x.timer" not in out.stderr or "Failed" not in out.stderr, out.stderr
    (line,) = schedule.local_files(cfg, "0 3 * * *", str(cfg_path), "graft-x", kind="cron").values()
    entry = [l for l in line.splitlines() if not l.startswith("#")][0]
    assert entry.startswith("0 3 * * * ") and f"run --config {cfg_path}" in entry
    assert entry.endswith(f">> {log} 2>&1")
    with pytest.raises(schedule.ScheduleError, match="--config"):
        schedule.local_files(cfg, "0 3 * * *", None, "graft-x")


def test_a_cron_written_over_lines_stays_one_line_in_the_files(tmp_path, monkeypatch):
    """"0\n3 * * *" is five fields; written back as typed, its second line would be a
    crontab entry of its own."""
    monkeypatch.chdir(tmp_path)
    cfg_path = tmp_path / "graft.toml"
    cfg_path.write_text(f'[data]\npath = "{tmp_path}"\n[pipeline]\nroot = "{tmp_path}/r"\n')
    cfg = config.load(str(cfg_path), validate=False)
    (text,) = schedule.local_files(cfg, "0\n3 * *\t*\n", str(cfg_path), "g", kind="cron").values()
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1] == "# schedule: 0 3 * * *"
    assert lines[2].startswith("0 3 * * * mkdir ")
    timer = schedule.local_files(cfg, "0\n3 * * *", str(cfg_path), "g", kind="systemd")["g.timer"]
    assert 'on schedule "0 3 * * *"' in timer


def test_schedule_files_escape_percent_signs_and_quote_spaces(tmp_path, monkeypatch):
    """cron reads an unescaped % in a command as a newline, and systemd as a specifier;
    a space split ExecStartPre's mkdir in two."""
    work = tmp_path / "my runs"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg_path = work / "g 100%.toml"
    cfg_path.write_text(f'[data]\npath = "{tmp_path}"\n[pipeline]\nroot = "{work}/root 5%"\n')
    cfg = config.load(str(cfg_path), validate=False)
    (line,) = schedule.local_files(cfg, "0 3 * * *", str(cfg_path), "g", kind="cron").values()
    entry = [l for l in line.splitlines() if not l.startswith("#")][0]
    assert "%" not in entry.replace("\\%", "")          # every % escaped for cron
    # What cron hands the shell (\% -> %), split as the shell splits it:
    import shlex
    words = shlex.split(entry[len("0 3 * * * "):].replace("\\%", "%"))
    assert words[:3] == ["mkdir", "-p", f"{work}/root 5%/logs"]
    assert f"{work}/g 100%.toml" in words
    files = schedule.local_files(cfg, "0 3 * * *", str(cfg_path), "g", kind="systemd")
    service = files["g.service"]
    pre = [l for l in service.splitlines() if l.startswith("ExecStartPre=")][0]
    assert shlex.split(pre[len("ExecStartPre="):].replace("%%", "%")) == [
        "/bin/mkdir", "-p", f"{work}/root 5%/logs"]
    assert f"--config '{work}/g 100%%.toml'" in service
    assert f"append:{work}/root 5%%/logs/graft-run.log" in service


def test_graft_schedule_print(tmp_path):
    from tests.conftest import run_graft
    cfg_path = tmp_path / "graft.toml"
    cfg_path.write_text(f'[data]\npath = "{tmp_path / "data"}"\n'
                        f'[pipeline]\nroot = "{tmp_path / "pipeline-root"}"\n')
    r = run_graft("schedule", "--cron", "0 3 * * *", "--config", str(cfg_path), "--print")
    assert r.returncode == 0, r.stderr
    assert "graft run" not in r.stderr and "run --config" in r.stdout
    r = run_graft("schedule", "--cron", "0 3 * *", "--config", str(cfg_path), "--print")
    assert r.returncode == 2 and "--cron" in r.stderr and "Traceback" not in r.stderr


def test_history_records_and_the_nothing_new_rule(tmp_path):
    db = str(tmp_path / "metadata.sqlite")
    assert history.recorded(db) == [] and history.unchanged_since(db, "p", "fp1") is None
    history.record(db, history.Run(run_id="r1", pipeline="p", started=1.0, kind=history.PUSHED,
                                   outcome="pushed v1", version=1, accuracy=0.8,
                                   fingerprint="fp1"))
    assert history.unchanged_since(db, "p", "fp1").run_id == "r1"
    assert history.unchanged_since(db, "p", "fp2") is None
    assert history.unchanged_since(db, "other", "fp1") is None
    # A failed run since: the next run must try again, even with the same inputs.
    history.record(db, history.Run(run_id="r2", pipeline="p", started=2.0, kind=history.FAILED,
                                   outcome="failed: x", fingerprint="fp1"))
    assert history.unchanged_since(db, "p", "fp1") is None
    runs = history.all_runs(db)
    assert [r.run_id for r in runs] == ["r1", "r2"]
    assert "pushed v1" in history.format_line(runs[0]) and "0.800" in history.format_line(runs[0])
    assert runs[0].to_json()["version"] == 1 and runs[1].to_json()["accuracy"] is None


def test_a_damaged_metadata_file_is_named_not_a_traceback(tmp_path):
    from tests.conftest import run_graft
    (tmp_path / "metadata.sqlite").write_text("not a database")
    with pytest.raises(config.ConfigError, match="cannot be opened .file is not a database"):
        history.store(str(tmp_path / "metadata.sqlite"))
    r = run_graft("runs", "--pipeline-root", str(tmp_path))
    assert r.returncode == 2 and "history is damaged" in r.stderr and "Traceback" not in r.stderr


def test_a_stopped_run_is_explained_by_grafts_own_error_not_its_cause():
    """EmbeddingGen's ImageDecodeError names the example; the run's last line printed
    TensorFlow's cause beneath it ("Unknown image file format") and lost which one."""
    from graft.components.embedding_gen.executor import ImageDecodeError
    from graft.pipeline import runner
    try:
        try:
            try:
                raise ValueError("Unknown image file format")
            except ValueError as e:
                raise ImageDecodeError("example garbage1: its image cannot be decoded") from e
        except ImageDecodeError as e:
            raise RuntimeError("a Beam stage failed") from e
    except RuntimeError as e:
        text = runner._explain(e, "EmbeddingGen")
    assert text == ("the pipeline stopped in EmbeddingGen: example garbage1: its image cannot "
                    "be decoded")


def test_a_full_disk_is_named_with_the_file_and_what_to_do(tmp_path):
    import errno
    from graft.pipeline import runner
    shard = str(tmp_path / "artifacts" / "x.tfrecord")
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", shard)
        except OSError as e:
            raise RuntimeError("a Beam stage failed") from e
    except RuntimeError as e:
        text = runner._explain(e, "EmbeddingGen")
    assert text.startswith(f"the pipeline stopped in EmbeddingGen: no space left on the disk "
                           f"holding {shard}: free space there")
