"""raw_data's key, on a new database and on one created with the seed's key; the exact
"stored from here on?" check; and the coverage kept true (after raw_data is dropped and
reloaded, and as --verify sees it).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_exactly_once import assert_coverage_equals_counts, assert_table_equals_source

from helpers import DATA, REPO, execute, open_database, query, synth, table_counts
from wearables_ingest import checkpoint, database, writer
from wearables_ingest.blocks import tail_hash
from wearables_ingest.database import ensure_schema
from wearables_ingest.discovery import SourceFile
from wearables_ingest.loader import Options, load_file

# The seed's DDL with the coverage table of the version before this key (no last_ts, no
# recount functions): a database such a version created, as its owner left it.
OLD_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE raw_data (ts TIMESTAMPTZ NOT NULL, participant INT NOT NULL, metric TEXT NOT NULL,
                       value DOUBLE PRECISION, PRIMARY KEY (ts, participant, metric));
SELECT create_hypertable('raw_data', 'ts');
CREATE TABLE ingest_coverage (participant INT NOT NULL, metric TEXT NOT NULL,
                              hour TIMESTAMPTZ NOT NULL, rows BIGINT NOT NULL CHECK (rows > 0),
                              PRIMARY KEY (participant, metric, hour));
"""
PRIMARY_KEY = ("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
               "WHERE conrelid = 'raw_data'::regclass AND contype = 'p'")


def migration_recipe() -> str:
    """The SQL that docs/how-it-works.md gives for moving a database to the new key."""
    text = (REPO / "docs" / "how-it-works.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    [recipe] = [b for b in blocks if "ADD PRIMARY KEY (participant, metric, ts)" in b]
    return recipe


def test_a_new_database_gets_the_key_participant_metric_ts(database_url):
    db = open_database(database_url)
    try:
        ensure_schema(db)
    finally:
        db.close()
    assert query(database_url, PRIMARY_KEY) == [("PRIMARY KEY (participant, metric, ts)",)]
    assert query(database_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'raw_data'") \
        == [("raw_data_pkey",)]


def test_a_database_with_the_seeds_key_loads_deltas_and_verifies(tmp_path, run_ingest,
                                                                 database_url):
    execute(database_url, OLD_SCHEMA)
    data = tmp_path / DATA
    synth(data, "--days", "1")
    first = run_ingest()
    assert first.returncode == 0, first.stderr
    synth(data, "--append-days", "1")
    delta = run_ingest()
    assert delta.returncode == 0, delta.stderr
    assert "Ingested 86,400 rows → hr" in delta.stdout
    verified = run_ingest("--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert query(database_url, PRIMARY_KEY) == [("PRIMARY KEY (ts, participant, metric)",)]
    assert_table_equals_source(database_url, data)


@pytest.mark.slow  # about 17 s: make test runs it, a plain pytest does not
def test_the_documented_recipe_moves_a_database_to_the_new_key(tmp_path, run_ingest,
                                                               database_url):
    execute(database_url, OLD_SCHEMA)
    data = tmp_path / DATA
    synth(data, "--days", "8")  # more than one chunk (7 days each)
    assert run_ingest().returncode == 0
    before = table_counts(database_url)
    execute(database_url, migration_recipe())
    assert query(database_url, PRIMARY_KEY) == [("PRIMARY KEY (participant, metric, ts)",)]
    assert table_counts(database_url) == before
    chunks = query(database_url, "SELECT count(*) FROM timescaledb_information.chunks "
                                 "WHERE hypertable_name = 'raw_data'")[0][0]
    chunk_keys = query(database_url, "SELECT count(*) FROM pg_constraint c "
                                     "JOIN pg_class t ON t.oid = c.conrelid "
                                     "JOIN timescaledb_information.chunks ch "
                                     "ON ch.chunk_name = t.relname WHERE c.contype = 'p' AND "
                                     "pg_get_constraintdef(c.oid) = "
                                     "'PRIMARY KEY (participant, metric, ts)'")[0][0]
    assert chunks >= 2 and chunk_keys == chunks  # every chunk has the new key
    synth(data, "--append-days", "1")
    delta = run_ingest()
    assert delta.returncode == 0, delta.stderr
    assert "Ingested 86,400 rows → hr" in delta.stdout
    assert run_ingest("--verify").returncode == 0
    assert_table_equals_source(database_url, data)


# --- "stored from here on?", exactly ---------------------------------------------------------

def at(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


def test_stored_since_is_exact_to_the_microsecond_within_a_shared_hour(database_url):
    db = open_database(database_url)
    try:
        ensure_schema(db)
        with db.transaction() as cur:
            cur.execute("INSERT INTO raw_data VALUES ('2024-01-01T10:05:00Z', 1, 'hr', 60), "
                        "('2024-01-01T10:09:59.5Z', 1, 'hr', 61)")
            cur.execute("SELECT coverage_recount('{1}', '{hr}', '{2024-01-01T10:00Z}')")
        keys = [(1, "hr", at("2024-01-01T10:00:00")),  # before the hour's rows
                (1, "hr", at("2024-01-01T10:09:59.5")),  # the newest row itself
                (1, "hr", at("2024-01-01T10:09:59.500001")),  # just after it, same hour
                (1, "hr", at("2024-01-01T10:10:00")),  # mid-hour, after the newest
                (1, "hr", at("2024-01-01T09:59:59")),  # the hour before
                (1, "azm", at("2024-01-01T09:00:00")),  # another metric
                (2, "hr", at("2024-01-01T09:00:00"))]  # another participant
        assert database.stored_since(db, keys) == [True, True, False, False, True, False, False]
        # An hour counted by an older version (no newest ts): taken as full, never trusted less.
        execute(database_url, "UPDATE ingest_coverage SET last_ts = NULL")
        assert database.stored_since(db, keys[2:4]) == [True, True]
    finally:
        db.close()


def hr_rows(minutes: range, hour: int = 10) -> str:
    return "".join(f"2024-01-01T{hour:02d}:{m:02d}:00+00:00,{60 + m}\n" for m in minutes)


@pytest.mark.parametrize("method", ["copy"])
def test_a_delta_starting_mid_hour_after_the_stored_rows_goes_the_direct_way(tmp_path,
                                                                            database_url, method):
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n" + hr_rows(range(0, 10)))
    source = SourceFile(1, "hr", path, "hr")
    cp = checkpoint.Checkpoint()
    db = open_database(database_url)
    try:
        ensure_schema(db)

        def load():
            result = load_file(db, source, cp.entry(1, "hr"), Options(method))
            cp.record(1, "hr", result.last_ts, result.end.offset, result.end.line,
                      tail_hash(path, result.end.offset))
            return result

        assert load().strategy == writer.DIRECT.name
        with path.open("a") as f:  # the next night, from minute 10 of the same hour
            f.write(hr_rows(range(10, 20)))
        night = load()
        assert (night.inserted, night.strategy) == (10, writer.DIRECT.name)
        with path.open("a") as f:  # a late row inside the stored minutes: the careful way
            f.write("2024-01-01T10:04:30+00:00,1\n" + hr_rows(range(20, 25)))
        late = load()
        assert (late.inserted, late.strategy) == (6, writer.STAGED.name)
    finally:
        db.close()
    assert query(database_url, "SELECT rows, last_ts AT TIME ZONE 'UTC' FROM ingest_coverage") \
        == [(26, at("2024-01-01T10:24:00").astype(object))]
    assert_coverage_equals_counts(database_url)


# --- the coverage stays true -----------------------------------------------------------------

@pytest.mark.parametrize("keep_checkpoint", [False, True], ids=["checkpoint-deleted",
                                                                "checkpoint-kept"])
def test_raw_data_dropped_and_reloaded_starts_the_coverage_afresh(tmp_path, run_ingest,
                                                                  database_url, keep_checkpoint):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    assert run_ingest().returncode == 0
    # The full reset of docs/operations.md: the view and functions on raw_data go with it.
    execute(database_url, "DROP TABLE raw_data CASCADE")
    if not keep_checkpoint:
        (tmp_path / "state" / "last_run.json").unlink()
    reload = run_ingest()
    assert reload.returncode == 0, reload.stderr
    assert "Ingested 86,400 rows → hr" in reload.stdout
    assert_table_equals_source(database_url, data)  # the coverage too: not doubled
    assert query(database_url, "SELECT sum(rows) FROM ingest_coverage WHERE metric = 'hr'") == \
        [(86_400,)]


def test_verify_catches_a_coverage_that_disagrees_with_raw_data(tmp_path, run_ingest,
                                                               database_url):
    synth(tmp_path / DATA, "--days", "1")
    assert run_ingest().returncode == 0
    assert run_ingest("--verify").returncode == 0
    execute(database_url, "UPDATE ingest_coverage SET rows = rows + 1 WHERE metric = 'azm' "
                          "AND hour = '2024-01-01T05:00Z'")
    text = run_ingest("--verify")
    assert text.returncode == 1
    [azm] = [line for line in text.stdout.splitlines() if " azm " in line]
    assert azm.endswith("COVERAGE 1,441 rows, 1 hour off")
    assert sum(line.endswith(" ok") for line in text.stdout.splitlines()) == 5
    execute(database_url, "UPDATE ingest_coverage SET rows = rows - 1, "
                          "last_ts = last_ts - interval '1 second' WHERE metric = 'azm' "
                          "AND hour = '2024-01-01T05:00Z'")
    report = json.loads(run_ingest("--verify", "--json").stdout)
    [azm] = [r for r in report["rows"] if r["metric"] == "azm"]
    assert report["equal"] is False
    assert (azm["coverage_rows"], azm["table_rows"], azm["coverage_hours_off"]) == \
        (1_440, 1_440, 1)


def test_a_recount_sets_the_true_count_whatever_the_coverage_said(database_url):
    db = open_database(database_url)
    try:
        ensure_schema(db)
        with db.transaction() as cur:
            cur.execute("INSERT INTO raw_data SELECT '2024-01-01T10:00Z'::timestamptz "
                        "+ n * interval '1 minute', 1, 'hr', n FROM generate_series(0, 89) n")
            cur.execute("INSERT INTO ingest_coverage VALUES (1, 'hr', '2024-01-01T10:00Z', 5, "
                        "'2024-01-01T10:01Z'), (1, 'hr', '2024-01-01T12:00Z', 7, NULL)")
            # Hours given twice, not on the hour, one without rows, one another pair's.
            cur.execute("SELECT coverage_recount('{1,1,1,1,2}', '{hr,hr,hr,hr,hr}', "
                        "'{2024-01-01T10:30Z,2024-01-01T10:00Z,2024-01-01T11:00Z,"
                        "2024-01-01T12:00Z,2024-01-01T10:00Z}')")
    finally:
        db.close()
    assert query(database_url, "SELECT participant, hour AT TIME ZONE 'UTC', rows, "
                               "last_ts AT TIME ZONE 'UTC' FROM ingest_coverage ORDER BY 2") == [
        (1, at("2024-01-01T10:00").astype(object), 60, at("2024-01-01T10:59").astype(object)),
        (1, at("2024-01-01T11:00").astype(object), 30, at("2024-01-01T11:29").astype(object))]
