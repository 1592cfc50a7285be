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
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

REPO = Path(__file__).resolve().parent.parent
INGEST = REPO / "ingest" / "ingest.py"
SYNTH = REPO / "ingest" / "synth.py"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

# The seed's contract: 30 days for participant 1.
SEED_COUNTS = {"activity": 30, "azm": 43_200, "br": 30, "hr": 2_592_000,
               "hrv": 13_248, "spo2": 13_248}

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "max_connections": "50",
    # A test server holds nothing worth keeping: trade durability for speed.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A superuser URL for the session's server."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    ts_control = subprocess.run([PG_BIN / "pg_config", "--sharedir"], capture_output=True,
                                text=True, check=False).stdout.strip()
    if not (Path(ts_control) / "extension" / "timescaledb.control").is_file():
        pytest.exit("PostgreSQL 15 with TimescaleDB is not installed: run "
                    "scripts/ensure-timescaledb.sh (make test does), or set TEST_DATABASE_URL",
                    returncode=3)
    base = Path(tempfile.mkdtemp(prefix="wearables-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    try:
        subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                        "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\nunix_socket_directories = '{base}'\n")
            conf.writelines(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items())
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                        str(base / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as e:
        log = base / "server.log"
        detail = log.read_text()[-2000:] if log.exists() else e.stderr.decode()[-2000:]
        pytest.exit(f"could not start the test server: {detail}", returncode=3)
    finally:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                        "-w", "stop"]), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def with_dbname(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
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


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
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

    def popen(*args: str, **env: str) -> subprocess.Popen:
        """Start the loader without waiting; its stdout is a text pipe."""
        return subprocess.Popen([sys.executable, str(INGEST), *args], cwd=tmp_path,
                                env=environment(env), stdout=subprocess.PIPE, text=True)

    run.popen = popen
    return run


@pytest.fixture(scope="session")
def seed_data(tmp_path_factory) -> Path:
    """The default 30-day data set, generated once per session. Copy it before changing it."""
    out = tmp_path_factory.mktemp("seed") / "participant_001"
    synth(out)
    return out
