"""db/init/10-wearables.sh's read-only role for analysts, run for real with psql.

With ANALYST_DB_PASSWORD set, the script creates the role (ANALYST_DB_USER, each test
its own name); it may read raw_data, the coverage summary, the run records, the expected
counts and the view, and do nothing else. Without it, there is no such role.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest
from test_db_init import INIT_SCRIPT, drop_role, init_script, role_url, scram_matches

from helpers import REPO, execute, fresh_database, query

ANALYST_PASSWORD = "an@lyst pw'; DROP TABLE raw_data; -- \"$HOME\" `id` \\ :x %s"
READABLE = ["raw_data", "ingest_coverage", "ingest_runs", "metric_expected",
            "participant_metrics"]


def run_init(database_url: str, ingest_role: str, analyst: str | None,
             analyst_password: str | None = ANALYST_PASSWORD) -> subprocess.CompletedProcess:
    """The init script as the db image runs it, with the analyst's settings."""
    return init_script(database_url, INGEST_DB_PASSWORD="ingest-pw", INGEST_DB_USER=ingest_role,
                       ANALYST_DB_USER=analyst, ANALYST_DB_PASSWORD=analyst_password)


def as_role(database_url: str, role: str, password: str = ANALYST_PASSWORD) -> str:
    return role_url(database_url, role, password)


@pytest.fixture
def roles(admin_url: str) -> Iterator[tuple[str, str]]:
    """(ingest role, analyst role): names of this test's own, dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    names = (f"ingest_{tag}", f"analyst_{tag}")
    yield names
    for name in names:
        drop_role(admin_url, name)


@pytest.fixture(scope="module")
def analyst_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """(database URL, analyst role): the analyst role, created by the init script, on a
    database holding a row everywhere.

    One for the module: the tests that use it only read, or try what is refused and check
    that nothing changed."""
    tag = uuid.uuid4().hex[:10]
    roles = (f"ingest_{tag}", f"analyst_{tag}")
    with fresh_database(admin_url) as database_url:
        result = run_init(database_url, *roles)
        assert result.returncode == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", "")  # quiet, and never the password
        execute(database_url,
                "INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60); "
                "INSERT INTO ingest_coverage VALUES (1, 'hr', '2024-01-01T00:00Z', 1); "
                "INSERT INTO ingest_runs (trigger, status) VALUES ('cron', 'ok')")
        yield database_url, roles[1]
        for name in roles:
            drop_role(admin_url, name)


def test_the_analyst_may_log_in_and_read_the_data_summary_runs_and_view(analyst_database):
    database_url, analyst = analyst_database
    [(superuser, createdb, createrole, replication, bypassrls, login, verifier)] = query(
        database_url, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
                      "rolbypassrls, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s",
        (analyst,))
    assert (superuser, createdb, createrole, replication, bypassrls, login) == \
        (False, False, False, False, False, True)
    assert scram_matches(verifier, ANALYST_PASSWORD)  # exactly, as psql quoted it

    url = as_role(database_url, analyst)
    assert query(url, "SELECT current_user") == [(analyst,)]
    counts = {t: query(url, f"SELECT count(*) FROM {t}")[0][0] for t in READABLE}  # noqa: S608
    assert counts == {"raw_data": 1, "ingest_coverage": 1, "ingest_runs": 1,
                      "metric_expected": 6, "participant_metrics": 1}
    assert query(url, "SELECT participant, metric, rows FROM participant_metrics") == \
        [(1, "hr", 1)]
    # What reading needs, and no more.
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    for table in READABLE:
        granted = {p for p in privileges
                   if query(database_url, "SELECT has_table_privilege(%s, %s, %s)",
                            (analyst, table, p))[0][0]}
        assert granted == {"SELECT"}, table
    assert query(database_url, "SELECT has_database_privilege(%s, current_database(), 'CONNECT'),"
                               " has_database_privilege(%s, current_database(), 'TEMPORARY'),"
                               " has_database_privilege(%s, current_database(), 'CREATE'),"
                               " has_schema_privilege(%s, 'public', 'USAGE'),"
                               " has_schema_privilege(%s, 'public', 'CREATE'),"
                               " has_sequence_privilege(%s, 'ingest_runs_run_id_seq', 'USAGE')",
                 (analyst,) * 6) == [(True, False, False, True, False, False)]
    assert query(database_url, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                               "ON r.oid = m.member WHERE r.rolname = %s", (analyst,)) == [(0,)]


@pytest.mark.parametrize("statement", [
    "INSERT INTO raw_data VALUES ('2024-01-02T00:00:00Z', 1, 'hr', 61)",
    "UPDATE raw_data SET value = 0",
    "DELETE FROM raw_data",
    "TRUNCATE raw_data",
    "INSERT INTO ingest_coverage VALUES (2, 'hr', '2024-01-01T00:00Z', 1)",
    "UPDATE ingest_coverage SET rows = 2",
    "DELETE FROM ingest_coverage",
    "TRUNCATE ingest_coverage",
    "INSERT INTO ingest_runs (trigger) VALUES ('manual')",
    "UPDATE ingest_runs SET status = 'failed'",
    "DELETE FROM ingest_runs",
    "TRUNCATE ingest_runs",
    "UPDATE metric_expected SET rows_per_day = 1",
    "DELETE FROM metric_expected",
    "SELECT * FROM raw_data FOR UPDATE",
    "DELETE FROM {chunk}",
    "SELECT drop_chunks('raw_data', older_than => now())",
    "DROP TABLE raw_data",
    "ALTER TABLE raw_data ADD COLUMN extra int",
    "CREATE TABLE mine (x int)",
    "CREATE TABLE public.mine (x int)",
    "CREATE TEMPORARY TABLE mine (x int)",
    "CREATE VIEW mine AS SELECT 1",
    "CREATE FUNCTION mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA mine",
    "CREATE INDEX mine ON raw_data (value)",
    "CREATE TABLE _timescaledb_internal.mine (x int)",
    "CREATE ROLE mine",
    "CREATE DATABASE mine",
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "SELECT nextval('ingest_runs_run_id_seq')",
])
def test_the_analyst_cannot_write_or_create_anything(analyst_database, statement):
    database_url, analyst = analyst_database
    [(chunk,)] = query(database_url, "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM "
                                     "timescaledb_information.chunks "
                                     "WHERE hypertable_name = 'raw_data'")
    before = [query(database_url, f"SELECT count(*) FROM {t}") for t in READABLE]  # noqa: S608
    conn = psycopg2.connect(as_role(database_url, analyst))
    conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement.format(chunk=chunk))
    finally:
        conn.close()
    assert [query(database_url, f"SELECT count(*) FROM {t}") for t in READABLE] == before  # noqa: S608
    assert query(database_url, "SELECT count(*) FROM pg_class WHERE relname = 'mine'") == [(0,)]


def test_without_a_password_there_is_no_analyst_role(database_url, roles):
    ingest, analyst = roles
    for password in (None, ""):
        result = run_init(database_url, ingest, analyst, analyst_password=password)
        assert result.returncode == 0, result.stderr
        assert query(database_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                     (analyst,)) == [(0,)]
    # The ingest role reads what status reads beside its own tables.
    for table in ("metric_expected", "participant_metrics", "ingest_coverage"):
        assert query(database_url, "SELECT has_table_privilege(%s, %s, 'SELECT')",
                     (ingest, table)) == [(True,)]


def test_running_the_script_again_sets_the_analysts_password(database_url, roles):
    assert run_init(database_url, *roles).returncode == 0
    again = run_init(database_url, *roles, analyst_password="another one")
    assert again.returncode == 0, again.stderr
    [(verifier,)] = query(database_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                          (roles[1],))
    assert scram_matches(verifier, "another one") and not scram_matches(verifier,
                                                                        ANALYST_PASSWORD)


def test_the_stacks_analyst_is_named_analyst_and_the_password_reaches_it_from_compose():
    text = (REPO / "docker-compose.yml").read_text()
    assert "ANALYST_DB_PASSWORD: ${ANALYST_DB_PASSWORD:-}" in text
    script = INIT_SCRIPT.read_text()
    assert "ANALYST_DB_USER=${ANALYST_DB_USER:-analyst}" in script
    assert "\\getenv analyst_password ANALYST_DB_PASSWORD" in script
