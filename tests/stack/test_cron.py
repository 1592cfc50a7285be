"""cron in the ingestor: the crontab, cron-job.sh, and the real cron daemon.

Debian's cron runs for real, in a mount namespace of its own (tmpfs over /run,
cron's spool and /etc/cron.d, an empty /etc/crontab), so nothing reaches the
machine's own cron. scripts/ensure-stack-tools.sh (run by ``make test``)
installs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from stack_helpers import (
    BASE_PATH,
    CRON_JOB,
    CRONTAB,
    ENTRYPOINT,
    INGEST_DIR,
    JOB_USER,
    VENV_BIN,
    cron_available,
    isolated,
    job_user_exists,
    needs_root,
    owner,
)

from helpers import DATA, synth, table_counts

# --- the crontab ---------------------------------------------------------------------------

def crontab_jobs(text: str) -> list[list[str]]:
    """The job lines of a crontab, split into five schedule fields and the command."""
    jobs = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name = stripped.split("=", 1)[0].strip()
        if "=" in stripped and name.isidentifier():
            continue  # an environment setting
        fields = stripped.split(None, 5)
        jobs.append([*fields[:5], fields[5]])
    return jobs


def test_crontab_runs_the_job_daily_at_0100():
    [job] = crontab_jobs(CRONTAB.read_text())
    assert job[:5] == ["0", "1", "*", "*", "*"]
    assert job[5] == '. /run/ingestor/env && exec "$APP_DIR/cron-job.sh"'
    assert CRONTAB.read_text().endswith("\n")  # cron ignores a last line without one


@needs_root
def test_crontab_is_accepted_by_crontab1():
    cron_available()
    result = subprocess.run(isolated(f'crontab -u root "{CRONTAB}" && crontab -u root -l'),
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    [job] = crontab_jobs(result.stdout)
    assert job[:5] == ["0", "1", "*", "*", "*"]


@needs_root
@pytest.mark.parametrize("schedule, message", [
    ("61 * * * *", "is not a valid cron schedule"),
    ("0 1 * *", "must be five cron fields"),
])
def test_entrypoint_refuses_a_bad_schedule(schedule, message):
    cron_available()
    result = subprocess.run(
        isolated(f'exec "{ENTRYPOINT}"'), capture_output=True, text=True, check=False,
        timeout=60, env={"PATH": BASE_PATH, "APP_DIR": str(INGEST_DIR),
                         "INGEST_SCHEDULE": schedule, "INGEST_RUN_AS": JOB_USER})
    assert result.returncode == 1
    assert f"error: INGEST_SCHEDULE='{schedule}' {message}" in result.stderr


NOT_A_FIELD = ("error: INGEST_SCHEDULE holds a character cron does not read in a schedule "
               "(a tab, newline, backslash or other): use five fields of digits, names and "
               "* , - / separated by spaces")


@needs_root
@pytest.mark.parametrize("schedule", [
    # Five fields to the shell; awk -v made it two crontab lines, the second a job of its own.
    "0 1 * * *\\ttrue\\n*\\t*\\t*\\t*\\t*\\ttouch\\t/tmp/wearables-pwned\\t#",
    "0\t1 * * *\t*",
    "0 1 * * *\n* * * * * touch /tmp/wearables-pwned",
    "0 1 * * * ; touch /tmp/wearables-pwned",
    "@daily",
    "0 1 * * \\052",
], ids=["escaped-newline", "tab", "newline", "command", "nickname", "escape"])
def test_entrypoint_refuses_a_schedule_that_is_not_just_cron_fields(schedule):
    """Anything but five fields of a cron field's characters stops the container at start,
    with one line that does not repeat the value; no crontab is installed."""
    cron_available()
    result = subprocess.run(
        isolated(f'"{ENTRYPOINT}"; status=$?; crontab -u {JOB_USER} -l >/dev/null 2>&1 '
                 '&& echo "crontab installed"; exit $status'),
        capture_output=True, text=True, check=False, timeout=60,
        env={"PATH": BASE_PATH, "APP_DIR": str(INGEST_DIR), "INGEST_SCHEDULE": schedule,
             "INGEST_RUN_AS": JOB_USER})
    assert (result.returncode, result.stdout) == (1, "")
    [line] = result.stderr.splitlines()
    assert line.endswith(NOT_A_FIELD)


# --- cron-job.sh: the log, a failed run, the lock ------------------------------------------

def run_cron_job(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run cron-job.sh as cron would, with INGESTOR_LOG_DIR holding the two FIFOs that
    entrypoint.sh makes, opened here as its readers do; return the job's exit status and
    what came through them (stdout's, then stderr's; a few lines, within a pipe's buffer)."""
    logs = tmp_path / "log"
    logs.mkdir()
    fds = []
    for name in ("stdout", "stderr"):
        os.mkfifo(logs / name, 0o600)
        fds.append(os.open(logs / name, os.O_RDWR | os.O_NONBLOCK))  # as `cat 0<>fifo`
    try:
        base = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "APP_DIR": str(INGEST_DIR), "TZ": "UTC",
                "INGESTOR_LOG_DIR": str(logs), "DATA_DIR": str(tmp_path / DATA),
                "CHECKPOINT_FILE": str(tmp_path / "state" / "last_run.json")}
        result = subprocess.run([str(CRON_JOB)], env={**base, **env}, capture_output=True,
                                check=False, timeout=300)
        assert result.stdout == b"" and result.stderr == b""  # nothing left for cron to mail
        text = b""
        for fd in fds:
            try:
                while chunk := os.read(fd, 65536):
                    text += chunk
            except BlockingIOError:
                pass
        return result.returncode, text.decode()
    finally:
        for fd in fds:
            os.close(fd)


def test_cron_job_logs_a_failed_run_with_its_exit_status(tmp_path):
    status, log = run_cron_job(tmp_path, PGPASSWORD="s3cret-value")
    assert status == 1
    assert "ingestor: scheduled run started" in log
    assert f"ERROR {tmp_path / DATA}: data folder not found" in log
    assert "ingestor: scheduled run FAILED with exit status 1" in log
    assert "s3cret-value" not in log


def test_cron_job_reports_an_overlapping_run(tmp_path, database_url):
    synth(tmp_path / DATA, "--days", "1")
    lock = tmp_path / "state" / "last_run.json.lock"
    lock.parent.mkdir()
    with lock.open("w") as held:  # a run in progress
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n")
        held.flush()
        status, log = run_cron_job(tmp_path, DATABASE_URL=database_url)
    assert status == 75
    assert f"another ingest run (pid {os.getpid()}) is in progress; not starting" in log
    assert "scheduled run skipped: the previous run still holds the lock (exit status 75)" in log
    assert "Ingested" not in log


# --- the entrypoint with the real cron daemon ----------------------------------------------

def expected_counts(data: Path) -> dict[str, int]:
    return {p.stem: sum(1 for _ in p.open()) - 1 for p in data.glob("*.csv")}


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s; the container's log:\n"
                        + log.read_text())
        time.sleep(0.5)


def start_container(env: dict[str, str], log: Path) -> subprocess.Popen:
    """entrypoint.sh with no arguments, as the container starts, in a namespace of its own;
    stdout and stderr go to ``log``, as `docker compose logs` shows them."""
    cron_available()
    with log.open("ab") as out:
        return subprocess.Popen(isolated(f'exec "{ENTRYPOINT}"'), stdout=out, stderr=out,
                                env=env)


def in_container(container: subprocess.Popen, *command: str) -> subprocess.CompletedProcess:
    """Run a command in the container's mount namespace (its /run, cron's spool)."""
    return subprocess.run(["nsenter", "-t", str(container.pid), "-m", *command],
                          capture_output=True, text=True, check=False, timeout=30)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_container(container: subprocess.Popen) -> None:
    """SIGTERM, as `docker compose stop` sends (init: true passes it to cron): cron ends at
    once, and the log readers with it."""
    readers = children(container.pid)
    assert readers  # the two `cat`s that copy the job's FIFOs to the log
    stopping = time.monotonic()
    container.send_signal(signal.SIGTERM)
    container.wait(timeout=10)
    assert time.monotonic() - stopping < 5
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in readers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in readers)


@needs_root
@pytest.mark.slow
def test_cron_runs_the_loader_on_schedule_and_stops_on_sigterm(tmp_path, database_url):
    """entrypoint.sh with no arguments, as the container starts: the job runs on the schedule
    with the container's environment, its output reaches the container's log, SIGTERM ends
    it. The job user is root here (INGEST_RUN_AS=root): the venv's python is under /root.
    A one-minute schedule, so it takes up to a minute and a half."""
    data = tmp_path / DATA
    synth(data, "--days", "1")
    checkpoint = tmp_path / "state" / "last_run.json"
    secret = "secret-in-env-only"
    env = {  # the container's environment, nearly empty
        "PATH": f"{VENV_BIN}:{BASE_PATH}", "HOME": str(tmp_path), "TZ": "UTC",
        "APP_DIR": str(INGEST_DIR), "INGEST_SCHEDULE": "* * * * *", "INGEST_RUN_AS": "root",
        "DATABASE_URL": database_url, "PGPASSWORD": secret,
        "DATA_DIR": str(data), "CHECKPOINT_FILE": str(checkpoint),
    }
    log = tmp_path / "container.log"
    container = start_container(env, log)
    try:
        wait_for(lambda: "ingestion complete" in log.read_text(), 150,
                 "a scheduled run", log)
        wait_for(lambda: "scheduled run finished" in log.read_text(), 10, "the run's end", log)

        assert container.poll() is None  # cron still running, in the foreground
        # The environment handed to the job: in the namespace's /run, the job user's only.
        env_file = Path(f"/proc/{container.pid}/root/run/ingestor/env")
        assert owner(env_file) == ("root", 0o600)
        assert not Path("/run/ingestor").exists()  # nothing on the machine's own /run
        assert Path(f"/proc/{container.pid}/exe").resolve().name == "cron"
        assert crontab_jobs(in_container(container, "crontab", "-l", "-u", "root").stdout) == \
            [["*", "*", "*", "*", "*", '. /run/ingestor/env && exec "$APP_DIR/cron-job.sh"']]

        text = log.read_text()
        text = text[:text.index("scheduled run finished")]  # the first run
        assert "ingestor: cron runs the loader at '* * * * *' (TZ=UTC) as root" in text
        assert "ingestor: scheduled run started" in text
        assert f"Ingested {expected_counts(data)['hr']:,} rows → hr" in text
        assert text.count("Ingested ") == 6
        assert secret not in log.read_text()
        assert table_counts(database_url) == expected_counts(data)
        assert json.loads(checkpoint.read_text())["finished_at"]

        stop_container(container)
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()


def stand_in_app(shared_dir: Path) -> tuple[dict[str, str], Path]:
    """The real crontab and cron-job.sh in an APP_DIR the job user can read, and a stand-in
    for the loader: a `python` first on PATH (the venv's is under /root, closed to other
    users) that says who runs it, writes the checkpoint and its lock, and writes to stderr.
    Return the container's environment and the checkpoint's path."""
    app, bin_dir, state = shared_dir / "app", shared_dir / "bin", shared_dir / "state"
    for folder in (app, bin_dir, state):
        folder.mkdir(mode=0o755)
    for name in ("crontab", "cron-job.sh"):
        shutil.copy2(INGEST_DIR / name, app / name)
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        '[ -n "${PGPASSWORD:-}" ] && pw=set || pw=missing\n'
        'echo "stand-in loader: $1 as $(id -un), uid $(id -u); PGPASSWORD $pw"\n'
        'echo "stand-in loader: a line on stderr" >&2\n'
        'echo "{}" >"$CHECKPOINT_FILE" && : >"$CHECKPOINT_FILE.lock"\n')
    python.chmod(0o755)
    checkpoint = state / "last_run.json"
    env = {"PATH": f"{bin_dir}:{BASE_PATH}", "HOME": "/root", "TZ": "UTC",
           "APP_DIR": str(app), "INGEST_SCHEDULE": "* * * * *", "INGEST_RUN_AS": JOB_USER,
           "PGPASSWORD": "secret-for-the-job-only", "CHECKPOINT_FILE": str(checkpoint)}
    return env, checkpoint


@needs_root
def test_cron_installs_the_job_for_a_user_that_is_not_root(shared_dir):
    """The job's user (nobody, standing in for the image's ingest) gets the crontab, the
    environment file (0600, its own) and the log FIFOs; root gets no crontab; cron itself
    runs as root; nothing secret reaches the log."""
    job_user_exists()
    env, _ = stand_in_app(shared_dir)
    log = shared_dir / "container.log"
    container = start_container(env, log)
    try:
        wait_for(lambda: "its output follows here" in log.read_text(), 30, "cron's start", log)
        assert f"cron runs the loader at '* * * * *' (TZ=UTC) as {JOB_USER};" in log.read_text()
        assert container.poll() is None
        assert Path(f"/proc/{container.pid}/exe").resolve().name == "cron"
        assert Path(f"/proc/{container.pid}").stat().st_uid == 0  # cron itself: root

        mine = in_container(container, "crontab", "-l", "-u", JOB_USER)
        assert mine.returncode == 0, mine.stderr
        assert crontab_jobs(mine.stdout) == \
            [["*", "*", "*", "*", "*", '. /run/ingestor/env && exec "$APP_DIR/cron-job.sh"']]
        roots = in_container(container, "crontab", "-l", "-u", "root")
        assert (roots.returncode, roots.stderr.strip()) == (1, "no crontab for root")

        run = Path(f"/proc/{container.pid}/root/run/ingestor")
        assert owner(run) == ("root", 0o755)
        assert owner(run / "env") == (JOB_USER, 0o600)
        assert "secret-for-the-job-only" in (run / "env").read_text()
        for fifo in ("stdout", "stderr"):
            assert (run / fifo).is_fifo() and owner(run / fifo) == (JOB_USER, 0o600)
        # The job user may read its environment; another user may not.
        reads = in_container(container, "setpriv", f"--reuid={JOB_USER}",
                             f"--regid={pwd.getpwnam(JOB_USER).pw_gid}", "--init-groups",
                             "sh", "-c", ". /run/ingestor/env && echo ${PGPASSWORD:+yes}")
        assert (reads.returncode, reads.stdout) == (0, "yes\n"), reads.stderr
        other = in_container(container, "setpriv", "--reuid=postgres", "--regid=postgres",
                             "--init-groups", "cat", "/run/ingestor/env")
        assert other.returncode != 0 and "Permission denied" in other.stderr
        assert "secret-for-the-job-only" not in log.read_text()

        stop_container(container)
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()


@needs_root
@pytest.mark.slow
def test_cron_job_of_a_user_that_is_not_root_reaches_the_containers_log(shared_dir):
    """The real cron starts the real crontab's job as nobody: cron-job.sh runs the (stand-in)
    loader as that user with the container's environment, and its output, stdout and
    stderr, reaches the entrypoint's through the FIFOs (a job that is not root may not write
    to cron's stdout). The checkpoint and its lock are that user's. Up to a minute and a half.
    """
    job_user_exists()
    env, checkpoint = stand_in_app(shared_dir)
    log = shared_dir / "container.log"
    container = start_container(env, log)
    uid = pwd.getpwnam(JOB_USER).pw_uid
    try:
        wait_for(lambda: "scheduled run finished" in log.read_text(), 150,
                 "a scheduled run", log)
        wait_for(lambda: "a line on stderr" in log.read_text(), 10, "the job's stderr", log)
        text = log.read_text()
        assert "ingestor: scheduled run started" in text
        assert (f"stand-in loader: {shared_dir / 'app' / 'ingest.py'} as {JOB_USER}, "
                f"uid {uid}; PGPASSWORD set") in text
        assert "secret-for-the-job-only" not in text
        assert owner(checkpoint)[0] == owner(Path(f"{checkpoint}.lock"))[0] == JOB_USER
        stop_container(container)
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()
