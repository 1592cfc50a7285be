"""Every source row in raw_data exactly once, whatever happened in between.

Crashes (SIGKILL at random moments, and the states a crash can leave), a
database that drops or was reset, late rows, repeated content, and a soak of
two months of nightly runs. Each test compares the table with the source files.

KILL_TRIALS sets how many random kills the trial test makes (default 6); CI
runs the default, a longer run is ``KILL_TRIALS=100 make test PYTEST_ARGS=-kkill``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import DATA, execute, logged, query, synth

METRICS = ("activity", "azm", "br", "hr", "hrv", "spo2")


def source_rows(data: Path) -> pd.DataFrame:
    """The rows of the CSV files, read independently of the loader: (metric, ts_us, value)."""
    frames = []
    for path in sorted(data.glob("*.csv")):
        frame = pd.read_csv(path)
        ts = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frames.append(pd.DataFrame({
            "metric": path.stem,
            "ts_us": ts.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").astype(np.int64),
            "value": frame["value"].astype(float)}))
    return pd.concat(frames, ignore_index=True)


def table_rows(url: str) -> pd.DataFrame:
    rows = query(url, "SELECT metric, (extract(epoch FROM ts) * 1000000)::bigint, value "
                      "FROM raw_data WHERE participant = 1")
    return pd.DataFrame(rows, columns=["metric", "ts_us", "value"])


def assert_coverage_equals_counts(url: str) -> None:
    """The coverage the loader keeps equals count(*) of raw_data per participant, metric, hour."""
    counted = query(url, "SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*) "
                         "FROM raw_data GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    kept = query(url, "SELECT participant, metric, hour, rows FROM ingest_coverage "
                      "ORDER BY 1, 2, 3")
    assert kept == counted


def assert_table_equals_source(url: str, data: Path) -> None:
    """Same rows, each once: compared row by row, keys and values; and the coverage exact."""
    assert_coverage_equals_counts(url)
    assert query(url, "SELECT count(*) - count(DISTINCT (ts, participant, metric)) "
                      "FROM raw_data") == [(0,)]
    want = source_rows(data).sort_values(["metric", "ts_us"], ignore_index=True)
    got = table_rows(url).sort_values(["metric", "ts_us"], ignore_index=True)
    assert len(got) == len(want), (got.groupby("metric").size() - want.groupby("metric").size())
    assert (got["metric"] == want["metric"]).all() and (got["ts_us"] == want["ts_us"]).all()
    assert np.allclose(got["value"], want["value"], rtol=0, atol=1e-9)


def assert_table_matches_source_per_day(url: str, data: Path) -> None:
    """Per metric and day: the same number of rows and the same sum of values; no key twice.

    Cheaper than row by row, for months of data, and still fails on a row lost or doubled.
    """
    assert_coverage_equals_counts(url)
    assert query(url, "SELECT count(*) - count(DISTINCT (ts, participant, metric)) "
                      "FROM raw_data") == [(0,)]
    src = source_rows(data)
    src["day"] = src["ts_us"] // 86_400_000_000
    want = src.groupby(["metric", "day"])["value"].agg(["count", "sum"])
    got = pd.DataFrame(query(url, "SELECT metric, (extract(epoch FROM ts) / 86400)::bigint "
                                  "- (extract(epoch FROM ts) / 86400 < (extract(epoch FROM ts) "
                                  "/ 86400)::bigint)::int, count(*), sum(value) FROM raw_data "
                                  "GROUP BY 1, 2"),
                       columns=["metric", "day", "count", "sum"]).set_index(["metric", "day"])
    got = got.sort_index()
    want = want.sort_index()
    assert got.index.equals(want.index)
    assert (got["count"] == want["count"]).all()
    assert np.allclose(got["sum"].astype(float), want["sum"], rtol=1e-12, atol=1e-6)


def assert_checkpoint_readable(state: Path) -> None:
    path = state / "last_run.json"
    if path.exists():
        json.loads(path.read_text())  # valid JSON, never half written


class KillClock:
    """When to kill: a random moment within the loader's expected run time.

    The estimate starts from a timed run and shrinks to any run that ended before its kill,
    so a noisy machine whose later runs are quicker still gets kills that land.
    """

    def __init__(self, seed: int, run_s: float) -> None:
        self.rng = random.Random(seed)
        self.run_s = run_s

    def wait_s(self) -> float:
        return self.rng.uniform(0.0, self.run_s * 0.9)

    def ran(self, seconds: float) -> None:
        self.run_s = min(self.run_s, seconds)


def killed_then_rerun(run_ingest, database_url: str, state: Path, data: Path,
                      clock: KillClock) -> bool:
    """Start the loader, SIGKILL it at a moment from ``clock``, run it again; the table must
    then equal the source files. Whether the kill landed while the loader ran."""
    started = time.monotonic()
    loader = run_ingest.popen()
    try:
        loader.wait(timeout=clock.wait_s())
        clock.ran(time.monotonic() - started)  # it ended before the kill
    except subprocess.TimeoutExpired:
        loader.send_signal(signal.SIGKILL)
    killed = loader.wait() == -signal.SIGKILL
    loader.stdout.close()
    assert_checkpoint_readable(state)
    rerun = run_ingest()
    assert rerun.returncode == 0, rerun.stderr
    assert_table_equals_source(database_url, data)  # and the coverage exact
    return killed


@pytest.mark.slow  # about 20 s: make test runs it, a plain pytest does not
def test_random_kills_then_a_rerun_leave_every_row_exactly_once(tmp_path, run_ingest,
                                                                 database_url):
    trials = int(os.environ.get("KILL_TRIALS", "6"))
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "2")
    started = time.monotonic()
    assert run_ingest().returncode == 0
    clock = KillClock(int(os.environ.get("KILL_SEED", "1")), time.monotonic() - started)
    kills = 0
    for trial in range(2 * trials):  # a kill that came too late earns another trial
        if kills == trials:
            break
        # Vary what a kill interrupts: a first load, a daily delta, a light reset.
        if trial % 3 == 0:
            synth(data, "--append-days", "1")
        elif trial % 3 == 1:
            (state / "last_run.json").unlink(missing_ok=True)
        else:  # a reset database under a kept checkpoint, for hr
            execute(database_url, "DELETE FROM raw_data WHERE metric = 'hr'")
        kills += killed_then_rerun(run_ingest, database_url, state, data, clock)
    assert kills >= trials // 2, "most kills should land while the loader runs"


def grow_until(full: Path, data: Path, until: str) -> None:
    """Append to each file in ``data`` the rows of its twin in ``full`` (sorted by ts) that
    come before ``until`` and it lacks yet: a device's sync that ended at that moment."""
    data.mkdir(parents=True, exist_ok=True)
    for src in sorted(full.glob("*.csv")):
        lines = src.read_text().splitlines(keepends=True)
        dst = data / src.name
        have = sum(1 for _ in dst.open()) if dst.exists() else 0
        want = 1 + sum(1 for line in lines[1:] if line[:19] < until)
        with dst.open("a") as f:
            f.writelines(lines[have:want])


@pytest.mark.slow  # about 10 s: make test runs it, a plain pytest does not
def test_random_kills_during_nights_that_start_mid_hour_leave_every_row_exactly_once(
        tmp_path, run_ingest, database_url):
    """Each night's rows start at minute 37 of an hour that holds the last night's rows, so
    every file goes the direct way (the exact "stored from here on?" check); kills land
    in that COPY, in the coverage's recount or around the commit."""
    trials = int(os.environ.get("KILL_TRIALS", "6"))
    full, data, state = tmp_path / "full", tmp_path / DATA, tmp_path / "state"
    synth(full, "--days", "2")
    # Up to twice the trials, a kill that came too late earns another night.
    nights = 2 * trials
    cuts = [f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:37:30"
            for h in (48 * (i + 1) // (nights + 3) for i in range(nights + 2))]
    grow_until(full, data, cuts[0])
    assert run_ingest().returncode == 0
    grow_until(full, data, cuts[1])  # one night unkilled, to time a night
    started = time.monotonic()
    assert run_ingest().returncode == 0
    clock = KillClock(int(os.environ.get("KILL_SEED", "2")), time.monotonic() - started)
    assert_table_equals_source(database_url, data)
    kills = 0
    for cut in cuts[2:]:
        if kills == trials:
            break
        grow_until(full, data, cut)
        kills += killed_then_rerun(run_ingest, database_url, state, data, clock)
    assert kills >= trials // 2, "most kills should land while the loader runs"


def test_crash_after_commit_before_checkpoint_write_loses_and_doubles_nothing(
        tmp_path, run_ingest, database_url):
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "1")
    assert run_ingest().returncode == 0
    before = (state / "last_run.json").read_bytes()
    synth(data, "--append-days", "1")
    assert run_ingest().returncode == 0
    # The state such a crash leaves: the rows committed, the checkpoint still the old one.
    (state / "last_run.json").write_bytes(before)
    rerun = run_ingest()
    assert rerun.returncode == 0, rerun.stderr
    assert "Ingested 0 rows → hr (86,400 already present)" in rerun.stdout
    assert_table_equals_source(database_url, data)


def test_crash_while_writing_the_checkpoint_leaves_the_old_one_and_a_temp_file(
        tmp_path, run_ingest, database_url):
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "1")
    assert run_ingest().returncode == 0
    synth(data, "--append-days", "1")
    # save() writes a temporary file and renames it: a kill before the rename leaves this.
    (state / ".last_run.json.x1y2z3.tmp").write_text('{"version": 1, "participants": {"1": {')
    rerun = run_ingest()
    assert rerun.returncode == 0, rerun.stderr
    assert_table_equals_source(database_url, data)
    assert sorted(p.name for p in state.iterdir()) == ["last_run.json", "last_run.json.lock",
                                                       "wearables_ingest.prom"]


@pytest.mark.parametrize("retries", ["2", "0"])
def test_connection_dropped_mid_run_is_retried_or_caught_up_next_run(tmp_path, run_ingest,
                                                                     database_url, retries):
    data = tmp_path / DATA
    synth(data, "--days", "3")
    loader = run_ingest.popen(INGEST_RETRIES=retries, INGEST_RETRY_DELAY="0.2", stderr=True)
    killed = []
    deadline = time.monotonic() + 60
    while not killed:  # the connection goes in the middle of a COPY
        assert time.monotonic() < deadline and loader.poll() is None, "no COPY was seen"
        killed = query(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE application_name = 'wearables-ingest' "
                                     "AND query LIKE 'COPY%%'")
    assert killed == [(True,)]
    out = loader.stdout.read()
    err = loader.stderr.read()
    loader.wait()
    if retries == "0":
        assert loader.returncode == 1
        assert len(logged(err)) == 1 and logged(err)[0].startswith("ERROR lost the database at ")
        saved = tmp_path / "state" / "last_run.json"  # not committed: not in the checkpoint
        assert not saved.exists() or json.loads(saved.read_text())[
            "participants"].get("1", {}).get("hr") is None
        assert run_ingest().returncode == 0  # the next run catches up
    else:
        assert loader.returncode == 0, err
        assert logged(err)[0].startswith("WARNING lost the database while loading ")
        assert "; reconnecting" in logged(err)[0]
        assert "Ingested 259,200 rows → hr" in out
    assert_table_equals_source(database_url, data)


def test_database_reset_under_a_kept_checkpoint_is_noticed_and_reloaded(tmp_path, run_ingest,
                                                                        database_url):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    assert run_ingest().returncode == 0
    execute(database_url, "DELETE FROM raw_data")  # as if only the db-data volume was lost
    rerun = run_ingest()
    assert rerun.returncode == 0, rerun.stderr
    assert ("INFO raw_data holds no hr rows up to the checkpoint's 2024-01-01T23:59:59+00:00 "
            f"(was the database reset?); read {data / 'hr.csv'} again from the start"
            in logged(rerun.stderr))
    assert "Ingested 86,400 rows → hr" in rerun.stdout
    assert_table_equals_source(database_url, data)
    assert run_ingest().stderr == ""  # and only once


def test_late_rows_and_repeated_content_arrive_once(tmp_path, run_ingest, database_url):
    data = tmp_path / DATA
    synth(data, "--days", "2")
    assert run_ingest().returncode == 0
    hrv = data / "hrv.csv"
    late = "".join(f"2024-01-01T12:{m:02d}:00+00:00,{40 + m}.5\n" for m in range(10))
    with hrv.open("a") as f:  # a device that synced late: older than the checkpoint's mark
        f.write(late)
    first = run_ingest()
    assert "Ingested 10 rows → hrv" in first.stdout
    with hrv.open("a") as f:  # the same rows once more
        f.write(late)
    again = run_ingest()
    assert "Ingested 0 rows → hrv (10 already present)" in again.stdout
    shutil.copy(hrv, tmp_path / "copy.csv")
    shutil.copy(tmp_path / "copy.csv", hrv)  # rewritten with the same content
    assert "Ingested 0 rows → hrv" in run_ingest().stdout.splitlines()
    full = run_ingest("--full")
    assert "Ingested 0 rows → hr (172,800 already present)" in full.stdout
    got = table_rows(database_url)
    assert len(got[got.metric == "hrv"]) == len(source_rows(data).query("metric == 'hrv'")
                                                 .drop_duplicates())
    assert_coverage_equals_counts(database_url)


def test_full_and_a_database_that_lost_rows_recount_the_coverage(tmp_path, run_ingest,
                                                                 database_url):
    synth(tmp_path / DATA, "--days", "2")
    assert run_ingest().returncode == 0
    # Rows lost where the checkpoint cannot see it (not its newest row): only --full mends it.
    execute(database_url, "DELETE FROM raw_data WHERE metric = 'azm' AND ts < '2024-01-01T06:00Z'")
    assert run_ingest("--full").returncode == 0
    assert_coverage_equals_counts(database_url)
    # Rows lost up to the newest (a reset table): the next run notices and recounts.
    execute(database_url, "DELETE FROM raw_data WHERE metric = 'hr'")
    assert run_ingest().returncode == 0
    assert_table_equals_source(database_url, tmp_path / DATA)


def write_study(root: Path, participants: int, rows: int, day: int) -> None:
    """Each participant's six small files, ``rows`` more rows per file for each ``day``."""
    for p in range(1, participants + 1):
        folder = root / f"participant_{p:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, metric in enumerate(METRICS):
            with (folder / f"{metric}.csv").open("a") as f:
                if day == 0:
                    f.write("ts,value\n")
                f.writelines(f"2024-01-{day + 1:02d}T00:{m:02d}:00+00:00,{p + i + m}\n"
                             for m in range(rows))


@pytest.mark.slow
def test_kills_in_a_study_of_a_thousand_participants_lose_and_double_nothing(
        tmp_path, run_ingest, database_url):
    rng = random.Random(3)
    study, state = tmp_path / "study", tmp_path / "state"
    for trial in range(3):  # a first load, then two nights, each killed, then caught up
        write_study(study, 1000, rows=10, day=trial)
        loader = run_ingest.popen(DATA_DIR=str(study))
        time.sleep(rng.uniform(1.0, 4.0))
        loader.send_signal(signal.SIGKILL)
        loader.wait()
        loader.stdout.close()
        assert_checkpoint_readable(state)
        rerun = run_ingest(DATA_DIR=str(study))
        assert rerun.returncode == 0, rerun.stderr
        assert query(database_url, "SELECT count(*), count(DISTINCT (ts, participant, metric)),"
                                   " count(DISTINCT participant) FROM raw_data") == \
            [(1000 * 6 * 10 * (trial + 1),) * 2 + (1000,)]
        # Every row under its own participant: the value was made from the folder's number.
        offsets = dict(query(database_url, "SELECT metric, min(value - participant - "
                                           "extract(minute FROM ts)) FROM raw_data GROUP BY 1"))
        assert offsets == {m: i for i, m in enumerate(METRICS)}
        assert query(database_url, "SELECT count(DISTINCT (metric, value - participant - "
                                   "extract(minute FROM ts))) FROM raw_data") == [(6,)]
        assert_coverage_equals_counts(database_url)


@pytest.mark.slow
def test_two_months_of_nightly_runs_with_crashes_and_late_data(tmp_path, run_ingest,
                                                               database_url):
    rng = random.Random(7)
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "30")
    assert run_ingest().returncode == 0
    for night in range(60):
        synth(data, "--append-days", "1")
        if night in (9, 33, 51):  # a crash: killed mid-run, the next night catches up
            loader = run_ingest.popen()
            time.sleep(rng.uniform(0.05, 0.6))
            loader.kill()
            loader.wait()
            loader.stdout.close()
            assert_checkpoint_readable(state)
            continue
        if night in (20, 40):  # late uploads: a new file of past days, then older rows for it
            with (data / "skin_temp.csv").open("a") as f:
                if night == 20:
                    f.write("ts,value\n")
                f.writelines(f"2024-01-{day:02d}T0{night // 20}:{m:02d}:00+00:00,33.{m % 10}\n"
                             for day in range(1, 29) for m in range(0, 60, 5))
        proc = run_ingest()
        assert proc.returncode == 0, (night, proc.stderr)
        metrics = 6 + (night >= 20)
        assert len(proc.stdout.splitlines()) == metrics + 2, proc.stdout  # nothing else
        assert proc.stderr == ""
    assert_table_matches_source_per_day(database_url, data)
