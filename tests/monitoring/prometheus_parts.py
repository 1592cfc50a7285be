"""Debian's prometheus-pushgateway and prometheus, started on free loopback ports for a test.

Both run as children of the test, with every state in its tmp_path, and stop at the
end whatever happens. scripts/ensure-stack-tools.sh (run by ``make test``) installs
the packages.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "alerts.yml"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 30.0


def binary(name: str, package: str) -> str:
    path = shutil.which(name, path=SYSTEM_PATH)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's {package} "
                    "(scripts/ensure-stack-tools.sh; make test runs it)", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
        return response.read().decode()


def wait_until(check: Callable[[], object], timeout: float, what: str):
    """Call ``check`` until it returns something true (bounded); return that."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
        except (OSError, ValueError, KeyError) as e:  # not up yet, or not there yet
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(0.25)


@contextmanager
def running(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen]:
    """Start a server, wait until ``ready_url`` answers; stop it at the end, even on failure."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{args[0]} exited {proc.returncode}:\n{log.read_text()}")
            return bool(get(ready_url, timeout=2))
        wait_until(ready, START_TIMEOUT, f"{args[0]} ready at {ready_url}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class Gateway:
    def __init__(self, url: str):
        self.url = url

    def samples(self, job: str = "wearables_ingest") -> dict[str, float]:
        """The gateway's samples of ``job``: 'name{label="v",...}' (job, instance left out)."""
        found = {}
        for family in text_string_to_metric_families(get(f"{self.url}/metrics")):
            for s in family.samples:
                if s.labels.get("job") != job:
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items()
                                  if k not in ("job", "instance"))
                found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return found


@contextmanager
def pushgateway(tmp_path: Path) -> Iterator[Gateway]:
    port = free_port()
    args = [binary("prometheus-pushgateway", "prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with running(args, tmp_path / "pushgateway.log", f"{url}/-/ready"):
        yield Gateway(url)


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = json.loads(get(f"{self.url}/api/v1/{path}{query}"))
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, promql: str) -> dict[str, float]:
        """An instant query's vector: 'labels' (job and instance left out) -> value."""
        result = self.api("query", query=promql)["result"]
        return {",".join(f'{k}="{v}"' for k, v in sorted(r["metric"].items())
                         if k not in ("job", "instance", "__name__")): float(r["value"][1])
                for r in result}


@contextmanager
def prometheus(tmp_path: Path, gateway: Gateway) -> Iterator[Prometheus]:
    """Prometheus scraping ``gateway`` every second, with monitoring/alerts.yml loaded."""
    port = free_port()
    target = urllib.parse.urlsplit(gateway.url).netloc
    config = tmp_path / "prometheus.yml"
    # The stack's scrape job (monitoring/prometheus.yml), faster and on loopback.
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        "  - job_name: pushgateway\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n")
    args = [binary("prometheus", "prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with running(args, tmp_path / "prometheus.log", f"{url}/-/ready"):
        yield Prometheus(url)
