"""The database side on a real TimescaleDB: schema, hypertable, and the batch writer."""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import psycopg2
import psycopg2.sql
import pytest

from conftest import query
from db import DatabaseError, connect, ensure_schema, insert_rows


@pytest.fixture
def conn(database_url):
    c = psycopg2.connect(database_url)
    yield c
    c.close()


def schema_snapshot(url: str) -> list[tuple]:
    columns = query(url, "SELECT column_name, data_type, is_nullable FROM "
                         "information_schema.columns WHERE table_name = 'raw_data' "
                         "ORDER BY ordinal_position")
    key = query(url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                     "WHERE conrelid = 'raw_data'::regclass AND contype = 'p'")
    hyper = query(url, "SELECT hypertable_name, num_dimensions FROM "
                       "timescaledb_information.hypertables")
    dims = query(url, "SELECT column_name FROM timescaledb_information.dimensions "
                      "WHERE hypertable_name = 'raw_data'")
    return [*columns, *key, *hyper, *dims]


def test_schema_is_the_seed_table_as_a_hypertable_on_ts(conn, database_url):
    ensure_schema(conn)
    assert schema_snapshot(database_url) == [
        ("ts", "timestamp with time zone", "NO"),
        ("participant", "integer", "NO"),
        ("metric", "text", "NO"),
        ("value", "double precision", "YES"),
        ("PRIMARY KEY (ts, participant, metric)",),
        ("raw_data", 1),
        ("ts",),
    ]


def test_ensure_schema_again_changes_nothing(conn, database_url):
    ensure_schema(conn)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
    before = schema_snapshot(database_url)
    ensure_schema(conn)
    assert schema_snapshot(database_url) == before
    assert query(database_url, "SELECT count(*) FROM raw_data") == [(1,)]


def test_insert_rows_counts_new_rows_and_skips_present_ones(conn, database_url):
    ensure_schema(conn)
    ts = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:01.5"], dtype="datetime64[us]")
    with conn, conn.cursor() as cur:
        assert insert_rows(cur, 1, "hr", ts, np.array([60.0, np.nan])) == 2
    with conn, conn.cursor() as cur:
        more = np.concatenate([ts, np.array(["2024-01-01T00:00:02"], dtype="datetime64[us]")])
        assert insert_rows(cur, 1, "hr", more, np.array([99.0, 99.0, 62.0])) == 1
        assert insert_rows(cur, 2, "hr", ts[:1], np.array([70.0])) == 1  # other participant
        assert insert_rows(cur, 1, "hr", ts[:0], np.array([])) == 0
    assert query(database_url, "SELECT ts AT TIME ZONE 'UTC', participant, value FROM raw_data "
                               "ORDER BY participant, ts") == [
        (np.datetime64("2024-01-01T00:00:00").astype(object), 1, 60.0),  # first value kept
        (np.datetime64("2024-01-01T00:00:01.500000").astype(object), 1, None),  # empty -> NULL
        (np.datetime64("2024-01-01T00:00:02").astype(object), 1, 62.0),
        (np.datetime64("2024-01-01T00:00:00").astype(object), 2, 70.0),
    ]


def test_metric_text_reaches_sql_only_as_a_value(conn, database_url):
    ensure_schema(conn)
    nasty = "hr'); DROP TABLE raw_data; --"
    with conn, conn.cursor() as cur:
        insert_rows(cur, 1, nasty, np.array(["2024-01-01"], dtype="datetime64[us]"),
                    np.array([1.0]))
    assert query(database_url, "SELECT metric FROM raw_data") == [(nasty,)]


def test_connect_failure_is_one_line_naming_the_target_without_password():
    with pytest.raises(DatabaseError) as e:
        connect({"host": "127.0.0.1", "port": "1", "password": "hunter2"}, "u@127.0.0.1:1/x",
                timeout_s=2)
    assert str(e.value).startswith("cannot connect to u@127.0.0.1:1/x: ")
    assert "\n" not in str(e.value) and "hunter2" not in str(e.value)


@pytest.mark.parametrize("method", ["copy", "values"])
def test_a_role_that_may_only_read_and_insert_can_load(conn, database_url, tmp_path, method):
    from loader import Options, load_file
    from source import SourceFile

    ensure_schema(conn)  # as the owner, once
    role = f"loader_{method}"
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")
        cur.execute(f"GRANT SELECT, INSERT ON raw_data TO {role}")
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n2024-01-01T00:00:00Z,60\n2024-01-01T00:00:01Z,61\n")
    url = urlsplit(database_url)._replace(netloc=f"{role}@{urlsplit(database_url).hostname}:"
                                                 f"{urlsplit(database_url).port}").geturl()
    loader_conn = connect({"dsn": url}, "test")
    try:
        ensure_schema(loader_conn)  # sends no DDL: it would be refused
        first = load_file(loader_conn, SourceFile(1, "hr", path, "hr"), None, Options(method))
        again = load_file(loader_conn, SourceFile(1, "hr", path, "hr"), None, Options(method))
    finally:
        loader_conn.close()
    assert (first.inserted, again.inserted, again.already_present) == (2, 0, 2)
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute(psycopg2.sql.SQL("SET ROLE {}").format(psycopg2.sql.Identifier(role)))
        cur.execute("DELETE FROM raw_data")
