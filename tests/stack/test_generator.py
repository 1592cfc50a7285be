"""ingest/seed-data.sh, the one-shot generator service."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack_helpers import (
    BASE_PATH,
    INGEST_DIR,
    SEED_DATA,
    VENV_BIN,
)

# --- the generator service -----------------------------------------------------------------

def run_seed_data(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "APP_DIR": str(INGEST_DIR), "DATA_DIR": str(data)}
    return subprocess.run([str(SEED_DATA), *args], capture_output=True, text=True, check=False,
                          env=env, timeout=120)


def test_generator_fills_an_empty_data_folder_once(tmp_path):
    data = tmp_path / "participant_001"
    data.mkdir()  # Docker creates a missing bind-mount folder, empty
    first = run_seed_data(data, "--days", "1")
    assert first.returncode == 0, first.stderr
    assert "holds no CSV files; generating" in first.stdout
    assert sorted(p.name for p in data.iterdir()) == \
        ["activity.csv", "azm.csv", "br.csv", "hr.csv", "hrv.csv", "spo2.csv"]
    before = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}

    again = run_seed_data(data, "--days", "1")
    assert again.returncode == 0, again.stderr
    assert "already holds CSV files; not generating" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == before


def test_generator_leaves_participant_folders_alone(tmp_path):
    (tmp_path / "participant_007").mkdir()
    (tmp_path / "participant_007" / "hr.csv").write_text("ts,value\n")
    result = run_seed_data(tmp_path, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["hr.csv", "participant_007"]
