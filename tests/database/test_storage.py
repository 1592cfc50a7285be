"""Storage: compression and its policy, the down-sampled views raw_data_1m/1h/1d, late rows
into compressed chunks, a database made before them, and the Apache-only fallback."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from test_db_init import drop_role, init_script, role_url
from test_exactly_once import KillClock, killed_then_rerun

from helpers import DATA, REPO, execute, logged, open_database, query, synth
from wearables_ingest import report, storage
from wearables_ingest.database import ensure_schema, schema_sql

VIEWS = {"raw_data_1m": "1 minute", "raw_data_1h": "1 hour", "raw_data_1d": "1 day"}
STORAGE_DIR = REPO / "ingest" / "wearables_ingest"


def run_sql(url: str, text: str) -> None:
    """A whole SQL file's text, run as it is (no parameters: its % signs stay)."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(text)
    finally:
        conn.close()


def policy_age(url: str) -> list[tuple]:
    return query(url, "SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                      "WHERE proc_name = 'policy_compression' AND hypertable_name = 'raw_data'")


def continuous_aggregates(url: str) -> list[tuple]:
    return query(url, "SELECT view_name, materialized_only FROM "
                      "timescaledb_information.continuous_aggregates ORDER BY view_name")


def run_jobs(url: str, proc: str) -> None:
    """Run the policies' jobs now, as the scheduler would (CALL run_job: no transaction)."""
    jobs = query(url, "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s "
                      "ORDER BY job_id", (proc,))
    assert jobs, f"no {proc} job"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for (job_id,) in jobs:
                cur.execute("CALL run_job(%s)", (job_id,))
    finally:
        conn.close()


def compress_all(url: str) -> int:
    return query(url, "SELECT count(compress_chunk(c, true)) FROM show_chunks('raw_data') c")[0][0]


def view_matches_raw_data(url: str, view: str, width: str) -> None:
    """Every bucket of ``view`` against the same aggregate of raw_data."""
    columns = "bucket, participant, metric, samples, mean, min, max"
    got = query(url, f"SELECT {columns} FROM {view} ORDER BY 1, 2, 3")  # noqa: S608 (VIEWS)
    want = query(url, "SELECT time_bucket(%s::interval, ts), participant, metric, count(*), "
                      "avg(value), min(value), max(value) FROM raw_data GROUP BY 1, 2, 3 "
                      "ORDER BY 1, 2, 3", (width,))
    assert [r[:4] for r in got] == [r[:4] for r in want], view
    assert [r[5:] for r in got] == [r[5:] for r in want], view
    assert [r[4] for r in got] == pytest.approx([r[4] for r in want], rel=1e-12), view


@pytest.fixture
def two_days(tmp_path: Path) -> Path:
    """Two participants' two synthetic days, in data/."""
    data = tmp_path / "data"
    for participant in (1, 2):
        synth(data / f"participant_00{participant}", "--days", "2")
    return data


def test_a_new_database_gets_compression_its_policy_and_real_time_aggregates(
        full_timescaledb, database_url):
    db = open_database(database_url)
    try:
        applied = ensure_schema(db)
    finally:
        db.close()
    assert (applied.full, applied.note, applied.problem) == (True, None, None)
    assert query(database_url, "SELECT attname, segmentby_column_index, orderby_column_index "
                               "FROM timescaledb_information.compression_settings WHERE "
                               "hypertable_name = 'raw_data' ORDER BY attname") == [
        ("metric", 2, None), ("participant", 1, None), ("ts", None, 1)]
    assert policy_age(database_url) == [("7 days",)]
    assert continuous_aggregates(database_url) == [(v, False) for v in sorted(VIEWS)]
    assert query(database_url, "SELECT hypertable_name, config->>'start_offset' FROM "
                               "timescaledb_information.jobs WHERE proc_name = "
                               "'policy_refresh_continuous_aggregate' ORDER BY 1") == [
        (v, None) for v in sorted(VIEWS)]  # from the oldest data on: late rows are refreshed


def test_compress_after_days_sets_the_policy_and_a_change_replaces_it(
        full_timescaledb, database_url, run_ingest, two_days):
    assert run_ingest(DATA_DIR=str(two_days), COMPRESS_AFTER_DAYS="3").returncode == 0
    assert policy_age(database_url) == [("3 days",)]
    result = run_ingest(DATA_DIR=str(two_days), COMPRESS_AFTER_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert policy_age(database_url) == [("30 days",)]
    assert not [line for line in logged(result.stderr) if "compression" in line]


def test_a_database_made_before_storage_gets_it_when_its_schema_is_brought_up_to_date(
        full_timescaledb, database_url, run_ingest, two_days):
    run_sql(database_url, schema_sql())  # what an older version created
    assert run_ingest(DATA_DIR=str(two_days / "participant_001")).returncode == 0
    assert policy_age(database_url) == [("7 days",)]
    assert continuous_aggregates(database_url) == [(v, False) for v in sorted(VIEWS)]
    view_matches_raw_data(database_url, "raw_data_1h", "1 hour")


def test_views_match_raw_data_at_each_resolution_materialized_or_not(
        full_timescaledb, database_url, run_ingest, two_days):
    assert run_ingest(DATA_DIR=str(two_days)).returncode == 0
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-01-01T10:00:00.5Z', 1, 'hr', NULL)")
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:  # the first day materialized, the second computed when read (real-time)
        with conn.cursor() as cur:
            for view in VIEWS:
                cur.execute("CALL refresh_continuous_aggregate(%s, '2024-01-01', '2024-01-02')",
                            (view,))
    finally:
        conn.close()
    for view, width in VIEWS.items():
        view_matches_raw_data(database_url, view, width)
    assert query(database_url, "SELECT sum(samples) FROM raw_data_1d") == query(
        database_url, "SELECT count(*) FROM raw_data")


def drop_hour(path: Path, prefix: str) -> list[str]:
    """Take out the lines whose timestamp starts with ``prefix``; return them."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(prefix)]
    path.write_text("".join(kept))
    return [line for line in lines if line.startswith(prefix)]


def test_late_rows_into_a_compressed_chunk_reach_the_coverage_and_the_hourly_view(
        full_timescaledb, database_url, run_ingest, tmp_path):
    data = tmp_path / DATA
    synth(data, "--days", "3")
    late = drop_hour(data / "hr.csv", "2024-01-02T05:")
    assert len(late) == 3_600
    assert run_ingest().returncode == 0
    assert compress_all(database_url) > 0
    run_jobs(database_url, "policy_refresh_continuous_aggregate")  # the hour materialized: empty
    hour = ("SELECT samples, mean FROM raw_data_1h WHERE participant = 1 AND metric = 'hr' "
            "AND bucket = '2024-01-02T05:00Z'")
    assert query(database_url, hour) == []

    with (data / "hr.csv").open("a") as f:
        f.writelines(late)  # the missing hour arrives late, at the end of the file
    result = run_ingest()
    assert result.returncode == 0, result.stderr
    assert query(database_url, "SELECT count(*) FROM raw_data WHERE metric = 'hr'") == [(259_200,)]
    assert query(database_url, "SELECT rows FROM ingest_coverage WHERE metric = 'hr' AND "
                               "hour = '2024-01-02T05:00Z'") == [(3_600,)]
    run_jobs(database_url, "policy_refresh_continuous_aggregate")  # the scheduler's next run
    [(samples, mean)] = query(database_url, hour)
    [(want,)] = query(database_url, "SELECT avg(value) FROM raw_data WHERE metric = 'hr' AND "
                                    "ts >= '2024-01-02T05:00Z' AND ts < '2024-01-02T06:00Z'")
    assert samples == 3_600 and mean == pytest.approx(want, rel=1e-12)
    view_matches_raw_data(database_url, "raw_data_1h", "1 hour")


def test_the_compression_policy_compresses_chunks_older_than_its_age(
        full_timescaledb, database_url, run_ingest, tmp_path):
    synth(tmp_path / DATA, "--days", "2")
    assert run_ingest().returncode == 0
    run_jobs(database_url, "policy_compression")
    [(stored, before, chunks, compressed)] = query(
        database_url, "SELECT sum(after_compression_total_bytes), "
                      "sum(before_compression_total_bytes), sum(total_chunks), "
                      "sum(number_compressed_chunks) FROM hypertable_compression_stats('raw_data')")
    assert compressed == chunks > 0 and stored < before / 20
    db = open_database(database_url)
    try:
        figures = storage.figures(db)
    finally:
        db.close()
    assert (figures.compression_available, figures.chunks, figures.chunks_compressed) == (
        True, chunks, compressed)
    assert figures.bytes_stored < figures.bytes_uncompressed / 20


@pytest.fixture
def stack_roles(admin_url: str):
    """(ingest role, analyst role) made by the init script for this test, dropped after."""
    tag = uuid.uuid4().hex[:10]
    names = (f"ingest_{tag}", f"analyst_{tag}")
    yield names
    for name in names:
        drop_role(admin_url, name)


def stack_init(database_url: str, roles: tuple[str, str], **settings: str):
    result = init_script(database_url, INGEST_DB_PASSWORD="ingest-pw", INGEST_DB_USER=roles[0],
                         ANALYST_DB_USER=roles[1], ANALYST_DB_PASSWORD="analyst-pw", **settings)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    # Run again, the schema's CREATE ... IF NOT EXISTS say they skipped; nothing else is said.
    assert all(line.startswith("NOTICE:") for line in result.stderr.splitlines()), result.stderr


def test_the_init_script_applies_storage_and_the_ingest_role_loads_late_rows_compressed(
        full_timescaledb, database_url, run_ingest, tmp_path, stack_roles):
    stack_init(database_url, stack_roles, COMPRESS_AFTER_DAYS="5")
    assert policy_age(database_url) == [("5 days",)]
    assert continuous_aggregates(database_url) == [(v, False) for v in sorted(VIEWS)]
    ingest = role_url(database_url, stack_roles[0], "ingest-pw")
    data = tmp_path / DATA
    synth(data, "--days", "2")
    late = drop_hour(data / "azm.csv", "2024-01-01T05:")
    assert run_ingest(DATABASE_URL=ingest, COMPRESS_AFTER_DAYS="5").returncode == 0
    compress_all(database_url)
    with (data / "azm.csv").open("a") as f:
        f.writelines(late)
    result = run_ingest(DATABASE_URL=ingest, COMPRESS_AFTER_DAYS="5")
    assert result.returncode == 0, result.stderr
    assert query(database_url, "SELECT count(*) FROM raw_data WHERE metric = 'azm'") == [(2_880,)]
    stored = json.loads(run_ingest("status", "--json", DATABASE_URL=ingest).stdout)["storage"]
    assert stored["chunks_compressed"] == stored["chunks"] > 0  # the ingest role reads them
    analyst = role_url(database_url, stack_roles[1], "analyst-pw")
    for view, width in VIEWS.items():
        view_matches_raw_data(analyst, view, width)  # the analyst reads every view


def test_the_ingest_role_says_in_one_line_that_it_cannot_update_storage_and_loads(
        full_timescaledb, database_url, run_ingest, tmp_path, stack_roles):
    stack_init(database_url, stack_roles)
    execute(database_url, "SELECT remove_compression_policy('raw_data')")  # an older database
    synth(tmp_path / DATA, "--days", "1")
    result = run_ingest(DATABASE_URL=role_url(database_url, stack_roles[0], "ingest-pw"))
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in logged(result.stderr) if line.startswith("WARNING")]
    assert "run db/init/10-wearables.sh as the database's owner" in warning
    assert query(database_url, "SELECT count(*) FROM raw_data") == [(88_724,)]
    stack_init(database_url, stack_roles)  # as the docs say: the owner brings it up to date
    assert policy_age(database_url) == [("7 days",)]


def apply_apache_storage(url: str) -> None:
    """What an Apache-only server gets: the schema, then storage-apache.sql."""
    run_sql(url, schema_sql())
    run_sql(url, (STORAGE_DIR / "storage-apache.sql").read_text())


def test_the_apache_only_fallback_makes_plain_views_that_match_raw_data(
        database_url, run_ingest, two_days):
    apply_apache_storage(database_url)
    assert query(database_url, "SELECT relname, relkind FROM pg_class WHERE relname LIKE "
                               "'raw\\_data\\_1_' ORDER BY 1") == [
        ("raw_data_1d", "v"), ("raw_data_1h", "v"), ("raw_data_1m", "v")]
    assert query(database_url, "SELECT count(*) FROM timescaledb_information."
                               "continuous_aggregates") == [(0,)]
    db = open_database(database_url)
    try:
        full = storage.full_timescaledb(db)
    finally:
        db.close()
    if full:  # the loader would turn them into continuous aggregates here: write around it
        execute(database_url, "INSERT INTO raw_data SELECT ts, 1, 'hr', extract(second FROM ts) "
                              "FROM generate_series('2024-01-01'::timestamptz, '2024-01-02', "
                              "'1 second') ts")
    else:
        assert run_ingest(DATA_DIR=str(two_days)).returncode == 0
    for view, width in VIEWS.items():
        view_matches_raw_data(database_url, view, width)


def test_a_server_that_gains_the_full_timescaledb_turns_plain_views_into_aggregates(
        full_timescaledb, database_url):
    apply_apache_storage(database_url)
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
    db = open_database(database_url)
    try:
        assert ensure_schema(db).problem is None
    finally:
        db.close()
    assert continuous_aggregates(database_url) == [(v, False) for v in sorted(VIEWS)]
    assert query(database_url, "SELECT samples, mean FROM raw_data_1d") == [(1, 60.0)]


def test_on_an_apache_only_server_the_loader_says_once_that_compression_is_not_available(
        database_url, run_ingest, tmp_path):
    db = open_database(database_url)
    try:
        ensure_schema(db)
        if storage.full_timescaledb(db):
            pytest.skip("needs an Apache-only TimescaleDB; this server has the full one")
    finally:
        db.close()
    synth(tmp_path / DATA, "--days", "1")
    result = run_ingest()
    assert result.returncode == 0
    assert [line for line in logged(result.stderr) if "compression" in line] == [
        f"INFO {storage.NOT_AVAILABLE}"]


def test_status_reports_bytes_stored_before_compression_and_chunks_compressed(
        full_timescaledb, database_url, run_ingest, tmp_path):
    synth(tmp_path / DATA, "--days", "2")
    assert run_ingest().returncode == 0
    before = json.loads(run_ingest("status", "--json").stdout)["storage"]
    assert before["compression_available"] is True
    assert before["chunks_compressed"] == 0 and before["chunks"] > 0
    assert before["bytes_stored"] == before["bytes_before_compression"] > 0
    compressed = compress_all(database_url)
    after = json.loads(run_ingest("status", "--json").stdout)["storage"]
    assert (after["chunks"], after["chunks_compressed"]) == (before["chunks"], compressed)
    assert after["bytes_stored"] < after["bytes_before_compression"] / 20
    assert abs(after["bytes_before_compression"] - before["bytes_stored"]) < 0.05 * before[
        "bytes_stored"]  # about what the chunks held before
    lines = run_ingest("status").stdout.splitlines()
    [line] = [line for line in lines if line.startswith("storage: ")]
    share = 100 * after["bytes_stored"] / after["bytes_before_compression"]
    assert line.endswith(f"before compression ({share:.1f}%); {compressed} of {compressed} "
                         "chunks compressed")


def test_the_storage_line_without_compression_says_so_once():
    line = report.storage_line(storage.Figures(False, 287_416_320, 287_416_320, 5, 0))
    assert line == f"storage: 287.4 MB in 5 chunks; {storage.NOT_AVAILABLE}"
    assert report.storage_json(storage.Figures(True, 3_473_408, 287_498_240, 5, 5)) == {
        "compression_available": True, "bytes_stored": 3_473_408,
        "bytes_before_compression": 287_498_240, "chunks": 5, "chunks_compressed": 5}


@pytest.mark.slow
def test_kills_during_loads_into_compressed_chunks_lose_and_double_nothing(
        full_timescaledb, database_url, run_ingest, tmp_path):
    data, state = tmp_path / DATA, tmp_path / "state"
    synth(data, "--days", "2")
    late = drop_hour(data / "hr.csv", "2024-01-01T05:")
    middle = drop_hour(data / "azm.csv", "2024-01-02T10:")
    started = time.monotonic()
    assert run_ingest().returncode == 0
    clock = KillClock(15, time.monotonic() - started)
    compress_all(database_url)
    kills = 0
    for step in ("late rows", "rewritten file", "light reset", "light reset"):
        if step == "late rows":  # appended at the end, into a compressed chunk
            with (data / "hr.csv").open("a") as f:
                f.writelines(late)
        elif step == "rewritten file":  # re-exported with the missing hour in its place
            lines = (data / "azm.csv").read_text().splitlines(keepends=True)
            at = next(i for i, line in enumerate(lines) if i and line > "2024-01-02T10:")
            (data / "azm.csv").write_text("".join(lines[:at] + middle + lines[at:]))
        else:
            (state / "last_run.json").unlink()
        kills += killed_then_rerun(run_ingest, database_url, state, data, clock)
        compress_all(database_url)
    assert kills >= 2, "most kills should land while the loader runs"
