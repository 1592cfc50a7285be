"""A throwaway PostgreSQL 15 server with TimescaleDB preloaded, on a free loopback port.

Used by the test fixtures (conftest.py) and by the benchmark (bench/bench.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

BASE_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "max_connections": "50",
    "log_min_messages": "warning",
}
# A test server holds nothing worth keeping: trade durability for speed.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class ServerError(Exception):
    """The server could not be started; the message says why."""


def timescaledb_installed() -> bool:
    sharedir = subprocess.run([PG_BIN / "pg_config", "--sharedir"], capture_output=True,
                              text=True, check=False).stdout.strip()
    return bool(sharedir) and (Path(sharedir) / "extension" / "timescaledb.control").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@contextmanager
def throwaway_server(durable: bool = False) -> Iterator[str]:
    """Start a server in a temporary folder; yield a superuser URL; stop and delete it after.

    ``durable`` keeps fsync and synchronous commit on, as a real server has them
    (for benchmarks); tests run faster without.
    """
    if not timescaledb_installed():
        raise ServerError("PostgreSQL 15 with TimescaleDB is not installed: run "
                          "scripts/ensure-timescaledb.sh (make test does), or set "
                          "TEST_DATABASE_URL")
    base = Path(tempfile.mkdtemp(prefix="wearables-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    settings = {**BASE_SETTINGS, **({} if durable else FAST_SETTINGS),
                "port": str(_free_port()), "unix_socket_directories": f"'{base}'"}
    try:
        subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                        "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True)
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                        str(base / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        log = base / "server.log"
        detail = log.read_text()[-2000:] if log.exists() else e.stderr.decode()[-2000:]
        shutil.rmtree(base, ignore_errors=True)
        raise ServerError(f"could not start the test server: {detail}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{settings['port']}/postgres"
    finally:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                        "-w", "stop"]), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
