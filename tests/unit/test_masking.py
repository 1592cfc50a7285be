"""masking.py: every form of a password libpq accepts is masked, and nothing else is."""

from __future__ import annotations

import json
import logging

import pytest

from wearables_ingest.masking import (
    MaskingFilter,
    known_passwords,
    mask,
    mask_all,
    passwords_in,
)
from wearables_ingest.settings import load

SECRET = "hunter2-abc"


@pytest.mark.parametrize("dsn, masked", [
    ("postgresql://u:hunter2-abc@h:1/db", "postgresql://u:***@h:1/db"),
    ("postgres://u:hunter2-abc@h1:1,h2:2/db", "postgres://u:***@h1:1,h2:2/db"),
    ("postgresql://u:hun%40ter2@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@host:1/db?password=hunter2-abc", "postgresql://u@host:1/db?password=***"),
    ("postgresql://u@h/db?sslmode=require&password=hunter2-abc&connect_timeout=3",
     "postgresql://u@h/db?sslmode=require&password=***&connect_timeout=3"),
    ("host=h port=1 password=hunter2-abc dbname=db", "host=h port=1 password=*** dbname=db"),
    ("host=h password = hunter2-abc", "host=h password = ***"),
    ("host=h password='hunter2 abc \\' x' dbname=db", "host=h password=*** dbname=db"),
    ("host=h password=hun\\ ter2 dbname=db", "host=h password=*** dbname=db"),
    ("PGPASSWORD=hunter2-abc psql", "PGPASSWORD=*** psql"),
])
def test_each_libpq_form_of_a_password_is_masked(dsn, masked):
    assert mask(dsn) == masked


@pytest.mark.parametrize("text", [
    "postgresql://u@h:1/db", "postgresql://h:5432/db", "host=h port=1 user=u dbname=db",
    "cannot connect to u@127.0.0.1:1/x: connection refused", "",
])
def test_text_without_a_password_is_left_alone(text):
    assert mask(text) == text


@pytest.mark.parametrize("dsn, password", [
    ("postgresql://u:hun%40ter2@h/db", "hun@ter2"),
    ("postgresql://u@h/db?password=a%20b", "a b"),
    ("host=h password='it\\'s secret' dbname=d", "it's secret"),
    ("host=h password=back\\\\slash", "back\\slash"),
])
def test_passwords_are_read_as_libpq_reads_them(dsn, password):
    assert passwords_in(dsn) == {password}


def test_known_passwords_are_masked_anywhere_also_percent_encoded():
    text = 'invalid value "p@ss w0rd" and p%40ss%20w0rd'
    assert mask(text, {"p@ss w0rd"}) == 'invalid value "***" and ***'


def test_known_passwords_include_pgpassword_from_the_environment():
    assert known_passwords({"dsn": "host=h"}, {"PGPASSWORD": SECRET}) == {SECRET}
    assert known_passwords({"host": "h", "password": SECRET}, {}) == {SECRET}
    assert known_passwords({"dsn": "postgresql://u:a@h/d?password=b"}, {}) == {"a", "b"}


@pytest.mark.parametrize("url", [
    f"postgresql://u@host:1/db?password={SECRET}",
    f"host=127.0.0.1 port=1 password={SECRET}",
    f"host=127.0.0.1 port=1 password='{SECRET}'",
    f"postgresql://u:{SECRET}@host:1/db",
])
def test_the_settings_target_never_shows_the_password(url):
    cfg = load({"DATABASE_URL": url, "PGPASSWORD": "other-pw"}, dotenv=None)
    assert SECRET not in cfg.target()
    assert "***" in cfg.target()


def test_json_values_are_masked_before_encoding():
    value = {"error": f'at host=h password="{SECRET}", x', "errors": [f"pw {SECRET}"], "n": 1}
    text = json.dumps(mask_all(value, {SECRET}))
    assert SECRET not in text
    assert json.loads(text)["n"] == 1 and json.loads(text)["errors"] == ["pw ***"]


def test_the_log_filter_masks_each_line():
    masking = MaskingFilter()
    masking.known = {SECRET}
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "cannot connect to %s: %s",
                               ("host=h password=abc", f"bad {SECRET}"), None)
    assert masking.filter(record)
    # Unquoted, a value runs to the next white space, as libpq reads it: the colon goes too.
    assert record.getMessage() == "cannot connect to host=h password=*** bad ***"


@pytest.mark.parametrize("text", [
    "cannot connect to postgresql://u@h:1/db?password=***: connection refused",
    "cannot connect to host=h port=1 password=***: connection refused",
    "cannot connect to postgresql://u:***@h:1/db: connection refused",
])
def test_masking_twice_changes_nothing(text):
    assert mask(text) == text
