"""The path a user walks, in real containers: `docker compose up -d` on a fresh clone, then
the seed's commands (its walkthrough: run, count, light reset, full reset).

The steps run in order on one stack (the ``stack`` fixture of conftest.py: a fresh
copy of the repository, its own Compose project, dockerd of the tests' own); each
builds on the ones before, so after a failure the rest are skipped. To add a step,
add a ``test_<n>_...`` function below the last one.

The base images are the real ones where ``docker pull`` works and stand-ins built
here otherwise (scripts/build-stand-ins.sh); the run's summary says which.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request

import psycopg2
import pytest

from containers.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.containers]

INGEST_IMAGE = "wearables-ingest:local"
# The seed's manual run and its contract: 30 days for participant 1.
MANUAL_RUN = ("run", "--rm", "ingestor", "python", "/app/ingest.py")
SEED_COUNTS = {"activity": 30, "azm": 43_200, "br": 30, "hr": 2_592_000,
               "hrv": 13_248, "spo2": 13_248}
SEED_LINES = [f"Ingested {n:,} rows → {metric}" for metric, n in SEED_COUNTS.items()]
# cron's schedule outside step 3: never (no 31 February), so that no scheduled
# run takes the loader's lock while a step runs the loader by hand. The
# default, 01:00, would do that to a test run at 01:00.
NEVER = "0 0 31 2 *"
EVERY_MINUTE = "* * * * *"


def manual_run(stack, timeout: float = 600):
    """The seed's `docker compose run --rm ingestor python /app/ingest.py`."""
    return stack.compose(*MANUAL_RUN, timeout=timeout, check=False)


def assert_loaded_like_the_seed(result) -> None:
    assert result.returncode == 0, f"the manual run exited {result.returncode}:\n" \
        f"{result.stdout}{result.stderr}"
    lines = [line.strip() for line in result.stdout.replace("\r", "").splitlines()]
    # The seed's six lines, in its order, then `ingestion complete`.
    found = [line for line in lines if line in SEED_LINES]
    assert found == SEED_LINES, f"expected the seed's lines {SEED_LINES}:\n{result.stdout}"
    assert "ingestion complete" in lines[lines.index(SEED_LINES[-1]):], result.stdout


def test_1_up_builds_and_starts_a_healthy_stack(stack):
    """A fresh clone, .env from .env.example plus the passwords: `up -d` builds and starts."""
    stack.write_env(INGEST_SCHEDULE=NEVER)
    # A fresh clone has no image: `up -d` must build it (from the build cache of
    # earlier runs where the layers are unchanged).
    if stack.engine.run("image", "inspect", INGEST_IMAGE, check=False).returncode == 0:
        stack.engine.run("image", "rm", "--no-prune", INGEST_IMAGE)
    stack.compose("up", "-d", timeout=900)
    assert stack.engine.run("image", "inspect", INGEST_IMAGE, check=False).returncode == 0

    stack.wait_healthy("db")
    generator = stack.state("generator")
    assert (generator["Status"], generator["ExitCode"]) == ("exited", 0), generator
    assert stack.state("ingestor")["Running"]
    # The init script's work: the role, the tables, the hypertable.
    assert stack.scalar("SELECT rolname FROM pg_roles WHERE rolname = 'ingest'") == "ingest"
    assert stack.scalar("SELECT to_regclass('raw_data') IS NOT NULL "
                        "AND to_regclass('ingest_runs') IS NOT NULL") == "t"
    assert stack.scalar("SELECT count(*) FROM timescaledb_information.hypertables "
                        "WHERE hypertable_name = 'raw_data'") == "1"
    assert stack.counts() == {}
    # Password authentication over TCP, through the port published on 127.0.0.1.
    ingest = stack.settings["INGEST_DB_PASSWORD"]
    assert stack.sql("SELECT current_user", user="ingest", password=ingest) == [("ingest",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        stack.sql("SELECT 1", password="not-the-password")


def test_2_manual_run_loads_the_seed_data(stack):
    """The seed's manual run prints its six lines; its counting query shows its counts."""
    assert_loaded_like_the_seed(manual_run(stack))
    assert stack.counts() == SEED_COUNTS


def test_3_cron_runs_the_loader_as_ingest(stack):
    """INGEST_SCHEDULE every minute: cron runs the loader, as ingest, into the log."""
    stack.write_env(INGEST_SCHEDULE=EVERY_MINUTE)
    stack.compose("up", "-d", timeout=300)   # recreates the ingestor with the new schedule
    try:
        crontab = stack.compose("exec", "ingestor", "crontab", "-l", "-u", "ingest").stdout
        assert re.search(r"^\* \* \* \* \* .*cron-job\.sh", crontab, re.MULTILINE), crontab
        root = stack.compose("exec", "ingestor", "crontab", "-l", check=False)
        assert root.returncode != 0, f"root has a crontab too:\n{root.stdout}"

        deadline = time.monotonic() + 150
        while True:
            log = stack.logs("ingestor")
            started = log.rfind("scheduled run started")
            if started >= 0 and re.search(r"scheduled run (finished|FAILED|skipped)",
                                          log[started:]):
                break
            assert time.monotonic() < deadline, f"no scheduled run within 150 s:\n{log}"
            time.sleep(3)
        assert f"cron runs the loader at '{EVERY_MINUTE}' (TZ=UTC) as ingest" in log, log
        run = log[started:]
        assert "scheduled run finished" in run, log
        assert "ingestion complete" in run, log
        assert stack.scalar("SELECT count(*) > 0 FROM ingest_runs "
                            "WHERE trigger = 'cron' AND status = 'ok'") == "t"
    finally:
        stack.write_env(INGEST_SCHEDULE=NEVER)
        stack.compose("up", "-d", timeout=300)
    assert stack.counts() == SEED_COUNTS


def test_4_light_reset_doubles_nothing(stack):
    """The seed's light reset: delete the checkpoint, run again; the counts stay."""
    stack.compose("exec", "ingestor", "rm", "-f", "/checkpoint/last_run.json")
    result = manual_run(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ingestion complete" in result.stdout, result.stdout
    assert stack.counts() == SEED_COUNTS


def test_4b_the_database_compresses_through_its_policy_and_the_views_answer(stack):
    """The full TimescaleDB's storage (storage.sql, applied by the init script): the
    compression policy's job compresses the seed's chunks, the views answer, and `status`
    shows the bytes saved."""
    assert stack.scalar("SHOW timescaledb.license") == "timescale"
    assert stack.scalar("SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                        "WHERE proc_name = 'policy_compression'") == "7 days"
    job = stack.scalar("SELECT job_id FROM timescaledb_information.jobs "
                       "WHERE proc_name = 'policy_compression'")
    stack.scalar(f"CALL run_job({int(job)})")  # the policy's run, now rather than tonight
    chunks, compressed = stack.scalar(
        "SELECT total_chunks || ',' || number_compressed_chunks "
        "FROM hypertable_compression_stats('raw_data')").split(",")
    assert int(compressed) == int(chunks) > 0
    assert stack.counts() == SEED_COUNTS  # the rows, read through the compressed chunks
    assert stack.scalar("SELECT (SELECT sum(samples) FROM raw_data_1m) || ',' || "
                        "(SELECT sum(samples) FROM raw_data_1h) || ',' || "
                        "(SELECT sum(samples) FROM raw_data_1d)") == ",".join(
        [str(sum(SEED_COUNTS.values()))] * 3)
    assert stack.scalar("SELECT samples FROM raw_data_1h WHERE participant = 1 AND "
                        "metric = 'hr' AND bucket = '2024-01-15T05:00Z'") == "3600"
    result = stack.compose("run", "--rm", "ingestor", "python", "/app/ingest.py", "status",
                           timeout=300, check=False)
    [line] = [x for x in result.stdout.splitlines() if x.startswith("storage: ")]
    assert line.endswith(f"{compressed} of {chunks} chunks compressed"), result.stdout


def test_5_db_restart_during_a_load(stack):
    """`docker compose restart db` while a load runs: it fails cleanly or retries; the next
    run leaves the counts exact."""
    # A new database and no checkpoint (the seed's full reset), so that the run
    # loads all 2.66 M rows. (Not a TRUNCATE raw_data: the loader keeps other
    # tables in step with it.)
    stack.compose("down", "-v", timeout=180)
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy("db")
    assert stack.counts() == {}

    run = stack.popen(*MANUAL_RUN)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s, b: b.extend(s), args=(stream, buf), daemon=True)
               for stream, buf in ((run.stdout, out), (run.stderr, err))]
    for reader in readers:
        reader.start()
    try:
        # In progress: the loader's connection (role ingest) is writing rows, seen
        # from this machine through the published port; better still, some rows
        # are stored already (the next run then resumes), if that comes within 3 s.
        deadline = time.monotonic() + 300
        writing_since = None
        while True:
            assert run.poll() is None, f"the run ended before the restart:\n{''.join(out + err)}"
            assert time.monotonic() < deadline, "the run wrote no rows within 300 s"
            writing, stored = stack.sql(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = 'ingest' "
                "AND state = 'active' AND query ~* '^\\s*(copy|insert)'), "
                "(SELECT count(*) FROM raw_data)")[0]
            if writing and writing_since is None:
                writing_since = time.monotonic()
            if writing and (stored or time.monotonic() - writing_since > 3):
                break
            time.sleep(0.1)
        assert run.poll() is None, f"the load ended before the restart:\n{''.join(out + err)}"
        stack.compose("restart", "db", timeout=120)
        status = run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
        for reader in readers:
            reader.join(timeout=10)
    print(f"restarted db with {stored:,} of {sum(SEED_COUNTS.values()):,} rows stored")
    stdout, stderr = "".join(out), "".join(err)
    print(f"the run during the restart exited {status}:\n{stdout}{stderr}")
    if status == 0:
        # It reconnected and finished.
        assert "ingestion complete" in stdout, stdout + stderr
    else:
        # It failed cleanly: a clear error, no traceback, no signal.
        assert status < 128, f"exit status {status}:\n{stdout}{stderr}"
        assert "Traceback" not in stdout + stderr, stdout + stderr
        errors = [line for line in stderr.splitlines() if re.search(r"error", line, re.I)]
        assert errors, f"no error line on stderr:\n{stderr}"

    stack.wait_healthy("db")
    result = manual_run(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ingestion complete" in result.stdout, result.stdout
    assert stack.counts() == SEED_COUNTS


def test_6_full_reset_loads_afresh(stack):
    """The seed's full reset: `down -v`, `up -d`, the manual run: a fresh, exact load."""
    stack.compose("down", "-v", timeout=180)
    volumes = stack.engine.lines("volume", "ls", "-q", "--filter",
                                 f"label=com.docker.compose.project={stack.project}")
    assert volumes == [], f"volumes left after down -v: {volumes}"
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy("db")
    assert stack.counts() == {}
    assert_loaded_like_the_seed(manual_run(stack))
    assert stack.counts() == SEED_COUNTS


def test_7_stop_ends_every_container_within_10_s(stack):
    """`docker compose stop`: every container ends on its stop signal, none is killed."""
    ids = stack.compose("ps", "-q").stdout.split()
    assert len(ids) == 2, ids   # db and the ingestor; the generator has exited
    started = time.monotonic()
    stack.compose("stop", timeout=60)
    took = time.monotonic() - started
    for cid in ids:
        state = stack.engine.run("inspect", "-f", "{{.Name}} {{.State.Running}} "
                                 "{{.State.ExitCode}}", cid).stdout.split()
        name, running, code = state
        assert running == "false", state
        # 137: killed (SIGKILL) when the stop timeout ran out.
        assert int(code) != 137, f"{name} was killed, not stopped: {state}"
    assert took < 10, f"docker compose stop took {took:.1f} s"


def test_8_a_mistyped_host_data_dir_gets_no_synthetic_data(stack):
    """HOST_DATA_DIR pointing at a folder that does not exist: Docker creates it, empty, and
    the generator writes nothing there (nor anywhere); the load finds nothing to add."""
    stack.write_env(HOST_DATA_DIR="./dta")
    try:
        stack.compose("up", "-d", timeout=300)
        stack.wait_healthy("db")
        assert "not generating demo data" in stack.logs("generator")
        mistyped = stack.root / "dta"
        assert mistyped.is_dir() and list(mistyped.iterdir()) == []
        result = manual_run(stack)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Ingested" not in result.stdout, result.stdout
        assert list(mistyped.iterdir()) == []
        assert stack.counts() == SEED_COUNTS
        assert stack.scalar("SELECT count(DISTINCT participant) FROM raw_data") == "1"
    finally:
        stack.write_env(HOST_DATA_DIR="./data")
        stack.compose("up", "-d", timeout=300)


def test_9_the_ingestor_turns_unhealthy_when_a_run_fails(stack):
    """A run that fails (the database refuses its password): the health check says
    unhealthy at once, and Docker marks the container so; a good run makes it healthy."""
    ingestor = ("exec", "-u", "ingest", "ingestor")
    failed = stack.compose(*ingestor, "env", "PGPASSWORD=wrong", "INGEST_RETRIES=0",
                           "python", "/app/ingest.py", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    check = stack.compose(*ingestor, "/app/healthcheck.sh", check=False)
    assert (check.returncode, check.stdout.split(":")[0]) == (1, "unhealthy"), check.stdout

    deadline = time.monotonic() + 60  # the tests' override runs the check every 5 s
    while (stack.state("ingestor").get("Health") or {}).get("Status") != "unhealthy":
        assert time.monotonic() < deadline, stack.state("ingestor")
        time.sleep(5)
    assert "(unhealthy)" in stack.compose("ps", "ingestor").stdout

    assert manual_run(stack).returncode == 0
    check = stack.compose(*ingestor, "/app/healthcheck.sh", check=False)
    assert (check.returncode, check.stdout.split(":")[0]) == (0, "healthy"), check.stdout


def _prometheus(stack, path: str, **params: str) -> dict:
    """The profile's Prometheus API, through its port published on 127.0.0.1."""
    url = (f"http://127.0.0.1:{stack.settings['PROMETHEUS_PORT']}/api/v1/{path}"
           f"?{urllib.parse.urlencode(params)}")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def _eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except OSError as e:   # Prometheus not listening yet
            found = e
        if found and not isinstance(found, OSError):
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s ({found!r})"
        time.sleep(2)


def test_10_the_monitoring_profile_shows_a_run_in_prometheus(stack):
    """`--profile monitoring up -d` adds a Pushgateway and a Prometheus with the rules; a run
    pushes its counts, and Prometheus shows them. Without the profile, neither exists."""
    services = set(stack.compose("ps", "-a", "--format", "{{.Service}}").stdout.split())
    assert services <= {"db", "generator", "ingestor"}, services
    stack.write_env(PUSHGATEWAY_URL="http://pushgateway:9091", PROMETHEUS_PORT=str(free_port()))
    try:
        stack.compose("--profile", "monitoring", "up", "-d", timeout=600)
        assert stack.compose("port", "prometheus", "9090").stdout.strip() == \
            f"127.0.0.1:{stack.settings['PROMETHEUS_PORT']}"
        rules = _eventually(lambda: _prometheus(stack, "rules")["groups"], 120,
                            "Prometheus answering with its rules")
        assert {r["name"] for g in rules for r in g["rules"]} == {
            "WearablesIngestLastRunFailed", "WearablesIngestNoRecentSuccess",
            "WearablesIngestNoNewRows", "WearablesIngestRowsRejected"}

        # azm again (--full): every row offered is already there, and the push says so.
        result = stack.compose(*MANUAL_RUN, "--full", "--metrics", "azm", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "WARNING" not in result.stderr, result.stderr

        def value(query: str) -> list:
            return _prometheus(stack, "query", query=query)["result"]

        present = _eventually(lambda: value("wearables_ingest_last_run_already_present_rows"),
                              90, "the pushed counts in Prometheus")
        assert [float(r["value"][1]) for r in present] == [SEED_COUNTS["azm"]]
        assert float(value("wearables_ingest_last_run_success")[0]["value"][1]) == 1
        ages = value("wearables_ingest_newest_row_age_seconds")
        assert sorted(r["metric"]["metric"] for r in ages) == sorted(SEED_COUNTS)
        # The seed's data ends in 2024: every metric of participant 1 is stale, and the
        # rule says so (the other alerts stay quiet: the run succeeded, nothing rejected).
        stale = _eventually(lambda: value('ALERTS{alertstate="firing"}'), 90,
                            "the alert WearablesIngestNoNewRows firing")
        assert sorted((r["metric"]["alertname"], r["metric"]["metric"]) for r in stale) == \
            sorted(("WearablesIngestNoNewRows", m) for m in SEED_COUNTS)
    finally:
        stack.compose("--profile", "monitoring", "rm", "-fsv", "pushgateway", "prometheus",
                      timeout=120, check=False)
        stack.write_env(PUSHGATEWAY_URL="")
        stack.compose("up", "-d", timeout=300)
