"""ingest/seed-data.sh, the one-shot generator service, run for real.

The demo-data rule: synthetic data goes only into the repository's demo folder (./data,
the container's /data), as participant_001, only when that folder holds no CSV file at
any depth and nothing else but an empty participant_001, and never when HOST_DATA_DIR
points at another folder. test_compose.py checks the same rule on the rendered stack.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest
from stack_helpers import JOB_USER, job_user_exists, needs_root, owner, run_seed_data, tree

from helpers import REPO

SEED_FILES = ["activity.csv", "azm.csv", "br.csv", "hr.csv", "hrv.csv", "spo2.csv"]
DEMO_SET = ["participant_001", *(f"participant_001/{name}" for name in SEED_FILES)]


def demo_folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()  # Docker creates a missing bind-mount folder, empty
    return data


@pytest.mark.parametrize("host_data_dir", [None, "", "./data", "data", "./data/"],
                         ids=["unset", "empty", "./data", "data", "./data/"])
def test_generator_fills_the_empty_demo_folder_once(tmp_path, host_data_dir):
    data = demo_folder(tmp_path)
    env = {} if host_data_dir is None else {"HOST_DATA_DIR": host_data_dir}
    first = run_seed_data(data, "--days", "1", **env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == (
        f"generator: {data} holds no CSV files; generating the synthetic demo data set "
        f"into {data}/participant_001")
    assert tree(data) == DEMO_SET
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}

    again = run_seed_data(data, "--days", "1", **env)
    assert again.returncode == 0, again.stderr
    # It names one of them, the first find(1) met.
    assert re.fullmatch(rf"generator: {re.escape(str(data))} already holds CSV files "
                        r"\(participant_001/[a-z0-9]+\.csv\); not generating demo data\n",
                        again.stdout), again.stdout
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before


@pytest.mark.slow
def test_generator_makes_the_seed_data_set_by_default(tmp_path):
    """No arguments, as the service runs it: the seed's 30 days, its counts."""
    data = demo_folder(tmp_path)
    result = run_seed_data(data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"Wrote 2024-01-01 to 2024-01-30 in {data}/participant_001: activity 30, azm 43,200, "
        "br 30, hr 2,592,000, hrv 13,248, spo2 13,248")


@pytest.mark.parametrize("left", [[], ["participant_001"], [".DS_Store"], [".gitkeep"]],
                         ids=["missing", "empty-participant_001", "DS_Store", "gitkeep"])
def test_generator_fills_a_demo_folder_emptied_of_its_csv_files(tmp_path, left):
    """Deleting the demo data (the CSV files, or participant_001 itself) makes it anew; a
    hidden file of a file manager does not count."""
    data = demo_folder(tmp_path)
    for name in left:
        (data / name).mkdir() if name == "participant_001" else (data / name).write_text("")
    result = run_seed_data(data, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert tree(data) == sorted([*DEMO_SET, *(n for n in left if n.startswith("."))])


def test_generator_fills_a_missing_demo_folder(tmp_path):
    data = tmp_path / "data"
    result = run_seed_data(data, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert tree(data) == DEMO_SET


@pytest.mark.parametrize("csv", [
    "participant_001/hr.csv",                  # the demo data, or a part of it
    "participant_007/hr.csv",                  # a real participant put there
    "hr.csv",                                  # CSV files directly in the folder
    "study/site_a/participant_002/spo2.csv",   # deeper down
    "participant_003/export/HR.CSV",           # any CSV name, any depth
])
def test_generator_leaves_a_folder_with_csv_files_anywhere_below_alone(tmp_path, csv):
    data = demo_folder(tmp_path)
    (data / csv).parent.mkdir(parents=True, exist_ok=True)
    (data / csv).write_text("ts,value\n")
    before = tree(data)
    result = run_seed_data(data, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"generator: {data} already holds CSV files ({csv}); "
                             "not generating demo data\n")
    assert tree(data) == before


@pytest.mark.parametrize("entry", ["participant_002", "my-study", "export.zip"])
def test_generator_adds_no_demo_participant_beside_other_data(tmp_path, entry):
    """A user who deleted the demo data and is putting their own in ./data: a folder or file
    other than participant_001, even with no CSV file yet, means no synthetic participant."""
    data = demo_folder(tmp_path)
    (data / entry).mkdir() if "." not in entry else (data / entry).write_text("")
    result = run_seed_data(data, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"generator: {data} holds {entry}, which is not demo data; "
                             "not generating demo data\n")
    assert tree(data) == [entry]


@pytest.mark.parametrize("host_data_dir", [
    "{other}",                      # a real folder, empty, by its absolute path
    "../my-study",                  # a study folder beside the repository
    "./dat",                        # mistyped: Docker creates it, empty
    "./data/participant_001",       # the old default: one folder inside the demo folder
    "/srv/data",
])
def test_generator_generates_nothing_anywhere_when_host_data_dir_is_elsewhere(
        tmp_path, host_data_dir):
    """HOST_DATA_DIR names the folder the ingestor loads: when it is not the demo folder,
    the demo folder stays empty, and so does the folder it names."""
    repo = tmp_path / "repo"
    repo.mkdir()
    data = demo_folder(repo)
    other = tmp_path / "other"
    other.mkdir()
    (repo / "dat").mkdir()
    setting = host_data_dir.format(other=other)
    result = run_seed_data(data, "--days", "1", cwd=repo, HOST_DATA_DIR=setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"generator: HOST_DATA_DIR is set to {setting}: not generating "
                             "demo data (only ./data, the default, gets it)\n")
    assert tree(tmp_path) == ["other", "repo", "repo/dat", "repo/data"]


@needs_root
def test_the_demo_data_belongs_to_the_owner_of_the_demo_folder(tmp_path):
    """The generator runs as root; what it makes is handed to whoever owns ./data (on a
    clone, the user), who may then delete it or put a participant beside it."""
    job_user_exists()
    data = demo_folder(tmp_path)
    os.chown(data, pwd.getpwnam(JOB_USER).pw_uid, pwd.getpwnam(JOB_USER).pw_gid)
    result = run_seed_data(data, "--days", "1")
    assert result.returncode == 0, result.stderr
    assert {owner(data / p)[0] for p in DEMO_SET} == {JOB_USER}


def test_a_clone_holds_the_demo_folder_and_no_data():
    """./data is in the repository (data/.gitkeep), so a clone's demo folder is the user's,
    not one Docker creates as root's; the data itself never is."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "data"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == ["data/.gitkeep"]
    assert (REPO / "data" / ".gitkeep").read_text() == ""
