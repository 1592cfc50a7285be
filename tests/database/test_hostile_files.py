"""What a real sync folder holds: files still being written, replaced or deleted mid-run,
odd timestamps, odd folder names. Each case loads exactly, or fails alone with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import DATA, logged, query, table_counts
from wearables_ingest import loader, settings
from wearables_ingest.errors import ConfigError


def write(path: Path, text: str | bytes, age_s: float = 0) -> Path:
    """Write a file; ``age_s`` sets its modification time that far in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if age_s:
        then = path.stat().st_mtime - age_s
        os.utime(path, (then, then))
    return path


def stored(url: str, metric: str = "hr") -> list[tuple[str, float | None]]:
    """(ts as UTC text with microseconds, value) of one metric, in time order."""
    return [(ts, v) for ts, v in query(
        url, "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), value "
             "FROM raw_data WHERE metric = %s ORDER BY ts", (metric,))]


def coverage_agrees(url: str) -> bool:
    """The coverage holds count(*) for every participant, metric and UTC hour, and no more."""
    table = query(url, "SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*) "
                       "FROM raw_data GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    kept = query(url, "SELECT participant, metric, hour, rows FROM ingest_coverage "
                      "WHERE rows > 0 ORDER BY 1, 2, 3")
    return table == kept


def config(tmp_path: Path, url: str, **env: str) -> settings.Config:
    """The settings of a run in this process (to act on a file while the run reads it)."""
    return settings.load({"DATABASE_URL": url, "DATA_DIR": str(tmp_path / "data"),
                          "CHECKPOINT_FILE": str(tmp_path / "state" / "last_run.json"),
                          "INGEST_RETRIES": "0", **env}, dotenv=None)


def last_run(url: str) -> tuple[str, str | None]:
    return query(url, "SELECT status, error FROM ingest_runs ORDER BY run_id DESC LIMIT 1")[0]


# --- Case 1: only complete lines -----------------------------------------------------------

def test_a_half_written_last_line_waits_for_its_line_end(tmp_path, run_ingest, database_url):
    hr = write(tmp_path / DATA / "hr.csv",
               "ts,value\n2024-01-01T00:00:00+00:00,70\n2024-01-01T00:00:01+00:00,7")
    first = run_ingest()
    assert first.returncode == 0, first.stderr
    assert stored(database_url) == [("2024-01-01T00:00:00.000000", 70.0)]
    assert run_ingest("--verify").returncode == 0  # --verify reads as the run does
    with hr.open("a") as f:  # the writer finishes the line, and adds one
        f.write("2\n2024-01-01T00:00:02+00:00,73\n")
    second = run_ingest()
    assert second.returncode == 0, second.stderr
    assert stored(database_url) == [("2024-01-01T00:00:00.000000", 70.0),
                                    ("2024-01-01T00:00:01.000000", 72.0),
                                    ("2024-01-01T00:00:02.000000", 73.0)]
    assert not (tmp_path / "state" / "rejects.csv").exists()
    assert run_ingest("--verify").returncode == 0


def test_a_file_that_truly_ends_without_a_line_end_loads_its_last_row_once_settled(
        tmp_path, run_ingest, database_url):
    text = "ts,value\n2024-01-01T00:00:00Z,70\n2024-01-01T00:00:01Z,71"
    write(tmp_path / DATA / "hr.csv", text, age_s=3600)  # unchanged for an hour
    assert run_ingest().returncode == 0
    assert [v for _, v in stored(database_url)] == [70.0, 71.0]
    again = run_ingest()  # nothing new: the last row is not offered twice
    assert again.returncode == 0 and "Ingested 0 rows" in again.stdout
    assert run_ingest("--verify").returncode == 0


def test_the_settle_time_is_a_setting(tmp_path, run_ingest, database_url):
    write(tmp_path / DATA / "hr.csv", "ts,value\n2024-01-01T00:00:00Z,70")  # just written
    assert run_ingest(INGEST_SETTLE_SECONDS="0").returncode == 0
    assert [v for _, v in stored(database_url)] == [70.0]


# --- Case 2, 11, 12: one participant is one number ------------------------------------------

def test_two_folders_with_one_number_stop_the_run_before_writing(tmp_path, run_ingest,
                                                                 database_url):
    write(tmp_path / "data/participant_7/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")
    write(tmp_path / "data/participant_007/hr.csv", "ts,value\n2024-01-01T00:00:00Z,71\n")
    proc = run_ingest(DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 1
    assert logged(proc.stderr) == [
        f"ERROR {tmp_path}/data/participant_007 and {tmp_path}/data/participant_7 are both "
        "participant 7; nothing was loaded (rename one of them)"]
    assert query(database_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'raw_data'"
                 ) == [(0,)]  # nothing written, not even the schema


def test_checkpoint_keys_are_numbers_so_7_and_007_cannot_both_be_there(tmp_path):
    from wearables_ingest import checkpoint
    entry = {"hr": {"last_ts": "2024-01-01T00:00:00+00:00"}}
    with pytest.raises(ValueError, match="participant 7 has two entries"):
        checkpoint.from_json({"version": 1, "participants": {"7": entry, "007": entry}})
    with pytest.raises(ValueError, match="participant entry '١' is malformed"):
        checkpoint.from_json({"version": 1, "participants": {"١": entry}})


def test_a_participant_number_beyond_the_column_fails_that_folder_alone(
        tmp_path, run_ingest, database_url):
    big = write(tmp_path / "data/participant_99999999999/hr.csv",
                "ts,value\n2024-01-01T00:00:00Z,70\n").parent
    write(tmp_path / "data/participant_002/hr.csv", "ts,value\n2024-01-01T00:00:00Z,71\n")
    proc = run_ingest(DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 1
    assert logged(proc.stderr) == [
        f"ERROR {big}: participant number 99999999999 is out of range (at most "
        "2,147,483,647); folder not loaded",
        "ERROR ingestion incomplete: 1 file not loaded"]
    assert query(database_url, "SELECT participant, value FROM raw_data") == [(2, 71.0)]
    assert last_run(database_url)[0] == "partial"


def test_a_participant_id_beyond_the_column_stops_the_run(tmp_path):
    from wearables_ingest.discovery import discover
    write(tmp_path / "export/hr.csv", "ts,value\n")
    with pytest.raises(ConfigError, match="PARTICIPANT_ID=99999999999 is out of range"):
        discover(tmp_path / "export", participant_id=99_999_999_999)


def test_only_ascii_digits_name_a_participant(tmp_path, run_ingest, database_url):
    write(tmp_path / "data/participant_١/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")
    write(tmp_path / "data/participant_002/hr.csv", "ts,value\n2024-01-01T00:00:00Z,71\n")
    assert run_ingest(DATA_DIR=str(tmp_path / "data")).returncode == 0
    assert query(database_url, "SELECT participant, value FROM raw_data") == [(2, 71.0)]


# --- Cases 3, 5, 6, 8: one reading of a timestamp ----------------------------------------------

def test_seven_fractional_digits_are_rounded_once_and_stay_one_row(tmp_path, run_ingest,
                                                                   database_url):
    hr = write(tmp_path / DATA / "hr.csv", "ts,value\n2024-01-01T00:00:00.1234567Z,70\n"
                                           "2024-01-01T00:59:59.9999999Z,71\n")
    assert run_ingest().returncode == 0
    with hr.open("a") as f:
        f.write("2024-01-01T01:00:00.0000001Z,72\n")
    second = run_ingest()
    assert second.returncode == 0
    third = run_ingest()
    assert "database reset" not in second.stderr + third.stderr
    # Stored as the loader rounds it, so the hour 00:59:59.9999999 counts in is 01.
    assert stored(database_url) == [("2024-01-01T00:00:00.123457", 70.0),
                                    ("2024-01-01T01:00:00.000000", 71.0)]
    assert "1 already present" in second.stdout  # 01:00:00.0000001 is 01:00:00 again
    assert coverage_agrees(database_url)
    assert run_ingest("--verify").returncode == 0


def test_a_leap_second_is_rejected_and_never_overwrites_the_next_minute(
        tmp_path, run_ingest, database_url):
    write(tmp_path / DATA / "hr.csv", "ts,value\n2024-01-01T00:00:59Z,69\n"
                                      "2024-01-01T00:00:60Z,70\n2024-01-01T00:01:00Z,71\n")
    proc = run_ingest()
    assert proc.returncode == 0
    assert stored(database_url) == [("2024-01-01T00:00:59.000000", 69.0),
                                    ("2024-01-01T00:01:00.000000", 71.0)]
    rejects = (tmp_path / "state" / "rejects.csv").read_text()
    assert "timestamp '2024-01-01T00:00:60Z' is a leap second (:60)" in rejects
    assert coverage_agrees(database_url)


def test_a_naive_timestamp_among_offset_ones_is_placed_in_the_source_time_zone(
        tmp_path, run_ingest, database_url):
    write(tmp_path / DATA / "hr.csv", "ts,value\n2024-01-01T00:00:00+00:00,70\n"
                                      "2024-01-01T00:00:01 ,71\n2024-01-01T00:00:02Z,72\n")
    assert run_ingest(SOURCE_TZ="Europe/Berlin").returncode == 0
    assert stored(database_url) == [("2023-12-31T23:00:01.000000", 71.0),
                                    ("2024-01-01T00:00:00.000000", 70.0),
                                    ("2024-01-01T00:00:02.000000", 72.0)]
    assert coverage_agrees(database_url)
    assert run_ingest("--verify", SOURCE_TZ="Europe/Berlin").returncode == 0


@pytest.mark.parametrize("method", ["copy", "values"])
def test_every_writer_path_stores_the_instant_the_loader_counted(tmp_path, run_ingest,
                                                                 database_url, method):
    odd = ["2024-01-01T00:59:59.9999995Z", "2024-01-01 01:00:01", "2024-01-01T01:00:02.5+00:00",
           "2024-01-01T03:00:03+02:00", "2024-01-01T01:00:04.000000Z", "2024-01-01T01:00:05 "]
    write(tmp_path / DATA / "hr.csv", "ts,value\n" + "".join(f"{t},{i}\n"
                                                             for i, t in enumerate(odd)))
    assert run_ingest("--method", method).returncode == 0
    assert [ts for ts, _ in stored(database_url)] == [
        "2024-01-01T01:00:00.000000", "2024-01-01T01:00:01.000000",
        "2024-01-01T01:00:02.500000", "2024-01-01T01:00:03.000000",
        "2024-01-01T01:00:04.000000", "2024-01-01T01:00:05.000000"]
    assert coverage_agrees(database_url)


# --- Case 7: the autumn DST hour across a block boundary -------------------------------------

def test_the_repeated_dst_hour_cut_by_a_block_boundary_loads_whole(tmp_path, run_ingest,
                                                                   database_url):
    import numpy as np
    # 1 Hz local times, 23 bytes a line: the first 4 MiB block after the header ends
    # 1,800 rows into the
    # second pass of 02:00-03:00 on 2024-10-27 in Europe/Berlin.
    day = np.datetime64("2024-10-27T00:00:00")
    before = np.arange(day - np.timedelta64(169_761, "s"), day, np.timedelta64(1, "s"))
    local = np.concatenate([before, day + np.arange(0, 3 * 3600),
                            day + np.arange(2 * 3600, 4 * 3600)])
    lines = np.char.add(np.datetime_as_string(local, unit="s").astype(str), ",70\n")
    write(tmp_path / DATA / "hr.csv", "ts,value\n" + "".join(lines.tolist()))
    assert 169_761 + 7_200 + 3_600 + 1_800 == (4 << 20) // 23  # where the boundary falls
    proc = run_ingest(SOURCE_TZ="Europe/Berlin")
    assert proc.returncode == 0, proc.stderr
    assert " 0 rejected" in proc.stdout
    assert table_counts(database_url) == {"hr": len(local)}
    assert query(database_url, "SELECT count(*) FROM raw_data WHERE ts >= '2024-10-27T00:00Z' "
                               "AND ts < '2024-10-27T02:00Z'") == [(7_200,)]  # both passes
    assert coverage_agrees(database_url)


# --- Case 9, 19.2: a bad file or row never blocks the others ---------------------------------

@pytest.mark.parametrize("text", ["2024-01-01T00:00:01Z\n2024-01-01T00:00:02Z,72\n",
                                  "2024-01-01T00:00:02Z,72\n2024-01-01T00:00:03+00:0\n"])
def test_a_line_without_a_comma_is_a_rejected_row(tmp_path, run_ingest, database_url, text):
    write(tmp_path / DATA / "hr.csv", "ts,value\n" + text)
    write(tmp_path / DATA / "br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    proc = run_ingest()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "(1 rejected)" in proc.stdout
    assert table_counts(database_url) == {"hr": 1, "br": 1}
    assert last_run(database_url) == ("ok", None)


def test_a_half_written_timestamp_at_the_end_is_left_for_the_next_run(tmp_path, run_ingest,
                                                                      database_url):
    write(tmp_path / DATA / "hr.csv", "ts,value\n2024-01-01T00:00:02Z,72\n2024-01-01T00:00:0")
    proc = run_ingest()
    assert proc.returncode == 0 and " 0 rejected" in proc.stdout
    assert table_counts(database_url) == {"hr": 1}


def test_a_csv_field_over_the_limit_fails_that_file_alone(tmp_path, run_ingest, database_url):
    hr = write(tmp_path / DATA / "hr.csv",
               'ts,value\n2024-01-01T00:00:00Z,70\n2024-01-01T00:00:01Z,"' + "9" * 200_000
               + '"\n')
    write(tmp_path / DATA / "br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    proc = run_ingest()
    assert proc.returncode == 1
    assert logged(proc.stderr) == [
        f"ERROR {hr}:3: not a CSV row (field larger than field limit (131072)) (hr not "
        "loaded; its checkpoint is unchanged)",
        "ERROR ingestion incomplete: 1 file not loaded"]
    assert table_counts(database_url) == {"br": 1}
    assert last_run(database_url)[0] == "partial"


def test_an_unexpected_error_in_one_file_fails_it_alone(tmp_path, database_url, monkeypatch):
    write(tmp_path / "data/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")
    write(tmp_path / "data/br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    real = loader.parse_block

    def broken(block, source_tz, path):
        if path.name == "hr.csv":
            raise ValueError("subsection not found")
        return real(block, source_tz, path)

    monkeypatch.setattr(loader, "parse_block", broken)
    # every block to the row-by-row parse, which breaks for hr
    monkeypatch.setattr(loader.plainrows, "read", lambda block, naive_ok=True: None)
    result = loader.run(config(tmp_path, database_url, PARTICIPANT_ID="1",
                               INGEST_METHOD="values"))
    assert result.status == "partial"
    assert result.errors == [f"{tmp_path}/data/hr.csv: cannot be read (ValueError: subsection "
                             "not found) (hr not loaded; its checkpoint is unchanged)"]
    assert table_counts(database_url) == {"br": 1}


def test_an_unexpected_error_of_the_run_still_ends_its_record(tmp_path, database_url,
                                                              monkeypatch):
    write(tmp_path / "data/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(loader, "_done", broken)
    with pytest.raises(RuntimeError):
        loader.run(config(tmp_path, database_url, PARTICIPANT_ID="1"))
    assert last_run(database_url) == ("failed", "something nobody expected")


# --- Cases 4, 10: a file replaced or deleted during the run ------------------------------------

def big_file(path: Path, rows: int, start: int = 0) -> list[str]:
    """Rows at 1 Hz from 2024-01-01 (about 30 bytes each), written to ``path``; their lines."""
    import numpy as np
    ts = np.datetime64("2024-01-01T00:00:00") + np.arange(start, start + rows)
    lines = np.char.add(np.datetime_as_string(ts, unit="s").astype(str), "Z,70\n").tolist()
    write(path, "ts,value\n" + "".join(lines))
    return lines


def test_a_file_deleted_while_it_is_read_still_loads_whole(tmp_path, database_url):
    hr = tmp_path / "data/hr.csv"
    big_file(hr, 200_000)  # two blocks of 4 MiB

    def delete(source, rows, done, total):
        if hr.exists():
            hr.unlink()

    result = loader.run(config(tmp_path, database_url, PARTICIPANT_ID="1"), progress=delete)
    assert result.ok and not hr.exists()
    assert table_counts(database_url) == {"hr": 200_000}


def test_a_file_deleted_before_it_is_read_fails_alone(tmp_path, database_url):
    br = write(tmp_path / "data/br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    write(tmp_path / "data/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")

    def delete(source, rows, done, total):  # br is read first; hr vanishes meanwhile
        (tmp_path / "data/hr.csv").unlink(missing_ok=True)

    result = loader.run(config(tmp_path, database_url, PARTICIPANT_ID="1",
                               INGEST_METHOD="values"), progress=delete)
    assert br.exists()
    assert result.errors == [f"{tmp_path}/data/hr.csv: vanished during the run; not loaded "
                             "(hr not loaded; its checkpoint is unchanged)"]
    assert table_counts(database_url) == {"br": 1}


def test_a_file_replaced_during_the_run_is_recorded_as_it_was_read(tmp_path, run_ingest,
                                                                   database_url):
    hr = tmp_path / "data/hr.csv"
    lines = big_file(hr, 200_000)
    new = tmp_path / "new.csv"
    write(new, "ts,value\n" + "".join(lines) + "2024-02-01T00:00:00Z,1\n"
          "2024-02-01T00:00:01Z,2\n2024-02-01T00:00:02Z,3\n")

    def replace(source, rows, done, total):  # a sync tool renames its new copy into place
        if new.exists():
            new.replace(hr)

    cfg = config(tmp_path, database_url, PARTICIPANT_ID="1")
    assert loader.run(cfg, progress=replace).ok
    assert table_counts(database_url) == {"hr": 200_000}  # the file as the run opened it
    assert loader.run(cfg).ok  # the next run loads the three new rows
    assert table_counts(database_url) == {"hr": 200_003}
    assert coverage_agrees(database_url)


def test_a_file_replaced_between_planning_and_reading_fails_alone_and_loads_next_time(
        tmp_path, database_url):
    write(tmp_path / "data/br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    hr = write(tmp_path / "data/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")

    def replace(source, rows, done, total):  # br is read first; hr is swapped meanwhile
        if source.metric == "br":
            tmp = write(tmp_path / "new.csv", "ts,value\n2024-01-01T00:00:00Z,71\n")
            tmp.replace(hr)

    cfg = config(tmp_path, database_url, PARTICIPANT_ID="1", INGEST_METHOD="values")
    result = loader.run(cfg, progress=replace)
    assert result.errors == [f"{hr}: replaced or rewritten during the run; not loaded now, "
                             "read again by the next run (hr not loaded; its checkpoint is "
                             "unchanged)"]
    assert loader.run(cfg).ok
    assert query(database_url, "SELECT metric, value FROM raw_data ORDER BY 1") == [
        ("br", 14.0), ("hr", 71.0)]


def test_a_rewrite_of_the_same_size_is_recorded_so_late_rows_after_it_load(tmp_path, database_url):
    # Found by the property test: the line ends flipped (CRLF <-> LF, as many each way)
    # keep the size; the checkpoint must still take the new fingerprint.
    hr = write(tmp_path / "data/hr.csv", "ts,value\n2024-01-01T03:00:00Z,70\r\n"
                                         "2024-01-01T00:00:00Z,71\n")
    cfg = config(tmp_path, database_url, PARTICIPANT_ID="1")
    assert loader.run(cfg).ok
    write(tmp_path / "new.csv", "ts,value\n2024-01-01T03:00:00Z,70\n"
                                "2024-01-01T00:00:00Z,71\r\n").replace(hr)
    assert loader.run(cfg).ok  # read again from the start: nothing new
    with hr.open("a") as f:
        f.write("2024-01-01T01:00:00Z,72\n")  # late, older than the newest row
    assert loader.run(cfg).ok
    assert [v for _, v in stored(database_url)] == [71.0, 72.0, 70.0]


# --- Issue 19, point 1: the data folder is a box ------------------------------------------------

def test_links_fifos_and_sockets_are_refused_without_reading_or_waiting(
        tmp_path, run_ingest, database_url):
    import socket
    secret = write(tmp_path / "secret.txt", "SECRET_TOKEN=hunter2-abc\n")
    data = tmp_path / DATA
    write(data / "br.csv", "ts,value\n2024-01-01T00:00:00Z,14\n")
    (data / "hr.csv").symlink_to(secret)
    os.mkfifo(data / "spo2.csv")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "hrv.csv"))
    proc = run_ingest("--json")  # a FIFO opened to read would block this run forever
    sock.close()
    assert proc.returncode == 1
    assert "SECRET" not in proc.stdout + proc.stderr
    assert sorted(logged(proc.stderr)[:3]) == [
        f"ERROR {data}/hr.csv: is a symbolic link, not a regular file; not read (the data "
        "folder may hold only regular files and folders, no links)",
        f"ERROR {data}/hrv.csv: is a socket, not a regular file; not read (the data folder "
        "may hold only regular files and folders, no links)",
        f"ERROR {data}/spo2.csv: is a FIFO, not a regular file; not read (the data folder "
        "may hold only regular files and folders, no links)"]
    assert table_counts(database_url) == {"br": 1}
    status, error = last_run(database_url)
    assert status == "partial" and "SECRET" not in error


def test_a_participant_folder_that_is_a_link_is_refused(tmp_path, run_ingest, database_url):
    elsewhere = write(tmp_path / "elsewhere/hr.csv", "ts,value\n2024-01-01T00:00:00Z,70\n")
    write(tmp_path / "data/participant_001/hr.csv", "ts,value\n2024-01-01T00:00:00Z,71\n")
    (tmp_path / "data/participant_002").symlink_to(elsewhere.parent)
    proc = run_ingest(DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 1
    assert f"ERROR {tmp_path}/data/participant_002: is a symbolic link" in proc.stderr
    assert query(database_url, "SELECT participant, value FROM raw_data") == [(1, 71.0)]


def test_a_file_swapped_for_a_link_after_discovery_is_caught_at_open(tmp_path):
    from wearables_ingest.blocks import read_blocks
    from wearables_ingest.errors import SourceError
    secret = write(tmp_path / "secret.txt", "SECRET_TOKEN=hunter2-abc\n")
    (tmp_path / "hr.csv").symlink_to(secret)
    with pytest.raises(SourceError, match="hr.csv: is a symbolic link") as e:
        list(read_blocks(tmp_path / "hr.csv"))
    assert "SECRET" not in str(e.value)
    os.mkfifo(tmp_path / "br.csv")  # opened without blocking, refused by its fstat
    with pytest.raises(SourceError, match="br.csv: is not a regular file"):
        list(read_blocks(tmp_path / "br.csv"))


def test_a_header_that_is_not_ts_value_is_never_quoted(tmp_path, run_ingest, database_url):
    write(tmp_path / DATA / "hr.csv", "SECRET_TOKEN=hunter2-abc\n")
    proc = run_ingest("--json")
    assert proc.returncode == 1 and "SECRET" not in proc.stdout + proc.stderr
    assert "SECRET" not in last_run(database_url)[1]


def test_config_error_for_duplicates_is_a_config_error(tmp_path):
    from wearables_ingest.discovery import discover
    write(tmp_path / "participant_1/hr.csv", "ts,value\n")
    write(tmp_path / "participant_01/hr.csv", "ts,value\n")
    with pytest.raises(ConfigError, match="are both participant 1"):
        discover(tmp_path)
