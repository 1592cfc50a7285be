"""The real test database, and helpers to run the loader and the generator as a user would.

By default a throwaway PostgreSQL 15 cluster with TimescaleDB preloaded is
started for the session on a free loopback port, in a temporary folder, and
stopped at the end. With TEST_DATABASE_URL set (a superuser, or a role that
may create databases and the timescaledb extension), that server is used
instead. Every test that asks for ``database_url`` gets a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from helpers import INGEST, fresh_database, loader_environment, run_loader, run_synth
from wearables_ingest.devserver import ServerError, throwaway_server


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


@pytest.fixture(scope="session")
def full_timescaledb(admin_url: str) -> None:
    """Skip the test unless the server has the full TimescaleDB (compression, continuous
    aggregates): scripts/ensure-timescaledb.sh builds it where ../shared/timescaledb is."""
    with fresh_database(admin_url) as url:
        conn = psycopg2.connect(url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                cur.execute("SELECT current_setting('timescaledb.license', true)")
                license_ = cur.fetchone()[0]
        finally:
            conn.close()
    if license_ != "timescale":
        pytest.skip(f"needs the full TimescaleDB; this server's license is {license_!r} "
                    "(Apache-only build)")


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def run_ingest(tmp_path: Path, database_url: str):
    """Run ``python ingest/ingest.py`` in a clean environment against this test's database.

    Defaults: DATA_DIR=<tmp>/data/participant_001, CHECKPOINT_FILE=<tmp>/state/last_run.json;
    keyword arguments override or add environment variables.
    """
    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return run_loader(tmp_path, database_url, *args, **env)

    def popen(*args: str, stderr: bool = False, **env: str) -> subprocess.Popen:
        """Start the loader without waiting; its stdout (and stderr) are text pipes."""
        return subprocess.Popen([sys.executable, str(INGEST), *args], cwd=tmp_path,
                                env=loader_environment(tmp_path, database_url, **env),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE if stderr else None, text=True)

    run.popen = popen
    return run


@pytest.fixture(scope="session")
def seed_data(tmp_path_factory) -> Path:
    """The default 30-day data set, generated once per session. Copy it before changing it."""
    out = tmp_path_factory.mktemp("seed") / "participant_001"
    run_synth(out)
    return out


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user (the stack's job user) can reach, removed afterwards.

    pytest's own temporary folders are root's only.
    """
    path = Path(tempfile.mkdtemp(prefix="wearables-stack-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
