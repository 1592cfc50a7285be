"""The Compose stack, checked with the real tools, since no Docker engine runs here.

- ``docker compose config`` (the Compose v2 plugin) validates and renders
  docker-compose.yml with the settings of .env.example;
- hadolint lints ingest/Dockerfile;
- Debian's crontab(1) parses ingest/crontab;
- ingest/entrypoint.sh runs for real with Debian's cron daemon, in a mount
  namespace of its own (tmpfs over /run, cron's spool and /etc/cron.d, an empty
  /etc/crontab), so nothing reaches the machine's own cron; and it drops to a
  user that is not root (INGEST_RUN_AS: the image's `ingest` does not exist
  here, so `nobody` stands in for it) with the real setpriv and crontab -u.

The venv's python lives under /root here, which another user cannot enter, so
the full scheduled load runs with the job user root, and the checks with
`nobody` run a stand-in for the loader behind the real crontab and cron-job.sh.

scripts/ensure-stack-tools.sh (run by ``make test``) installs the Compose
plugin and cron; hadolint comes from requirements-dev.txt.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
INGEST_PASSWORD = "test-ingest-Pa55word"
JOB_USER = "nobody"  # stands in for the image's user ingest: not root, no login shell, no home

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
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD)
    services = config["services"]
    assert set(services) == {"db", "generator", "ingestor"}

    db = services["db"]
    assert db["image"] == "timescale/timescaledb:latest-pg15"
    assert db["environment"] == {"POSTGRES_DB": "wearables", "POSTGRES_USER": "postgres",
                                 "POSTGRES_PASSWORD": PASSWORD,
                                 "INGEST_DB_PASSWORD": INGEST_PASSWORD}
    assert by_target(db)["/var/lib/postgresql/data"]["source"] == "db-data"
    # The init script alone, read-only, beside the image's own init scripts.
    init = by_target(db)["/docker-entrypoint-initdb.d/10-wearables.sh"]
    assert (init["type"], init["source"], init["read_only"]) == \
        ("bind", str(REPO / "db" / "init" / "10-wearables.sh"), True)
    assert "/docker-entrypoint-initdb.d" not in by_target(db)
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in db["ports"]] == \
        [("127.0.0.1", "5432", 5432)]
    # Over TCP: healthy only once the server proper runs, after the init script.
    assert "pg_isready -h 127.0.0.1 " in " ".join(db["healthcheck"]["test"])
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
    # The loader's role, which may only read and insert; never the superuser.
    assert (e["PGHOST"], e["PGPORT"], e["PGUSER"], e["PGDATABASE"]) == \
        ("db", "5432", "ingest", "wearables")
    assert e["PGPASSWORD"] == INGEST_PASSWORD
    assert PASSWORD not in json.dumps(ing)
    assert "INGEST_RUN_AS" not in e  # the image's default: its user ingest
    assert (e["DATA_DIR"], e["CHECKPOINT_FILE"]) == ("/data", "/checkpoint/last_run.json")
    assert (e["INGEST_SCHEDULE"], e["TZ"]) == ("0 1 * * *", "UTC")

    gen = services["generator"]
    assert gen["image"] == ing["image"] and gen["build"] == ing["build"]
    assert gen["command"] == ["/app/seed-data.sh"]
    assert by_target(gen)["/data"]["source"] == volumes["/data"]["source"]
    assert not by_target(gen)["/data"].get("read_only")
    assert gen["restart"] == "no"
    # root, to write into a data folder Docker created; and no password at all.
    assert gen["environment"] == {"INGEST_RUN_AS": "root"}
    assert set(config["volumes"]) == {"db-data", "ingest-state"}


def test_compose_settings_come_from_env(tmp_path):
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                      DB_PORT="15432",
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
@pytest.mark.parametrize("name, other", [("POSTGRES_PASSWORD", "INGEST_DB_PASSWORD"),
                                         ("INGEST_DB_PASSWORD", "POSTGRES_PASSWORD")])
def test_compose_refuses_to_start_without_either_password(tmp_path, name, other, password):
    """.env.example as shipped (empty) and a .env without the line, the other password set:
    no default password."""
    result = compose_config(env_file(tmp_path, **{name: password, other: "set"}))
    assert result.returncode != 0
    assert f"required variable {name} is missing a value" in result.stderr
    assert f"set {name} in .env" in result.stderr


def test_compose_file_holds_no_password(tmp_path):
    """Every password in docker-compose.yml is a required ${NAME:?...} of .env, and each one
    reaches only the services that need it: the superuser's only db, the role's db and the
    ingestor."""
    text = (REPO / "docker-compose.yml").read_text()
    secret_lines = [line.strip() for line in text.splitlines()
                    if re.search(r"PASSWORD|SECRET|TOKEN", line.split("#")[0])]
    assert secret_lines
    for line in secret_lines:
        assert re.fullmatch(r"[A-Z_]+: \$\{([A-Z_]+):\?[^}$]*\}", line), line

    config = rendered(tmp_path, POSTGRES_PASSWORD="sentinel-one",
                      INGEST_DB_PASSWORD="sentinel-two")
    found = {(name, key): value for name, service in config["services"].items()
             for key, value in (service.get("environment") or {}).items()
             if value in ("sentinel-one", "sentinel-two")}
    assert found == {("db", "POSTGRES_PASSWORD"): "sentinel-one",
                     ("db", "INGEST_DB_PASSWORD"): "sentinel-two",
                     ("ingestor", "PGPASSWORD"): "sentinel-two"}
    rendered_text = json.dumps(config)
    assert rendered_text.count("sentinel-one") == 1 and rendered_text.count("sentinel-two") == 2


def test_every_stack_setting_is_in_env_example_and_readme():
    """Each ${NAME} docker-compose.yml reads from .env is listed in both, and nothing else is."""
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    assert used == {"POSTGRES_PASSWORD", "INGEST_DB_PASSWORD", "DB_PORT", "HOST_DATA_DIR",
                    "INGEST_SCHEDULE", "TZ", "PARTICIPANT_ID", "INGEST_METHOD",
                    "INGEST_BATCH_ROWS", "SOURCE_TZ", "INGEST_RETRIES", "INGEST_RETRY_DELAY",
                    "LOG_LEVEL"}
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


def test_the_image_holds_no_secret_and_runs_the_loader_as_its_own_user():
    """No password or .env reaches the image: the build context is only the files the
    Dockerfile copies, and it sets no secret. The loader's user: a fixed uid, and
    /checkpoint its own, which a new named volume there inherits."""
    ignore = [line.strip() for line in (INGEST_DIR / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is left out, but for:
    assert ignore[1:] == ["!requirements.txt", "!*.py", "!crontab", "!entrypoint.sh",
                          "!cron-job.sh", "!seed-data.sh"]
    text = (INGEST_DIR / "Dockerfile").read_text()
    for line in text.splitlines():
        if re.match(r"\s*(ENV|ARG|LABEL)\b", line):
            assert not re.search(r"PASS|SECRET|TOKEN|KEY", line, re.IGNORECASE), line
    assert "USER " not in text  # the entrypoint starts as root: cron needs it, then setpriv
    useradd = " ".join(text[text.index("useradd"):text.index(" ingest \\")].split())
    assert useradd == ("useradd --system --no-log-init --uid 10001 --user-group \\ "
                       "--home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin")
    assert "install -d -o ingest -g ingest -m 0755 /checkpoint" in text
    assert "ENV INGEST_RUN_AS=ingest\n" in text


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
                         "INGEST_SCHEDULE": schedule, "INGEST_RUN_AS": JOB_USER})
    assert result.returncode == 1
    assert f"error: INGEST_SCHEDULE='{schedule}' {message}" in result.stderr


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


def job_user_exists() -> None:
    try:
        pwd.getpwnam(JOB_USER)
    except KeyError:
        pytest.skip(f"no user {JOB_USER} on this machine to stand in for the image's user")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the job user can reach (pytest's own are root's only), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="wearables-stack-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def owner(path: Path) -> tuple[str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o7777


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
                "INGESTOR_LOG_DIR": str(logs), "DATA_DIR": str(tmp_path / "data"),
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
    assert f"ERROR {tmp_path / 'data'}: data folder not found" in log
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
    data = tmp_path / "data"
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
