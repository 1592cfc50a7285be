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

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg2
import psycopg2.errors

import checkpoint
import db
from config import Config
from source import (
    Position,
    Reject,
    SourceError,
    SourceFile,
    discover,
    newer_than,
    parse_block,
    read_blocks,
    tail_hash,
)

MAX_REJECTS = 10_000  # more bad rows than this in one file: it is probably not a metric file


@dataclass
class FileResult:
    source: SourceFile
    offered: int = 0  # rows sent to the database
    inserted: int = 0  # of those, rows that were not there yet
    newest: np.datetime64 | None = None
    end: Position | None = None  # where reading stopped
    rescanned: bool = False  # the file changed under the checkpoint: read from the start
    reloaded: bool = False  # the database lacked rows the checkpoint claimed: read from the start
    rejects: list[Reject] = field(default_factory=list)
    mark_before: np.datetime64 | None = None  # the checkpoint's mark when the file was loaded
    error: str | None = None

    @property
    def already_present(self) -> int:
        return self.offered - self.inserted

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    def saw(self, newest: np.datetime64) -> None:
        if self.newest is None or newest > self.newest:
            self.newest = newest

    def reject(self, rejects: list[Reject]) -> None:
        self.rejects += rejects
        if len(self.rejects) > MAX_REJECTS:
            raise SourceError(f"{self.source.path}: more than {MAX_REJECTS:,} bad rows (the "
                              f"first on line {self.rejects[0].line}: {self.rejects[0].reason}); "
                              "is it a metric file?")

    def notes(self) -> list[str]:
        """What the user should know about how this file was read."""
        path, label = self.source.path, self.source.label
        if self.reloaded:
            return [f"raw_data holds no {label} rows up to the checkpoint's "
                    f"{checkpoint.format_ts(self.mark_before)} (was the database reset?); "
                    f"read {path} again from the start"]
        if self.rescanned:
            return [f"{path} changed since the last run (rewritten or truncated); read it "
                    "again from the start, offering rows newer than "
                    f"{checkpoint.format_ts(self.mark_before)} (--full offers every row)"]
        return []

    def summary(self, dry_run: bool = False) -> str:
        verb = "Would ingest" if dry_run else "Ingested"
        line = f"{verb} {self.inserted:,} rows → {self.source.label}"
        extra = []
        if self.already_present:
            extra.append(f"{self.already_present:,} already present")
        if self.rejects:
            extra.append(f"{len(self.rejects):,} rejected")
        return line + (f" ({', '.join(extra)})" if extra else "")


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
        """Counts per participant and metric, for the run record and --json."""
        return {f"{f.source.participant}/{f.source.metric}": {
                    "participant": f.source.participant, "metric": f.source.metric,
                    "inserted": f.inserted, "already_present": f.already_present,
                    "rejected": len(f.rejects), "error": f.error}
                for f in self.files}

    @property
    def rejected(self) -> int:
        return sum(len(f.rejects) for f in self.files)


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


@dataclass(frozen=True)
class Options:
    """How a run loads: the write method, batch size, source time zone, and extras."""

    method: str = "copy"
    batch_rows: int = 10_000
    source_tz: str = "UTC"
    dry_run: bool = False  # count what would be inserted; commit nothing
    # Called after each block read: (file, rows read, bytes read, bytes to read).
    progress: Callable[[SourceFile, int, int, int], None] | None = None


def _parsed(block, p: Plan, result: FileResult, opts: Options):
    """The block's good rows that are to be offered; its bad rows go to ``result``."""
    chunk, rejects = parse_block(block, opts.source_tz)
    result.reject(rejects)
    return newer_than(chunk, p.only_newer_than)


def _blocks(source: SourceFile, p: Plan, opts: Options) -> Iterator:
    """The file's blocks from the plan's start, reporting progress as they are read."""
    total = max(0, source.path.stat().st_size - p.start.offset)
    for block in read_blocks(source.path, p.start):
        yield block
        if opts.progress is not None:
            opts.progress(source, block.rows, block.end.offset - p.start.offset, total)


def _payloads(source: SourceFile, p: Plan, result: FileResult, parse_all: bool,
              opts: Options) -> Iterator[bytes]:
    """COPY data for the rows to offer, block by block; plain blocks pass through unparsed."""
    suffix = db.line_suffix(source.participant, source.metric)
    naive_ok = opts.source_tz == "UTC"  # the session's time zone is UTC
    for block in _blocks(source, p, opts):
        span = (None if p.only_newer_than is not None or parse_all
                else block.plain_span(naive_ok))
        if span is not None:
            result.saw(max(span))
            yield db.block_payload(block.data, suffix)
        else:
            chunk = _parsed(block, p, result, opts)
            if len(chunk):
                result.saw(chunk.ts.max())
                yield db.chunk_payload(chunk.ts, chunk.values, suffix)
        result.end = block.end


def _copy_file(conn, source: SourceFile, p: Plan, direct: bool, parse_all: bool,
               opts: Options) -> FileResult:
    result = FileResult(source, end=p.start, rescanned=p.rescanned)
    with conn, conn.cursor() as cur:
        result.offered, result.inserted = db.copy_rows(
            cur, _payloads(source, p, result, parse_all, opts), direct)
    return result


def _values_file(conn, source: SourceFile, p: Plan, opts: Options) -> FileResult:
    result = FileResult(source, end=p.start, rescanned=p.rescanned)
    step = opts.batch_rows
    with conn, conn.cursor() as cur:
        for block in _blocks(source, p, opts):
            chunk = _parsed(block, p, result, opts)
            for i in range(0, len(chunk), step):
                ts, values = chunk.ts[i : i + step], chunk.values[i : i + step]
                result.inserted += db.insert_rows(cur, source.participant, source.metric,
                                                  ts, values)
                result.offered += len(ts)
                result.saw(ts.max())
            result.end = block.end
    return result


def _dry_file(conn, source: SourceFile, p: Plan, opts: Options) -> FileResult:
    """What loading would do, counted in a staging table and rolled back."""
    result = FileResult(source, end=p.start, rescanned=p.rescanned)
    try:
        with conn.cursor() as cur:
            result.offered, result.inserted = db.count_new(
                cur, _payloads(source, p, result, parse_all=False, opts=opts))
    finally:
        conn.rollback()
    return result


def load_file(conn, source: SourceFile, entry: checkpoint.Entry | None,
              opts: Options = Options()) -> FileResult:
    """Offer what the file gained since ``entry`` in one transaction, committed at the end."""
    # The checkpoint says the row at last_ts was loaded, but the table does not have it:
    # the database was reset or rows were deleted. Believing the checkpoint would skip
    # those rows forever, so read the file from the start instead.
    reloaded = False
    if entry is not None and entry.last_ts is not None and db.schema_exists(conn):
        with conn, conn.cursor() as cur:
            reloaded = not db.stored_at(cur, source.participant, source.metric, entry.last_ts)
    p = plan(source, None if reloaded else entry)
    if opts.dry_run:
        result = _dry_file(conn, source, p, opts)
    elif opts.method == "values":
        result = _values_file(conn, source, p, opts)
    else:
        result = _copy_load(conn, source, p, opts)
    result.reloaded = reloaded
    return result


def _copy_load(conn, source: SourceFile, p: Plan, opts: Options) -> FileResult:
    # Straight into the hypertable when nothing is stored for this participant and metric
    # from the first row to offer on (the daily case): no row can conflict unless the file
    # is out of order, and then COPY fails and staging takes over.
    first = _first_ts(source, p, opts.source_tz)
    direct = False
    if first is not None:
        with conn, conn.cursor() as cur:
            direct = not db.stored_since(cur, source.participant, source.metric, first)
    try:
        return _copy_file(conn, source, p, direct, parse_all=False, opts=opts)
    except psycopg2.errors.UniqueViolation:
        return _copy_file(conn, source, p, direct=False, parse_all=False, opts=opts)
    except psycopg2.DataError:
        # A line of the plain shape that the server still refused (say 2024-02-30):
        # parse every row, which finds the bad ones.
        return _copy_file(conn, source, p, direct=False, parse_all=True, opts=opts)


def _first_ts(source: SourceFile, p: Plan, source_tz: str) -> np.datetime64 | None:
    """Timestamp of the first row that would be read, when it is plain; else None."""
    for block in read_blocks(source.path, p.start, block_bytes=64 * 1024):
        span = block.plain_span(naive_ok=source_tz == "UTC")
        return None if span is None else span[0]
    return None


def run(cfg: Config, report: Callable[[str], None], log: Callable[[str, str], None],
        full: bool = False, dry_run: bool = False, metrics: set[str] | None = None,
        participants: set[int] | None = None,
        progress: Callable[[SourceFile, int, int, int], None] | None = None) -> RunResult:
    """Load every source file; ``report`` gets the summary lines, ``log(level, text)`` the rest.

    ``full`` ignores the checkpoint for this run (every row is offered again);
    ``dry_run`` counts what would be inserted and writes nothing; ``metrics`` and
    ``participants`` limit the run to those files.

    Raises ConfigError, SourceError, CheckpointError (LockedError when another
    run is in progress) or DatabaseError when the run cannot start or the
    database stays unreachable; a problem with one file only fails that file.
    """
    outcome = RunResult(dry_run=dry_run)
    files, problems = discover(cfg.data_dir, cfg.participant_id)
    files = [f for f in files if (metrics is None or f.metric in metrics)
             and (participants is None or f.participant in participants)]
    for problem in problems:
        outcome.errors.append(str(problem))
        log("error", str(problem))
    opts = Options(cfg.method, cfg.batch_rows, cfg.source_tz, dry_run, progress)

    def retrying(text: str) -> None:
        log("warning", text)

    with checkpoint.locked(cfg.checkpoint_file):
        cp = checkpoint.load(cfg.checkpoint_file)
        conn = db.connect_with_retries(cfg.connect_args, cfg.target(), cfg.retries,
                                       cfg.retry_delay, retrying)
        try:
            if not dry_run:
                db.ensure_schema(conn)
                outcome.run_id = db.start_run(conn, cfg.trigger)
            for source in files:
                for attempt in range(cfg.retries + 1):
                    try:
                        result = _load_one(conn, source, cp, cfg, opts, full)
                        break
                    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                        # The connection broke mid-file: nothing of the file was committed
                        # and its checkpoint entry is unchanged, so load it again.
                        if attempt == cfg.retries:
                            raise
                        retrying(f"lost the database while loading {source.label} "
                                 f"({db.first_line(e)}); reconnecting")
                        conn.close()
                        conn = db.connect_with_retries(cfg.connect_args, cfg.target(),
                                                       cfg.retries, cfg.retry_delay, retrying)
                outcome.files.append(result)
                if result.error:
                    outcome.errors.append(result.error)
                    log("error", result.error)
                    continue
                for note in result.notes():
                    log("info", note)
                report(result.summary(dry_run))
            if outcome.rejected:
                where = "would go to" if dry_run else "listed in"
                log("info", f"{outcome.rejected:,} rows rejected, {where} {cfg.rejects_file}")
            if outcome.run_id is not None:
                db.end_run(conn, outcome.run_id, outcome.status, outcome.per_file(),
                           "; ".join(outcome.errors) or None)
        except psycopg2.Error as e:
            raise db.DatabaseError(
                f"database error at {cfg.target()}: {db.first_line(e)}") from None
        finally:
            conn.close()

        if outcome.ok and not dry_run:
            cp.finished_at = checkpoint.now_utc()
            checkpoint.save(cfg.checkpoint_file, cp)
        outcome.last_success = cp.finished_at
    return outcome


def _load_one(conn, source: SourceFile, cp: checkpoint.Checkpoint, cfg: Config,
              opts: Options, full: bool) -> FileResult:
    """Load one file, then record how far it got; a bad file gives a FileResult with ``error``."""
    entry = None if full else cp.entry(source.participant, source.metric)
    try:
        result = load_file(conn, source, entry, opts)
    except SourceError as e:
        reason = str(e)
    except psycopg2.DataError as e:
        reason = f"{source.path}: the database refused a row: {db.first_line(e)}"
    else:
        result.mark_before = entry.last_ts if entry else None
        if opts.dry_run:
            return result
        if result.rejects:
            append_rejects(cfg.rejects_file, source, result.rejects)
        end = result.end
        if (result.newest is not None or result.reloaded or entry is None
                or end.offset != entry.offset):
            cp.record(source.participant, source.metric, result.newest, end.offset, end.line,
                      tail_hash(source.path, end.offset), reset_mark=result.reloaded)
            checkpoint.save(cfg.checkpoint_file, cp)
        return result
    return FileResult(source, error=f"{reason} ({source.label} not loaded; "
                                    "its checkpoint is unchanged)")


REJECTS_HEADER = ["rejected_at", "file", "line", "reason", "raw_line"]


def append_rejects(path: Path, source: SourceFile, rejects: list[Reject]) -> None:
    """Add the rows to the rejects file (CSV), creating it with a header when new."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(REJECTS_HEADER)
            when = checkpoint.now_utc()
            for r in rejects:
                out.writerow([when, str(source.path), r.line, r.reason,
                              r.raw.decode("utf-8", "backslashreplace")])
    except OSError as e:
        raise checkpoint.CheckpointError(
            f"{path}: cannot write the rejects file: {e.strerror}") from None
