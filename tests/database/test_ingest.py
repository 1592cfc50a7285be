"""End to end: ``python ingest/ingest.py`` against a real TimescaleDB, as a user runs it."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from helpers import DATA, SEED_COUNTS, logged, query, synth, table_counts, wait_for_copy

SEED_LINES = [
    "Ingested 30 rows → activity",
    "Ingested 43,200 rows → azm",
    "Ingested 30 rows → br",
    "Ingested 2,592,000 rows → hr",
    "Ingested 13,248 rows → hrv",
    "Ingested 13,248 rows → spo2",
    "ingestion complete",
]
SUMMARY = re.compile(r"Ingested (?P<inserted>[\d,]+) rows → (?P<label>\S+)"
                     r"(?: \((?P<present>[\d,]+) already present\))?")
ONE_DAY = {"activity": 1, "azm": 1_440, "br": 1, "hr": 86_400}


TOTAL = re.compile(r"Total: [\d,]+ rows inserted, [\d,]+ already present, [\d,]+ rejected, "
                   r"\d+ file errors?, in \d+\.\d s")


def lines(proc) -> list[str]:
    """Standard output without the totals line (checked on its own where it matters)."""
    return [line for line in proc.stdout.splitlines() if not TOTAL.fullmatch(line)]


def test_thirty_day_cycle_first_load_rerun_next_day_and_light_reset(
        seed_data, tmp_path, run_ingest, database_url):
    data = tmp_path / DATA
    shutil.copytree(seed_data, data)
    checkpoint = tmp_path / "state" / "last_run.json"

    first = run_ingest()
    assert first.returncode == 0, first.stderr
    assert lines(first) == SEED_LINES
    assert first.stderr == ""
    assert table_counts(database_url) == SEED_COUNTS

    again = run_ingest()
    assert again.returncode == 0, again.stderr
    assert lines(again) == [f"Ingested 0 rows → {m}" for m in sorted(SEED_COUNTS)] + [
        "ingestion complete"]
    assert table_counts(database_url) == SEED_COUNTS

    synth(data, "--append-days", "1")
    next_day = run_ingest()
    assert next_day.returncode == 0, next_day.stderr
    day31 = {m: len(query(database_url, "SELECT 1 FROM raw_data WHERE metric = %s AND "
                                        "ts >= '2024-01-31' AND ts < '2024-02-01'", (m,)))
             for m in SEED_COUNTS}
    assert day31["hr"] == 86_400 and day31["azm"] == 1_440  # exactly one more day
    assert lines(next_day)[:-1] == [f"Ingested {day31[m]:,} rows → {m}" for m in sorted(day31)]
    after_append = table_counts(database_url)
    assert after_append == {m: SEED_COUNTS[m] + day31[m] for m in SEED_COUNTS}

    checkpoint.unlink()  # the light reset
    reset = run_ingest()
    assert reset.returncode == 0, reset.stderr
    assert lines(reset)[:-1] == [
        f"Ingested 0 rows → {m} ({n:,} already present)" for m, n in sorted(after_append.items())]
    assert table_counts(database_url) == after_append


def test_rerun_after_crash_loads_each_row_once(tmp_path, run_ingest, database_url):
    data = tmp_path / DATA
    synth(data, "--days", "4")
    loader = run_ingest.popen()
    wait_for_copy(database_url, loader)
    loader.send_signal(signal.SIGKILL)  # in the middle of a COPY
    assert loader.wait() == -signal.SIGKILL  # killed mid-run, not finished
    checkpoint = tmp_path / "state" / "last_run.json"
    if checkpoint.exists():  # never ahead of the database
        saved = json.loads(checkpoint.read_text())
        assert saved["finished_at"] is None
        for metric, entry in saved["participants"].get("1", {}).items():
            assert query(database_url, "SELECT count(*) FROM raw_data WHERE metric = %s AND "
                                       "ts = %s", (metric, entry["last_ts"])) == [(1,)]

    rerun = run_ingest()
    assert rerun.returncode == 0, rerun.stderr
    got = table_counts(database_url)
    assert {m: got[m] for m in ONE_DAY} == {m: 4 * n for m, n in ONE_DAY.items()}
    assert query(database_url, "SELECT count(*) FROM (SELECT DISTINCT ts, participant, metric "
                               "FROM raw_data) d") == [(sum(got.values()),)]


def test_checkpoint_records_newest_ts_per_metric_and_finish_time(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1", "--start", "2024-03-05")
    proc = run_ingest()
    assert proc.returncode == 0, proc.stderr

    saved = json.loads((tmp_path / "state" / "last_run.json").read_text())
    assert saved["version"] == 1
    assert saved["finished_at"].endswith("+00:00")
    marks = {m: e["last_ts"] for m, e in saved["participants"]["1"].items()}
    newest_hrv = (tmp_path / DATA / "hrv.csv").read_text().splitlines()[-1].split(",")[0]
    assert marks == {
        "activity": "2024-03-05T00:00:00+00:00",
        "azm": "2024-03-05T23:59:00+00:00",
        "br": "2024-03-05T00:00:00+00:00",
        "hr": "2024-03-05T23:59:59+00:00",
        "hrv": newest_hrv,
        "spo2": newest_hrv,
    }


def test_rows_appended_after_the_checkpoint_are_the_only_ones_offered(
        tmp_path, run_ingest, database_url):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    assert run_ingest().returncode == 0
    # The database holds more than the checkpoint covers only if rows were offered twice;
    # a next-day run must offer exactly the new day, none of them already present.
    synth(data, "--append-days", "1")
    proc = run_ingest()
    assert proc.returncode == 0, proc.stderr
    assert not any("already present" in line for line in lines(proc))
    got = table_counts(database_url)
    assert {m: got[m] for m in ONE_DAY} == {m: 2 * n for m, n in ONE_DAY.items()}


def test_participant_folders_are_loaded_as_their_participant(tmp_path, run_ingest, database_url):
    study = tmp_path / "study"
    synth(study / "participant_001", "--days", "1")
    synth(study / "participant_007", "--days", "1", "--seed", "7")
    proc = run_ingest(DATA_DIR=str(study))  # no PARTICIPANT_ID: the folders name them
    assert proc.returncode == 0, proc.stderr
    assert "Ingested 86,400 rows → participant_007/hr" in lines(proc)
    per_participant = dict(query(database_url, "SELECT participant, count(*) FROM raw_data "
                                               "WHERE metric = 'hr' GROUP BY participant"))
    assert per_participant == {1: 86_400, 7: 86_400}


def test_a_participant_folder_as_data_dir_is_that_participant(tmp_path, run_ingest,
                                                              database_url):
    folder = tmp_path / "study" / "participant_007"
    synth(folder, "--days", "1", "--seed", "7")
    proc = run_ingest(DATA_DIR=str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "Ingested 86,400 rows → hr" in lines(proc)  # one participant: the seed's labels
    assert query(database_url, "SELECT DISTINCT participant FROM raw_data") == [(7,)]


@pytest.mark.parametrize("layout", ["data dir", "subfolder"])
def test_participant_id_that_disagrees_with_the_folder_stops_before_writing(
        tmp_path, run_ingest, database_url, layout):
    study = tmp_path / "study"
    synth(study / "participant_007", "--days", "1")
    data_dir = study / "participant_007" if layout == "data dir" else study
    proc = run_ingest("--json", DATA_DIR=str(data_dir), PARTICIPANT_ID="1")
    assert proc.returncode == 1
    message = (f"PARTICIPANT_ID=1 disagrees with {study / 'participant_007'}, which is "
               "participant 7; nothing was loaded")
    assert message in json.loads(proc.stdout)["error"]
    assert logged(proc.stderr)[0].startswith(f"ERROR {message}")
    assert query(database_url, "SELECT to_regclass('raw_data')") == [(None,)]
    assert not (tmp_path / "state" / "last_run.json").exists()


def test_participant_id_that_agrees_with_the_folder_is_accepted(tmp_path, run_ingest,
                                                                database_url):
    synth(tmp_path / DATA, "--days", "1")  # participant_001
    assert run_ingest(PARTICIPANT_ID="1").returncode == 0
    assert query(database_url, "SELECT DISTINCT participant FROM raw_data") == [(1,)]


def test_participant_id_names_a_folder_without_a_number(tmp_path, run_ingest, database_url):
    flat = tmp_path / "export"
    synth(flat, "--days", "1")
    unnamed = run_ingest(DATA_DIR=str(flat))
    assert unnamed.returncode == 1
    assert logged(unnamed.stderr) == [
        f"ERROR {flat}: the folder's name carries no participant number; name it "
        "participant_NNN, or set PARTICIPANT_ID"]
    assert run_ingest(DATA_DIR=str(flat), PARTICIPANT_ID="12").returncode == 0
    assert query(database_url, "SELECT DISTINCT participant FROM raw_data") == [(12,)]


def test_bad_rows_go_to_the_rejects_file_and_the_good_rows_load(tmp_path, run_ingest,
                                                                database_url):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    with (data / "br.csv").open("a") as f:
        f.write("2024-01-02T00:00:00+00:00,fast\nyesterday,14.2\n2024-01-03T00:00:00+00:00,15\n")

    proc = run_ingest()

    assert proc.returncode == 0, proc.stderr
    rejects = tmp_path / "state" / "rejects.csv"
    assert "Ingested 2 rows → br (2 rejected)" in lines(proc)
    assert lines(proc)[-1] == "ingestion complete"
    assert TOTAL.fullmatch(proc.stdout.splitlines()[-2])
    assert ", 2 rejected, 0 file errors, in " in proc.stdout.splitlines()[-2]
    assert logged(proc.stderr) == [f"INFO 2 rows rejected, listed in {rejects}"]
    br = data / "br.csv"
    with rejects.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["rejected_at", "file", "line", "reason", "raw_line"]
    assert [r[1:] for r in rows[1:]] == [
        [str(br), "3", "value 'fast' is not a finite number", "2024-01-02T00:00:00+00:00,fast"],
        [str(br), "4", "timestamp 'yesterday' is not ISO 8601", "yesterday,14.2"],
    ]
    assert table_counts(database_url)["br"] == 2
    again = run_ingest()  # the rejected rows are behind the checkpoint now: not reported twice
    assert "Ingested 0 rows → br" in lines(again) and len(rejects.read_text().splitlines()) == 3


def test_a_file_level_problem_fails_only_its_metric_and_keeps_its_checkpoint(
        tmp_path, run_ingest, database_url):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    br = data / "br.csv"
    good = br.read_text()
    br.write_text("time,value\n" + good.split("\n", 1)[1])  # a wrong header

    proc = run_ingest()

    assert proc.returncode == 1
    assert logged(proc.stderr) == [
        f"ERROR {br}:1: the first line is not the header 'ts,value'; is it a metric file? "
        "(br not loaded; its checkpoint is unchanged)",
        "ERROR ingestion incomplete: 1 file not loaded",
    ]
    assert ", 1 file error, in " in proc.stdout
    assert "ingestion complete" not in proc.stdout
    counts = table_counts(database_url)
    assert "br" not in counts and counts["hr"] == 86_400
    saved = json.loads((tmp_path / "state" / "last_run.json").read_text())
    assert "br" not in saved["participants"]["1"] and "hr" in saved["participants"]["1"]
    assert saved["finished_at"] is None

    br.write_text(good)  # fixed: the next run loads br and nothing else
    fixed = run_ingest()
    assert fixed.returncode == 0, fixed.stderr
    assert "Ingested 1 rows → br" in lines(fixed)
    assert "Ingested 0 rows → hr" in lines(fixed)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_is_one_line_error_without_password(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    port = closed_port()
    proc = run_ingest(DATABASE_URL=f"postgresql://loader:s3cret@127.0.0.1:{port}/wearables",
                      INGEST_RETRIES="0")
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = logged(proc.stderr)
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert err[0].startswith(f"ERROR cannot connect to postgresql://loader:***@127.0.0.1:"
                             f"{port}/wearables: ")
    assert "s3cret" not in proc.stderr
    assert not (tmp_path / "state" / "last_run.json").exists()


def test_unreachable_database_is_retried_with_growing_waits_then_given_up(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    port = closed_port()
    started = time.monotonic()
    proc = run_ingest(DATABASE_URL=f"postgresql://u@127.0.0.1:{port}/w", INGEST_RETRIES="2",
                      INGEST_RETRY_DELAY="0.5")
    took = time.monotonic() - started
    assert proc.returncode == 1
    err = logged(proc.stderr)
    assert [e.split()[0] for e in err] == ["WARNING", "WARNING", "ERROR"]
    assert err[0].endswith("; trying again in 0.5 s") and err[1].endswith("; trying again in 1 s")
    assert err[2].endswith("(gave up after 3 attempts)")
    assert 1.5 <= took < 15


def test_missing_data_folder_is_one_line_error(tmp_path, run_ingest):
    proc = run_ingest(DATA_DIR=str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert logged(proc.stderr) == [f"ERROR {tmp_path / 'nowhere'}: data folder not found"]


def test_pg_settings_are_used_when_there_is_no_database_url(tmp_path, run_ingest, database_url):
    url = urlsplit(database_url)
    synth(tmp_path / DATA, "--days", "1")
    proc = run_ingest(DATABASE_URL="", PGHOST=url.hostname, PGPORT=str(url.port),
                      PGUSER=url.username, PGDATABASE=url.path.lstrip("/"))
    assert proc.returncode == 0, proc.stderr
    assert table_counts(database_url)["hr"] == 86_400


def test_dotenv_file_fills_settings_the_environment_leaves_unset(tmp_path, run_ingest,
                                                                database_url):
    synth(tmp_path / "export", "--days", "1")  # a folder without a number
    (tmp_path / ".env").write_text("PARTICIPANT_ID=3\nDATA_DIR=/nonexistent\n")
    # The environment's DATA_DIR wins over .env's; PARTICIPANT_ID comes from .env.
    proc = run_ingest(DATA_DIR=str(tmp_path / "export"))
    assert proc.returncode == 0, proc.stderr
    assert query(database_url, "SELECT DISTINCT participant FROM raw_data") == [(3,)]


def test_second_run_while_one_holds_the_lock_exits_75_with_a_message(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    state = tmp_path / "state"
    state.mkdir()
    lock_path = state / "last_run.json.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock_path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'4242\\n'); print('held', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        proc = run_ingest()
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 75
    assert logged(proc.stderr) == [f"ERROR {lock_path}: another ingest run (pid 4242) is in "
                                   "progress; not starting"]
    assert not (state / "last_run.json").exists()
    assert run_ingest().returncode == 0  # the lock went with its holder
