"""Every setting of the loader, read from the environment and an optional ``.env`` file.

Variables already set in the environment win over the ``.env`` file. The
connection uses libpq's standard names (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE), or one DATABASE_URL that replaces them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from wearables_ingest.errors import ConfigError
from wearables_ingest.masking import mask

# name -> (default, meaning): the one list of settings. .env.example and
# docs/settings.md document the same names; a test keeps them in step.
SETTINGS: dict[str, tuple[str, str]] = {
    "PGHOST": ("localhost", "database host"),
    "PGPORT": ("5432", "database port"),
    "PGUSER": ("postgres", "database user"),
    "PGPASSWORD": ("", "database password"),
    "PGDATABASE": ("wearables", "database name"),
    "DATABASE_URL": ("", "one libpq connection URL instead of the PG* settings"),
    "DATA_DIR": ("/data", "folder of metric CSV files, or of participant_NNN folders"),
    "CHECKPOINT_FILE": ("/checkpoint/last_run.json", "where the checkpoint is kept"),
    "REJECTS_MAX_MB": ("10", "size of rejects.csv at which it moves to rejects.csv.1 "
                             "(replacing the one before)"),
    "PARTICIPANT_ID": ("", "participant of a data folder whose name carries no number "
                           "(a participant_NNN folder is participant NNN)"),
    "INGEST_METHOD": ("copy", "how rows are written: copy (fast) or values (INSERT ... VALUES)"),
    "INGEST_BATCH_ROWS": ("10000", "rows per INSERT statement of the values method"),
    "SOURCE_TZ": ("UTC", "time zone of timestamps written without a UTC offset"),
    "INGEST_SETTLE_SECONDS": ("300", "a file's last line without a line end is loaded only once "
                                     "the file has not changed for this many seconds"),
    "INGEST_RETRIES": ("3", "reconnect attempts when the database is unreachable or drops"),
    "INGEST_RETRY_DELAY": ("2", "seconds before the first reconnect; doubles each time"),
    "INGEST_TRIGGER": ("manual", "what started the run, for ingest_runs: manual or cron"),
    "LOG_LEVEL": ("INFO", "least important log lines shown: DEBUG, INFO, WARNING or ERROR"),
    "COMPRESS_AFTER_DAYS": ("7", "days after which a chunk of raw_data is compressed (the full "
                                 "TimescaleDB only)"),
    # `status` and the container's health check.
    "STATUS_EXPECTED_ROWS": ("", "rows a day per metric for status, e.g. hr=86400,azm=1440 "
                                 "(empty: the table metric_expected)"),
    "STATUS_COMPLETE_PCT": ("95", "a day is complete at this percentage of its expected rows"),
    "STATUS_TZ": ("UTC", "time zone of status's days"),
    "STATUS_MAX_AGE_HOURS": ("26", "hours after which the last successful run is too old"),
    # Prometheus: the push at the end of a run, and the alerts' thresholds it carries.
    "PUSHGATEWAY_URL": ("", "Pushgateway to push the run's metrics to, e.g. "
                            "http://pushgateway:9091 (empty: no push)"),
    "STALE_AFTER_HOURS": ("48", "hours without a new row after which a participant's metric "
                                "is stale (the alert WearablesIngestNoNewRows)"),
}
TRIGGERS = ("manual", "cron")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
METHODS = ("copy", "values")
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")  # as discovery.py names a metric file


@dataclass(frozen=True)
class Config:
    data_dir: Path
    checkpoint_file: Path
    participant_id: int | None  # None: unset (folders name their participants)
    batch_rows: int
    method: str
    source_tz: str
    retries: int
    retry_delay: float
    trigger: str
    log_level: str
    settle_s: float  # INGEST_SETTLE_SECONDS
    # Keyword arguments for psycopg2.connect (dsn=... or host=..., port=..., ...).
    connect_args: dict[str, str] = field(repr=False)
    # status: metric -> rows a day (None: the database's metric_expected decides).
    status_expected_rows: dict[str, int] | None = None
    status_complete_pct: float = 95.0
    status_tz: str = "UTC"
    status_max_age_hours: float = 26.0
    pushgateway_url: str | None = None  # None: no push
    stale_after_hours: float = 48.0
    rejects_max_bytes: int = 10_000_000
    compress_after_days: int = 7

    @property
    def rejects_file(self) -> Path:
        """Rows that could not be loaded, beside the checkpoint."""
        return self.checkpoint_file.parent / "rejects.csv"

    @property
    def metrics_file(self) -> Path:
        """The last run's figures in Prometheus' text format, beside the checkpoint."""
        return self.checkpoint_file.parent / "wearables_ingest.prom"

    def target(self) -> str:
        """Where the loader connects, for messages: never includes the password."""
        if "dsn" in self.connect_args:
            return mask(self.connect_args["dsn"])
        a = self.connect_args
        return f"{a.get('user', '')}@{a.get('host', '')}:{a.get('port', '')}/{a.get('dbname', '')}"


def _whole(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = env[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _positive_int(env: Mapping[str, str], name: str) -> int:
    return _whole(env, name, minimum=1)


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env[name].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 3600 seconds")
    return value


def _time_zone(raw: str, setting: str = "SOURCE_TZ") -> str:
    name = raw.strip()
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{setting}={raw!r} is not a time zone name such as "
                          "Europe/Berlin") from None
    return name


def _number(env: Mapping[str, str], name: str, low: float, high: float, unit: str) -> float:
    """A number with ``low < value <= high``."""
    raw = env[name].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of {unit}") from None
    if not low < value <= high:
        raise ConfigError(f"{name}={raw!r} must be more than {low:g} and at most {high:g} {unit}")
    return value


def parse_expected_rows(raw: str, name: str = "STATUS_EXPECTED_ROWS") -> dict[str, int] | None:
    """``hr=86400,azm=1440`` -> {"hr": 86400, "azm": 1440}; empty -> None."""
    if not raw.strip():
        return None
    counts: dict[str, int] = {}
    for item in raw.split(","):
        metric, sep, count = (part.strip() for part in item.partition("="))
        if not sep or not METRIC_NAME.fullmatch(metric):
            raise ConfigError(f"{name}={raw!r}: {item.strip()!r} is not metric=rows "
                              "(e.g. hr=86400,azm=1440)")
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise ConfigError(f"{name}={raw!r}: {metric}'s rows a day, {count!r}, "
                              "is not a whole number of at least 1")
        if metric in counts:
            raise ConfigError(f"{name}={raw!r} names {metric} twice")
        counts[metric] = int(count)
    return counts


def _gateway_url(raw: str) -> str | None:
    """An http(s) URL, or host:port (prometheus-client then adds http://); empty: None."""
    url = raw.strip()
    if not url:
        return None
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in ("", "http", "https") or url.endswith("://"):
        raise ConfigError(f"PUSHGATEWAY_URL={mask(url)!r} is not an http(s) URL such as "
                          "http://pushgateway:9091")
    return url


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], norm) -> str:
    value = norm(env[name].strip())
    if value not in choices:
        raise ConfigError(f"{name}={env[name]!r} is not one of {', '.join(choices)}")
    return value


def load(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Config:
    """Read the settings: defaults, then the ``.env`` file, then the environment."""
    env = {name: default for name, (default, _) in SETTINGS.items()}
    if dotenv is not None and dotenv.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    _positive_int(env, "PGPORT")
    if env["DATABASE_URL"].strip():
        connect_args = {"dsn": env["DATABASE_URL"].strip()}
    else:
        pairs = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER",
                 "password": "PGPASSWORD", "dbname": "PGDATABASE"}
        # An empty setting is left out, so libpq applies its own default.
        connect_args = {arg: env[name] for arg, name in pairs.items() if env[name]}
    return Config(
        data_dir=Path(env["DATA_DIR"]),
        checkpoint_file=Path(env["CHECKPOINT_FILE"]),
        participant_id=(_positive_int(env, "PARTICIPANT_ID") if env["PARTICIPANT_ID"].strip()
                        else None),
        batch_rows=_positive_int(env, "INGEST_BATCH_ROWS"),
        method=_choice(env, "INGEST_METHOD", METHODS, str.lower),
        source_tz=_time_zone(env["SOURCE_TZ"]),
        retries=_whole(env, "INGEST_RETRIES", minimum=0),
        retry_delay=_seconds(env, "INGEST_RETRY_DELAY"),
        trigger=_choice(env, "INGEST_TRIGGER", TRIGGERS, str.lower),
        log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, str.upper),
        settle_s=_whole(env, "INGEST_SETTLE_SECONDS", minimum=0),
        connect_args=connect_args,
        status_expected_rows=parse_expected_rows(env["STATUS_EXPECTED_ROWS"]),
        status_complete_pct=_number(env, "STATUS_COMPLETE_PCT", 0, 100, "percent"),
        status_tz=_time_zone(env["STATUS_TZ"], "STATUS_TZ"),
        status_max_age_hours=_number(env, "STATUS_MAX_AGE_HOURS", 0, 24 * 366, "hours"),
        pushgateway_url=_gateway_url(env["PUSHGATEWAY_URL"]),
        stale_after_hours=_number(env, "STALE_AFTER_HOURS", 0, 24 * 366, "hours"),
        rejects_max_bytes=round(_number(env, "REJECTS_MAX_MB", 0, 1_000_000, "megabytes")
                                * 1_000_000),
        compress_after_days=_positive_int(env, "COMPRESS_AFTER_DAYS"),
    )
