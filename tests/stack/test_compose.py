"""docker-compose.yml, rendered and checked by the real `docker compose config`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stack_helpers import (
    BASE_PATH,
    INGEST_PASSWORD,
    PASSWORD,
    run_seed_data,
    tree,
)

from helpers import INGEST, REPO, SEED_COUNTS, query, table_counts

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


def compose_config(env_file: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """`docker compose [OPTIONS] config` on the real file, with only env_file and **env as
    settings."""
    environ = {"PATH": os.environ.get("PATH", BASE_PATH), "HOME": str(Path.home()), **env}
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO),
         "-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file), *options,
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


def rendered(tmp_path: Path, *options: str, **changes: str | None) -> dict:
    result = compose_config(env_file(tmp_path, **changes), *options)
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
                                 "INGEST_DB_PASSWORD": INGEST_PASSWORD,
                                 "ANALYST_DB_PASSWORD": "",  # empty: no role analyst
                                 "COMPRESS_AFTER_DAYS": "7"}  # the compression policy's age
    assert by_target(db)["/var/lib/postgresql/data"]["source"] == "db-data"
    # The init script alone, read-only, beside the image's own init scripts.
    init = by_target(db)["/docker-entrypoint-initdb.d/10-wearables.sh"]
    assert (init["type"], init["source"], init["read_only"]) == \
        ("bind", str(REPO / "db" / "init" / "10-wearables.sh"), True)
    assert "/docker-entrypoint-initdb.d" not in by_target(db)
    for name in ("schema.sql", "storage.sql", "storage-apache.sql"):  # the script's defaults
        mount = by_target(db)[f"/opt/wearables-ingest/{name}"]
        assert (mount["source"], mount["read_only"]) == \
            (str(REPO / "ingest" / "wearables_ingest" / name), True)
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in db["ports"]] == \
        [("127.0.0.1", "5432", 5432)]
    # Over TCP: healthy only once the server proper runs, after the init script.
    assert "pg_isready -h 127.0.0.1 " in " ".join(db["healthcheck"]["test"])
    assert db["restart"] == "unless-stopped"

    ing = services["ingestor"]
    assert ing["build"]["context"] == str(REPO)  # the image installs the project
    assert ing["build"]["dockerfile"] == "ingest/Dockerfile"
    assert ing["depends_on"]["db"]["condition"] == "service_healthy"
    assert ing["depends_on"]["generator"]["condition"] == "service_completed_successfully"
    assert ing["restart"] == "unless-stopped"
    assert ing["init"] is True
    volumes = by_target(ing)
    assert volumes["/checkpoint"]["type"] == "volume"
    assert volumes["/checkpoint"]["source"] == "ingest-state"
    # The parent data folder, the repository's demo folder by default: every
    # participant_NNN folder in it is loaded, under its own number.
    assert volumes["/data"]["type"] == "bind"
    assert volumes["/data"]["source"] == str(REPO / "data")
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
    assert e["PARTICIPANT_ID"] == ""  # unset: the folders' numbers name the participants
    assert e["COMPRESS_AFTER_DAYS"] == "7"  # the same as the db's: the loader checks the policy

    gen = services["generator"]
    assert gen["image"] == ing["image"] and gen["build"] == ing["build"]
    assert gen["command"] == ["/app/seed-data.sh"]
    assert by_target(gen)["/data"]["source"] == str(REPO / "data")
    assert not by_target(gen)["/data"].get("read_only")
    assert gen["restart"] == "no"
    # root, to write into a data folder Docker created; no password at all; and the
    # folder the ingestor loads, which the generator compares with its own.
    assert gen["environment"] == {"INGEST_RUN_AS": "root", "HOST_DATA_DIR": "./data"}
    assert set(config["volumes"]) == {"db-data", "ingest-state"}


def test_the_monitoring_profile_adds_a_pushgateway_and_a_prometheus_on_loopback(tmp_path):
    """`--profile monitoring`: two services more, pinned images, the rules mounted, the port
    on 127.0.0.1 only; the other services exactly as without the profile."""
    settings = {"POSTGRES_PASSWORD": PASSWORD, "INGEST_DB_PASSWORD": INGEST_PASSWORD}
    default = rendered(tmp_path, **settings)
    config = rendered(tmp_path, "--profile", "monitoring", PROMETHEUS_PORT="19090", **settings)
    services = config["services"]
    assert set(services) == {"db", "generator", "ingestor", "pushgateway", "prometheus"}
    assert {name: services[name] for name in default["services"]} == default["services"]
    assert config["volumes"] == default["volumes"]

    gateway, prom = services["pushgateway"], services["prometheus"]
    assert re.fullmatch(r"prom/pushgateway:v\d+\.\d+\.\d+", gateway["image"])
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prom["image"])
    assert "ports" not in gateway  # reached by the ingestor and Prometheus only
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in prom["ports"]] == \
        [("127.0.0.1", "19090", 9090)]
    mounts = {v["target"]: (v["source"], v.get("read_only")) for v in prom["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == \
        (str(REPO / "monitoring" / "prometheus.yml"), True)
    assert mounts["/etc/prometheus/rules/wearables-ingest.yml"] == \
        (str(REPO / "monitoring" / "alerts.yml"), True)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    # The stack's Prometheus scrapes the profile's gateway, keeping the pushed job label.
    scrape = (REPO / "monitoring" / "prometheus.yml").read_text()
    assert '"pushgateway:9091"' in scrape and "honor_labels: true" in scrape
    assert "/etc/prometheus/rules/*.yml" in scrape
    # The ingestor pushes only where PUSHGATEWAY_URL says (empty by default: nowhere).
    assert default["services"]["ingestor"]["environment"]["PUSHGATEWAY_URL"] == ""
    pushing = rendered(tmp_path, PUSHGATEWAY_URL="http://pushgateway:9091", **settings)
    assert pushing["services"]["ingestor"]["environment"]["PUSHGATEWAY_URL"] == \
        "http://pushgateway:9091"


def test_compose_settings_come_from_env(tmp_path):
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                      DB_PORT="15432",
                      HOST_DATA_DIR="../my-study", PARTICIPANT_ID="7",
                      INGEST_SCHEDULE="30 2 * * 1-5", TZ="Europe/Berlin")
    db, ing = config["services"]["db"], config["services"]["ingestor"]
    assert [(p["host_ip"], str(p["published"])) for p in db["ports"]] == \
        [("127.0.0.1", "15432")]
    assert by_target(ing)["/data"]["source"] == str(REPO.parent / "my-study")
    assert ing["environment"]["PARTICIPANT_ID"] == "7"
    assert ing["environment"]["INGEST_SCHEDULE"] == "30 2 * * 1-5"
    assert ing["environment"]["TZ"] == "Europe/Berlin"


# --- the demo-data rule ----------------------------------------------------------------------
# Synthetic data goes only into the repository's own demo folder, ./data, and only when
# HOST_DATA_DIR is that folder (the default). test_generator.py runs the script itself.

ELSEWHERE = ["../my-study", "/srv/study", "./dat", "./data/participant_001"]


def data_mounts(config: dict) -> dict[str, dict]:
    """Each service's bind mounts of folders on this machine, by service."""
    return {name: {v["target"]: v for v in service.get("volumes", []) if v["type"] == "bind"
                   and not v["target"].startswith(("/docker-entrypoint-initdb.d", "/opt/"))}
            for name, service in config["services"].items()}


@pytest.mark.parametrize("host_data_dir", [None, "", "./data", *ELSEWHERE])
def test_only_the_generator_writes_and_only_into_the_demo_folder(tmp_path, host_data_dir):
    """Whatever HOST_DATA_DIR says (removed from .env, empty, the default, elsewhere): the
    generator's one folder is the repository's ./data; the ingestor reads HOST_DATA_DIR's,
    read-only; and no other service mounts a data folder."""
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                      HOST_DATA_DIR=host_data_dir)
    mounts = data_mounts(config)
    loaded = str((REPO / (host_data_dir or "./data")).resolve())
    assert {t: (v["source"], bool(v.get("read_only"))) for t, v in mounts["generator"].items()} \
        == {"/data": (str(REPO / "data"), False)}
    assert {t: (v["source"], bool(v.get("read_only"))) for t, v in mounts["ingestor"].items()} \
        == {"/data": (loaded, True)}
    assert mounts["db"] == {}
    gen = config["services"]["generator"]
    assert gen["environment"]["HOST_DATA_DIR"] == (host_data_dir or "./data")


def test_host_data_dir_from_the_shell_reaches_both_services(tmp_path):
    """A variable set in the shell wins over .env: the generator sees the same value as
    the ingestor's mount, so it cannot generate into the demo folder while the ingestor
    loads another one."""
    result = compose_config(env_file(tmp_path, POSTGRES_PASSWORD=PASSWORD,
                                     INGEST_DB_PASSWORD=INGEST_PASSWORD),
                            HOST_DATA_DIR="../my-study")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert by_target(config["services"]["ingestor"])["/data"]["source"] == \
        str(REPO.parent / "my-study")
    generator = config["services"]["generator"]
    assert by_target(generator)["/data"]["source"] == str(REPO / "data")
    assert generator["environment"]["HOST_DATA_DIR"] == "../my-study"


@pytest.mark.parametrize("host_data_dir", [None, "./data", *ELSEWHERE])
def test_the_rendered_generator_makes_demo_data_only_for_the_default(tmp_path, host_data_dir):
    """The rendered generator service, run: its command and environment, with an empty
    folder for its /data. Demo data with the default; nothing anywhere otherwise."""
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD,
                      HOST_DATA_DIR=host_data_dir)
    gen = config["services"]["generator"]
    assert gen["command"] == ["/app/seed-data.sh"]
    env = {k: v for k, v in gen["environment"].items() if k != "INGEST_RUN_AS"}
    data = tmp_path / "data"
    data.mkdir()
    result = run_seed_data(data, "--days", "1", cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    if host_data_dir in (None, "./data"):
        assert [p for p in tree(data) if p.count("/") == 0] == ["participant_001"]
    else:
        assert "not generating demo data" in result.stdout
        assert tree(data) == []


@pytest.mark.slow
def test_the_quick_start_path_ends_with_the_seeds_rows(tmp_path, database_url):
    """The quick start without containers: .env.example plus the passwords, the rendered
    generator into an empty ./data, then the manual run with the rendered ingestor's
    settings (no PARTICIPANT_ID) on that folder as its /data. The seed's six lines and
    2,661,756 rows, all of them participant 1's."""
    config = rendered(tmp_path, POSTGRES_PASSWORD=PASSWORD, INGEST_DB_PASSWORD=INGEST_PASSWORD)
    gen, ing = config["services"]["generator"], config["services"]["ingestor"]
    data = tmp_path / "data"
    data.mkdir()
    made = run_seed_data(data, cwd=tmp_path, **{k: v for k, v in gen["environment"].items()
                                                if k != "INGEST_RUN_AS"})
    assert made.returncode == 0, made.stderr

    env = {k: v for k, v in ing["environment"].items() if not k.startswith("PG")}
    assert env["PARTICIPANT_ID"] == ""
    env.update(PATH=os.environ.get("PATH", BASE_PATH), DATABASE_URL=database_url,
               DATA_DIR=str(data), CHECKPOINT_FILE=str(tmp_path / "state" / "last_run.json"))
    run = subprocess.run([sys.executable, str(INGEST)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[:6] == [f"Ingested {n:,} rows → {metric}" for metric, n in SEED_COUNTS.items()]
    assert lines[6].startswith("Total: 2,661,756 rows inserted, 0 already present")
    assert lines[-1] == "ingestion complete"
    assert table_counts(database_url) == SEED_COUNTS
    assert query(database_url, "SELECT DISTINCT participant FROM raw_data") == [(1,)]


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
        # Required, or (the analysts' role) optional and empty by default: never a default.
        assert (re.fullmatch(r"[A-Z_]+: \$\{([A-Z_]+):\?[^}$]*\}", line)
                or line == "ANALYST_DB_PASSWORD: ${ANALYST_DB_PASSWORD:-}"), line

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


def test_the_stack_reads_exactly_these_settings_from_env():
    """Each ${NAME} docker-compose.yml reads from .env (docs: tests/unit/test_docs.py)."""
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    assert used == {"POSTGRES_PASSWORD", "INGEST_DB_PASSWORD", "ANALYST_DB_PASSWORD",
                    "DB_PORT", "HOST_DATA_DIR",
                    "INGEST_SCHEDULE", "TZ", "PARTICIPANT_ID", "INGEST_METHOD",
                    "INGEST_BATCH_ROWS", "SOURCE_TZ", "INGEST_RETRIES", "INGEST_RETRY_DELAY",
                    "LOG_LEVEL", "INGEST_SETTLE_SECONDS", "REJECTS_MAX_MB", "COMPRESS_AFTER_DAYS",
                    "STATUS_MAX_AGE_HOURS", "PUSHGATEWAY_URL", "STALE_AFTER_HOURS",
                    "PROMETHEUS_PORT"}
