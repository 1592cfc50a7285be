"""The roles of db/init/10-wearables.sh reach no further than docs/security.md says.

Each claim is tried as the role, refused, and the allowed side beside it: the
other databases of the server, large objects, the run records, and TimescaleDB's
jobs, policies and chunk functions (on the full TimescaleDB only).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import pytest
from test_db_init import drop_role, init_script, role_url

from helpers import execute, fresh_database, open_database, query, with_dbname
from wearables_ingest import database
from wearables_ingest.errors import DatabaseError

INGEST_PASSWORD = "ingest-pw'; --"
ANALYST_PASSWORD = "analyst-pw'; --"


@dataclass(frozen=True)
class Stack:
    """The stack's database after the init script: a superuser's URL and the two roles'."""

    admin: str
    ingest_role: str
    analyst_role: str

    @property
    def ingest(self) -> str:
        return role_url(self.admin, self.ingest_role, INGEST_PASSWORD)

    @property
    def analyst(self) -> str:
        return role_url(self.admin, self.analyst_role, ANALYST_PASSWORD)

    def as_role(self, name: str) -> str:
        return self.ingest if name == "ingest" else self.analyst


@contextmanager
def stack_on(database_url: str, admin_url: str) -> Iterator[Stack]:
    """The init script run on the database with two roles of its own (dropped afterwards),
    and one row stored."""
    tag = uuid.uuid4().hex[:10]
    names = (f"ingest_{tag}", f"analyst_{tag}")
    result = init_script(database_url, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                         INGEST_DB_USER=names[0], ANALYST_DB_PASSWORD=ANALYST_PASSWORD,
                         ANALYST_DB_USER=names[1])
    assert result.returncode == 0, result.stderr
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
    yield Stack(database_url, *names)
    for name in names:
        drop_role(admin_url, name)


@pytest.fixture
def stack(database_url: str, admin_url: str) -> Iterator[Stack]:
    """The test's own stack: for a test that changes the database, its runs or grants."""
    with stack_on(database_url, admin_url) as own:
        yield own


@pytest.fixture(scope="module")
def shared_stack(admin_url: str) -> Iterator[Stack]:
    """One stack for the module's tests that change nothing: each tries what must be
    refused (and checks that nothing changed) or only reads."""
    with fresh_database(admin_url) as url, stack_on(url, admin_url) as shared:
        yield shared


def refused(url: str, statement: str, params: tuple = ()) -> str:
    """Run ``statement`` as the URL's role; it must be refused for want of a privilege."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege) as e:
            cur.execute(statement, params)
    finally:
        conn.close()
    return str(e.value)


ROLES = ["ingest", "analyst"]


# --- the server's other databases ----------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("other", ["postgres", "template1"])
def test_neither_role_may_connect_to_postgres_or_a_template(shared_stack, role, other):
    stack = shared_stack
    url = stack.as_role(role)
    assert query(url, "SELECT current_user")[0][0].startswith(role)  # its own database: yes
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(with_dbname(url, other)).close()


@pytest.mark.parametrize("role", ROLES)
def test_no_role_but_the_superuser_may_connect_or_create_temporary_tables_elsewhere(
        shared_stack, role):
    stack = shared_stack
    name = stack.ingest_role if role == "ingest" else stack.analyst_role
    for other in ("postgres", "template0", "template1"):
        assert query(stack.admin, "SELECT has_database_privilege(%s, %s, 'CONNECT'), "
                                  "has_database_privilege(%s, %s, 'TEMPORARY')",
                     (name, other, name, other)) == [(False, False)], other
    # The superuser still may: the stack's own maintenance is not shut out.
    assert query(with_dbname(stack.admin, "postgres"), "SELECT 1") == [(1,)]


def test_only_ingest_may_create_temporary_tables_in_the_stacks_database(shared_stack):
    stack = shared_stack
    execute(stack.ingest, "CREATE TEMPORARY TABLE staging (x int)")  # the copy method's
    refused(stack.analyst, "CREATE TEMPORARY TABLE mine (x int)")


# --- large objects -------------------------------------------------------------------------

LARGE_OBJECT_WRITES = [
    "SELECT lo_from_bytea(0, repeat('x', 100000)::bytea)",
    "SELECT lo_create(0)",
    "SELECT lo_creat(-1)",
    "SELECT lo_import('/etc/hostname')",
    "SELECT lo_put(1, 0, 'x'::bytea)",
    "SELECT lowrite(lo_open(1, 131072), 'x'::bytea)",
    "SELECT lo_unlink(1)",
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("statement", LARGE_OBJECT_WRITES)
def test_neither_role_may_store_a_large_object(shared_stack, role, statement):
    stack = shared_stack
    refused(stack.as_role(role), statement)
    assert query(stack.admin, "SELECT count(*) FROM pg_largeobject_metadata") == [(0,)]


@pytest.mark.parametrize("role", ROLES)
def test_no_large_object_function_is_executable_by_either_role(shared_stack, role):
    stack = shared_stack
    name = stack.ingest_role if role == "ingest" else stack.analyst_role
    assert query(stack.admin, "SELECT p.oid::regprocedure::text FROM pg_proc p "
                              "WHERE p.pronamespace = 'pg_catalog'::regnamespace "
                              "AND (p.proname LIKE 'lo\\_%%' OR p.proname IN ('loread', 'lowrite'))"
                              " AND has_function_privilege(%s, p.oid, 'EXECUTE')",
                 (name,)) == []
    # The superuser keeps them (so the check above sees real functions).
    [(oid,)] = query(stack.admin, "SELECT lo_from_bytea(0, 'x'::bytea)")
    assert query(stack.admin, "SELECT lo_unlink(%s)", (oid,)) == [(1,)]


# --- the run records -----------------------------------------------------------------------

def loader_db(url: str) -> database.Database:
    db = open_database(url)
    database.ensure_schema(db)  # sends no DDL as the role
    return db


def test_ingest_records_its_own_run_start_and_end(stack):
    db = loader_db(stack.ingest)
    try:
        run_id = database.start_run(db, "cron")
        database.end_run(db, run_id, "ok", {"1/hr": {"inserted": 1}}, None)
    finally:
        db.close()
    assert query(stack.admin, "SELECT status, trigger, finished IS NOT NULL, metrics, error "
                              "FROM ingest_runs WHERE run_id = %s", (run_id,)) == \
        [("ok", "cron", True, {"1/hr": {"inserted": 1}}, None)]


@pytest.mark.parametrize("statement", [
    "UPDATE ingest_runs SET status = 'ok', error = NULL",
    "DELETE FROM ingest_runs",
    "INSERT INTO ingest_runs (trigger, status) VALUES ('cron', 'ok')",
    "TRUNCATE ingest_runs",
    "SELECT nextval('ingest_runs_run_id_seq')",
])
def test_ingest_cannot_write_the_run_records_directly(stack, statement):
    execute(stack.admin, "INSERT INTO ingest_runs (trigger, status, error) "
                         "VALUES ('cron', 'failed', 'disk full')")
    refused(stack.ingest, statement)
    assert query(stack.admin, "SELECT status, error FROM ingest_runs") == [("failed", "disk full")]


def test_ingest_completes_only_a_running_run_it_started_and_only_once(stack):
    [(crashed,)] = query(stack.admin, "INSERT INTO ingest_runs (trigger) VALUES ('cron') "
                                      "RETURNING run_id")
    db = loader_db(stack.ingest)
    try:
        mine = database.start_run(db, "manual")
        key = db.run_keys[mine]
        # Another run (here one that crashed), with any key: refused.
        for guess in ("", key):
            refused(stack.ingest, "SELECT ingest_run_end(%s, %s, 'ok', '{}', NULL)",
                    (crashed, guess))
        # Its own run, but with the wrong key, or still "running": refused.
        refused(stack.ingest, "SELECT ingest_run_end(%s, 'guess', 'ok', '{}', NULL)", (mine,))
        with pytest.raises(DatabaseError, match="ends ok, partial or failed"):
            database.end_run(db, mine, "running", {}, None)
        database.end_run(db, mine, "failed", {}, "one file failed")
        # Completed: it stays as it is.
        db.run_keys[mine] = key
        with pytest.raises(DatabaseError, match="not a running run"):
            database.end_run(db, mine, "ok", {}, None)
    finally:
        db.close()
    assert query(stack.admin, "SELECT run_id, status, error FROM ingest_runs ORDER BY run_id") \
        == [(crashed, "running", None), (mine, "failed", "one file failed")]


def test_the_analyst_cannot_record_a_run(shared_stack):
    stack = shared_stack
    refused(stack.analyst, "SELECT * FROM ingest_run_start('manual')")
    refused(stack.analyst, "SELECT ingest_run_end(1, 'k', 'ok', '{}', NULL)")
    assert query(stack.admin, "SELECT count(*) FROM ingest_runs") == [(0,)]


# --- TimescaleDB's internal chunk functions (every edition) --------------------------------

INTERNAL_CALLS = [
    "SELECT _timescaledb_functions.drop_chunk('{chunk}')",  # would drop the chunk's rows
    "SELECT _timescaledb_internal.drop_chunk('{chunk}')",
    "SELECT _timescaledb_functions.freeze_chunk('{chunk}')",
    "SELECT _timescaledb_functions.unfreeze_chunk('{chunk}')",
    "SELECT _timescaledb_functions.create_chunk('raw_data', "
    "'{{\"ts\": [1700000000000000, 1700600000000000]}}')",
    "SELECT _timescaledb_functions.remove_dropped_chunk_metadata(1)",
    "SELECT _timescaledb_functions.chunk_statistics_reset()",
    "SELECT _timescaledb_functions.stop_background_workers()",
    "CALL _timescaledb_functions.policy_retention(1, '{{\"hypertable_id\": 1, "
    "\"drop_after\": \"1 day\"}}')",
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", INTERNAL_CALLS)
def test_neither_role_may_call_timescaledbs_internal_chunk_functions(shared_stack, role, call):
    stack = shared_stack
    [(chunk,)] = query(stack.admin, "SELECT show_chunks('raw_data')::text")
    message = refused(stack.as_role(role), call.format(chunk=chunk))
    assert re.match(r"permission denied for (function|procedure) ", message), message
    assert query(stack.admin, "SELECT show_chunks('raw_data')::text") == [(chunk,)]
    assert query(stack.admin, "SELECT count(*) FROM raw_data") == [(1,)]


def test_the_roles_still_read_timescaledbs_catalog_views(shared_stack):
    """What the loader and analysts query: the hypertable, its chunks, time_bucket."""
    stack = shared_stack
    for url in (stack.ingest, stack.analyst):
        assert query(url, "SELECT count(*) FROM timescaledb_information.hypertables") == [(1,)]
        assert query(url, "SELECT count(*) FROM timescaledb_information.chunks") == [(1,)]
        assert query(url, "SELECT time_bucket('1 hour', ts)::text, avg(value) FROM raw_data "
                          "GROUP BY 1") == [("2024-01-01 00:00:00+00", 60.0)]


# --- TimescaleDB: jobs, policies and chunks -----------------------------------------------

def set_up_timescaledb_jobs(stack: Stack) -> Stack:
    """The stack, with compression and a continuous aggregate set up by the owner.

    Skipped where the server has only TimescaleDB's Apache edition (none of these
    functions works there, for anyone)."""
    [(edition,)] = query(stack.admin, "SELECT current_setting('timescaledb.license', true)")
    if edition != "timescale":
        pytest.skip(f"TimescaleDB's {edition} edition: no jobs, policies or compression")
    conn = psycopg2.connect(stack.admin)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE raw_data SET (timescaledb.compress, "
                        "timescaledb.compress_segmentby = 'participant, metric')")
            cur.execute("CREATE MATERIALIZED VIEW hourly WITH (timescaledb.continuous) AS "
                        "SELECT time_bucket('1 hour', ts) AS hour, participant, metric, "
                        "avg(value) FROM raw_data GROUP BY 1, 2, 3 WITH NO DATA")
            cur.execute("SELECT add_retention_policy('raw_data', interval '10 years')")
    finally:
        conn.close()
    return stack


@pytest.fixture
def full_timescaledb(stack: Stack) -> Stack:
    """The test's own stack with TimescaleDB's jobs (set_up_timescaledb_jobs)."""
    return set_up_timescaledb_jobs(stack)


@pytest.fixture(scope="module")
def shared_full_timescaledb(admin_url: str) -> Iterator[Stack]:
    """One stack with TimescaleDB's jobs for the tests that change nothing (only refusals),
    a stack of its own: the jobs' setup changes the database."""
    with fresh_database(admin_url) as url, stack_on(url, admin_url) as shared:
        yield set_up_timescaledb_jobs(shared)


TIMESCALEDB_CALLS = [
    "SELECT add_job('_timescaledb_functions.policy_retention'::regproc, '1 hour')",
    "SELECT alter_job({job}, schedule_interval => interval '1 minute')",
    "SELECT delete_job({job})",
    "CALL run_job({job})",
    "SELECT compress_chunk('{chunk}')",
    "SELECT decompress_chunk('{chunk}')",
    "SELECT add_compression_policy('raw_data', interval '7 days')",
    "SELECT remove_compression_policy('raw_data')",
    "SELECT add_retention_policy('raw_data', interval '1 day')",
    "SELECT remove_retention_policy('raw_data')",
    "SELECT add_continuous_aggregate_policy('hourly', interval '1 day', interval '1 hour', "
    "interval '1 hour')",
    "SELECT remove_continuous_aggregate_policy('hourly')",
    "SELECT add_reorder_policy('raw_data', 'raw_data_pkey')",
    "SELECT timescaledb_experimental.add_policies('hourly', refresh_start_offset => "
    "interval '1 day', refresh_end_offset => interval '1 hour')",
    "SELECT timescaledb_experimental.remove_all_policies('hourly')",
    "CALL refresh_continuous_aggregate('hourly', NULL, NULL)",
    "SELECT set_chunk_time_interval('raw_data', interval '1 day')",
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", TIMESCALEDB_CALLS)
def test_neither_role_may_schedule_jobs_change_policies_or_chunks(shared_full_timescaledb, role,
                                                                  call):
    stack = shared_full_timescaledb
    [(job,)] = query(stack.admin, "SELECT job_id FROM timescaledb_information.jobs "
                                  "WHERE proc_name = 'policy_retention'")
    [(chunk,)] = query(stack.admin, "SELECT show_chunks('raw_data')::text")
    jobs = "SELECT job_id, schedule_interval FROM timescaledb_information.jobs ORDER BY 1"
    before = query(stack.admin, jobs)
    message = refused(stack.as_role(role), call.format(job=job, chunk=chunk))
    assert re.match(r"permission denied for (function|procedure) ", message), message
    assert query(stack.admin, jobs) == before
    assert query(stack.admin, "SELECT is_compressed FROM timescaledb_information.chunks") == \
        [(False,)]


def test_the_owner_still_may_compress_and_schedule(full_timescaledb):
    """The refusals above are the roles', not the server's: the owner's calls work."""
    stack = full_timescaledb
    [(chunk,)] = query(stack.admin, "SELECT show_chunks('raw_data')::text")
    execute(stack.admin, "SELECT compress_chunk(%s)", (chunk,))
    assert query(stack.admin, "SELECT is_compressed FROM timescaledb_information.chunks") == \
        [(True,)]
    # The init script's storage gave raw_data a compression policy: the owner replaces it.
    execute(stack.admin, "SELECT remove_compression_policy('raw_data')")
    execute(stack.admin, "SELECT add_compression_policy('raw_data', interval '7 days')")
    # The roles still read what they read (a compressed chunk too).
    assert query(stack.analyst, "SELECT count(*) FROM raw_data") == [(1,)]
    assert query(stack.ingest, "SELECT count(*) FROM raw_data") == [(1,)]


@pytest.mark.parametrize("role", ROLES)
def test_running_the_script_again_takes_back_what_an_update_gave_public(full_timescaledb, role):
    """A TimescaleDB update may create functions afresh, executable by PUBLIC again."""
    stack = full_timescaledb
    execute(stack.admin, "GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea), "
                         "add_job(regproc, interval, jsonb, timestamptz, boolean, regproc, "
                         "boolean, text, text) TO PUBLIC")
    result = init_script(stack.admin, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                         INGEST_DB_USER=stack.ingest_role, ANALYST_DB_PASSWORD=ANALYST_PASSWORD,
                         ANALYST_DB_USER=stack.analyst_role)
    assert result.returncode == 0, result.stderr
    refused(stack.as_role(role), "SELECT lo_from_bytea(0, 'x'::bytea)")
    refused(stack.as_role(role), TIMESCALEDB_CALLS[0])


# --- what PostgreSQL never gives a role that is not a superuser ----------------------------

@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("statement", [
    "SELECT rolpassword FROM pg_authid",
    "COPY raw_data TO '/tmp/wearables-raw.csv'",
    "COPY raw_data FROM '/etc/hostname'",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "SET session_replication_role = replica",
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
])
def test_neither_role_may_read_passwords_reach_server_files_or_extensions(shared_stack, role,
                                                                         statement):
    stack = shared_stack
    refused(stack.as_role(role), statement)


def test_a_database_from_before_the_run_functions_needs_the_init_script_again(stack):
    execute(stack.admin, "DROP FUNCTION ingest_run_start(text), "
                         "ingest_run_end(bigint, text, text, jsonb, text)")
    db = open_database(stack.ingest)
    try:
        with pytest.raises(DatabaseError, match="needs db/init/10-wearables.sh run again"):
            database.ensure_schema(db)  # the role may not create them
    finally:
        db.close()
    result = init_script(stack.admin, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                         INGEST_DB_USER=stack.ingest_role)
    assert result.returncode == 0, result.stderr
    db = loader_db(stack.ingest)
    try:
        database.end_run(db, database.start_run(db, "manual"), "ok", {}, None)
    finally:
        db.close()
    assert query(stack.admin, "SELECT status FROM ingest_runs") == [("ok",)]
