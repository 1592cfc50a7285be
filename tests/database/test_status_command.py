"""`wearables-ingest status` against the real database: coverage per day, exit codes, JSON,
the heat map, the view participant_metrics and the metrics file's newest-row ages.

The loader loads the synthetic files; most tests then count the coverage afresh from
raw_data (recount), so that they check the read side whatever keeps the summary.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2.errors
import pytest

from helpers import (
    as_template,
    copy_database,
    execute,
    fresh_database,
    open_database,
    query,
    run_loader,
    synth,
)
from wearables_ingest import coverage

DAYS = 3  # 2024-01-01 .. 2024-01-03
METRICS = ["activity", "azm", "br", "hr", "hrv", "spo2"]
EXPECTED = {"activity": 1, "azm": 1440, "br": 1, "hr": 86_400, "hrv": None, "spo2": None}
SVG = "{http://www.w3.org/2000/svg}"


def recount(url: str) -> None:
    """ingest_coverage counted afresh from raw_data (what the loader keeps up to date)."""
    execute(url, "DELETE FROM ingest_coverage; "
                 "INSERT INTO ingest_coverage (participant, metric, hour, rows) "
                 "SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*) "
                 "FROM raw_data GROUP BY 1, 2, 3")


def drop_hours(csv: Path, prefix: str, hours: range) -> int:
    """Delete the rows of ``csv`` whose ts starts ``{prefix}T{hour:02}``; how many went."""
    lines = csv.read_text().splitlines(keepends=True)
    gone = tuple(f"{prefix}T{h:02}" for h in hours)
    kept = [line for line in lines if not line.startswith(gone)]
    csv.write_text("".join(kept))
    return len(lines) - len(kept)


@pytest.fixture(scope="module")
def loaded_study(admin_url, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """The study below, loaded once: (the folder of its data/ and state/, a template database)."""
    folder = tmp_path_factory.mktemp("study")
    data = folder / "data"
    for participant in (1, 2):
        synth(data / f"participant_00{participant}", "--days", str(DAYS))
    assert drop_hours(data / "participant_002" / "hr.csv", "2024-01-02", range(12, 24)) == 43_200
    with fresh_database(admin_url) as url:
        loaded = run_loader(folder, url, DATA_DIR=str(data))
        assert loaded.returncode == 0, loaded.stderr
        recount(url)
        with as_template(admin_url, url) as template:
            yield folder, template


@pytest.fixture
def study(loaded_study, admin_url, database_url, tmp_path) -> Path:
    """Two participants, three days; participant 2 has no hr from noon of 2024-01-02.

    Loaded once for the module: the test's database is a copy of that database and its
    state folder (checkpoint, metrics file) a copy of the load's, so the test may change
    either; the data folder is shared: read it only.
    """
    folder, template = loaded_study
    copy_database(admin_url, template, database_url)
    shutil.copytree(folder / "state", tmp_path / "state")
    return folder / "data"


def load(run_ingest, tmp_path: Path, days: str):
    """One participant's synthetic days, loaded; the coverage is recounted by the caller."""
    data = tmp_path / "data" / "participant_001"
    synth(data, "--days", days)
    return run_ingest(DATA_DIR=str(data))


def status_json(run_ingest, *args: str, **env: str) -> tuple[int, dict]:
    proc = run_ingest("status", "--json", *args, **env)
    return proc.returncode, json.loads(proc.stdout)


def by_key(report: dict) -> dict[tuple[int, str, str], dict]:
    return {(d["participant"], d["metric"], d["day"]): d for d in report["days"]}


# --- the coverage -----------------------------------------------------------------------------

def test_a_missing_half_day_is_partial_and_everything_else_complete(study, run_ingest):
    code, report = status_json(run_ingest, "--days", str(DAYS))
    assert code == 1
    assert report["complete"] is False and report["ok"] is False
    days = by_key(report)
    assert len(days) == 2 * len(METRICS) * DAYS  # every pair on every day
    assert days[(2, "hr", "2024-01-02")] == {
        "participant": 2, "metric": "hr", "day": "2024-01-02", "rows": 43_200,
        "expected": 86_400, "status": "partial", "share": 0.5}
    rest = [d for key, d in days.items() if key != (2, "hr", "2024-01-02")]
    assert {d["status"] for d in rest} == {"complete"}
    assert {d["metric"]: d["expected"] for d in rest} == EXPECTED
    assert (report["first_day"], report["last_day"]) == ("2024-01-01", "2024-01-03")


def test_the_text_is_a_summary_and_who_needs_attention_and_all_lists_every_row(study,
                                                                               run_ingest):
    proc = run_ingest("status", "--days", str(DAYS))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 participants, 2024-01-01..2024-01-03 (UTC days), each from its first day."
    assert lines[2].split() == ["day", *METRICS]
    assert lines[4].split() == ["2024-01-02", "2/0/0", "2/0/0", "2/0/0", "1/1/0", "2/0/0",
                                "2/0/0"]
    assert lines[7] == "Needs attention: 1 of 2 participants, worst first (every row: --all)"
    assert lines[9].split() == ["2", "2024-01-01", "0", "1", "84%", "hr", "01-02", "50%"]
    assert lines[-2].startswith("last run: #1 ok (manual), finished ")
    assert lines[-1].startswith("NOT OK: 1 of 36 days incomplete (1 of 2 participants) in "
                                "2024-01-01..2024-01-03 (UTC days): 1 partial, 0 missing; the "
                                "last run (#1) succeeded 0.0 h ago")
    assert lines[-3].startswith("storage: ")  # storage.py's own line (test_storage.py)
    # summary, gap, attention, gap, storage, run, verdict
    assert len(lines) == 3 + DAYS + 1 + 3 + 1 + 3

    proc = run_ingest("status", "--days", str(DAYS), "--all")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["participant", "metric", "day", "rows", "expected", "share",
                                "status"]
    assert table[1].split() == ["2", "hr", "2024-01-02", "43,200", "86,400", "50%", "partial"]
    assert table[2].split()[:3] == ["1", "activity", "2024-01-01..2024-01-03"]
    # header, incomplete, pairs, gap, storage, run, verdict
    assert len(table) == 1 + 1 + 2 * len(METRICS) + 4


def test_the_period_ends_at_the_newest_day_and_options_select(study, run_ingest, database_url):
    code, report = status_json(run_ingest, "--days", "1")
    assert {d["day"] for d in report["days"]} == {"2024-01-03"}
    assert code == 0 and report["ok"] is True  # the partial day is outside the period

    code, report = status_json(run_ingest, "--participants", "2", "--metrics", "hr,spo2")
    assert code == 1
    assert sorted({(d["participant"], d["metric"]) for d in report["days"]}) == \
        [(2, "hr"), (2, "spo2")]
    # 7 days ending 2024-01-03: the days before the participant's first row are not rated
    assert [(d["day"], d["status"]) for d in report["days"] if d["metric"] == "hr"] == \
        [("2024-01-01", "complete"), ("2024-01-02", "partial"), ("2024-01-03", "complete")]

    # A participant who stopped: still on every day, missing after their last row.
    execute(database_url, "DELETE FROM raw_data WHERE participant = 1 AND ts >= '2024-01-03'")
    recount(database_url)
    code, report = status_json(run_ingest, "--days", "1", "--participants", "1")
    assert code == 1
    assert {d["status"] for d in report["days"]} == {"missing"}
    assert len(report["days"]) == len(METRICS)


def test_expected_rows_threshold_and_time_zone_come_from_the_settings(study, run_ingest):
    code, report = status_json(run_ingest, "--days", "1", STATUS_EXPECTED_ROWS="hr=100000")
    assert code == 1
    days = by_key(report)
    assert days[(1, "hr", "2024-01-03")]["status"] == "partial"  # 86.4% of 100,000
    assert days[(1, "azm", "2024-01-03")]["expected"] is None  # not named: no fixed count
    assert days[(1, "azm", "2024-01-03")]["status"] == "complete"

    code, report = status_json(run_ingest, "--days", "1", STATUS_EXPECTED_ROWS="hr=100000",
                               STATUS_COMPLETE_PCT="80")
    assert code == 0 and report["complete_pct"] == 80

    # Berlin's days (UTC+1): the data's last UTC hour is Berlin's 2024-01-04, alone.
    code, report = status_json(run_ingest, "--days", str(DAYS + 1), STATUS_TZ="Europe/Berlin")
    assert report["time_zone"] == "Europe/Berlin"
    assert (report["first_day"], report["last_day"]) == ("2024-01-01", "2024-01-04")
    days = by_key(report)
    assert days[(1, "hr", "2024-01-04")]["rows"] == 3_600
    assert days[(1, "hr", "2024-01-01")]["rows"] == 82_800  # 23 of its hours: 95.8%
    assert days[(1, "hr", "2024-01-01")]["status"] == "complete"
    assert days[(1, "hr", "2024-01-02")]["rows"] == 86_400


@pytest.mark.parametrize("env, message", [
    ({"STATUS_EXPECTED_ROWS": "hr:86400"}, "STATUS_EXPECTED_ROWS='hr:86400': 'hr:86400' is "
                                           "not metric=rows"),
    ({"STATUS_COMPLETE_PCT": "120"}, "STATUS_COMPLETE_PCT='120' must be more than 0 and at "
                                     "most 100 percent"),
    ({"STATUS_TZ": "Mars/Olympus"}, "STATUS_TZ='Mars/Olympus' is not a time zone name"),
    ({"STATUS_MAX_AGE_HOURS": "soon"}, "STATUS_MAX_AGE_HOURS='soon' is not a number of hours"),
])
def test_a_bad_status_setting_is_one_error_line_and_exit_1(run_ingest, env, message):
    proc = run_ingest("status", **env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"ERROR {message}" in proc.stderr
    code, report = status_json(run_ingest, **env)
    assert code == 1 and report["ok"] is False and message in report["error"]


# --- exit codes and the last run --------------------------------------------------------------

def test_exit_0_when_every_day_is_complete_and_the_last_run_recent(tmp_path, run_ingest,
                                                                    database_url):
    """Straight after a load: the coverage the loader kept, not a recount."""
    assert load(run_ingest, tmp_path, "2").returncode == 0
    proc = run_ingest("status", "--days", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(
        "OK: all 12 days complete (1 participant) in 2024-01-01..2024-01-02 (UTC days); the "
        "last run (#1) succeeded ")


@pytest.mark.parametrize("change, problem", [
    ("INSERT INTO ingest_runs (trigger, status, finished, error) "
     "VALUES ('cron', 'failed', now(), 'cannot connect')", "the last run (#2) ended failed"),
    ("INSERT INTO ingest_runs (trigger, status, finished) "
     "VALUES ('cron', 'partial', now())", "the last run (#2) ended partial"),
    ("INSERT INTO ingest_runs (trigger) VALUES ('cron')", "the last run (#2, started "),
    ("UPDATE ingest_runs SET started = now() - interval '30 hours', "
     "finished = now() - interval '30 hours'", "the last run (#1) succeeded 30.0 h ago, "
                                               "longer than 26 h"),
])
def test_exit_1_when_the_last_run_failed_or_is_too_old(tmp_path, run_ingest, database_url,
                                                       change, problem):
    assert load(run_ingest, tmp_path, "1").returncode == 0
    recount(database_url)
    assert run_ingest("status", "--days", "1").returncode == 0
    execute(database_url, change)
    code, report = status_json(run_ingest, "--days", "1")
    assert code == 1
    assert report["complete"] is True and report["ok"] is False
    assert report["last_run_ok"] is False and report["problem"].startswith(problem)


def test_max_age_sets_how_old_the_last_success_may_be(tmp_path, run_ingest, database_url):
    assert load(run_ingest, tmp_path, "1").returncode == 0
    recount(database_url)
    execute(database_url, "UPDATE ingest_runs SET finished = now() - interval '30 hours'")
    assert run_ingest("status", "--days", "1").returncode == 1
    assert run_ingest("status", "--days", "1", "--max-age", "31").returncode == 0
    assert run_ingest("status", "--days", "1", STATUS_MAX_AGE_HOURS="31").returncode == 0
    assert run_ingest("status", "--days", "1", "--max-age", "29",
                      STATUS_MAX_AGE_HOURS="31").returncode == 1


def test_json_has_the_keys_and_the_last_run_row(study, run_ingest, database_url):
    code, report = status_json(run_ingest)
    assert {"ok", "complete", "days", "last_run"} <= set(report)
    assert isinstance(report["complete"], bool) and isinstance(report["ok"], bool)
    for day in report["days"]:
        assert {"participant", "metric", "day", "rows", "expected", "status"} <= set(day)
        assert date.fromisoformat(day["day"]).isoformat() == day["day"]
        assert day["status"] in ("complete", "partial", "missing")
        assert day["expected"] is None or isinstance(day["expected"], int)
    [(run_id, started, finished, status, trigger)] = query(
        database_url, "SELECT run_id, started, finished, status, trigger FROM ingest_runs")
    last = report["last_run"]
    assert (last["run_id"], last["status"], last["trigger"], last["error"]) == \
        (run_id, status, trigger, None)
    assert datetime.fromisoformat(last["started"]) == started
    assert datetime.fromisoformat(last["finished"]) == finished
    assert last["metrics"]["2/hr"]["inserted"] == 3 * 86_400 - 43_200


def test_nothing_stored_yet_is_not_ok(run_ingest, database_url):
    db = open_database(database_url)
    try:
        from wearables_ingest.database import ensure_schema
        ensure_schema(db)
    finally:
        db.close()
    code, report = status_json(run_ingest)
    assert code == 1
    assert (report["complete"], report["days"], report["last_run"]) == (False, [], None)
    assert report["verdict"] == "NOT OK: no rows stored yet; no run is recorded in ingest_runs"


def test_status_on_a_database_without_the_schema_says_what_to_do(run_ingest):
    proc = run_ingest("status")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "ERROR ingest_coverage, ingest_runs, metric_expected missing at postgresql://" \
        in proc.stderr
    assert proc.stderr.rstrip().endswith("run the loader once (it creates the schema), or "
                                         "db/init/10-wearables.sh again as the database's owner")


def test_status_never_reads_raw_data(study, run_ingest, database_url, admin_url):
    """As a role that may read the summary and the runs but not raw_data, status works."""
    role = "status_reader_" + datetime.now(UTC).strftime("%H%M%S%f")
    execute(database_url, f'CREATE ROLE "{role}" LOGIN; '
                          f'GRANT SELECT ON ingest_coverage, ingest_runs, metric_expected '
                          f'TO "{role}"')
    try:
        url = urlsplit(database_url)  # the test server trusts loopback logins
        reader = url._replace(netloc=f"{role}@{url.hostname}:{url.port}").geturl()
        code, report = status_json(run_ingest, "--days", str(DAYS), DATABASE_URL=reader)
        assert code == 1 and len(report["days"]) == 36, report
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(reader, "SELECT 1 FROM raw_data LIMIT 1")
    finally:
        execute(database_url, f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_the_pairs_come_from_a_skip_scan_of_the_coverage(study, database_url):
    db = open_database(database_url)
    try:
        pairs = coverage.pairs(db)
        newest = coverage.newest_hour_per_pair(db)
    finally:
        db.close()
    assert pairs == query(database_url, "SELECT DISTINCT participant, metric FROM raw_data "
                                        "ORDER BY 1, 2")
    assert newest == dict(((p, m), hour) for p, m, hour in query(
        database_url, "SELECT participant, metric, date_trunc('hour', max(ts), 'UTC') "
                      "FROM raw_data GROUP BY 1, 2"))
    plan = "\n".join(r[0] for r in query(database_url, f"EXPLAIN {coverage.PAIRS}"))
    assert "Recursive Union" in plan and "raw_data" not in plan


# --- the heat map -----------------------------------------------------------------------------

def test_plot_writes_a_valid_svg_heat_map(study, run_ingest, tmp_path):
    out = tmp_path / "maps" / "coverage.svg"
    proc = run_ingest("status", "--days", str(DAYS), "--plot", str(out))
    assert proc.returncode == 1  # the half day
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    cells = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(cells) == 2 * len(METRICS) * DAYS
    titles = {r.find(f"{SVG}title").text: r.get("fill") for r in cells}
    assert titles["participant 2, hr, 2024-01-02: 43,200 of 86,400 rows (50%), partial"] \
        not in ("#1a9850", "#d73027")
    assert titles["participant 1, hr, 2024-01-02: 86,400 of 86,400 rows (100%), complete"] \
        == "#1a9850"
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for words in ("participant", "01-01", "01-03", "day (UTC)", "missing",
                  "partial", "complete", *METRICS):
        assert words in texts


def test_plot_refuses_a_file_name_not_ending_in_svg(run_ingest, tmp_path):
    proc = run_ingest("status", "--plot", str(tmp_path / "coverage.png"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"wearables-ingest status: error: argument --plot: '{tmp_path / 'coverage.png'}' does "
        "not end in .svg: the heat map is written as SVG only")
    assert not (tmp_path / "coverage.png").exists()


# --- the view ---------------------------------------------------------------------------------

def test_participant_metrics_view_matches_the_table(study, run_ingest, database_url):
    view = query(database_url, "SELECT participant, metric, first_ts, last_ts, rows, "
                               "days_with_data, days_complete, expected_per_day "
                               "FROM participant_metrics ORDER BY 1, 2")
    truth = query(database_url, "SELECT participant, metric, min(ts), max(ts), count(*), "
                                "count(DISTINCT (ts AT TIME ZONE 'UTC')::date) "
                                "FROM raw_data GROUP BY 1, 2 ORDER BY 1, 2")
    assert [v[:6] for v in view] == [tuple(t) for t in truth]
    assert [v[7] for v in view if v[0] == 1] == [EXPECTED[m] for m in METRICS]
    _, report = status_json(run_ingest, "--days", str(DAYS))
    complete = {}
    for d in report["days"]:
        key = (d["participant"], d["metric"])
        complete[key] = complete.get(key, 0) + (d["status"] == "complete")
    assert {(v[0], v[1]): v[6] for v in view} == complete  # the same rule as status
    assert complete[(2, "hr")] == DAYS - 1


def test_the_view_finds_exact_first_and_last_samples_within_an_hour(database_url):
    db = open_database(database_url)
    try:
        from wearables_ingest.database import ensure_schema
        ensure_schema(db)
    finally:
        db.close()
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-03-01T10:17:03.25Z', 9, 'hr', 1), "
                          "('2024-03-01T10:59:59Z', 9, 'hr', 2), ('2024-03-02T07:00:00Z', 9, "
                          "'hr', 3), ('2024-03-02T07:42:11Z', 9, 'hr', 4)")
    recount(database_url)
    assert query(database_url, "SELECT first_ts, last_ts, rows, days_with_data, days_complete "
                               "FROM participant_metrics") == [
        (datetime(2024, 3, 1, 10, 17, 3, 250000, tzinfo=UTC),
         datetime(2024, 3, 2, 7, 42, 11, tzinfo=UTC), 4, 2, 0)]


# --- the metrics file -------------------------------------------------------------------------

def test_metrics_file_tells_each_participant_metrics_newest_row_age(study, run_ingest,
                                                                   tmp_path, database_url):
    assert run_ingest(DATA_DIR=str(study)).returncode == 0  # a run writes the file
    prom = (tmp_path / "state" / "wearables_ingest.prom").read_text()
    samples = dict(line.rsplit(" ", 1) for line in prom.splitlines() if not line.startswith("#"))
    gauge = "wearables_ingest_newest_row_age_seconds"
    newest = query(database_url, "SELECT participant, metric, date_trunc('hour', max(ts), 'UTC') "
                                 "FROM raw_data GROUP BY 1, 2")
    assert len(newest) == 2 * len(METRICS)
    for participant, metric, hour in newest:
        age = float(samples[f'{gauge}{{participant="{participant}",metric="{metric}"}}'])
        assert abs(age - (datetime.now(UTC).timestamp() - hour.timestamp())) < 120
    assert "# TYPE wearables_ingest_newest_row_age_seconds gauge" in prom


def test_newest_hour_and_daily_rows_in_a_half_hour_zone(database_url):
    """India (UTC+05:30): an hour counts towards the day it starts in there."""
    db = open_database(database_url)
    try:
        from wearables_ingest.database import ensure_schema
        ensure_schema(db)
        execute(database_url, "INSERT INTO ingest_coverage VALUES "
                              "(1, 'hr', '2024-01-01T18:00Z', 10), "  # 23:30 on the 1st
                              "(1, 'hr', '2024-01-01T19:00Z', 20)")  # 00:30 on the 2nd
        assert coverage.newest_hour(db) == datetime(2024, 1, 1, 19, tzinfo=UTC)
        rows = coverage.daily_rows(db, date(2024, 1, 1), date(2024, 1, 2), "Asia/Kolkata")
        assert rows == {(1, "hr", date(2024, 1, 1)): 10, (1, "hr", date(2024, 1, 2)): 20}
        assert coverage.daily_rows(db, date(2024, 1, 2), date(2024, 1, 2), "UTC") == {}
        assert coverage.daily_rows(db, date(2024, 1, 1), date(2024, 1, 2), "UTC",
                                   metrics=["azm"]) == {}
    finally:
        db.close()
