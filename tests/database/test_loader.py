"""One file's load on a real TimescaleDB: resuming, rescanning, and both write methods."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers import open_database, query
from wearables_ingest import checkpoint
from wearables_ingest.blocks import Reject, tail_hash
from wearables_ingest.database import ensure_schema
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import SourceError
from wearables_ingest.loader import Options, load_file
from wearables_ingest.plan import plan
from wearables_ingest.writer import DIRECT

METHODS = ["copy", "values"]


@pytest.fixture
def conn(database_url):
    db = open_database(database_url)
    ensure_schema(db)
    yield db
    db.close()


def rows(*pairs: tuple[str, object]) -> str:
    return "".join(f"{ts},{'' if v is None else v}\n" for ts, v in pairs)


def hour(h: int, m: int = 0) -> str:
    return f"2024-01-01T{h:02d}:{m:02d}:00+00:00"


def make(tmp_path, text: str) -> SourceFile:
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n" + text)
    return SourceFile(1, "hr", path, "hr")


def append(source: SourceFile, text: str) -> None:
    with source.path.open("a") as f:
        f.write(text)


def stored(url: str) -> list[tuple]:
    return query(url, "SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI'), value FROM raw_data "
                      "ORDER BY ts")


def load_and_record(conn, source, cp, method):
    """What a run does for one file: load it, then record the checkpoint entry."""
    result = load_file(conn, source, cp.entry(1, "hr"), Options(method))
    cp.record(1, "hr", result.last_ts, result.end.offset, result.end.line,
              tail_hash(source.path, result.end.offset))
    return result


@pytest.mark.parametrize("method", METHODS)
def test_next_run_reads_only_what_was_appended_late_rows_included(tmp_path, conn, database_url,
                                                                  method):
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61)))
    cp = checkpoint.Checkpoint()
    first = load_and_record(conn, source, cp, method)
    assert (first.offered, first.inserted) == (2, 2)

    size = source.path.stat().st_size
    assert plan(source, cp.entry(1, "hr")).start.offset == size  # nothing new: nothing to read
    nothing = load_and_record(conn, source, cp, method)
    assert (nothing.offered, nothing.inserted, nothing.last_ts) == (0, 0, None)

    append(source, rows((hour(3), 62), (hour(0, 30), 59)))  # 00:30 synced late
    p = plan(source, cp.entry(1, "hr"))
    assert (p.start.offset, p.start.line, p.last_ts, p.rescanned) == (size, 4, None, False)
    more = load_and_record(conn, source, cp, method)
    assert (more.offered, more.inserted) == (2, 2)
    assert stored(database_url) == [("00:30", 59.0), ("01:00", 60.0), ("02:00", 61.0),
                                    ("03:00", 62.0)]
    assert cp.last_ts(1, "hr") == more.last_ts


@pytest.mark.parametrize("method", METHODS)
def test_rewritten_file_is_read_again_offering_the_hours_with_rows_missing(tmp_path, conn,
                                                                            database_url, method):
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61)))
    cp = checkpoint.Checkpoint()
    load_and_record(conn, source, cp, method)
    # An export tool rewrote the file: history changed (01:00 -> 99), a new row at 03:00.
    source.path.write_text("ts,value\n" + rows((hour(1), 99), (hour(2), 61), (hour(3), 62)))

    p = plan(source, cp.entry(1, "hr"))
    assert p.rescanned and p.start.offset == 0 and p.last_ts == cp.last_ts(1, "hr")
    result = load_and_record(conn, source, cp, method)
    # 01:00 and 02:00 hold no more rows than the coverage counts: left out, present.
    assert (result.offered, result.inserted, result.rescanned) == (3, 1, True)
    assert result.already_present == 2
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 61.0), ("03:00", 62.0)]


@pytest.mark.parametrize("method", METHODS)
def test_a_rewritten_file_with_rows_added_in_the_middle_loads_them(tmp_path, conn, database_url,
                                                                   method):
    source = make(tmp_path, rows((hour(1), 60), (hour(3), 62)))
    cp = checkpoint.Checkpoint()
    load_and_record(conn, source, cp, method)
    # Re-exported with an hour that had not synced before, in its place in time order.
    source.path.write_text("ts,value\n" + rows((hour(1), 60), (hour(2), 61), (hour(2, 30), 63),
                                               (hour(3), 62)))
    result = load_and_record(conn, source, cp, method)
    assert (result.offered, result.inserted) == (4, 2)
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 61.0), ("02:30", 63.0),
                                    ("03:00", 62.0)]
    assert query(database_url, "SELECT extract(hour FROM hour)::int, rows FROM ingest_coverage "
                               "ORDER BY 1") == [(1, 1), (2, 2), (3, 1)]


def test_a_light_reset_offers_only_hours_with_rows_missing_offsets_and_bad_rows_too(
        tmp_path, conn, database_url):
    # +01:00 offsets and a bad row: blocks that are parsed, not passed through as bytes.
    source = make(tmp_path, "2024-01-01T02:00:00+01:00,60\n2024-01-01T03:00:00+01:00,61\n"
                            "2024-01-01T03:30:00+01:00,x\n")
    first = load_file(conn, source, None, Options("copy"))
    assert (first.offered, first.inserted, len(first.rejects)) == (2, 2, 1)
    source.path.write_text("ts,value\n2024-01-01T02:00:00+01:00,60\n"
                           "2024-01-01T03:00:00+01:00,61\n2024-01-01T03:30:00+01:00,62\n")
    again = load_file(conn, source, None, Options("copy"))  # no entry: the light reset
    # 01:00 UTC holds no more rows than stored: left out; 02:00 UTC gained one.
    assert (again.offered, again.inserted, again.already_present) == (3, 1, 2)
    assert again.last_ts == np.datetime64("2024-01-01T02:30:00", "us")
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 61.0), ("02:30", 62.0)]
    full = load_file(conn, source, None, Options("copy", full=True))
    assert (full.offered, full.inserted) == (3, 0)


def test_truncated_file_is_read_again(tmp_path, conn):
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61)))
    cp = checkpoint.Checkpoint()
    load_and_record(conn, source, cp, "copy")
    source.path.write_text("ts,value\n" + rows((hour(1), 60)))
    assert plan(source, cp.entry(1, "hr")).rescanned


@pytest.mark.parametrize("method", METHODS)
def test_rows_already_present_and_repeated_rows_are_skipped_not_doubled(tmp_path, conn,
                                                                         database_url, method):
    with conn.transaction() as cur:
        cur.execute("INSERT INTO raw_data VALUES (%s, 1, 'hr', 1)", (hour(2),))
    # 01:00 is newer than nothing, so COPY starts straight into the table; the stored
    # 02:00 and the repeated 03:00 make it fail, and staging takes over.
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61), (hour(3), 62), (hour(3), 62)))
    result = load_file(conn, source, None, Options(method))
    assert (result.offered, result.inserted, result.already_present) == (4, 2, 2)
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 1.0), ("03:00", 62.0)]


@pytest.mark.parametrize("method", METHODS)
def test_empty_values_are_stored_as_null(tmp_path, conn, database_url, method):
    source = make(tmp_path, rows((hour(1), None), (hour(2), "61.5")))
    load_file(conn, source, None, Options(method))
    assert stored(database_url) == [("01:00", None), ("02:00", 61.5)]


def test_a_plain_looking_row_the_server_refuses_is_rejected_by_its_line(tmp_path, conn,
                                                                        database_url):
    # In the middle of a block, so only the server's COPY can notice it.
    source = make(tmp_path, rows((hour(1), 60)) + "2024-02-30T00:00:00+00:00,61\n"
                  + rows((hour(2), 62)))
    result = load_file(conn, source, None)
    assert [(r.line, r.reason) for r in result.rejects] == [
        (3, "timestamp '2024-02-30T00:00:00+00:00' is not ISO 8601")]
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 62.0)]


def test_out_of_order_rows_in_a_mostly_sorted_file_all_arrive(tmp_path, conn, database_url):
    source = make(tmp_path, rows((hour(5), 5), (hour(1), 1), (hour(3), 3)))
    result = load_file(conn, source, None)
    assert (result.offered, result.inserted) == (3, 3)
    assert [r[0] for r in stored(database_url)] == ["01:00", "03:00", "05:00"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad_line, reason", [
    ("2024-01-01T00:00:09+00:00,abc", "value 'abc' is not a finite number"),
    ("2024-01-01T00:00:09+00:00,NaN", "value 'NaN' is not a finite number"),
    ("2024-01-01T00:00:09+00:00,-Infinity", "value '-Infinity' is not a finite number"),
    ("now,5", "timestamp 'now' is not ISO 8601"),
    ("01-02-2024 00:00:00,5", "timestamp '01-02-2024 00:00:00' is not ISO 8601"),
    ("2024-01-01T00:00:09+00:00,5,6", "3 fields, expected 2"),  # plain bytes: the server objects
    ("2024-01-01T00:00:09+00:00,1.2.3", "value '1.2.3' is not a finite number"),
])
def test_bad_row_is_rejected_by_line_and_the_rest_loads_whichever_the_method(
        tmp_path, conn, database_url, method, bad_line, reason):
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61)) + bad_line + "\n"
                  + rows((hour(3), 62)))
    result = load_file(conn, source, None, Options(method))
    assert result.rejects == [Reject(4, reason, bad_line.encode())]
    assert (result.offered, result.inserted) == (3, 3)
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 61.0), ("03:00", 62.0)]


def test_a_file_of_mostly_bad_rows_fails_whole(tmp_path, conn, database_url, monkeypatch):
    from wearables_ingest import loader
    monkeypatch.setattr(loader, "MAX_REJECTS", 3)
    source = make(tmp_path, rows((hour(1), 60)) + "x,1\n" * 4)
    # The message names the line, never its content: it is stored in ingest_runs.
    with pytest.raises(SourceError, match=r"hr.csv: more than 3 bad rows \(the first on line "
                                          r"3\); is it a metric"):
        load_file(conn, source, None)
    assert stored(database_url) == []


@pytest.mark.parametrize("method", METHODS)
def test_offset_less_rows_land_in_utc_from_the_source_time_zone(tmp_path, conn, database_url,
                                                                method):
    source = make(tmp_path, "2024-07-01T03:00:00,1\n2024-07-01T04:00:00,2\n")
    load_file(conn, source, None, Options(method, source_tz="Europe/Berlin"))
    assert stored(database_url) == [("01:00", 1.0), ("02:00", 2.0)]


# Row-level problems a file can hold; each pair in one file must still load the rest.
# name -> (lines to add in the middle of the file, rows already stored before the load,
#          reject reasons expected, rows counted as already present)
PROBLEMS = {
    "duplicate line": ([f"{hour(2)},61"], [], [], 1),
    "row already stored": ([], [hour(3)], [], 1),
    "impossible date": (["2024-02-30T00:00:00+00:00,61"],
                        [], ["timestamp '2024-02-30T00:00:00+00:00' is not ISO 8601"], 0),
    "extra field": ([f"{hour(5)},5,6"], [], ["3 fields, expected 2"], 0),
    "bad value": ([f"{hour(6)},abc"], [], ["value 'abc' is not a finite number"], 0),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("first, second", list(itertools.combinations(PROBLEMS, 2)))
def test_two_row_problems_in_one_file_reject_the_bad_rows_and_load_the_rest(
        tmp_path, conn, database_url, method, first, second):
    added, stored_before, reasons, present = [], [], [], 0
    for name in (first, second):
        lines, rows_stored, why, already = PROBLEMS[name]
        added += lines
        stored_before += rows_stored
        reasons += why
        present += already
    for ts in stored_before:
        with conn.transaction() as cur:
            cur.execute("INSERT INTO raw_data VALUES (%s, 1, 'hr', 1)", (ts,))
    middle = "".join(f"{line}\n" for line in added)
    source = make(tmp_path, rows((hour(1), 60), (hour(2), 61)) + middle
                  + rows((hour(3), 62), (hour(4), 63)))

    result = load_file(conn, source, None, Options(method))

    assert sorted(r.reason for r in result.rejects) == sorted(reasons)
    assert (result.inserted, result.already_present) == (4 - len(stored_before), present)
    assert stored(database_url) == [("01:00", 60.0), ("02:00", 61.0),
                                    ("03:00", 1.0 if stored_before else 62.0), ("04:00", 63.0)]


# The nightly way sends rows in COPY's binary format: what is stored must be exactly
# what the server reads from the same text, whichever way a block went.
# Plain lines the binary reading takes (fractions, both separators and UTC's forms, a
# leap day, a minus zero, 15 digits), then blocks it leaves to the row-by-row parse: an
# exponent, a NULL, a space.
EXACT = ["2024-02-29T23:59:59.999999Z,0.1", "2024-03-01 00:00:00+00:00,-0",
         "2024-03-01T00:00:00.5,123456789012345", "2024-03-01T00:00:01.000001Z,-.5",
         "2024-03-01T00:00:02Z,5.", "2024-03-01T00:00:03Z,0.000000000000001",
         "2024-03-01T00:00:04Z,007", "2024-03-01T00:00:05Z,-98765.4321"]
PARSED = ["2024-03-01T00:00:06Z,1e3", "2024-03-01T00:00:07Z,", "2024-03-01T00:00:08Z, 2.5"]


@pytest.mark.parametrize("lines", [EXACT, EXACT + PARSED], ids=["binary reading", "parsed"])
def test_rows_sent_in_binary_are_what_the_server_reads_from_their_text(tmp_path, conn,
                                                                       database_url, lines):
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n" + "".join(f"{line}\n" for line in lines))
    result = load_file(conn, SourceFile(1, "hr", path, "hr"), None, Options("copy"))
    assert result.strategy == DIRECT.name and result.inserted == len(lines)
    stored = query(database_url, "SELECT ts, value::text FROM raw_data ORDER BY ts")
    # The server's own reading of each line's text, as the CSV COPY would have read it.
    server = query(database_url,
                   "SELECT split_part(l, ',', 1)::timestamptz, "
                   "nullif(trim(split_part(l, ',', 2)), '')::float8::text "
                   "FROM unnest(%s::text[]) AS l ORDER BY 1", (lines,))
    assert stored == server
