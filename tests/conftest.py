"""The real test database, and helpers to run the loader and the generator as a user would.

By default a throwaway PostgreSQL 15 cluster with TimescaleDB preloaded is
started for the session on a free loopback port, in a temporary folder, and
stopped at the end. With TEST_DATABASE_URL set (a superuser, or a role that
may create databases and the timescaledb extension), that server is used
instead. Every test that asks for ``database_url`` gets a database of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from pgserver import ServerError, throwaway_server

REPO = Path(__file__).resolve().parent.parent
INGEST = REPO / "ingest" / "ingest.py"
SYNTH = REPO / "ingest" / "synth.py"

# The seed's contract: 30 days for participant 1.
SEED_COUNTS = {"activity": 30, "azm": 43_200, "br": 30, "hr": 2_592_000,
               "hrv": 13_248, "spo2": 13_248}


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A superuser URL for the session's server."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    try:
        with throwaway_server() as url:
            yield url
    except ServerError as e:
        pytest.exit(str(e), returncode=3)


def with_dbname(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


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


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    with fresh_database(admin_url) as url:
        yield url


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


def synth(out: Path, *args: str) -> None:
    """Run the generator as a user would."""
    subprocess.run([sys.executable, str(SYNTH), "--out", str(out), *args], check=True,
                   capture_output=True)


@pytest.fixture
def run_ingest(tmp_path: Path, database_url: str):
    """Run ``python ingest/ingest.py`` in a clean environment against this test's database.

    Defaults: DATA_DIR=<tmp>/data, CHECKPOINT_FILE=<tmp>/state/last_run.json;
    keyword arguments override or add environment variables.
    """
    def environment(env: dict[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("PG") and k != "DATABASE_URL"}
        base.update(DATABASE_URL=database_url, DATA_DIR=str(tmp_path / "data"),
                    CHECKPOINT_FILE=str(tmp_path / "state" / "last_run.json"))
        base.update(env)
        return base

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(INGEST), *args], cwd=tmp_path,
                              env=environment(env), capture_output=True, text=True, timeout=600)

    def popen(*args: str, stderr: bool = False, **env: str) -> subprocess.Popen:
        """Start the loader without waiting; its stdout (and stderr) are text pipes."""
        return subprocess.Popen([sys.executable, str(INGEST), *args], cwd=tmp_path,
                                env=environment(env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE if stderr else None, text=True)

    run.popen = popen
    return run


@pytest.fixture(scope="session")
def seed_data(tmp_path_factory) -> Path:
    """The default 30-day data set, generated once per session. Copy it before changing it."""
    out = tmp_path_factory.mktemp("seed") / "participant_001"
    synth(out)
    return out
