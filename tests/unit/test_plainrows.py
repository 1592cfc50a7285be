"""The binary COPY's reading of plain blocks: exactly the row-by-row parse, or nothing."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wearables_ingest import plainrows
from wearables_ingest.blocks import Block, Position
from wearables_ingest.copydata import BINARY_HEADER, COLUMNS, binary_rows
from wearables_ingest.parse import parse_block


def block(text: str) -> Block:
    data = text.encode()
    return Block(data, 2, Position(len(data), 2 + data.count(b"\n")))


def stamp(moment: datetime, digits: int, sep: str, suffix: str) -> str:
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + suffix


stamps = st.builds(stamp,
                   st.datetimes(datetime(1900, 1, 1), datetime(2200, 12, 31)),
                   st.integers(0, 6), st.sampled_from(["T", " "]),
                   st.sampled_from(["Z", "+00:00", ""]))
# What the fast reading takes: an optional minus, 1 to 15 digits, at most one point.
values = st.builds(lambda sign, whole, point, part: sign + whole + (point + part),
                   st.sampled_from(["", "-"]), st.text("0123456789", max_size=8),
                   st.sampled_from(["", "."]), st.text("0123456789", max_size=7)).filter(
    lambda v: any(c.isdigit() for c in v) and not (v.endswith(".") and "." in v[:-1]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(stamps, values), min_size=1, max_size=40))
def test_a_plain_blocks_binary_reading_equals_the_row_by_row_parse(rows):
    b = block("".join(f"{ts},{v}\n" for ts, v in rows))
    assert b.is_plain()
    ts, got = plainrows.read(b)
    want = parse_block(b)[0]
    assert ts.tolist() == want.ts.tolist()
    assert got.tolist() == want.values.tolist()
    # and bit for bit what strtod reads (PostgreSQL's float8in), the sign of a zero included
    exact = np.array([float(v) for _, v in rows])
    assert got.view(np.int64).tolist() == exact.view(np.int64).tolist()


@pytest.mark.parametrize("value", ["", " 5", "5 ", "1e3", "1E-2", "+5", "1234567890123456",
                                   "0.0000000000000001", "1.2.3", "-", ".", "5-"])
def test_values_outside_the_exact_shape_are_left_to_the_parse(value):
    b = block(f"2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,{value}\n")
    if b.is_plain():  # (some are not even plain; those are parsed anyway)
        assert plainrows.read(b) is None


@pytest.mark.parametrize("day", ["2023-02-29", "2024-04-31", "2024-13-01", "2024-00-10",
                                 "2024-01-00", "0000-01-01"])
def test_dates_that_do_not_exist_are_left_to_the_parse(day):
    b = block(f"2024-01-01T00:00:00Z,1\n{day}T00:00:00Z,2\n")
    assert b.is_plain() and plainrows.read(b) is None


def test_a_leap_day_and_the_turn_of_centuries_are_read(tmp_path):
    days = ["2000-02-29", "2024-02-29", "1900-03-01", "2100-02-28", "1970-01-01", "1969-12-31"]
    b = block("".join(f"{d}T23:59:59.999999Z,1\n" for d in days))
    ts, _ = plainrows.read(b)
    assert ts.tolist() == [datetime.fromisoformat(d) + timedelta(hours=23, minutes=59,
                                                                 seconds=59, microseconds=999999)
                           for d in days]


def test_binary_rows_follow_copys_binary_format():
    ts = np.array(["2000-01-01T00:00:01", "1999-12-31T23:59:59.5"], dtype="datetime64[us]")
    data = binary_rows(ts, np.array([1.5, np.nan]), 7, "hr")
    assert BINARY_HEADER == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    # the row with a value, then the NULL one: count, then (length, bytes) per field
    first = struct.pack(">hiqidiiii", len(COLUMNS), 8, 1_000_000, 8, 1.5, 4, 7, 2, 0)[:-4]
    assert data.startswith(first + b"hr")
    second = data[len(first) + 2:]
    assert second == struct.pack(">hiqiiii", 4, 8, -500_000, -1, 4, 7, 2) + b"hr"
