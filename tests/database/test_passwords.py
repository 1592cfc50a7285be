"""No password anywhere a person or the analyst can read it: messages, --json, ingest_runs, read.py.

Each libpq form of a password (URL user-info, ``?password=``, keyword/value, quoted
or not, and PGPASSWORD) is tried against a port nothing listens on, and against the
real server for what the run record keeps.
"""

from __future__ import annotations

import json

import pytest

from helpers import DATA, open_database, query, synth
from wearables_ingest import database
from wearables_ingest.errors import ConnectionLost
from wearables_ingest.read import read_rows

SECRET = "hunter2-abc"
UNREACHABLE = [
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
    f"postgresql://u@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://u@127.0.0.1:1/db?sslmode=disable&password={SECRET}&connect_timeout=2",
    f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=db",
    f"host=127.0.0.1 port=1 password='{SECRET} x' dbname=db",
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_cannot_connect_shows_no_password_on_stderr_or_in_json(tmp_path, run_ingest, url):
    synth(tmp_path / DATA, "--days", "1")
    proc = run_ingest("--json", DATABASE_URL=url, INGEST_RETRIES="0")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("cannot connect to ") and "***" in error
    assert SECRET not in proc.stdout + proc.stderr


def test_pgpassword_is_never_shown_either(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    proc = run_ingest("--json", DATABASE_URL="", PGHOST="127.0.0.1", PGPORT="1",
                      PGPASSWORD=SECRET, INGEST_RETRIES="0")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"].startswith("cannot connect to ")
    assert SECRET not in proc.stdout + proc.stderr


def test_status_shows_no_password(run_ingest):
    proc = run_ingest("status", "--json", DATABASE_URL=UNREACHABLE[1], INGEST_RETRIES="0")
    assert proc.returncode == 1
    assert "cannot connect to" in json.loads(proc.stdout)["error"]
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("url", UNREACHABLE)
def test_read_rows_names_the_database_without_the_password(url):
    with pytest.raises(ConnectionLost) as e:
        read_rows(url, 1, "hr", "2024-01-01", "2024-01-02")
    assert "cannot connect to" in str(e.value) and SECRET not in str(e.value)


def test_the_run_record_stores_errors_with_passwords_masked(database_url):
    db = open_database(database_url)
    db.connect_args = {**db.connect_args, "password": SECRET}  # as the settings would give it
    try:
        database.ensure_schema(db)
        run_id = database.start_run(db, "manual")
        database.end_run(db, run_id, "failed", {}, f"lost host=h password={SECRET} and {SECRET}")
    finally:
        db.close()
    assert query(database_url, "SELECT status, error FROM ingest_runs") == \
        [("failed", "lost host=h password=*** and ***")]
