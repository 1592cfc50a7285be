"""Reading the source files: discovery, validation with file and line, the checkpoint filter."""

from __future__ import annotations

import numpy as np
import pytest
from source import Chunk, SourceError, discover, newer_than, read_chunks


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def read_all(path, rows_per_chunk=2) -> Chunk:
    chunks = list(read_chunks(path, rows_per_chunk))
    return Chunk(np.concatenate([c.ts for c in chunks]) if chunks else np.array([], "M8[us]"),
                 np.concatenate([c.values for c in chunks]) if chunks else np.array([]))


def us(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


def test_discover_flat_folder_sorted_by_metric(tmp_path):
    for name in ("spo2.csv", "hr.csv", "notes.txt"):
        write(tmp_path / name, "ts,value\n")
    files, problems = discover(tmp_path, participant=4)
    assert [(f.participant, f.metric, f.label) for f in files] == [(4, "hr", "hr"),
                                                                   (4, "spo2", "spo2")]
    assert problems == []


def test_discover_participant_folders(tmp_path):
    write(tmp_path / "participant_010" / "hr.csv", "ts,value\n")
    write(tmp_path / "participant_002" / "br.csv", "ts,value\n")
    files, _ = discover(tmp_path, participant=1)
    assert [(f.participant, f.label) for f in files] == [(2, "participant_002/br"),
                                                         (10, "participant_010/hr")]


@pytest.mark.parametrize("name", ["HR.csv", "hr;drop.csv", ".hidden.csv", "2hr.csv", "h r.csv"])
def test_file_names_that_are_not_metric_names_are_reported_not_loaded(tmp_path, name):
    write(tmp_path / name, "ts,value\n")
    write(tmp_path / "hr.csv", "ts,value\n")
    files, problems = discover(tmp_path, participant=1)
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


@pytest.mark.parametrize("content, message", [
    ("", ": empty file (expected the header 'ts,value')"),
    ("time,value\n2024-01-01T00:00:00Z,1\n", ":1: header is 'time,value', expected 'ts,value'"),
    ("2024-01-01T00:00:00Z,1\n", ":1: header is '2024-01-01T00:00:00Z,1', expected 'ts,value'"),
    ("ts,value,unit\n", ":1: header is 'ts,value,unit', expected 'ts,value'"),
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
def test_bad_row_is_reported_with_file_and_line(tmp_path, bad_line, reason):
    # Lines 2-4 good, a blank line 5, the bad row on line 6, in the third chunk of two rows.
    path = write(tmp_path / "hr.csv", "ts,value\n" + GOOD * 3 + "\n" + bad_line + "\n" + GOOD)
    with pytest.raises(SourceError) as e:
        read_all(path)
    assert str(e.value) == f"{path}:6: {reason}"


def test_bytes_that_are_not_utf8_are_a_file_error(tmp_path):
    path = write(tmp_path / "hr.csv", b"ts,value\n2024-01-01T00:00:00+00:00,1\xff\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        read_all(path)


def test_newer_than_keeps_rows_strictly_after_the_mark_in_any_order():
    chunk = Chunk(np.array([us("2024-01-02"), us("2024-01-01"), us("2024-01-03")]),
                  np.array([2.0, 1.0, 3.0]))
    assert newer_than(chunk, None) is chunk
    later = newer_than(chunk, us("2024-01-02"))
    assert later.ts.tolist() == [us("2024-01-03")] and later.values.tolist() == [3.0]
    assert len(newer_than(chunk, us("2024-01-03"))) == 0
