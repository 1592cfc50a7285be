"""The command line an operator uses: options, JSON, the run record, metrics file, logs, bars."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from helpers import DATA, INGEST, execute, logged, query, synth, table_counts, wait_for_copy


def test_dry_run_prints_what_would_be_inserted_and_writes_nothing(tmp_path, run_ingest,
                                                                   database_url):
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "1")
    assert run_ingest("--metrics", "hr").returncode == 0
    before = sorted(p.name for p in state.iterdir())
    checkpoint = (state / "last_run.json").read_bytes()
    runs = query(database_url, "SELECT count(*) FROM ingest_runs")
    with (data / "br.csv").open("a") as f:
        f.write("2024-01-02T00:00:00+00:00,fast\n")

    proc = run_ingest("--dry-run")
    full = run_ingest("--dry-run", "--full")

    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert "Would ingest 0 rows → hr" in out  # nothing new since the checkpoint
    assert "Would ingest 1 rows → br (1 rejected)" in out
    would = sum(int(line.split()[2].replace(",", "")) for line in out[:-2])
    assert out[-2].startswith(f"Total: {would:,} rows would be inserted, 0 already present, "
                              "1 rejected, 0 file errors, in ")
    assert out[-1] == "dry run complete: nothing written"
    assert "Would ingest 0 rows → hr (86,400 already present)" in full.stdout
    assert table_counts(database_url) == {"hr": 86_400}
    assert (state / "last_run.json").read_bytes() == checkpoint
    assert sorted(p.name for p in state.iterdir()) == before  # no rejects.csv either
    assert query(database_url, "SELECT count(*) FROM ingest_runs") == runs


def test_dry_run_on_a_new_database_creates_nothing(tmp_path, run_ingest, database_url):
    synth(tmp_path / DATA, "--days", "1")
    proc = run_ingest("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Would ingest 86,400 rows → hr" in proc.stdout
    assert query(database_url, "SELECT to_regclass('raw_data')") == [(None,)]


def test_metrics_and_participants_limit_the_run(tmp_path, run_ingest, database_url):
    synth(tmp_path / "study" / "participant_001", "--days", "1")
    synth(tmp_path / "study" / "participant_002", "--days", "1")
    proc = run_ingest("--metrics", "br,activity", "--participants", "2",
                      DATA_DIR=str(tmp_path / "study"))
    assert proc.returncode == 0, proc.stderr
    assert [line.split("→ ")[1] for line in proc.stdout.splitlines()[:-2]] == [
        "participant_002/activity", "participant_002/br"]
    assert query(database_url, "SELECT participant, metric, count(*) FROM raw_data "
                               "GROUP BY 1, 2 ORDER BY 1, 2") == [(2, "activity", 1), (2, "br", 1)]


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--participants", "1,x"], "'1,x' is not a list of whole numbers"),
    (["--participants", "\u0661"], "is not a list of whole numbers"),  # an Arabic-Indic 1
    (["--method", "fast"], "invalid choice: 'fast'"),
    (["--verify", "--full"], "--verify reads only"),
])
def test_bad_options_get_argparse_errors(tmp_path, run_ingest, args, message):
    proc = run_ingest(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: wearables-ingest") and message in proc.stderr


def test_json_summary_is_one_object_on_stdout(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    proc = run_ingest("--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # nothing else on stdout
    assert summary["ok"] is True and summary["error"] is None
    assert summary["status"] == "ok" and summary["dry_run"] is False
    by_metric = {f["metric"]: f for f in summary["files"]}
    assert by_metric["hr"] == {"participant": 1, "metric": "hr", "inserted": 86_400,
                               "already_present": 0, "rejected": 0, "error": None}
    assert summary["inserted"] == sum(f["inserted"] for f in summary["files"])
    assert isinstance(summary["run_id"], int) and summary["last_success"]


def json_of(proc: subprocess.CompletedProcess) -> dict:
    """The one JSON object on stdout (json.loads refuses anything else there)."""
    return json.loads(proc.stdout)


def test_json_is_one_object_with_ok_false_when_the_run_cannot_start(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    bad_setting = run_ingest("--json", INGEST_RETRIES="many")
    unreachable = run_ingest("--json", DATABASE_URL="postgresql://u:pw@127.0.0.1:1/x",
                             INGEST_RETRIES="0")
    no_data = run_ingest("--json", DATA_DIR=str(tmp_path / "missing"))
    bad_option = run_ingest("--json", "--method", "fast")
    with (tmp_path / "state" / "last_run.json.lock").open("w") as held:  # the runs made it
        fcntl.flock(held, fcntl.LOCK_EX)
        locked = run_ingest("--json")

    for proc, status, error in [
            (bad_setting, 1, "INGEST_RETRIES='many' is not a whole number"),
            (unreachable, 1, "cannot connect to postgresql://u:***@127.0.0.1:1/x: "),
            (no_data, 1, f"{tmp_path / 'missing'}: data folder not found"),
            (bad_option, 2, "argument --method: invalid choice: 'fast'"),
            (locked, 75, "another ingest run (pid ?) is in progress; not starting")]:
        assert proc.returncode == status, proc.stderr
        summary = json_of(proc)
        assert (summary["ok"], summary["exit_status"]) == (False, status)
        assert error in summary["error"]
        assert "pw" not in proc.stdout


def test_json_says_ok_false_and_why_when_a_file_fails(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    (tmp_path / DATA / "hr.csv").write_text("time,bpm\n")
    proc = run_ingest("--json")
    assert proc.returncode == 1
    summary = json_of(proc)
    assert (summary["ok"], summary["status"]) == (False, "partial")
    assert "hr.csv:1: the first line is not the header 'ts,value'" in summary["error"]
    assert json_of(run_ingest("--json", "--metrics", "br"))["ok"] is True


def test_verify_reports_equal_then_a_difference(tmp_path, run_ingest, database_url):
    synth(tmp_path / DATA, "--days", "1")
    assert run_ingest().returncode == 0
    same = run_ingest("--verify")
    assert same.returncode == 0, same.stderr
    rows = same.stdout.splitlines()
    assert rows[0].split()[:4] == ["participant", "metric", "source", "rows"]
    assert len(rows) == 7 and all(r.endswith(" ok") for r in rows[1:])
    assert "86,400       86,400 2024-01-01T00:00:00+00:00" in rows[4]

    execute(database_url, "DELETE FROM raw_data WHERE metric = 'hr' AND ts > '2024-01-01T12:00Z'")
    runs_before = query(database_url, "SELECT count(*) FROM ingest_runs")
    different = run_ingest("--verify", "--json")
    assert different.returncode == 1
    report = json.loads(different.stdout)
    hr = next(r for r in report["rows"] if r["metric"] == "hr")
    assert report["equal"] is False and hr["source_rows"] == 86_400
    assert hr["table_rows"] == 43_201 and hr["table_last"] == "2024-01-01T12:00:00+00:00"
    assert logged(different.stderr) == ["ERROR 1 of 6 participant/metric pairs differ"]
    assert query(database_url, "SELECT count(*) FROM ingest_runs") == runs_before  # read-only


def test_every_run_is_recorded_and_a_killed_one_shows_unfinished(tmp_path, run_ingest,
                                                                 database_url):
    data = tmp_path / DATA
    synth(data, "--days", "2")
    assert run_ingest(INGEST_TRIGGER="cron").returncode == 0
    synth(data, "--append-days", "1")
    loader = run_ingest.popen()
    wait_for_copy(database_url, loader)
    loader.send_signal(signal.SIGKILL)  # mid-COPY: its run record stays unfinished
    loader.wait()
    loader.stdout.close()
    (data / "br.csv").write_text("time,value\n")  # a file that fails: a partial run
    assert run_ingest().returncode == 1

    runs = query(database_url, "SELECT run_id, finished IS NOT NULL, status, trigger, error, "
                               "metrics -> '1/hr' ->> 'inserted' FROM ingest_runs ORDER BY 1")
    assert [r[1:4] for r in runs] == [(True, "ok", "cron"), (False, "running", "manual"),
                                      (True, "partial", "manual")]
    assert runs[0][5] == "172800" and runs[0][4] is None
    assert "the first line is not the header 'ts,value'" in runs[2][4]


def test_metrics_file_tells_the_last_run_and_the_last_success(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    before = time.time()
    assert run_ingest().returncode == 0
    prom = tmp_path / "state" / "wearables_ingest.prom"
    first = dict(line.rsplit(" ", 1) for line in prom.read_text().splitlines()
                 if not line.startswith("#"))
    assert first["wearables_ingest_last_run_success"] == "1"
    assert float(first["wearables_ingest_last_run_timestamp_seconds"]) >= before
    assert first['wearables_ingest_rows_inserted{participant="1",metric="hr"}'] == "86400"
    success = first["wearables_ingest_last_success_timestamp_seconds"]

    failed = run_ingest(DATA_DIR=str(tmp_path / "gone"))
    assert failed.returncode == 1
    second = dict(line.rsplit(" ", 1) for line in prom.read_text().splitlines()
                  if not line.startswith("#"))
    assert second["wearables_ingest_last_run_success"] == "0"
    assert second["wearables_ingest_last_success_timestamp_seconds"] == success


def test_log_lines_carry_time_and_level_and_log_level_filters_them(tmp_path, run_ingest):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    with (data / "br.csv").open("a") as f:
        f.write("2024-01-02T00:00:00+00:00,fast\n")
    chatty = run_ingest("--full")
    assert logged(chatty.stderr) == [
        f"INFO 1 rows rejected, listed in {tmp_path / 'state' / 'rejects.csv'}"]
    quiet = run_ingest("--full", LOG_LEVEL="WARNING")
    assert quiet.returncode == 0 and quiet.stderr == ""


def _run_on_terminal(env: dict[str, str], cwd) -> str:
    """Run the loader with stdout and stderr on a pseudo-terminal; return what it showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen([sys.executable, str(INGEST)], cwd=cwd, env=env,
                            stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the loader is done
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=60)
    os.close(controller)
    return shown.decode("utf-8", "replace")


def test_progress_bars_appear_on_a_terminal_and_not_otherwise(tmp_path, run_ingest,
                                                              database_url):
    synth(tmp_path / DATA, "--days", "2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=database_url, DATA_DIR=str(tmp_path / DATA),
               CHECKPOINT_FILE=str(tmp_path / "state" / "last_run.json"))
    shown = _run_on_terminal(env, tmp_path)
    assert "ingestion complete" in shown
    # A tqdm bar for hr: percentage, rows done of the total, rate, time left.
    bar = r"\rhr: +100%\|[^\r]*\| 173k/173k \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]? rows/s\]"
    assert re.search(bar, shown), shown

    piped = run_ingest("--full")
    assert piped.returncode == 0
    assert "rows/s" not in piped.stderr and "\r" not in piped.stderr + piped.stdout
