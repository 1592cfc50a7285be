"""What a run did, in counts: per file, and for the whole run. report.py turns them into text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wearables_ingest.blocks import Position, Reject
from wearables_ingest.discovery import SourceFile


@dataclass
class FileResult:
    source: SourceFile
    offered: int = 0  # rows sent to the database
    inserted: int = 0  # of those, rows that were not there yet
    last_ts: np.datetime64 | None = None  # newest ts offered
    end: Position | None = None  # where reading stopped
    rescanned: bool = False  # the file changed under the checkpoint: read from the start
    reloaded: bool = False  # the database lacked rows the checkpoint claimed: read from the start
    checkpoint_ts: np.datetime64 | None = None  # the checkpoint's mark before this load
    rejects: list[Reject] = field(default_factory=list)
    strategy: str | None = None  # how the rows were written (writer.py)
    error: str | None = None
    tail: str | None = None  # tail hash at ``end``, of the file as it was read

    @property
    def already_present(self) -> int:
        return self.offered - self.inserted

    @property
    def rejected(self) -> int:
        return len(self.rejects)


@dataclass
class RunResult:
    files: list[FileResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    run_id: int | None = None  # its row in ingest_runs
    last_success: str | None = None  # when the last fully successful run finished

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def status(self) -> str:
        """ok, partial (some files failed) or failed (no file loaded)."""
        if self.ok:
            return "ok"
        return "partial" if any(f.error is None for f in self.files) else "failed"

    def total(self, what: str) -> int:
        return sum(getattr(f, what) for f in self.files if f.error is None)

    def per_file(self) -> dict[str, dict]:
        """Counts per "participant/metric", for the run record and --json."""
        return {f"{f.source.participant}/{f.source.metric}": {
                    "participant": f.source.participant, "metric": f.source.metric,
                    "inserted": f.inserted, "already_present": f.already_present,
                    "rejected": f.rejected, "error": f.error}
                for f in self.files}
