"""What the stack's tests share: the files under test, and running them as the container would."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

INGEST_DIR = REPO / "ingest"
ENTRYPOINT = INGEST_DIR / "entrypoint.sh"
CRON_JOB = INGEST_DIR / "cron-job.sh"
SEED_DATA = INGEST_DIR / "seed-data.sh"
CRONTAB = INGEST_DIR / "crontab"
VENV_BIN = Path(sys.executable).parent
# What a job would find on its own: the venv's python comes only from the
# environment that entrypoint.sh hands on to cron's jobs.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWORD = "test-Pa55word"
INGEST_PASSWORD = "test-ingest-Pa55word"
JOB_USER = "nobody"  # stands in for the image's user ingest: not root, no login shell, no home

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: runs cron and crontab(1) in a private mount namespace (unshare --mount)")


def isolated(script: str) -> list[str]:
    """A command that runs `script` (sh) in a mount namespace of its own, where cron's state
    (/run, its spool, /etc/cron.d, /etc/crontab) is empty and private."""
    setup = """
        set -e
        mount -t tmpfs -o mode=755 tmpfs /run
        mount -t tmpfs -o mode=755 tmpfs /var/spool/cron
        mkdir -m 1730 /var/spool/cron/crontabs
        chgrp crontab /var/spool/cron/crontabs
        [ ! -d /etc/cron.d ] || mount -t tmpfs -o mode=755 tmpfs /etc/cron.d
        if [ -e /etc/crontab ]; then
            empty=$(mktemp); mount --bind "$empty" /etc/crontab; rm -f "$empty"
        fi
    """
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup + script]


def cron_available() -> None:
    if not (shutil.which("cron", path=BASE_PATH) and shutil.which("crontab", path=BASE_PATH)):
        pytest.fail("Debian's cron is missing: run scripts/ensure-stack-tools.sh (make test does)")


def job_user_exists() -> None:
    try:
        pwd.getpwnam(JOB_USER)
    except KeyError:
        pytest.skip(f"no user {JOB_USER} on this machine to stand in for the image's user")


def owner(path: Path) -> tuple[str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o7777


def run_seed_data(data: Path, *args: str, cwd: Path | None = None,
                  **env: str) -> subprocess.CompletedProcess:
    """ingest/seed-data.sh as the generator service runs it, with ``data`` as its /data (the
    repository's demo folder) and ``env`` added to its environment (HOST_DATA_DIR)."""
    environ = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "APP_DIR": str(INGEST_DIR),
               "DATA_DIR": str(data), **env}
    return subprocess.run([str(SEED_DATA), *args], capture_output=True, text=True, check=False,
                          env=environ, cwd=cwd, timeout=120)


def tree(root: Path) -> list[str]:
    """Every file and folder below ``root``, as sorted relative paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
