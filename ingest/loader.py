"""One delta-load run: what each source file gained since the checkpoint goes to the database.

For every file the checkpoint remembers how far reading got (byte offset plus
a fingerprint of the bytes before it). When the file has only grown, reading
resumes there and every appended row is offered, late timestamps included.
When it was rewritten or truncated, or the checkpoint has no position, the
whole file is read and only rows newer than the metric's mark are offered.

Each file is loaded in one transaction. Only after it commits does the
checkpoint move forward, so a crash at any point re-offers rows rather than
skipping them, and ``ON CONFLICT DO NOTHING`` turns re-offered rows into
"already present" instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import psycopg2
import psycopg2.errors

import checkpoint
import db
from config import Config
from source import (
    Position,
    SourceError,
    SourceFile,
    discover,
    newer_than,
    parse_block,
    read_blocks,
    tail_hash,
)


@dataclass
class FileResult:
    source: SourceFile
    offered: int = 0  # rows sent to the database
    inserted: int = 0  # of those, rows that were not there yet
    newest: np.datetime64 | None = None
    end: Position | None = None  # where reading stopped
    rescanned: bool = False  # the file changed under the checkpoint: read from the start
    error: str | None = None

    @property
    def already_present(self) -> int:
        return self.offered - self.inserted

    def saw(self, newest: np.datetime64) -> None:
        if self.newest is None or newest > self.newest:
            self.newest = newest

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


@dataclass(frozen=True)
class Plan:
    """Where to start reading a file, and which rows to offer."""

    start: Position
    only_newer_than: np.datetime64 | None  # None: offer every row read
    rescanned: bool


def plan(source: SourceFile, entry: checkpoint.Entry | None) -> Plan:
    """Resume after the checkpoint's position when the file has only grown since."""
    if entry is None:
        return Plan(Position(), None, rescanned=False)
    if entry.offset is not None and entry.line is not None:
        try:
            grown = (source.path.stat().st_size >= entry.offset
                     and tail_hash(source.path, entry.offset) == entry.tail)
        except OSError as e:
            raise SourceError(f"{source.path}: cannot read: {e.strerror}") from None
        if grown:
            return Plan(Position(entry.offset, entry.line), None, rescanned=False)
    return Plan(Position(), entry.last_ts, rescanned=entry.offset is not None)


def _payloads(source: SourceFile, p: Plan, result: FileResult, parse_all: bool) -> Iterator[bytes]:
    """COPY data for the rows to offer, block by block; plain blocks pass through unparsed."""
    suffix = db.line_suffix(source.participant, source.metric)
    for block in read_blocks(source.path, p.start):
        span = None if p.only_newer_than is not None or parse_all else block.plain_span()
        if span is not None:
            result.saw(max(span))
            yield db.block_payload(block.data, suffix)
        else:
            chunk = newer_than(parse_block(block, source.path), p.only_newer_than)
            if len(chunk):
                result.saw(chunk.ts.max())
                yield db.chunk_payload(chunk.ts, chunk.values, suffix)
        result.end = block.end


def _copy_file(conn, source: SourceFile, p: Plan, direct: bool, parse_all: bool) -> FileResult:
    result = FileResult(source, end=p.start, rescanned=p.rescanned)
    with conn, conn.cursor() as cur:
        result.offered, result.inserted = db.copy_rows(
            cur, _payloads(source, p, result, parse_all), direct)
    return result


def _values_file(conn, source: SourceFile, p: Plan, batch_rows: int) -> FileResult:
    result = FileResult(source, end=p.start, rescanned=p.rescanned)
    with conn, conn.cursor() as cur:
        for block in read_blocks(source.path, p.start):
            chunk = newer_than(parse_block(block, source.path), p.only_newer_than)
            for i in range(0, len(chunk), batch_rows):
                ts, values = chunk.ts[i : i + batch_rows], chunk.values[i : i + batch_rows]
                result.inserted += db.insert_rows(cur, source.participant, source.metric,
                                                  ts, values)
                result.offered += len(ts)
                result.saw(ts.max())
            result.end = block.end
    return result


def load_file(conn, source: SourceFile, entry: checkpoint.Entry | None,
              method: str = "copy", batch_rows: int = 10_000) -> FileResult:
    """Offer what the file gained since ``entry`` in one transaction, committed at the end."""
    p = plan(source, entry)
    if method == "values":
        return _values_file(conn, source, p, batch_rows)
    # Straight into the hypertable when the first row to offer is newer than anything
    # stored for this participant and metric (the daily case): no row can conflict
    # unless the file is out of order, and then COPY fails and staging takes over.
    with conn, conn.cursor() as cur:
        stored = db.newest_ts(cur, source.participant, source.metric)
    first = _first_ts(source, p)
    direct = first is not None and (stored is None or first > stored)
    try:
        return _copy_file(conn, source, p, direct, parse_all=False)
    except psycopg2.errors.UniqueViolation:
        return _copy_file(conn, source, p, direct=False, parse_all=False)
    except psycopg2.DataError:
        # A line of the plain shape that the server still refused (say 2024-02-30):
        # parse every row, which names the bad line.
        return _copy_file(conn, source, p, direct=False, parse_all=True)


def _first_ts(source: SourceFile, p: Plan) -> np.datetime64 | None:
    """Timestamp of the first row that would be read, when it is plain; else None."""
    for block in read_blocks(source.path, p.start, block_bytes=64 * 1024):
        span = block.plain_span()
        return None if span is None else span[0]
    return None


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
                    continue
                if result.rescanned:
                    report(f"note: {source.path} changed since the last run (rewritten or "
                           "truncated); read it again from the start")
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
    """Load one file, then record how far it got; a bad file gives a FileResult with ``error``."""
    entry = cp.entry(source.participant, source.metric)
    try:
        result = load_file(conn, source, entry, cfg.method, cfg.batch_rows)
    except SourceError as e:
        reason = str(e)
    except psycopg2.DataError as e:
        reason = f"{source.path}: the database refused a row: {db.first_line(e)}"
    else:
        end = result.end
        if result.newest is not None or entry is None or end.offset != entry.offset:
            cp.record(source.participant, source.metric, result.newest, end.offset, end.line,
                      tail_hash(source.path, end.offset))
            checkpoint.save(cfg.checkpoint_file, cp)
        return result
    return FileResult(source, error=f"{reason} ({source.label} not loaded; "
                                    "its checkpoint is unchanged)")
