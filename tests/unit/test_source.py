"""Reading the source files: discovery, blocks and positions, validation with file and line."""

from __future__ import annotations

import numpy as np
import pytest

from wearables_ingest.blocks import Position, Reject, read_blocks, tail_hash
from wearables_ingest.discovery import discover
from wearables_ingest.errors import ConfigError, SourceError
from wearables_ingest.parse import Chunk, hours_of, newer_than, parse_block


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def read_both(path, block_bytes=40, source_tz="UTC") -> tuple[Chunk, list[Reject]]:
    """Every row of the file parsed row by row, read in small blocks; and the rejects."""
    parsed = [parse_block(b, source_tz) for b in read_blocks(path, block_bytes=block_bytes)]
    chunks = [c for c, _ in parsed]
    chunk = Chunk(np.concatenate([c.ts for c in chunks]) if chunks else np.array([], "M8[us]"),
                  np.concatenate([c.values for c in chunks]) if chunks else np.array([]))
    return chunk, [r for _, rejects in parsed for r in rejects]


def read_all(path, block_bytes=40) -> Chunk:
    chunk, rejects = read_both(path, block_bytes)
    assert rejects == []
    return chunk


def us(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


def test_discover_flat_folder_sorted_by_metric(tmp_path):
    for name in ("spo2.csv", "hr.csv", "notes.txt"):
        write(tmp_path / name, "ts,value\n")
    files, problems = discover(tmp_path, participant_id=4)
    assert [(f.participant, f.metric, f.label) for f in files] == [(4, "hr", "hr"),
                                                                   (4, "spo2", "spo2")]
    assert problems == []


def test_discover_participant_folders(tmp_path):
    write(tmp_path / "participant_010" / "hr.csv", "ts,value\n")
    write(tmp_path / "participant_002" / "br.csv", "ts,value\n")
    files, _ = discover(tmp_path)
    assert [(f.participant, f.label) for f in files] == [(2, "participant_002/br"),
                                                         (10, "participant_010/hr")]


def test_a_participant_folder_is_its_number_and_one_participant_keeps_the_seeds_labels(
        tmp_path):
    write(tmp_path / "participant_007" / "hr.csv", "ts,value\n")
    for data_dir in (tmp_path, tmp_path / "participant_007"):
        files, _ = discover(data_dir)
        assert [(f.participant, f.label) for f in files] == [(7, "hr")]


@pytest.mark.parametrize("data_dir", [".", "participant_007"])
def test_a_participant_id_that_disagrees_with_the_folder_is_refused(tmp_path, data_dir):
    write(tmp_path / "participant_007" / "hr.csv", "ts,value\n")
    with pytest.raises(ConfigError, match=r"PARTICIPANT_ID=1 disagrees with .*participant_007, "
                                          r"which is participant 7; nothing was loaded"):
        discover(tmp_path / data_dir, participant_id=1)
    assert discover(tmp_path / data_dir, participant_id=7)[0][0].participant == 7


def test_a_folder_without_a_number_needs_participant_id(tmp_path):
    write(tmp_path / "export" / "hr.csv", "ts,value\n")
    with pytest.raises(ConfigError, match="carries no participant number; name it "
                                          "participant_NNN, or set PARTICIPANT_ID"):
        discover(tmp_path / "export")
    (tmp_path / "empty").mkdir()
    assert discover(tmp_path / "empty") == ([], [])  # nothing to load, nothing to name


@pytest.mark.parametrize("name", ["HR.csv", "hr;drop.csv", ".hidden.csv", "2hr.csv", "h r.csv"])
def test_file_names_that_are_not_metric_names_are_reported_not_loaded(tmp_path, name):
    write(tmp_path / name, "ts,value\n")
    write(tmp_path / "hr.csv", "ts,value\n")
    files, problems = discover(tmp_path, participant_id=1)
    assert [f.metric for f in files] == ["hr"]
    assert len(problems) == 1 and str(problems[0]).startswith(f"{tmp_path / name}: ")


def test_discover_missing_folder_and_mixed_layouts_are_errors(tmp_path):
    with pytest.raises(SourceError, match="data folder not found"):
        discover(tmp_path / "nope", 1)
    write(tmp_path / "participant_001" / "hr.csv", "ts,value\n")
    write(tmp_path / "hr.csv", "ts,value\n")
    with pytest.raises(SourceError, match="both participant_NNN folders and CSV files"):
        discover(tmp_path, 1)


def test_reads_timestamps_as_utc_and_empty_values_as_missing(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n"
                 "2024-01-01T00:00:00+00:00,61\n"
                 "2024-01-01T02:00:01+02:00,62.5\n"  # same instant as 00:00:01 UTC
                 "2024-01-01T00:00:02+00:00,\n")
    chunk = read_all(path)
    assert chunk.ts.tolist() == [us("2024-01-01T00:00:00"), us("2024-01-01T00:00:01"),
                                 us("2024-01-01T00:00:02")]
    assert chunk.values[:2].tolist() == [61.0, 62.5] and np.isnan(chunk.values[2])


def test_byte_order_mark_crlf_and_blank_lines_are_accepted(tmp_path):
    path = write(tmp_path / "hr.csv", b"\xef\xbb\xbfts,value\r\n2024-01-01T00:00:00+00:00,1\r\n"
                                      b"\r\n\n2024-01-01T00:00:01+00:00,2\r\n")
    assert read_all(path).values.tolist() == [1.0, 2.0]


def test_header_only_file_has_no_rows(tmp_path):
    assert len(read_all(write(tmp_path / "hr.csv", "ts,value\n"))) == 0


NOT_HEADER = ":1: the first line is not the header 'ts,value'; is it a metric file?"


@pytest.mark.parametrize("content, message", [
    ("", ": empty file (expected the header 'ts,value')"),
    ("time,value\n2024-01-01T00:00:00Z,1\n", NOT_HEADER),
    ("2024-01-01T00:00:00Z,1\n", NOT_HEADER),  # the line is not quoted: it could be anything
    ("ts,value,unit\n", NOT_HEADER),
])
def test_bad_header_names_the_file(tmp_path, content, message):
    path = write(tmp_path / "hr.csv", content)
    with pytest.raises(SourceError) as e:
        read_all(path)
    assert str(e.value) == f"{path}{message}"


GOOD = "2024-01-01T00:00:00+00:00,1\n"


@pytest.mark.parametrize("bad_line, reason", [
    ("2024-01-01T00:00:09+00:00,abc", "value 'abc' is not a finite number"),
    ("2024-01-01T00:00:09+00:00,nan", "value 'nan' is not a finite number"),
    ("2024-01-01T00:00:09+00:00,inf", "value 'inf' is not a finite number"),
    ("yesterday,5", "timestamp 'yesterday' is not ISO 8601"),
    ("2024-02-30T00:00:00+00:00,5", "timestamp '2024-02-30T00:00:00+00:00' is not ISO 8601"),
    ("2024-01-01T00:00:09+00:00,5,6", "3 fields, expected 2"),
])
def test_bad_row_is_rejected_with_its_line_and_the_good_rows_kept(tmp_path, bad_line, reason):
    # Lines 2-4 good, a blank line 5, the bad row on line 6, in a later block than the first.
    path = write(tmp_path / "hr.csv", "ts,value\n" + GOOD * 3 + "\n" + bad_line + "\n" + GOOD)
    chunk, rejects = read_both(path)
    assert rejects == [Reject(6, reason, bad_line.encode())]
    assert chunk.values.tolist() == [1.0] * 4


def test_bytes_that_are_not_utf8_reject_their_row(tmp_path):
    path = write(tmp_path / "hr.csv",
                 b"ts,value\n2024-01-01T00:00:00+00:00,1\xff\n" + GOOD.encode())
    chunk, rejects = read_both(path)
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "not UTF-8 text (invalid start byte at byte 27)")]
    assert rejects[0].raw == b"2024-01-01T00:00:00+00:00,1\xff" and len(chunk) == 1


def test_quoted_fields_are_read_as_csv(tmp_path):
    path = write(tmp_path / "hr.csv", 'ts,value\n"2024-01-01T00:00:00Z","61"\n')
    assert read_all(path).values.tolist() == [61.0]


def test_newer_than_keeps_rows_strictly_after_the_mark_in_any_order():
    chunk = Chunk(np.array([us("2024-01-02"), us("2024-01-01"), us("2024-01-03")]),
                  np.array([2.0, 1.0, 3.0]))
    assert newer_than(chunk, None) is chunk
    later = newer_than(chunk, us("2024-01-02"))
    assert later.ts.tolist() == [us("2024-01-03")] and later.values.tolist() == [3.0]
    assert len(newer_than(chunk, us("2024-01-03"))) == 0


def test_blocks_hold_whole_lines_and_positions_add_up(tmp_path):
    rows = [f"2024-01-01T00:00:{s:02d}+00:00,{s}\n" for s in range(10)]
    path = write(tmp_path / "hr.csv", "ts,value\n" + "".join(rows))
    blocks = list(read_blocks(path, block_bytes=64))
    assert len(blocks) > 3
    assert b"".join(b.data for b in blocks).decode() == "".join(rows)
    assert all(b.data.endswith(b"\n") for b in blocks)
    assert blocks[0].first_line == 2
    for before, after in zip(blocks, blocks[1:], strict=False):
        assert after.first_line == before.end.line == before.first_line + before.rows
    assert blocks[-1].end == Position(path.stat().st_size, 12)


def test_reading_resumes_at_a_position_without_the_header(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-01-01T00:00:00Z,1\n")
    end = list(read_blocks(path))[-1].end
    with path.open("a") as f:
        f.write("2024-01-01T00:00:01Z,2\n2023-12-31T00:00:00Z,3\n")  # a late row too
    resumed = list(read_blocks(path, end))
    assert [b.data for b in resumed] == [b"2024-01-01T00:00:01Z,2\n2023-12-31T00:00:00Z,3\n"]
    assert resumed[0].first_line == 3 and resumed[-1].end.line == 5
    assert list(read_blocks(path, resumed[-1].end)) == []  # nothing new: nothing read


def test_last_line_without_line_ending_is_read(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,2")
    assert read_all(path).values.tolist() == [1.0, 2.0]
    assert list(read_blocks(path))[-1].end.offset == path.stat().st_size


def test_plain_blocks_are_recognised_and_anything_else_is_not(tmp_path):
    plain = ("2024-01-01T00:00:00+00:00,61\n2024-01-01 00:00:01Z,-1.5e3\n"
             "2024-01-01T00:00:02.250,\n2024-01-01T05:30:03.123456Z, .5\n")
    path = write(tmp_path / "hr.csv", "ts,value\n" + plain)
    (block,) = read_blocks(path)
    assert block.is_plain()
    assert block.plain_span() == (us("2024-01-01T00:00:00"), us("2024-01-01T05:30:03.123456"))
    # What the server would read differently from the row-by-row parser never passes:
    # words, other orders, 7 fractional digits (rounded there), :60 and 24:00 (the next
    # minute or day there), a space in the timestamp (naive there), other offsets.
    for odd in ("yesterday,1", "now,1", "2024-01-01T00:00:00Z,nan", "2024-01-01T00:00:00Z,inf",
                "2024-01-01T00:00:00Z,Infinity", "01-02-2024 00:00:00,1", "", " ,1",
                "2024-01-01T25:00:00Z,1", "2024-01-01,1", '"2024-01-01T00:00:00Z",1',
                "2024-01-01T00:00:00Z,1\r2024-01-01T00:00:01Z,2",
                "2024-01-01T00:00:00.1234567Z,1", "2024-01-01T00:00:60Z,1",
                "2024-01-01T24:00:00Z,1", "2024-01-01T00:00:01 ,1", "2024-01-01T00:00:01 Z,1",
                "2024-01-01T00:00:03-0530,1", "2024-01-01T00:00:03+01:00,1",
                "2024-01-01T00:00:03.Z,1", "2024-01-01T00:00,1", "2024-01-01T00:00:00Z,1,2"):
        path = write(tmp_path / "odd.csv", f"ts,value\n{plain}{odd}\n")
        assert not any(b.is_plain() for b in read_blocks(path)), odd


@pytest.mark.parametrize("tail", ["\n2024-01-01T00:00:02Z,3\n", ""])
def test_a_line_longer_than_the_limit_is_rejected_without_reading_it_whole(tmp_path,
                                                                          monkeypatch, tail):
    from wearables_ingest import blocks
    monkeypatch.setattr(blocks, "MAX_LINE_BYTES", 100)
    long_line = "2024-01-01T00:00:01Z," + "9" * 500
    path = write(tmp_path / "hr.csv", "ts,value\n2024-01-01T00:00:00Z,1\n" + long_line + tail)
    chunk, rejects = read_both(path, block_bytes=32)
    assert [(r.line, r.reason) for r in rejects] == [(3, "line longer than 100 bytes")]
    raw = rejects[0].raw  # the start of it, for the rejects file
    assert long_line.encode().startswith(raw) and 100 < len(raw) <= 200
    assert chunk.values.tolist() == ([1.0, 3.0] if tail else [1.0])
    assert list(read_blocks(path, block_bytes=32))[-1].end.offset == path.stat().st_size


def test_tail_hash_changes_when_the_bytes_before_the_position_change(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-01-01T00:00:00Z,1\n")
    size = path.stat().st_size
    before = tail_hash(path, size)
    with path.open("a") as f:
        f.write("2024-01-01T00:00:01Z,2\n")
    assert tail_hash(path, size) == before  # appending leaves the read part alone
    write(path, "ts,value\n2024-01-01T00:00:00Z,7\n")  # same size, other content
    assert tail_hash(path, size) != before


BERLIN = "Europe/Berlin"  # CEST (+02:00) until 2024-10-27 03:00, then CET (+01:00)


def test_offset_less_times_are_read_in_the_source_time_zone(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-07-01T12:00:00,1\n"
                                      "2024-07-01T12:00:01+00:00,2\n2024-12-01 12:00:00,3\n")
    chunk, rejects = read_both(path, source_tz=BERLIN)
    assert rejects == []
    assert chunk.ts.tolist() == [us("2024-07-01T10:00:00"), us("2024-07-01T12:00:01"),
                                 us("2024-12-01T11:00:00")]


def test_the_repeated_autumn_hour_keeps_both_passes_in_file_order(tmp_path):
    rows = ["2024-10-27T01:30:00", "2024-10-27T02:00:00", "2024-10-27T02:30:00",  # summer
            "2024-10-27T02:00:00", "2024-10-27T02:30:00", "2024-10-27T03:00:00"]  # winter
    path = write(tmp_path / "hr.csv", "ts,value\n" + "".join(f"{t},{i}\n" for i, t in
                                                            enumerate(rows)))
    chunk, rejects = read_both(path, block_bytes=1 << 20, source_tz=BERLIN)
    assert rejects == []
    assert chunk.ts.tolist() == [us("2024-10-26T23:30"), us("2024-10-27T00:00"),
                                 us("2024-10-27T00:30"), us("2024-10-27T01:00"),
                                 us("2024-10-27T01:30"), us("2024-10-27T02:00")]


def test_an_ambiguous_time_the_order_cannot_place_is_rejected(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-10-27T01:59:00,1\n"
                                      "2024-10-27T02:30:00,2\n2024-10-27T03:30:00,3\n")
    chunk, rejects = read_both(path, block_bytes=1 << 20, source_tz=BERLIN)
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "local time '2024-10-27T02:30:00' happens twice in Europe/Berlin (DST change) and "
            "the order of rows does not show which")]
    assert chunk.values.tolist() == [1.0, 3.0]


def test_a_time_in_the_spring_gap_is_rejected_never_shifted(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-03-31T01:59:00,1\n"
                                      "2024-03-31T02:30:00,2\n2024-03-31T03:00:00,3\n")
    chunk, rejects = read_both(path, source_tz=BERLIN)
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "local time '2024-03-31T02:30:00' does not exist in Europe/Berlin (DST change)")]
    assert chunk.ts.tolist() == [us("2024-03-31T00:59"), us("2024-03-31T01:00")]


def test_offset_less_blocks_are_not_plain_unless_the_source_is_utc(tmp_path):
    path = write(tmp_path / "hr.csv", "ts,value\n2024-07-01T12:00:00,1\n")
    (block,) = read_blocks(path)
    assert block.is_plain() and not block.is_plain(naive_ok=False)
    path = write(tmp_path / "hr.csv", "ts,value\n2024-07-01T12:00:00Z,1\n")
    (block,) = read_blocks(path)
    assert block.is_plain(naive_ok=False)


@pytest.mark.parametrize("text, naive_ok", [
    ("2024-01-01T00:00:00+00:00,1\n2024-01-01T00:59:59.5Z,2\n2024-01-01T01:00:00+00:00,3\n"
     "2024-01-01T00:30:00Z,4\n2023-12-31T23:59:59Z,5\n", False),
    ("2024-01-01 00:10:00,1\n2024-01-01T00:20:00+00:00,2\n2024-01-01T07:00:00,3\n", True),
])
def test_hours_read_off_a_plain_blocks_bytes_equal_the_parsed_hours(tmp_path, text, naive_ok):
    (block,) = read_blocks(write(tmp_path / "hr.csv", "ts,value\n" + text))
    assert block.is_plain() and block.utc_hours(naive_ok) == hours_of(parse_block(block)[0].ts)


@pytest.mark.parametrize("line", ["2024-01-01T02:00:00+02:00,1", "2024-01-01T00:00:00-00:00,1",
                                  "2024-02-30T00:00:00+00:00,1", "2024-01-01T00:00:00,1"])
def test_hours_of_other_offsets_or_impossible_dates_are_left_to_the_parse(tmp_path, line):
    # (other offsets are not plain at all: only UTC's forms go to the server unparsed)
    (block,) = read_blocks(write(tmp_path / "hr.csv", f"ts,value\n{line}\n"))
    assert block.utc_hours(naive_ok=False) is None
