"""Settings: defaults, the .env file, the environment, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from wearables_ingest.errors import ConfigError
from wearables_ingest.settings import load

REPO = Path(__file__).resolve().parent.parent


def test_defaults_match_the_container_layout(tmp_path):
    cfg = load({}, dotenv=tmp_path / "absent.env")
    assert cfg.data_dir == Path("/data")
    assert cfg.checkpoint_file == Path("/checkpoint/last_run.json")
    assert cfg.participant_id is None  # unset: folders name their participants
    assert cfg.connect_args == {"host": "localhost", "port": "5432", "user": "postgres",
                                "dbname": "wearables"}
    assert cfg.target() == "postgres@localhost:5432/wearables"


def test_environment_wins_over_dotenv_which_wins_over_defaults(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PGHOST=db\nPGPASSWORD=from-file\nPARTICIPANT_ID=3\n")
    cfg = load({"PGHOST": "10.0.0.9", "DATA_DIR": "/srv/csv"}, dotenv=dotenv)
    assert cfg.connect_args["host"] == "10.0.0.9"
    assert cfg.connect_args["password"] == "from-file"
    assert cfg.participant_id == 3 and cfg.data_dir == Path("/srv/csv")
    assert "from-file" not in repr(cfg) and "from-file" not in cfg.target()


def test_database_url_replaces_the_pg_settings_and_is_shown_masked(tmp_path):
    cfg = load({"DATABASE_URL": "postgresql://u:pw@h:6543/d", "PGHOST": "ignored"},
               dotenv=None)
    assert cfg.connect_args == {"dsn": "postgresql://u:pw@h:6543/d"}
    assert cfg.target() == "postgresql://u:***@h:6543/d"



@pytest.mark.parametrize("name, value", [("PARTICIPANT_ID", "one"), ("PARTICIPANT_ID", "0"),
                                         ("PGPORT", "54x"), ("INGEST_BATCH_ROWS", "-5")])
def test_bad_numbers_are_config_errors_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=f"^{name}="):
        load({name: value}, dotenv=None)


def test_pushgateway_url_is_off_by_default_and_takes_http_urls_or_host_port():
    assert load({}, dotenv=None).pushgateway_url is None
    assert load({}, dotenv=None).stale_after_hours == 48
    for url in ("http://pushgateway:9091", "https://gw.example.org/prefix", "gw:9091"):
        assert load({"PUSHGATEWAY_URL": f" {url} "}, dotenv=None).pushgateway_url == url
    assert load({"STALE_AFTER_HOURS": "72"}, dotenv=None).stale_after_hours == 72


@pytest.mark.parametrize("env, message", [
    ({"PUSHGATEWAY_URL": "ftp://gw:9091"}, "PUSHGATEWAY_URL='ftp://gw:9091' is not an http(s)"),
    ({"PUSHGATEWAY_URL": "ftp://u:secret@gw"}, "PUSHGATEWAY_URL='ftp://u:***@gw' is not"),
    ({"STALE_AFTER_HOURS": "0"}, "STALE_AFTER_HOURS='0' must be more than 0"),
    ({"STALE_AFTER_HOURS": "two days"}, "STALE_AFTER_HOURS='two days' is not a number of hours"),
])
def test_bad_prometheus_settings_are_config_errors_without_the_password(env, message):
    with pytest.raises(ConfigError) as e:
        load(env, dotenv=None)
    assert str(e.value).startswith(message)
    assert "secret" not in str(e.value)
