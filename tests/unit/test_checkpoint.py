"""The checkpoint file: its format, atomic replacement, and refusing what it cannot trust."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wearables_ingest.checkpoint import Checkpoint, load, save
from wearables_ingest.errors import CheckpointError


def us(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


def test_missing_file_is_an_empty_checkpoint(tmp_path):
    cp = load(tmp_path / "none.json")
    assert cp.entries == {} and cp.finished_at is None


def test_round_trip_keeps_marks_and_positions_per_participant_and_metric(tmp_path):
    cp = Checkpoint(finished_at="2026-11-28T01:00:07+00:00")
    cp.record(1, "hr", us("2024-01-30T23:59:59"), offset=75_282_105, line=2_592_002,
              tail="ab" * 32)
    cp.record(7, "hr", us("2024-01-02T00:00:00.250000"))
    cp.record(7, "br", None, offset=9, line=2, tail="cd" * 32)  # header only, no rows yet
    path = tmp_path / "state" / "last_run.json"
    save(path, cp)

    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["finished_at"] == "2026-11-28T01:00:07+00:00"
    hr1 = data["participants"]["1"]["hr"]
    assert hr1["last_ts"] == "2024-01-30T23:59:59+00:00"
    assert (hr1["offset"], hr1["line"], hr1["tail_sha256"]) == (75_282_105, 2_592_002, "ab" * 32)
    assert data["participants"]["7"]["hr"]["last_ts"] == "2024-01-02T00:00:00.250000+00:00"
    assert "offset" not in data["participants"]["7"]["hr"]
    assert "last_ts" not in data["participants"]["7"]["br"]
    again = load(path)
    assert again.entries == cp.entries and again.finished_at == cp.finished_at


def test_marks_only_move_forward_and_positions_are_replaced():
    cp = Checkpoint()
    cp.record(1, "hr", us("2024-01-02"), offset=100, line=5, tail="x")
    cp.record(1, "hr", us("2024-01-01"), offset=40, line=3, tail="y")  # a rescanned file
    assert cp.last_ts(1, "hr") == us("2024-01-02")
    assert (cp.entry(1, "hr").offset, cp.entry(1, "hr").line) == (40, 3)
    assert cp.last_ts(1, "spo2") is None and cp.entry(1, "spo2") is None


def test_save_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "last_run.json"
    path.write_text("old")
    cp = Checkpoint()
    cp.record(1, "br", us("2024-01-01"))
    save(path, cp)
    assert load(path).entries == cp.entries
    assert [p.name for p in tmp_path.iterdir()] == ["last_run.json"]


@pytest.mark.parametrize("content, reason", [
    ('{"version": 1, "particip', "not valid JSON: Unterminated string"),
    ("", "not valid JSON: Expecting value at line 1 column 1"),
    ('{"version": 99, "participants": {}}', "version 99, this loader reads version 1"),
    ('[1, 2]', "not a JSON object"),
    ('{"version": 1, "participants": {"1": {"hr": {}}}}',
     "entry 1/hr has neither 'last_ts' nor 'offset'"),
    ('{"version": 1, "participants": {"1": {"hr": {"offset": "12"}}}}',
     "entry 1/hr has a malformed 'offset'"),
    ('{"version": 1, "participants": {"1": {"hr": {"last_ts": "2024-01-01T00:00:00"}}}}',
     "has no UTC offset"),
])
def test_unusable_checkpoint_names_the_file_and_the_way_out(tmp_path, content, reason):
    path = tmp_path / "last_run.json"
    path.write_text(content)
    with pytest.raises(CheckpointError) as e:
        load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: unusable checkpoint (") and reason in message
    assert message.endswith("delete it to re-offer every row (rows already stored are skipped)")


def test_unwritable_checkpoint_location_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint: .*offered again"):
        save(blocker / "last_run.json", Checkpoint())


@pytest.mark.parametrize("field", ["finished_at", "saved_at"])
def test_a_checkpoint_written_in_the_future_is_refused(tmp_path, field):
    entry = {"last_ts": "2024-01-01T00:00:00+00:00"}
    data = {"version": 1, "finished_at": None, "participants": {"1": {"hr": entry}}}
    if field == "finished_at":
        data["finished_at"] = "2999-01-01T00:00:00+00:00"
    else:
        entry["saved_at"] = "2999-01-01T00:00:00+00:00"
    path = tmp_path / "last_run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="2999-01-01T00:00:00\\+00:00 lies in the future"):
        load(path)


def test_load_removes_what_a_killed_save_left_behind(tmp_path):
    path = tmp_path / "last_run.json"
    cp = Checkpoint()
    cp.record(1, "hr", us("2024-01-01"))
    save(path, cp)
    (tmp_path / ".last_run.json.abc123.tmp").write_text('{"version": 1, "partic')
    assert load(path).entries == cp.entries
    assert [p.name for p in tmp_path.iterdir()] == ["last_run.json"]
