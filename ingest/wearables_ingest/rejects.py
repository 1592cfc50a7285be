"""The rejects file: rows that could not be loaded, with file, line and reason (CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

from wearables_ingest.blocks import Reject
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import CheckpointError
from wearables_ingest.timestamps import now_utc

HEADER = ["rejected_at", "file", "line", "reason", "raw_line"]


def append(path: Path, source: SourceFile, rejects: list[Reject]) -> None:
    """Add the rows to the rejects file, creating it with a header when new."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(HEADER)
            when = now_utc()
            for r in rejects:
                out.writerow([when, str(source.path), r.line, r.reason,
                              r.raw.decode("utf-8", "backslashreplace")])
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write the rejects file: {e.strerror}") from None
