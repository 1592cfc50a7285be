"""db/init/10-wearables.sh, the stack's database init script, run for real with psql.

The script runs as the db image runs it (POSTGRES_USER, POSTGRES_DB and
INGEST_DB_PASSWORD in the environment), with PGHOST/PGPORT pointing psql at
this test's database. Then: the schema is the loader's own, the loader loads
and reloads as the role, and the role may do nothing but read and insert.

The role is cluster-wide, so each test names its own (INGEST_DB_USER) and drops
it afterwards; one test checks the name the stack uses, `ingest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg2
import psycopg2.errors
import pytest
from test_exactly_once import assert_coverage_equals_counts
from test_key_and_coverage import OLD_SCHEMA

from helpers import (
    DATA,
    REPO,
    execute,
    fresh_database,
    open_database,
    query,
    schema_snapshot,
    synth,
    table_counts,
    with_dbname,
)
from wearables_ingest.database import ensure_schema

INIT_SCRIPT = REPO / "db" / "init" / "10-wearables.sh"
SCHEMA_FILE = REPO / "ingest" / "wearables_ingest" / "schema.sql"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Everything a shell or SQL string-builder could trip over.
PASSWORD = "p@ss w0rd'; DROP TABLE raw_data; -- \"$HOME\" `id` \\ :x %s"


def init_script(database_url: str, **settings: str | None) -> subprocess.CompletedProcess:
    """Run the init script with what the db image provides, plus where the server is.

    ``settings`` go to its environment (SCHEMA_FILE, INGEST_DB_PASSWORD, ...); None
    leaves one out.
    """
    url = urlsplit(database_url)
    env = {"PATH": BASE_PATH, "PGHOST": url.hostname or "localhost",
           "PGPORT": str(url.port or 5432), "POSTGRES_USER": unquote(url.username or "postgres"),
           "POSTGRES_DB": url.path.lstrip("/"), "SCHEMA_FILE": str(SCHEMA_FILE)}
    if url.password:
        env["PGPASSWORD"] = unquote(url.password)
    env.update({k: v for k, v in settings.items() if v is not None})
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True,
                          check=False, timeout=120)


def run_init(database_url: str, password: str | None = PASSWORD, role: str | None = None,
             schema: Path = SCHEMA_FILE) -> subprocess.CompletedProcess:
    return init_script(database_url, INGEST_DB_PASSWORD=password, INGEST_DB_USER=role,
                       SCHEMA_FILE=str(schema))


def role_url(database_url: str, role: str, password: str = PASSWORD) -> str:
    """The test server's URL, logged in as ``role``."""
    url = urlsplit(database_url)
    return url._replace(netloc=f"{quote(role, safe='')}:{quote(password, safe='')}"
                               f"@{url.hostname}:{url.port}").geturl()


def drop_role(admin_url: str, role: str) -> None:
    """DROP OWNED in every database that still exists, then the role."""
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if not cur.fetchone():
                return
            cur.execute("SELECT datname FROM pg_database WHERE datallowconn")
            for (name,) in cur.fetchall():
                conn = psycopg2.connect(with_dbname(admin_url, name))
                conn.autocommit = True
                try:
                    with conn.cursor() as c:
                        c.execute(f'DROP OWNED BY "{role}"')
                finally:
                    conn.close()
            cur.execute(f'DROP ROLE "{role}"')
    finally:
        admin.close()


@pytest.fixture
def role(admin_url: str) -> Iterator[str]:
    """A role name of this test's own; the role is dropped afterwards."""
    name = f"ingest_{uuid.uuid4().hex[:10]}"
    yield name
    drop_role(admin_url, name)


@pytest.fixture
def reference_url(admin_url: str) -> Iterator[str]:
    """A second fresh database, for the schema the loader creates itself."""
    with fresh_database(admin_url) as url:
        yield url


def full_schema(url: str) -> list[tuple]:
    """test_db's snapshot plus the indexes, chunk interval and owner."""
    return [*schema_snapshot(url),
            *query(url, "SELECT indexname, indexdef FROM pg_indexes "
                        "WHERE tablename = 'raw_data' ORDER BY indexname"),
            *query(url, "SELECT time_interval::text FROM timescaledb_information.dimensions "
                        "WHERE hypertable_name = 'raw_data'"),
            *query(url, "SELECT tableowner FROM pg_tables WHERE tablename = 'raw_data'")]


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (pg_authid.rolpassword) is that of ``password``.

    The test server trusts every connection, so a login would not check the password;
    this checks what the server stored instead (RFC 5802; ASCII needs no SASLprep).
    """
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                 int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (method == "SCRAM-SHA-256"
            and hashlib.sha256(client_key).digest() == stored_key
            and hmac.new(salted, b"Server Key", "sha256").digest() == server_key)


# --- the schema ----------------------------------------------------------------------------

def test_init_script_creates_the_loaders_schema_exactly(database_url, reference_url, role):
    result = run_init(database_url, role=role)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")  # quiet, and never the password

    db = open_database(reference_url)
    try:
        ensure_schema(db)  # what the loader creates on an empty database, as a superuser
    finally:
        db.close()
    assert full_schema(database_url) == full_schema(reference_url)
    assert full_schema(database_url)[:4] == [
        ("ts", "timestamp with time zone", "NO"), ("participant", "integer", "NO"),
        ("metric", "text", "NO"), ("value", "double precision", "YES")]


def test_init_script_refuses_a_schema_file_it_cannot_read(database_url, role, tmp_path):
    result = run_init(database_url, role=role, schema=tmp_path / "missing.sql")
    assert result.returncode != 0
    assert result.stderr == (f"10-wearables.sh: error: cannot read the schema {tmp_path}/"
                             "missing.sql; set SCHEMA_FILE\n")
    assert query(database_url, "SELECT to_regclass('raw_data')") == [(None,)]


# --- the role ------------------------------------------------------------------------------

def test_the_role_may_only_connect_read_and_insert(database_url, role):
    assert run_init(database_url, role=role).returncode == 0
    [(superuser, createdb, createrole, replication, bypassrls, login, password)] = query(
        database_url, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
                      "rolbypassrls, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s",
        (role,))
    assert (superuser, createdb, createrole, replication, bypassrls, login) == \
        (False, False, False, False, False, True)
    assert scram_matches(password, PASSWORD)  # the password, exactly, as psql quoted it

    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    granted = [query(database_url, "SELECT has_table_privilege(%s, 'raw_data', %s)",
                     (role, p))[0][0] for p in privileges]
    assert dict(zip(privileges, granted, strict=True)) == {
        "SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False, "TRUNCATE": False,
        "REFERENCES": False, "TRIGGER": False}
    granted_runs = [query(database_url, "SELECT has_table_privilege(%s, 'ingest_runs', %s)",
                          (role, p))[0][0] for p in privileges]
    assert dict(zip(privileges, granted_runs, strict=True)) == {  # runs: through functions
        "SELECT": True, "INSERT": False, "UPDATE": False, "DELETE": False, "TRUNCATE": False,
        "REFERENCES": False, "TRIGGER": False}
    assert query(database_url, "SELECT has_database_privilege(%s, current_database(), 'CONNECT'),"
                               " has_database_privilege(%s, current_database(), 'TEMPORARY'),"
                               " has_database_privilege(%s, current_database(), 'CREATE'),"
                               " has_schema_privilege(%s, 'public', 'USAGE'),"
                               " has_schema_privilege(%s, 'public', 'CREATE')",
                 (role,) * 5) == [(True, True, False, True, False)]
    assert query(database_url, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                               "ON r.oid = m.member WHERE r.rolname = %s", (role,)) == [(0,)]


@pytest.fixture(scope="module")
def role_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """(database URL, role): the init script run once for the module, one row stored. For
    the tests that only try what the role is refused, each checking that nothing changed."""
    name = f"ingest_{uuid.uuid4().hex[:10]}"
    with fresh_database(admin_url) as database_url:
        assert run_init(database_url, role=name).returncode == 0
        execute(database_url, "INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
        yield database_url, name
        drop_role(admin_url, name)


@pytest.mark.parametrize("statement", [
    "DELETE FROM raw_data",
    "UPDATE raw_data SET value = 0",
    "TRUNCATE raw_data",
    "DROP TABLE raw_data",
    "ALTER TABLE raw_data ADD COLUMN extra int",
    "CREATE TABLE public.mine (x int)",
    "CREATE TABLE mine (x int)",
    "CREATE SCHEMA mine",
    "SELECT drop_chunks('raw_data', older_than => now())",
    "DELETE FROM {chunk}",
    "CREATE ROLE another",
    "UPDATE ingest_coverage SET rows = 1",
    "DELETE FROM ingest_coverage",
    "INSERT INTO ingest_coverage VALUES (1, 'hr', '2024-01-01T00:00Z', 99, NULL)",
    "TRUNCATE ingest_coverage",
    "CREATE OR REPLACE FUNCTION coverage_recount(int[], text[], timestamptz[]) "
    "RETURNS void LANGUAGE sql AS 'SELECT'",
    "ALTER FUNCTION coverage_recount(int[], text[], timestamptz[]) SECURITY INVOKER",
])
def test_the_role_cannot_change_delete_or_create(role_database, statement):
    database_url, role = role_database
    [(chunk,)] = query(database_url, "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM "
                                     "timescaledb_information.chunks "
                                     "WHERE hypertable_name = 'raw_data'")

    conn = psycopg2.connect(role_url(database_url, role))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == (role,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement.format(chunk=chunk))
    finally:
        conn.close()
    assert query(database_url, "SELECT count(*) FROM raw_data") == [(1,)]
    assert query(database_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") == \
        [(0,)]


def test_the_loader_loads_and_reloads_as_the_role(database_url, role, run_ingest, tmp_path):
    """python ingest/ingest.py as the role: the first load (COPY straight into the table), a
    rerun with nothing new, and a light reset (every row offered again: the temporary staging
    table and ON CONFLICT DO NOTHING), then one more day. PUBLIC's default CONNECT and
    TEMPORARY on the database are revoked first: the role's own grants must suffice."""
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', "
                        "current_database())")
            cur.execute(cur.fetchone()[0])
    finally:
        admin.close()
    assert run_init(database_url, role=role).returncode == 0
    data = tmp_path / DATA
    synth(data, "--days", "1")
    url = role_url(database_url, role)

    def expected() -> dict[str, int]:
        return {p.stem: sum(1 for _ in p.open()) - 1 for p in data.glob("*.csv")}

    first = run_ingest(DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "ingestion complete" in first.stdout
    assert f"Ingested {expected()['hr']:,} rows → hr" in first.stdout
    assert table_counts(database_url) == expected()

    again = run_ingest(DATABASE_URL=url)
    assert again.returncode == 0, again.stderr
    assert "Ingested 0 rows → hr" in again.stdout

    (tmp_path / "state" / "last_run.json").unlink()  # the light reset
    reset = run_ingest(DATABASE_URL=url)
    assert reset.returncode == 0, reset.stderr
    assert f"Ingested 0 rows → hr ({expected()['hr']:,} already present)" in reset.stdout
    assert table_counts(database_url) == expected()

    synth(data, "--append-days", "1")
    for method in ("copy", "values"):
        more = run_ingest("--method", method, DATABASE_URL=url)
        assert more.returncode == 0, more.stderr
    assert table_counts(database_url) == expected()
    for result in (first, again, reset, more):
        assert PASSWORD not in result.stdout + result.stderr
    assert_coverage_equals_counts(database_url)  # kept exact without writing it directly


def test_the_role_can_only_have_the_coverage_counted_from_raw_data(database_url, role):
    assert run_init(database_url, role=role).returncode == 0
    recount = "SELECT coverage_recount('{1,1}', '{hr,hr}', '{2024-01-01T10:00Z,2024-01-01T11:00Z}')"
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-01-01T10:00Z', 1, 'hr', 60), "
                          "('2024-01-01T10:01Z', 1, 'hr', 61)")
    execute(database_url, "INSERT INTO ingest_coverage VALUES (1, 'hr', '2024-01-01T11:00Z', 999, "
                          "NULL)")  # a coverage that says what raw_data does not hold
    conn = psycopg2.connect(role_url(database_url, role))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(recount)
    finally:
        conn.close()
    assert query(database_url, "SELECT hour AT TIME ZONE 'UTC', rows FROM ingest_coverage") == \
        [(datetime(2024, 1, 1, 10), 2)]
    assert query(database_url, "SELECT has_function_privilege('public', "
                               "'coverage_recount(int[], text[], timestamptz[])', 'EXECUTE'), "
                               "has_function_privilege('public', "
                               "'coverage_recount_pairs(int[], text[])', 'EXECUTE')") == \
        [(False, False)]


def test_the_stacks_role_is_named_ingest(database_url, admin_url):
    """Without INGEST_DB_USER the role is `ingest`, the PGUSER of docker-compose.yml."""
    exists = query(admin_url, "SELECT 1 FROM pg_roles WHERE rolname = 'ingest'")
    if exists:
        pytest.skip("a role named ingest exists on this server already; not touching it")
    try:
        result = run_init(database_url)
        assert result.returncode == 0, result.stderr
        assert query(database_url, "SELECT has_table_privilege('ingest', 'raw_data', 'INSERT'), "
                                   "has_table_privilege('ingest', 'raw_data', 'DELETE')") == \
            [(True, False)]
    finally:
        drop_role(admin_url, "ingest")


# --- a database created before the script, and running it again ----------------------------

def test_init_script_on_an_existing_database_keeps_schema_and_rows(database_url, role):
    """A database the loader created (as the stack did before this script): the script adds
    the role and its grants, changes nothing else, and may run again (a new password)."""
    db = open_database(database_url)
    try:
        ensure_schema(db)
        with db.transaction() as cur:
            cur.execute("INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
    finally:
        db.close()
    before = full_schema(database_url)

    assert run_init(database_url, role=role).returncode == 0
    second = run_init(database_url, password="another one", role=role)
    assert second.returncode == 0, second.stderr
    assert full_schema(database_url) == before
    assert query(database_url, "SELECT ts, participant, metric, value FROM raw_data")[0][1:] == \
        (1, "hr", 60.0)
    assert query(database_url, "SELECT count(*) FROM raw_data") == [(1,)]
    [(verifier,)] = query(database_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                          (role,))
    assert scram_matches(verifier, "another one") and not scram_matches(verifier, PASSWORD)


def test_init_script_upgrades_an_older_versions_coverage_and_its_grants(database_url, role,
                                                                         run_ingest, tmp_path):
    """A database of the version before the recount functions, its role allowed to write the
    coverage: the script adds last_ts and the functions, takes the direct writes away, and
    the loader loads as the role."""
    execute(database_url, OLD_SCHEMA)
    execute(database_url, f'CREATE ROLE "{role}"; GRANT SELECT, INSERT, UPDATE, DELETE '
                          f'ON ingest_coverage TO "{role}"')
    assert run_init(database_url, role=role).returncode == 0
    assert query(database_url, "SELECT has_table_privilege(%s, 'ingest_coverage', 'UPDATE'), "
                               "has_table_privilege(%s, 'ingest_coverage', 'SELECT'), "
                               "has_function_privilege(%s, 'coverage_recount(int[], text[], "
                               "timestamptz[])', 'EXECUTE')", (role,) * 3) == \
        [(False, True, True)]
    synth(tmp_path / DATA, "--days", "1")
    load = run_ingest(DATABASE_URL=role_url(database_url, role))
    assert load.returncode == 0, load.stderr
    assert_coverage_equals_counts(database_url)


@pytest.mark.parametrize("password", ["", None], ids=["empty", "unset"])
def test_init_script_refuses_without_a_password(database_url, role, password):
    result = run_init(database_url, password=password, role=role)
    assert result.returncode == 1
    assert result.stderr == \
        "10-wearables.sh: error: INGEST_DB_PASSWORD is empty; set it (in .env for the stack)\n"
    assert query(database_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)) == \
        [(0,)]
    assert query(database_url, "SELECT to_regclass('raw_data') IS NULL") == [(True,)]


def test_init_script_is_executable_and_posix_sh():
    assert os.access(INIT_SCRIPT, os.X_OK)  # the image runs it (it would source it otherwise)
    assert INIT_SCRIPT.read_text().startswith("#!/bin/sh\n")  # the image's sh may be busybox
    result = subprocess.run(["sh", "-n", str(INIT_SCRIPT)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert Path(INIT_SCRIPT).stat().st_mode & 0o002 == 0
