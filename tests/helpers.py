"""What the tests share: the repository's paths, the seed's counts, queries, running tools."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors

from wearables_ingest.database import Database

REPO = Path(__file__).resolve().parent.parent
INGEST = REPO / "ingest" / "ingest.py"  # the design's entry point
SYNTH = [sys.executable, "-m", "wearables_ingest.synth"]

# Where a test's data lives (below its tmp_path): a folder named for participant 1, so the
# loader takes the participant from it, with no PARTICIPANT_ID.
DATA = "data/participant_001"

# The seed's contract: 30 days for participant 1.
SEED_COUNTS = {"activity": 30, "azm": 43_200, "br": 30, "hr": 2_592_000,
               "hrv": 13_248, "spo2": 13_248}


def with_dbname(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


def dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards; yields its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield with_dbname(admin_url, name)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@contextmanager
def as_template(admin_url: str, url: str) -> Iterator[str]:
    """Freeze the database at ``url`` as a template for copy_database(); yields its name.

    Loading data once and copying the database (a fraction of a second) is much cheaper
    than loading it again for every test. While it is a template nobody may
    connect to it: TimescaleDB's job scheduler, connected to every database with the
    extension, would otherwise keep PostgreSQL from copying it. Afterwards it is an
    ordinary database again (for fresh_database() to drop).
    """
    name = dbname(url)
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        yield name
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
    finally:
        admin.close()


def copy_database(admin_url: str, template: str, url: str) -> None:
    """Make the database at ``url`` (a test's own, from fresh_database()) a copy of
    ``template`` (from as_template()): the database is made afresh under its name."""
    name = dbname(url)
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            deadline = time.monotonic() + 10
            while True:
                try:
                    cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                    return
                except psycopg2.errors.ObjectInUse:  # a terminated backend not yet gone
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        admin.close()


def loader_environment(cwd: Path, database_url: str, **env: str) -> dict[str, str]:
    """The loader's environment as a user would give it: this one without PG* settings and
    DATABASE_URL, then DATABASE_URL, DATA_DIR=<cwd>/data/participant_001,
    CHECKPOINT_FILE=<cwd>/state/last_run.json; ``env`` overrides or adds."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    base.update(DATABASE_URL=database_url, DATA_DIR=str(cwd / DATA),
                CHECKPOINT_FILE=str(cwd / "state" / "last_run.json"))
    base.update(env)
    return base


def run_loader(cwd: Path, database_url: str, *args: str,
               **env: str) -> subprocess.CompletedProcess:
    """Run ``python ingest/ingest.py`` in ``cwd`` against ``database_url`` (loader_environment)."""
    return subprocess.run([sys.executable, str(INGEST), *args], cwd=cwd,
                          env=loader_environment(cwd, database_url, **env), capture_output=True,
                          text=True, timeout=600)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} (DEBUG|INFO|WARNING|ERROR) (.*)")


def logged(stderr: str) -> list[str]:
    """The loader's log lines without their timestamps: "ERROR cannot connect ..."."""
    found = []
    for line in stderr.splitlines():
        m = LOG_LINE.fullmatch(line)
        assert m, f"not a log line: {line!r}"
        found.append(f"{m.group(1)} {m.group(2)}")
    return found


def execute(url: str, sql: str, params: tuple = ()) -> None:
    """Run one statement and commit."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def table_counts(url: str) -> dict[str, int]:
    """Rows per metric in raw_data."""
    return dict(query(url, "SELECT metric, count(*) FROM raw_data GROUP BY metric"))


def run_synth(out: Path, *args: str) -> None:
    """Run the generator as a user would."""
    subprocess.run([*SYNTH, "--out", str(out), *args], check=True,
                   capture_output=True)


# New data sets already generated this session: arguments -> folder (see synth()).
_generated: dict[tuple[str, ...], Path] = {}
_GENERATED_OPTIONS = {"--days", "--start", "--seed"}


def synth(out: Path, *args: str) -> None:
    """The generator's files for ``args`` in ``out``, as run_synth() writes them.

    A new data set (only --days, --start and --seed given; none of the metric files in
    ``out`` yet) is generated once per session and copied from there: the generator's
    files depend on its arguments alone (tests/unit/test_synth.py, which runs it every
    time, checks that), and copying them takes milliseconds where generating them takes
    most of a second. The copies are new files, written now, like the generator's.
    Anything else (--append-days, --force, a folder that holds files) runs the generator.
    """
    new = (set(args[::2]) <= _GENERATED_OPTIONS and len(args) % 2 == 0
           and not any((out / f"{metric}.csv").exists() for metric in SEED_COUNTS))
    if not new:
        run_synth(out, *args)
        return
    if args not in _generated:
        folder = Path(tempfile.mkdtemp(prefix="wearables-synth-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        run_synth(folder / "data", *args)
        _generated[args] = folder / "data"
    shutil.copytree(_generated[args], out, copy_function=shutil.copyfile, dirs_exist_ok=True)


def open_database(url: str) -> Database:
    """The loader's own connection (database.Database) to ``url``."""
    return Database({"dsn": url}, "test database", retries=0).open()


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


def wait_for_copy(database_url: str, loader: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the loader has a COPY running in the database (to kill it mid-write)."""
    deadline = time.monotonic() + timeout
    while not query(database_url, "SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                  "'wearables-ingest' AND query LIKE 'COPY%%'"):
        assert time.monotonic() < deadline and loader.poll() is None, "no COPY was seen"
        time.sleep(0.01)
