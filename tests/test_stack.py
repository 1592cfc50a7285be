"""The Compose stack, checked with the real tools, since no Docker engine runs here.

- ``docker compose config`` (the Compose v2 plugin) validates and renders
  docker-compose.yml with the settings of .env.example;
- hadolint lints ingest/Dockerfile;
- Debian's crontab(1) parses ingest/crontab;
- ingest/entrypoint.sh runs for real with Debian's cron daemon, in a mount
  namespace of its own (tmpfs over /run, cron's spool and /etc/cron.d, an empty
  /etc/crontab), so nothing reaches the machine's own cron.

scripts/ensure-stack-tools.sh (run by ``make test``) installs the Compose
plugin and cron; hadolint comes from requirements-dev.txt.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, synth, table_counts

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

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: runs cron and crontab(1) in a private mount namespace (unshare --mount)")


# --- docker compose config ---------------------------------------------------------------

def compose_command() -> list[str]:
    """`docker compose`, or the plugin binary itself where no docker CLI is installed."""
    if shutil.which("docker"):
        ok = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if ok.returncode == 0:
            return ["docker", "compose"]
    for plugin in (Path("/usr/local/lib/docker/cli-plugins/docker-compose"),
                   Path.home() / ".docker/cli-plugins/docker-compose"):
        if os.access(plugin, os.X_OK):
            return [str(plugin)]
    pytest.fail("the Docker Compose v2 plugin is missing: run scripts/ensure-stack-tools.sh "
                "(make test does)")


def compose_config(env_file: Path, **env: str) -> subprocess.CompletedProcess:
    """`docker compose config` on the real file, with only env_file and **env as settings."""
    environ = {"PATH": os.environ.get("PATH", BASE_PATH), "HOME": str(Path.home()), **env}
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO),
         "-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file),
         "config", "--format", "json"],
        capture_output=True, text=True, env=environ, check=False, timeout=60)


def env_file(tmp_path: Path, **changes: str | None) -> Path:
    """.env.example as a user edits it: `name=value` lines replaced (None: removed)."""
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in changes:
            if changes[name] is None:
                continue
            line = f"{name}={changes[name]}"
        lines.append(line)
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def rendered(tmp_path: Path, **changes: str | None) -> dict:
    result = compose_config(env_file(tmp_path, **changes))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_target(service: dict) -> dict[str, dict]:
    return {v["target"]: v for v in service["volumes"]}


def test_compose_config_with_env_example_renders_the_stack(tmp_path):
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD)
    services = config["services"]
    assert set(services) == {"db", "generator", "ingestor"}

    db = services["db"]
    assert db["image"] == "timescale/timescaledb:latest-pg15"
    assert db["environment"] == {"POSTGRES_DB": "wearables", "POSTGRES_USER": "postgres",
                                 "POSTGRES_PASSWORD": PASSWORD}
    assert by_target(db)["/var/lib/postgresql/data"]["source"] == "db-data"
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in db["ports"]] == \
        [("127.0.0.1", "5432", 5432)]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert db["restart"] == "unless-stopped"

    ing = services["ingestor"]
    assert ing["build"]["context"] == str(INGEST_DIR)
    assert ing["build"]["dockerfile"] == "Dockerfile"
    assert ing["depends_on"]["db"]["condition"] == "service_healthy"
    assert ing["depends_on"]["generator"]["condition"] == "service_completed_successfully"
    assert ing["restart"] == "unless-stopped"
    assert ing["init"] is True
    volumes = by_target(ing)
    assert volumes["/checkpoint"]["type"] == "volume"
    assert volumes["/checkpoint"]["source"] == "ingest-state"
    assert volumes["/data"]["type"] == "bind"
    assert volumes["/data"]["source"] == str(REPO / "data" / "participant_001")
    assert volumes["/data"]["read_only"] is True
    e = ing["environment"]
    assert (e["PGHOST"], e["PGPORT"], e["PGUSER"], e["PGDATABASE"]) == \
        ("db", "5432", "postgres", "wearables")
    assert e["PGPASSWORD"] == PASSWORD
    assert (e["DATA_DIR"], e["CHECKPOINT_FILE"]) == ("/data", "/checkpoint/last_run.json")
    assert (e["INGEST_SCHEDULE"], e["TZ"]) == ("0 1 * * *", "UTC")

    gen = services["generator"]
    assert gen["image"] == ing["image"] and gen["build"] == ing["build"]
    assert gen["command"] == ["/app/seed-data.sh"]
    assert by_target(gen)["/data"]["source"] == volumes["/data"]["source"]
    assert not by_target(gen)["/data"].get("read_only")
    assert gen["restart"] == "no"
    assert set(config["volumes"]) == {"db-data", "ingest-state"}


def test_compose_settings_come_from_env(tmp_path):
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, DB_PORT="15432",
                      HOST_DATA_DIR="../task_0b/data/participant_001",
                      INGEST_SCHEDULE="30 2 * * 1-5", TZ="Europe/Berlin")
    db, ing = config["services"]["db"], config["services"]["ingestor"]
    assert [(p["host_ip"], str(p["published"])) for p in db["ports"]] == \
        [("127.0.0.1", "15432")]
    assert by_target(ing)["/data"]["source"] == str(REPO.parent / "task_0b/data/participant_001")
    assert by_target(config["services"]["generator"])["/data"]["source"] == \
        str(REPO.parent / "task_0b/data/participant_001")
    assert ing["environment"]["INGEST_SCHEDULE"] == "30 2 * * 1-5"
    assert ing["environment"]["TZ"] == "Europe/Berlin"


@pytest.mark.parametrize("password", ["", None], ids=["empty", "unset"])
def test_compose_refuses_to_start_without_postgres_password(tmp_path, password):
    """.env.example as shipped (empty) and a .env without the line: no default password."""
    result = compose_config(env_file(tmp_path, POSTGRES_PASSWORD=password))
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def test_every_stack_setting_is_in_env_example_and_readme():
    """Each ${NAME} docker-compose.yml reads from .env is listed in both, and nothing else is."""
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    assert used == {"POSTGRES_PASSWORD", "DB_PORT", "HOST_DATA_DIR", "INGEST_SCHEDULE", "TZ",
                    "PARTICIPANT_ID", "INGEST_METHOD", "INGEST_BATCH_ROWS"}
    example = (REPO / ".env.example").read_text()
    readme = (REPO / "README.md").read_text()
    for name in used:
        assert re.search(rf"^{name}=", example, re.MULTILINE), name
        assert f"| `{name}` |" in readme, name


# --- Dockerfile ----------------------------------------------------------------------------

def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install requirements-dev.txt (make setup)"
    result = subprocess.run([hadolint, "--no-color", str(INGEST_DIR / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_is_the_python_image_with_cron_and_the_app_in_app():
    text = (INGEST_DIR / "Dockerfile").read_text()
    assert "FROM python:3.11-slim\n" in text
    assert "--no-install-recommends cron" in text
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert "WORKDIR /app" in text and 'ENTRYPOINT ["/app/entrypoint.sh"]' in text
    # Everything the container runs is copied in, and nothing else.
    copied = next(line for line in text.splitlines() if line.startswith("COPY *.py"))
    for name in ("crontab", "entrypoint.sh", "cron-job.sh", "seed-data.sh"):
        assert name in copied.split() and (INGEST_DIR / name).is_file()
        assert f"!{name}" in (INGEST_DIR / ".dockerignore").read_text()


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
                         "INGEST_SCHEDULE": schedule})
    assert result.returncode == 1
    assert f"error: INGEST_SCHEDULE='{schedule}' {message}" in result.stderr


# --- entrypoint: a command instead of cron -------------------------------------------------

def test_entrypoint_runs_a_given_command_instead_of_cron(tmp_path):
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", 'echo "ran $1 with APP_DIR=$APP_DIR"', "sh", "this"],
        capture_output=True, text=True, check=False, timeout=30, env={"PATH": BASE_PATH})
    assert (result.returncode, result.stdout, result.stderr) == \
        (0, "ran this with APP_DIR=/app\n", "")


def test_entrypoint_passes_the_exit_status_of_the_command():
    result = subprocess.run([str(ENTRYPOINT), "sh", "-c", "exit 7"], check=False, timeout=30,
                            env={"PATH": BASE_PATH})
    assert result.returncode == 7


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


# --- cron-job.sh: the log, a failed run, the lock ------------------------------------------

def run_cron_job(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run cron-job.sh as cron would, with INGESTOR_LOG_PID naming a stand-in for cron
    whose stdout/stderr is a log file; return its exit status and that log."""
    log = tmp_path / "container.log"
    with log.open("ab") as out:
        stand_in = subprocess.Popen(["sleep", "300"], stdout=out, stderr=out)
    try:
        base = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "APP_DIR": str(INGEST_DIR), "TZ": "UTC",
                "INGESTOR_LOG_PID": str(stand_in.pid), "DATA_DIR": str(tmp_path / "data"),
                "CHECKPOINT_FILE": str(tmp_path / "state" / "last_run.json")}
        result = subprocess.run([str(CRON_JOB)], env={**base, **env}, capture_output=True,
                                check=False, timeout=300)
        assert result.stdout == b"" and result.stderr == b""  # nothing left for cron to mail
        return result.returncode, log.read_text()
    finally:
        stand_in.kill()
        stand_in.wait()


def test_cron_job_logs_a_failed_run_with_its_exit_status(tmp_path):
    status, log = run_cron_job(tmp_path, PGPASSWORD="s3cret-value")
    assert status == 1
    assert "ingestor: scheduled run started" in log
    assert f"error: {tmp_path / 'data'}: data folder not found" in log
    assert "ingestor: scheduled run FAILED with exit status 1" in log
    assert "s3cret-value" not in log


def test_cron_job_reports_an_overlapping_run(tmp_path, database_url):
    synth(tmp_path / "data", "--days", "1")
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


@needs_root
@pytest.mark.slow
def test_cron_runs_the_loader_on_schedule_and_stops_on_sigterm(tmp_path, database_url):
    """entrypoint.sh with no arguments, as the container starts: the job runs on the schedule
    with the container's environment, its output reaches the container's log, SIGTERM ends
    it. A one-minute schedule, so it takes up to a minute and a half."""
    cron_available()
    data = tmp_path / "data"
    synth(data, "--days", "1")
    checkpoint = tmp_path / "state" / "last_run.json"
    secret = "secret-in-env-only"
    env = {  # the container's environment, nearly empty
        "PATH": f"{VENV_BIN}:{BASE_PATH}", "HOME": str(tmp_path), "TZ": "UTC",
        "APP_DIR": str(INGEST_DIR), "INGEST_SCHEDULE": "* * * * *",
        "DATABASE_URL": database_url, "PGPASSWORD": secret,
        "DATA_DIR": str(data), "CHECKPOINT_FILE": str(checkpoint),
    }
    log = tmp_path / "container.log"
    with log.open("ab") as out:  # stdout and stderr, as `docker compose logs` shows them
        container = subprocess.Popen(isolated(f'exec "{ENTRYPOINT}"'), stdout=out, stderr=out,
                                     env=env)
    try:
        wait_for(lambda: "ingestion complete" in log.read_text(), 150,
                 "a scheduled run", log)
        wait_for(lambda: "scheduled run finished" in log.read_text(), 10, "the run's end", log)

        assert container.poll() is None  # cron still running, in the foreground
        # The environment handed to the job: in the namespace's /run, root's only.
        env_file = Path(f"/proc/{container.pid}/root/run/ingestor/env")
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert not Path("/run/ingestor").exists()  # nothing on the machine's own /run
        assert Path(f"/proc/{container.pid}/exe").resolve().name == "cron"

        text = log.read_text()
        text = text[:text.index("scheduled run finished")]  # the first run
        assert "ingestor: cron runs the loader at '* * * * *' (TZ=UTC)" in text
        assert "ingestor: scheduled run started" in text
        assert f"Ingested {expected_counts(data)['hr']:,} rows → hr" in text
        assert text.count("Ingested ") == 6
        assert secret not in text
        assert table_counts(database_url) == expected_counts(data)
        assert json.loads(checkpoint.read_text())["finished_at"]

        stopping = time.monotonic()
        container.send_signal(signal.SIGTERM)
        container.wait(timeout=10)
        assert time.monotonic() - stopping < 5
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()
