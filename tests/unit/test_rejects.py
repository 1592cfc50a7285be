"""rejects.csv: private (0600), each row once, and at most REJECTS_MAX_MB a file."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from wearables_ingest import rejects
from wearables_ingest.blocks import Reject
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import CheckpointError

MB = 1_000_000


def source(tmp_path: Path, metric: str = "hr") -> SourceFile:
    return SourceFile(1, metric, tmp_path / "data" / f"{metric}.csv", metric)


def bad(line: int, raw: str = "2024-01-01T00:00:00Z,fast") -> Reject:
    return Reject(line, "value 'fast' is not a finite number", raw.encode())


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_rejects_file_is_private(tmp_path):
    path = tmp_path / "state" / "rejects.csv"
    before = os.umask(0o022)  # what a shell usually has: new files 0644
    try:
        assert rejects.append(path, source(tmp_path), [bad(3)], MB) == 1
    finally:
        os.umask(before)
    assert mode(path) == 0o600
    assert rows(path)[0] == rejects.HEADER and len(rows(path)) == 2


def test_an_older_looser_rejects_file_becomes_private(tmp_path):
    path = tmp_path / "rejects.csv"
    path.write_text(",".join(rejects.HEADER) + "\r\n")
    path.chmod(0o644)
    rejects.append(path, source(tmp_path), [bad(3)], MB)
    assert mode(path) == 0o600


def test_a_row_offered_again_is_not_written_twice(tmp_path):
    path = tmp_path / "rejects.csv"
    src = source(tmp_path)
    assert rejects.append(path, src, [bad(3), bad(4, "yesterday,1")], MB) == 2
    rejects._known.clear()  # a later run reads the file afresh
    for _ in range(3):  # --full, three times
        assert rejects.append(path, src, [bad(3), bad(4, "yesterday,1")], MB) == 0
    # The same line number of another file, or new content at that line, is another row.
    assert rejects.append(path, source(tmp_path, "br"), [bad(3)], MB) == 1
    assert rejects.append(path, src, [bad(3, "2024-01-01T00:00:00Z,faster")], MB) == 1
    assert [r[1:3] + r[4:] for r in rows(path)[1:]] == [
        [str(src.path), "3", "2024-01-01T00:00:00Z,fast"],
        [str(src.path), "4", "yesterday,1"],
        [str(source(tmp_path, "br").path), "3", "2024-01-01T00:00:00Z,fast"],
        [str(src.path), "3", "2024-01-01T00:00:00Z,faster"]]


def test_at_the_size_limit_the_file_moves_to_dot_1_and_older_rows_go(tmp_path):
    path = tmp_path / "rejects.csv"
    limit = 1_000
    for n in range(60):  # about 90 bytes a row: several rotations
        rejects.append(path, source(tmp_path), [bad(n + 1)], limit)
    older = rejects.rotated(path)
    assert path.stat().st_size <= limit and older.stat().st_size <= limit
    assert mode(older) == 0o600
    newest, before = rows(path), rows(older)
    assert newest[0] == before[0] == rejects.HEADER
    lines = [int(r[2]) for r in before[1:] + newest[1:]]
    assert lines == list(range(lines[0], 61))  # the newest rows, each once, in order
    assert lines[0] > 1  # the oldest ones are gone
    # The rows in rejects.csv.1 count as held: not written again.
    assert rejects.append(path, source(tmp_path), [bad(lines[0])], limit) == 0


def test_a_symlink_in_place_of_the_rejects_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    path = tmp_path / "rejects.csv"
    path.symlink_to(target)
    with pytest.raises(CheckpointError, match="cannot write the rejects file"):
        rejects.append(path, source(tmp_path), [bad(3)], MB)
    assert target.read_text() == ""
