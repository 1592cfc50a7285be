"""One delta-load run: each source file's rows newer than its checkpoint mark go to the database.

Each file is loaded in one transaction. Only after it commits does the
checkpoint move forward, so a crash at any point re-offers rows rather than
skipping them, and ``ON CONFLICT DO NOTHING`` turns re-offered rows into
"already present" instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import checkpoint
import db
import numpy as np
import psycopg2
from config import Config
from source import SourceError, SourceFile, discover, newer_than, read_chunks


@dataclass
class FileResult:
    source: SourceFile
    offered: int = 0  # rows newer than the mark, sent to the database
    inserted: int = 0  # of those, rows that were not there yet
    newest: np.datetime64 | None = None
    error: str | None = None

    @property
    def already_present(self) -> int:
        return self.offered - self.inserted

    def summary(self) -> str:
        line = f"Ingested {self.inserted:,} rows → {self.source.label}"
        if self.already_present:
            line += f" ({self.already_present:,} already present)"
        return line


@dataclass
class RunResult:
    files: list[FileResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_file(conn, source: SourceFile, mark: np.datetime64 | None, batch_rows: int) -> FileResult:
    """Offer the file's rows newer than ``mark`` in one transaction; commit at the end."""
    result = FileResult(source)
    with conn, conn.cursor() as cur:
        for chunk in read_chunks(source.path, batch_rows):
            fresh = newer_than(chunk, mark)
            if not len(fresh):
                continue
            result.inserted += db.insert_rows(cur, source.participant, source.metric,
                                              fresh.ts, fresh.values)
            result.offered += len(fresh)
            newest = fresh.ts.max()
            if result.newest is None or newest > result.newest:
                result.newest = newest
    return result


def run(cfg: Config, report: Callable[[str], None], warn: Callable[[str], None]) -> RunResult:
    """Load every source file; ``report`` gets the summary lines, ``warn`` the errors.

    Raises ConfigError, SourceError, CheckpointError (LockedError when another
    run is in progress) or DatabaseError when the run cannot start or the
    database goes away; a problem with one file only fails that file.
    """
    files, problems = discover(cfg.data_dir, cfg.participant_id)
    outcome = RunResult()
    for problem in problems:
        outcome.errors.append(str(problem))
        warn(str(problem))

    with checkpoint.locked(cfg.checkpoint_file):
        cp = checkpoint.load(cfg.checkpoint_file)
        conn = db.connect(cfg.connect_args, cfg.target())
        try:
            db.ensure_schema(conn)
            for source in files:
                result = _load_one(conn, source, cp, cfg)
                outcome.files.append(result)
                if result.error:
                    outcome.errors.append(result.error)
                    warn(result.error)
                else:
                    report(result.summary())
        except psycopg2.Error as e:
            raise db.DatabaseError(
                f"database error at {cfg.target()}: {db.first_line(e)}") from None
        finally:
            conn.close()

        if outcome.ok:
            cp.finished_at = checkpoint.now_utc()
            checkpoint.save(cfg.checkpoint_file, cp)
    return outcome


def _load_one(conn, source: SourceFile, cp: checkpoint.Checkpoint, cfg: Config) -> FileResult:
    """Load one file and advance its mark; a bad file gives a FileResult with ``error``."""
    try:
        result = load_file(conn, source, cp.mark(source.participant, source.metric),
                           cfg.batch_rows)
    except SourceError as e:
        reason = str(e)
    except psycopg2.DataError as e:
        reason = f"{source.path}: the database refused a row: {db.first_line(e)}"
    else:
        if result.newest is not None:
            cp.advance(source.participant, source.metric, result.newest)
            checkpoint.save(cfg.checkpoint_file, cp)
        return result
    return FileResult(source, error=f"{reason} ({source.label} not loaded; "
                                    "its checkpoint is unchanged)")
