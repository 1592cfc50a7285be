"""The read side for analysts: read_rows() and the README's query of the hourly view, on the
real database."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from helpers import REPO, execute, fresh_database, open_database, query, run_loader, synth
from wearables_ingest.database import ensure_schema
from wearables_ingest.read import read_rows
from wearables_ingest.settings import load


@pytest.fixture(scope="module")
def loaded(admin_url, tmp_path_factory) -> Iterator[str]:
    """Two participants' synthetic day, loaded; once for the module: the tests only read."""
    folder = tmp_path_factory.mktemp("read")
    data = folder / "data"
    for participant in (1, 2):
        synth(data / f"participant_00{participant}", "--days", "1")
    with fresh_database(admin_url) as database_url:
        assert run_loader(folder, database_url, DATA_DIR=str(data)).returncode == 0
        yield database_url


def test_read_rows_returns_exactly_the_stored_rows(loaded):
    frame = read_rows(loaded, 2, "hr", "2024-01-01T06:00:00Z", "2024-01-01T08:30:00Z")
    stored = query(loaded, "SELECT ts, value FROM raw_data WHERE participant = 2 AND "
                           "metric = 'hr' AND ts >= '2024-01-01T06:00Z' "
                           "AND ts < '2024-01-01T08:30Z' ORDER BY ts")
    assert len(frame) == len(stored) == 9_000
    assert list(frame.columns) == ["value"] and frame.index.name == "ts"
    assert str(frame.index.dtype) == "datetime64[us, UTC]" and frame.index.is_monotonic_increasing
    assert [(ts.to_pydatetime(), v) for ts, v in frame["value"].items()] == stored
    assert frame.index[0] == pd.Timestamp("2024-01-01T06:00:00Z")  # start included
    assert frame.index[-1] == pd.Timestamp("2024-01-01T08:29:59Z")  # end excluded


def test_read_rows_keeps_every_bit_of_odd_values_and_times(database_url):
    db = open_database(database_url)
    try:
        ensure_schema(db)
    finally:
        db.close()
    rows = [(datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), 0.1 + 0.2),
            (datetime(2024, 3, 1, 10, 0, 1, tzinfo=UTC), -1.7976931348623157e308),
            (datetime(2024, 3, 1, 10, 0, 2, tzinfo=UTC), 5e-324),
            (datetime(2024, 3, 1, 10, 0, 3, tzinfo=UTC), None)]
    for ts, value in rows:
        execute(database_url, "INSERT INTO raw_data VALUES (%s, 7, 'spo2', %s)", (ts, value))
    execute(database_url, "INSERT INTO raw_data VALUES ('2024-03-01T10:00:00.5Z', 7, 'hr', 1)")
    frame = read_rows(database_url, 7, "spo2", datetime(2024, 3, 1, 11, tzinfo=timezone(
        timedelta(hours=1))), "2024-03-02")  # 10:00 UTC, written in +01:00
    assert [ts.to_pydatetime() for ts in frame.index] == [ts for ts, _ in rows]
    values = frame["value"].tolist()
    assert values[:3] == [v for _, v in rows[:3]] and math.isnan(values[3])


def test_read_rows_takes_the_settings_and_times_without_a_zone_are_utc(loaded, tmp_path):
    cfg = load({"DATABASE_URL": loaded}, dotenv=None)
    frame = read_rows(cfg, 1, "azm", datetime(2024, 1, 1, 23), pd.Timestamp("2024-01-02"))
    assert len(frame) == 60 and frame.index[0] == pd.Timestamp("2024-01-01T23:00Z")
    empty = read_rows(loaded, 3, "azm", "2024-01-01", "2024-01-02")  # nobody's
    assert empty.empty and list(empty.columns) == ["value"]
    assert str(empty.index.dtype) == "datetime64[us, UTC]"
    with pytest.raises(ValueError, match="must be after start"):
        read_rows(loaded, 1, "hr", "2024-01-02", "2024-01-01")


def readme_view_query() -> str:
    """The README's hourly-mean query, as printed there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Reading the data", 1)[1].split("\n## ", 1)[0]
    [sql] = [block for block in re.findall(r"```sql\n(.*?)```", section, re.DOTALL)
             if "raw_data_1h" in block]
    return sql


def test_the_readmes_hourly_view_query_gives_the_hourly_mean_heart_rate(loaded):
    rows = query(loaded, readme_view_query().replace("%", "%%"))
    assert len(rows) == 24
    frame = read_rows(loaded, 1, "hr", "2024-01-01", "2024-01-02")
    hourly = frame["value"].resample("1h").mean()
    assert [r[0] for r in rows] == [ts.to_pydatetime() for ts in hourly.index]
    assert [r[1] for r in rows] == pytest.approx(hourly.tolist(), rel=1e-12)
    assert all(r[2] == 3_600 for r in rows)


def test_read_rows_at_a_resolution_gives_the_views_buckets(loaded):
    rows = read_rows(loaded, 2, "hr", "2024-01-01T06:00Z", "2024-01-01T08:00Z")
    for resolution, width, buckets in (("1m", "1min", 120), ("1h", "1h", 2)):
        frame = read_rows(loaded, 2, "hr", "2024-01-01T06:00Z", "2024-01-01T08:00Z",
                          resolution=resolution)
        expected = rows["value"].resample(width).agg(["count", "mean", "min", "max"])
        assert list(frame.columns) == ["samples", "mean", "min", "max"]
        assert frame.index.name == "bucket" and len(frame) == buckets
        assert frame.index.equals(expected.index.rename("bucket"))
        assert frame["samples"].tolist() == expected["count"].tolist()
        assert frame["mean"].tolist() == pytest.approx(expected["mean"].tolist(), rel=1e-12)
        assert frame["min"].tolist() == expected["min"].tolist()
        assert frame["max"].tolist() == expected["max"].tolist()
    daily = read_rows(loaded, 1, "azm", "2024-01-01", "2024-01-03", resolution="1d")
    assert daily["samples"].tolist() == [1_440]
    with pytest.raises(ValueError, match="not one of 1m, 1h, 1d"):
        read_rows(loaded, 1, "hr", "2024-01-01", "2024-01-02", resolution="5m")
