"""ingest/healthcheck.sh, the ingestor's Docker HEALTHCHECK, against metrics files of each case."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from stack_helpers import BASE_PATH, ENTRYPOINT, INGEST_DIR

HEALTHCHECK = INGEST_DIR / "healthcheck.sh"
HOUR = 3600


def prom(last_run_ago: float, success: int, last_success_ago: float | None) -> str:
    """A metrics file as report.metrics_text writes it (the gauges the check reads), with
    the last run and the last success that many seconds ago."""
    last_run = time.time() - last_run_ago
    last_success = None if last_success_ago is None else time.time() - last_success_ago
    lines = ["# HELP wearables_ingest_last_run_timestamp_seconds When the last run ended.",
             "# TYPE wearables_ingest_last_run_timestamp_seconds gauge",
             f"wearables_ingest_last_run_timestamp_seconds {last_run:.3f}",
             f"wearables_ingest_last_run_success {success}",
             "wearables_ingest_last_run_duration_seconds 2.500"]
    if last_success is not None:
        lines.append(f"wearables_ingest_last_success_timestamp_seconds {last_success:.3f}")
    lines.append('wearables_ingest_rows_inserted{participant="1",metric="hr"} 86400')
    return "\n".join(lines) + "\n"


def check(tmp_path: Path, started_ago: float | None, metrics: tuple | None,
          **env: str) -> tuple[int, str]:
    """Run the check with the container started ``started_ago`` seconds ago (None: no cron)
    and a metrics file of ``prom(*metrics)`` (None: no file)."""
    state = tmp_path / "checkpoint"
    state.mkdir(exist_ok=True)
    if metrics is not None:
        (state / "wearables_ingest.prom").write_text(prom(*metrics))
    started = tmp_path / "started"
    if started_ago is not None:
        started.write_text(f"{int(time.time() - started_ago)}\n")
    result = subprocess.run(
        [str(HEALTHCHECK)], capture_output=True, text=True, check=False, timeout=30,
        env={"PATH": BASE_PATH, "CHECKPOINT_FILE": str(state / "last_run.json"),
             "INGESTOR_STARTED_FILE": str(started), **env})
    assert result.stderr == ""
    return result.returncode, result.stdout


@pytest.mark.parametrize("started_ago, metrics, healthy, says", [
    # A recent success: healthy, however long the container has been up.
    (40 * HOUR, (3 * HOUR, 1, 3 * HOUR), True,
     "healthy: the last successful run ended 3.0 h ago"),
    # Just started, nothing run yet (a new volume): no run has been due.
    (60, None, True, "healthy: no run due yet; the container started 0.0 h ago"),
    # Just started; the last success is old, from before (a stack stopped for days).
    (2 * HOUR, (90 * HOUR, 1, 90 * HOUR), True,
     "healthy: no run due yet; the container started 2.0 h ago"),
    # A run failed before this container started (then fixed, restarted): not yet due.
    (HOUR, (5 * HOUR, 0, 30 * HOUR), True,
     "healthy: no run due yet; the container started 1.0 h ago"),
    # The last run failed: unhealthy, even with a success 20 h ago.
    (40 * HOUR, (HOUR, 0, 20 * HOUR), False,
     "unhealthy: the last run failed (1.0 h ago); see docker compose logs ingestor"),
    # ... and just after a start, once a run since has failed.
    (2 * HOUR, (HOUR, 0, None), False, "unhealthy: the last run failed (1.0 h ago)"),
    # A missed night: the last success is older than 26 h.
    (50 * HOUR, (27 * HOUR, 1, 27 * HOUR), False,
     "unhealthy: the last successful run ended 27.0 h ago, more than 26 h ago"),
    # Up for longer than 26 h and never a run.
    (27 * HOUR, None, False, "unhealthy: no successful run in the 26 h since the container "
                             "started"),
])
def test_health_follows_the_last_run_and_the_start(tmp_path, started_ago, metrics, healthy,
                                                    says):
    status, out = check(tmp_path, started_ago, metrics)
    assert (status, out.count("\n")) == (0 if healthy else 1, 1)
    assert out.startswith(says), out


def test_max_age_comes_from_status_max_age_hours(tmp_path):
    metrics = (30 * HOUR, 1, 30 * HOUR)
    assert check(tmp_path, 40 * HOUR, metrics)[0] == 1
    assert check(tmp_path, 40 * HOUR, metrics, STATUS_MAX_AGE_HOURS="36")[0] == 0
    assert check(tmp_path, 40 * HOUR, metrics, STATUS_MAX_AGE_HOURS="29.5")[0] == 1
    assert check(tmp_path, 40 * HOUR, metrics, STATUS_MAX_AGE_HOURS="soon") == (
        1, "unhealthy: STATUS_MAX_AGE_HOURS='soon' is not a number of hours\n")


def test_a_one_off_command_container_is_healthy(tmp_path):
    assert check(tmp_path, None, None) == (
        0, "healthy: no schedule in this container (a one-off command); nothing to check\n")


def test_the_entrypoint_records_when_cron_starts():
    text = ENTRYPOINT.read_text()
    assert 'date +%s >"$ENV_DIR/started"' in text  # ENV_DIR=/run/ingestor
    assert text.index("/started") < text.index("exec cron -f")


def test_the_image_runs_the_check():
    dockerfile = (INGEST_DIR / "Dockerfile").read_text()
    assert 'CMD ["/app/healthcheck.sh"]' in dockerfile and "ingest/healthcheck.sh" in dockerfile
    assert HEALTHCHECK.stat().st_mode & 0o111
    assert HEALTHCHECK.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(HEALTHCHECK)], check=False).returncode == 0
