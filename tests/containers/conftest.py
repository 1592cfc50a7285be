"""A Docker engine of the tests' own, and the Compose stack on it, for test_compose_stack.py.

``docker_engine`` (session): Debian's dockerd (scripts/ensure-docker.sh installs
it; ``make test`` runs that), started by the tests and stopped at the end, even
when a test fails:

    dockerd --data-root CACHE/docker --exec-root TMP/exec --host unix://TMP/docker.sock
            --pidfile CACHE/dockerd.pid --iptables=false --ip6tables=false --bridge=none

CACHE (CONTAINER_TESTS_CACHE, default /var/cache/wearables-ingest) outlives the
run, so images are built once per machine; TMP is short (a socket path has a
length limit). Containers, networks and volumes left by an aborted run are
removed at the start. Then scripts/build-stand-ins.sh provides the two base
images: the real ones where ``docker pull`` works, stand-ins built here where
it does not. The summary at the end of the run says which. All this starts in
the background when collection ends (Preparation), and the container tests
run last, so a cold start overlaps the rest of the suite.

``Stack``: a fresh copy of the repository (the tracked files of the working
tree, as ``git ls-files`` lists them, with uncommitted changes; or of the commit
CONTAINER_TESTS_REF names) with a .env made from .env.example, driven with the
real ``docker compose`` on the unchanged docker-compose.yml plus
compose.test.yml (COMPOSE_FILE), which gives image builds the host's network.

The steps of test_compose_stack.py build on each other: after one fails, the
rest of its module is skipped (the failure is what the run reports).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OVERRIDE = HERE / "compose.test.yml"
BUILD_STAND_INS = REPO / "scripts" / "build-stand-ins.sh"
CACHE = Path(os.environ.get("CONTAINER_TESTS_CACHE", "/var/cache/wearables-ingest"))
# The monitoring profile's, at the tags docker-compose.yml pins (build-stand-ins.sh reads them
# there too).
MONITORING_IMAGES = tuple(re.findall(r"^\s*image:\s*(prom/\S+)",
                                     (REPO / "docker-compose.yml").read_text(), re.MULTILINE))
BASE_IMAGES = ("python:3.11-slim", "timescale/timescaledb:latest-pg15", *MONITORING_IMAGES)
STAND_IN_LABEL = "org.wearables-ingest.stand-in"
# Our dockerd's containerd namespace and containers' cgroup parent, one per
# cache: what an aborted run on this cache left running is found by it.
CACHE_ID = hashlib.sha256(os.fsencode(CACHE)).hexdigest()[:8]
ENGINE_TAG = f"wearables-ingest-tests-{CACHE_ID}"
# The daemon's socket and exec root: short, as a socket's path has a length limit.
RUN_DIR_PREFIX = f"wi-docker-{CACHE_ID}-"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Passed on to docker, docker compose and build-stand-ins.sh from the caller.
PASSED_ON = ("TMPDIR", "STAND_INS_PULL", "http_proxy", "https_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

# Lines for the end-of-run summary: which images the stack ran on.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("container tests")
        for line in REPORT:
            terminalreporter.write_line(line)


# --- Steps that build on each other ---------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.get_closest_marker("containers") is not None:
        item.module.__dict__.setdefault("_failed_step", item.name)
    return report


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("containers") is None:
        return
    failed = getattr(item.module, "_failed_step", None)
    if failed is not None:
        pytest.skip(f"the earlier step {failed} failed; the next ones build on it")


# --- The Docker engine ----------------------------------------------------------------------

def _fail(message: str) -> None:
    # Under `make test` the container tests must fail, never skip, when Docker cannot run.
    pytest.fail(message, pytrace=False)


def _docker_cli(env: dict[str, str]) -> str:
    """A docker CLI on PATH with the Compose v2 plugin."""
    docker = shutil.which("docker", path=env["PATH"])
    if docker is None:
        _fail("no docker CLI on PATH; install the docker.io package (scripts/ensure-docker.sh)")
    ok = subprocess.run([docker, "compose", "version"], env=env, capture_output=True,
                        text=True, check=False)
    if ok.returncode != 0:
        _fail(f"`{docker} compose` does not work: run scripts/ensure-stack-tools.sh "
              f"(make test does): {ok.stderr.strip()}")
    return docker


def _stop_stale_daemon(pidfile: Path, data_root: Path) -> None:
    """A dockerd left on our data root by an aborted run (we hold the lock): stop it."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    if os.fsencode(str(data_root)) not in cmdline:
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _kill_leftover_containers() -> None:
    """Containers (and their containerd shims) of a dockerd of ours that was killed."""
    me = {os.getpid(), os.getppid()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in me:
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"/{ENGINE_TAG}/" in cgroup or ENGINE_TAG.encode() in cmdline.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@dataclass
class DockerEngine:
    env: dict[str, str]          # for docker and docker compose: DOCKER_HOST and the builder
    docker: str                  # the CLI
    images: dict[str, str] = field(default_factory=dict)   # base image -> "real" / "stand-in"
    build_output: str = ""       # build-stand-ins.sh's
    version: str = ""
    data_root: Path | None = None

    def run(self, *args: str, timeout: float = 120, check: bool = True) \
            -> subprocess.CompletedProcess:
        result = subprocess.run([self.docker, *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def lines(self, *args: str) -> list[str]:
        return [line for line in self.run(*args).stdout.splitlines() if line.strip()]


class Preparation:
    """dockerd and the base images, made ready in a thread of their own.

    It starts when collection ends (if a container test was selected), and the
    container tests run last, so on a cold machine debootstrap and the image
    builds overlap the rest of the suite instead of adding to it. ``stop`` ends
    it all, whatever state it is in: the session fixture's teardown calls it,
    and so does pytest_sessionfinish (a session that ends before the fixture).
    """

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.engine: DockerEngine | None = None
        self.error: BaseException | None = None
        self.started = 0.0
        self.ready = 0.0
        self.stopping = threading.Event()
        self.lock = None
        self.daemon: subprocess.Popen | None = None
        self.builder: subprocess.Popen | None = None
        self.run_dir: Path | None = None

    def start(self) -> None:
        if self.thread is None:
            self.started = time.monotonic()
            self.thread = threading.Thread(target=self._run, name="docker-engine", daemon=True)
            self.thread.start()

    def wait(self) -> DockerEngine:
        self.start()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.engine

    def stop(self) -> None:
        self.stopping.set()
        if self.builder is not None and self.builder.poll() is None:
            os.killpg(self.builder.pid, signal.SIGTERM)
        if self.thread is not None:
            self.thread.join(timeout=120)
        if self.daemon is not None:
            _stop_daemon(self.daemon)
            self.daemon = None
        if self.run_dir is not None:
            _unmount_below(self.run_dir)   # dockerd leaves its exec root's netns/default mounted
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()
            self.lock = None

    def _run(self) -> None:
        try:
            self.engine = self._prepare()
        except BaseException as e:   # pytest's Failed too: the fixture raises it again
            self.error = e
        self.ready = time.monotonic()

    def _prepare(self) -> DockerEngine:
        if os.geteuid() != 0:
            _fail("the container tests start their own dockerd and need root")
        dockerd = shutil.which("dockerd", path=SYSTEM_PATH)
        if dockerd is None:
            _fail("dockerd is not installed: run scripts/ensure-docker.sh (make test does)")

        CACHE.mkdir(parents=True, exist_ok=True)
        # One session at a time on the data root (a second `make test` waits here).
        self.lock = (CACHE / "dockerd.lock").open("w")
        deadline = time.monotonic() + 3600   # a whole `make test` of another session
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self.stopping.is_set():
                    _fail("the session ended while it waited for another one's dockerd")
                if time.monotonic() > deadline:
                    _fail(f"another test session has held {self.lock.name} for an hour")
                time.sleep(2)

        data_root = CACHE / "docker"
        pidfile = CACHE / "dockerd.pid"
        log_path = CACHE / "dockerd.log"
        # What an aborted run (pytest killed) left; we hold the lock, so none of it is in use.
        _stop_stale_daemon(pidfile, data_root)
        _kill_leftover_containers()
        for stale in Path("/tmp").glob(f"{RUN_DIR_PREFIX}*"):
            _unmount_below(stale)
            shutil.rmtree(stale, ignore_errors=True)
        # Container file systems, and the bind mount of the data root onto itself
        # that dockerd makes at its start and undoes only at a clean stop.
        _unmount_below(data_root)
        _unmount_self_bind(data_root)

        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir="/tmp"))
        sock = self.run_dir / "docker.sock"
        # docker, docker compose and build-stand-ins.sh get a small environment of
        # their own: a variable of the caller's (TZ, INGEST_SCHEDULE, a password)
        # would win over the stack's .env.
        env = {
            "PATH": f"{SYSTEM_PATH}:{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DOCKER_HOST": f"unix://{sock}",
            # The classic builder: `build: network: host` works without a default bridge.
            "DOCKER_BUILDKIT": "0",
            "COMPOSE_DOCKER_CLI_BUILD": "0",
            **{name: os.environ[name] for name in PASSED_ON if name in os.environ},
        }
        engine = DockerEngine(env=env, docker=_docker_cli(env))
        with log_path.open("w") as log:
            self.daemon = subprocess.Popen(
                [dockerd, "--data-root", str(data_root),
                 "--exec-root", str(self.run_dir / "exec"),
                 "--host", f"unix://{sock}", "--pidfile", str(pidfile),
                 "--iptables=false", "--ip6tables=false", "--bridge=none",
                 # Apart from the containers of a Docker engine the machine may run
                 # itself (a containerd of the system's, if there is one, is shared).
                 "--containerd-namespace", ENGINE_TAG, "--containerd-plugins-namespace",
                 f"{ENGINE_TAG}-plugins", "--cgroup-parent", f"/{ENGINE_TAG}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": env["PATH"]}, start_new_session=True)
        deadline = time.monotonic() + 60
        while engine.run("version", check=False, timeout=20).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                _fail(f"dockerd did not start (exit status {self.daemon.poll()}); "
                      f"the end of {log_path}:\n{_tail(log_path)}")
            time.sleep(0.5)

        # Whatever an aborted run left (restart policies would bring it back).
        containers = engine.lines("ps", "-aq")
        if containers:
            engine.run("rm", "-f", "-v", *containers)
        engine.run("network", "prune", "-f")
        engine.run("volume", "prune", "-f")
        # Untagged images: the layers of images since rebuilt. (The build cache of
        # the current wearables-ingest:local stays: that image is tagged.)
        engine.run("image", "prune", "-f")

        if self.stopping.is_set():
            _fail("the session ended")
        self.builder = subprocess.Popen(
            ["bash", str(BUILD_STAND_INS)], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        engine.build_output, _ = self.builder.communicate(timeout=1500)
        if self.builder.returncode != 0:
            _fail(f"scripts/build-stand-ins.sh failed:\n{engine.build_output}")
        for image in BASE_IMAGES:
            stand_in = engine.run("image", "inspect", "-f",
                                  f'{{{{ index .Config.Labels "{STAND_IN_LABEL}" }}}}',
                                  image).stdout.strip()
            engine.images[image] = "stand-in" if stand_in not in ("", "<no value>") else "real"
        engine.version = engine.run("version", "-f", "{{.Server.Version}}").stdout.strip()
        engine.data_root = data_root
        return engine


PREPARATION = Preparation()


def pytest_collection_modifyitems(items) -> None:
    """The container tests last: their engine gets ready while the others run."""
    items.sort(key=lambda item: item.get_closest_marker("containers") is not None)


def pytest_collection_finish(session) -> None:
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker("containers") for item in session.items):
        PREPARATION.start()


@pytest.hookimpl(trylast=True)   # after the fixtures' teardown (the stack's `down -v`)
def pytest_sessionfinish(session) -> None:
    PREPARATION.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """dockerd for this session on a cached data root, with the base images; stopped at the end."""
    waited = time.monotonic()
    try:
        engine = PREPARATION.wait()
        waited = time.monotonic() - waited
        print(engine.build_output, end="")
        REPORT.append(f"dockerd {engine.version} on {engine.data_root}: base images ready "
                      f"{PREPARATION.ready - PREPARATION.started:.0f} s after collection "
                      f"(the tests waited {waited:.0f} s for them)")
        for image, kind in engine.images.items():
            REPORT.append(
                f"{image}: the real image" if kind == "real" else
                f"{image}: a STAND-IN built here from Debian 12 (the real image could not be "
                f"pulled); see scripts/build-stand-ins.sh")
        print("\n".join(REPORT))
        yield engine
    finally:
        PREPARATION.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _unmount_below(folder: Path) -> None:
    prefix = f"{folder}/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", point], check=False, capture_output=True)


def _unmount_self_bind(folder: Path) -> None:
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[4] == str(folder) and fields[3] == str(folder):
                subprocess.run(["umount", str(folder)], check=False, capture_output=True)


def _stop_daemon(daemon: subprocess.Popen) -> None:
    """SIGTERM (dockerd stops its containers and its containerd), then wait for the exit."""
    if daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)


# --- The stack in a fresh copy of the repository --------------------------------------------

def copy_repository(dest: Path) -> str:
    """The tracked files, as a fresh clone would have them; returns what was copied."""
    ref = os.environ.get("CONTAINER_TESTS_REF")
    if ref:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref],
                                 capture_output=True, check=True)
        with tempfile.TemporaryFile() as tar:
            tar.write(archive.stdout)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as t:
                t.extractall(dest, filter="tar")
        return f"commit {ref} (CONTAINER_TESTS_REF)"
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if not src.exists() and not src.is_symlink():
            continue   # deleted in the working tree and not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, target)
    return "the working tree's tracked files (git ls-files)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """One Compose project, in a copy of the repository, on the session's engine."""

    def __init__(self, engine: DockerEngine, root: Path, settings: dict[str, str]):
        self.engine = engine
        self.root = root
        self.project = settings["COMPOSE_PROJECT_NAME"]
        self.settings = dict(settings)
        self.env = {**engine.env, "COMPOSE_FILE": f"docker-compose.yml:{OVERRIDE}",
                    "COMPOSE_PROGRESS": "plain"}
        self.write_env()

    # .env: .env.example with the settings' lines replaced (or added).
    def write_env(self, **changes: str) -> None:
        self.settings.update(changes)
        pending = dict(self.settings)
        lines = []
        for line in (self.root / ".env.example").read_text().splitlines():
            name = line.split("=", 1)[0]
            if "=" in line and not line.startswith("#") and name in pending:
                line = f"{name}={pending.pop(name)}"
            lines.append(line)
        lines += [f"{name}={value}" for name, value in pending.items()]
        (self.root / ".env").write_text("\n".join(lines) + "\n")

    def compose(self, *args: str, timeout: float = 300, check: bool = True) \
            -> subprocess.CompletedProcess:
        """`docker compose ARGS` in the copy, as a user types it; stdin is not a terminal."""
        result = subprocess.run([self.engine.docker, "compose", *args], cwd=self.root,
                                env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                                 f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}")
        return result

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.engine.docker, "compose", *args], cwd=self.root,
                                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, found {ids}"
        return ids[0]

    def state(self, service: str) -> dict:
        out = self.engine.run("inspect", "-f", "{{json .State}}", self.container(service))
        return json.loads(out.stdout)

    def wait_healthy(self, service: str = "db", timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(service)
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} is {health!r} after {timeout:.0f} s: {state}")
            time.sleep(1)

    def sql(self, query: str, user: str = "postgres", password: str | None = None) \
            -> list[tuple]:
        """QUERY's rows, over TCP from this machine: the published port, a password."""
        conn = psycopg2.connect(host="127.0.0.1", port=int(self.settings["DB_PORT"]),
                                user=user, dbname="wearables", connect_timeout=10,
                                password=(self.settings["POSTGRES_PASSWORD"]
                                          if password is None else password))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall()
        finally:
            conn.close()

    def psql(self, sql: str) -> str:
        """The seed's `docker compose exec db psql -U postgres -d wearables -c SQL`."""
        out = self.compose("exec", "db", "psql", "-U", "postgres", "-d", "wearables",
                           "-c", sql, timeout=60).stdout
        return out.replace("\r", "")

    def scalar(self, sql: str) -> str:
        out = self.compose("exec", "db", "psql", "-U", "postgres", "-d", "wearables",
                           "-XAtq", "-c", sql, timeout=60).stdout
        return out.replace("\r", "").strip()

    def counts(self) -> dict[str, int]:
        """The seed's counting query, its table parsed: metric -> rows."""
        out = self.psql("SELECT metric, COUNT(*) AS rows FROM raw_data "
                        "GROUP BY metric ORDER BY metric;")
        rows = re.findall(r"^\s*(\w+)\s*\|\s*(\d+)\s*$", out, flags=re.MULTILINE)
        return {metric: int(n) for metric, n in rows}

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, timeout=60).stdout.replace("\r", "")

    def down(self) -> None:
        # With the profile: its services' containers go too, if a step started them.
        self.compose("--profile", "monitoring", "down", "-v", "--remove-orphans",
                     "--timeout", "10", timeout=180, check=False)


@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine, tmp_path_factory, request) -> Iterator[Stack]:
    """The stack in a fresh copy of the repository; `down -v` at the end, whatever happened."""
    root = tmp_path_factory.mktemp("stack")
    source = copy_repository(root)
    REPORT.append(f"the stack ran from a fresh copy of {source}")
    project = f"wi-test-{uuid.uuid4().hex[:8]}"
    s = Stack(docker_engine, root, {
        "COMPOSE_PROJECT_NAME": project,
        "POSTGRES_PASSWORD": f"pg-{uuid.uuid4().hex}",
        "INGEST_DB_PASSWORD": f"ingest-{uuid.uuid4().hex}",
        "DB_PORT": str(free_port()),
    })
    try:
        yield s
    finally:
        if getattr(request.module, "_failed_step", None):
            print(s.compose("logs", "--no-color", "--tail", "80", timeout=60,
                            check=False).stdout)
        s.down()
        left = docker_engine.lines("ps", "-aq", "--filter",
                                   f"label=com.docker.compose.project={project}")
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"containers of {project} are left after down: {left}"
