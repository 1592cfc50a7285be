"""ingest/entrypoint.sh running a command instead of cron, as the job user."""

from __future__ import annotations

import pwd
import subprocess

import pytest
from stack_helpers import (
    BASE_PATH,
    ENTRYPOINT,
    JOB_USER,
    job_user_exists,
    needs_root,
    owner,
)

# --- entrypoint: a command instead of cron -------------------------------------------------

def test_entrypoint_runs_a_given_command_instead_of_cron(tmp_path):
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", 'echo "ran $1 with APP_DIR=$APP_DIR"', "sh", "this"],
        capture_output=True, text=True, check=False, timeout=30,
        env={"PATH": BASE_PATH, "INGEST_RUN_AS": "root"})
    assert (result.returncode, result.stdout, result.stderr) == \
        (0, "ran this with APP_DIR=/app\n", "")


def test_entrypoint_passes_the_exit_status_of_the_command():
    result = subprocess.run([str(ENTRYPOINT), "sh", "-c", "exit 7"], check=False, timeout=30,
                            env={"PATH": BASE_PATH, "INGEST_RUN_AS": "root"})
    assert result.returncode == 7


@needs_root
def test_entrypoint_runs_the_command_as_the_job_user(shared_dir):
    """`docker compose run --rm ingestor python /app/ingest.py`: the command runs as
    INGEST_RUN_AS, never root, and a checkpoint folder root wrote before is handed over,
    so the checkpoint and its lock are the job user's."""
    job_user_exists()
    state = shared_dir / "state"
    state.mkdir()
    (state / "last_run.json").write_text("{}")  # written by root, by an older image
    (state / "rejects").mkdir()
    (shared_dir / "elsewhere").write_text("root's")
    (state / "link").symlink_to(shared_dir / "elsewhere")  # never followed
    checkpoint = state / "last_run.json"
    script = ('echo "$(id -un) $(id -u):$(id -g) HOME=$HOME"; '
              'grep "^NoNewPrivs:" /proc/self/status; '
              'echo new >"$CHECKPOINT_FILE" && : >"$CHECKPOINT_FILE.lock" && echo wrote; '
              'ls /root >/dev/null 2>&1 || echo "/root is closed"')
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", script], capture_output=True, text=True, check=False,
        timeout=30, env={"PATH": BASE_PATH, "INGEST_RUN_AS": JOB_USER,
                         "CHECKPOINT_FILE": str(checkpoint), "PGPASSWORD": "secret-in-env"})
    entry = pwd.getpwnam(JOB_USER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{JOB_USER} {entry.pw_uid}:{entry.pw_gid} HOME={entry.pw_dir}",
        "NoNewPrivs:\t1", "wrote", "/root is closed"]
    assert f"ingestor: {state} now belongs to {JOB_USER}, who runs the loader" in result.stderr
    assert "secret-in-env" not in result.stdout + result.stderr
    for path in (state, checkpoint, state / "last_run.json.lock", state / "rejects"):
        assert owner(path)[0] == JOB_USER, path
    assert owner(shared_dir / "elsewhere")[0] == "root"

    again = subprocess.run(  # nothing to hand over now: not a word
        [str(ENTRYPOINT), "true"], capture_output=True, text=True, check=False, timeout=30,
        env={"PATH": BASE_PATH, "INGEST_RUN_AS": JOB_USER, "CHECKPOINT_FILE": str(checkpoint)})
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


@needs_root
def test_entrypoint_as_root_changes_no_owner(shared_dir):
    state = shared_dir / "state"
    state.mkdir()
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", 'id -un; : >"$CHECKPOINT_FILE"'], capture_output=True,
        text=True, check=False, timeout=30,
        env={"PATH": BASE_PATH, "INGEST_RUN_AS": "root",
             "CHECKPOINT_FILE": str(state / "last_run.json")})
    assert (result.returncode, result.stdout, result.stderr) == (0, "root\n", "")
    assert owner(state)[0] == owner(state / "last_run.json")[0] == "root"


@needs_root
def test_entrypoint_refuses_a_job_user_that_does_not_exist():
    """The image's default user, ingest, is not on this machine: refused, nothing run."""
    try:
        pwd.getpwnam("ingest")
        pytest.skip("this machine has a user ingest")
    except KeyError:
        pass
    result = subprocess.run([str(ENTRYPOINT), "sh", "-c", "echo ran"], capture_output=True,
                            text=True, check=False, timeout=30, env={"PATH": BASE_PATH})
    assert (result.returncode, result.stdout) == (1, "")
    assert "ingestor: error: INGEST_RUN_AS=ingest: no such user" in result.stderr
