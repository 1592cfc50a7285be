"""One delta-load run: what each source file gained since the checkpoint goes to the database.

For every file the checkpoint remembers how far reading got (plan.py). Each
file is written in one transaction (writer.py). Only after it commits does the
checkpoint move forward, so a crash at any point re-offers rows rather than
skipping them, and ``ON CONFLICT DO NOTHING`` turns re-offered rows into
"already present" instead of duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from wearables_ingest import checkpoint, database, rejects, writer
from wearables_ingest.blocks import Block, Reject, read_blocks, tail_hash
from wearables_ingest.copydata import from_block, from_rows, line_suffix
from wearables_ingest.database import Database
from wearables_ingest.discovery import SourceFile, discover
from wearables_ingest.errors import ConnectionLost, RowsRefused, SourceError
from wearables_ingest.lock import locked
from wearables_ingest.parse import Chunk, newer_than, parse_block
from wearables_ingest.plan import Plan, first_ts, plan
from wearables_ingest.results import FileResult, RunResult
from wearables_ingest.settings import Config
from wearables_ingest.timestamps import now_utc

MAX_REJECTS = 10_000  # more bad rows than this in one file: it is probably not a metric file
log = logging.getLogger(__name__)

# Called after each block read: (file, rows read, bytes read, bytes to read).
Progress = Callable[[SourceFile, int, int, int], None]


@dataclass(frozen=True)
class Options:
    """How a run loads: the write method, batch size, source time zone, and extras."""

    method: str = "copy"
    batch_rows: int = 10_000
    source_tz: str = "UTC"
    dry_run: bool = False  # count what would be inserted; commit nothing
    table_exists: bool = True  # False only for a dry run against a new database
    progress: Progress | None = None


class FileRows:
    """One file's rows from the plan's start (writer.Rows), read afresh for each strategy.

    Each reading also collects what the run needs to know afterwards: the newest
    timestamp offered, where reading stopped, and the rows rejected.
    """

    def __init__(self, source: SourceFile, p: Plan, opts: Options) -> None:
        self.source, self.plan, self.opts = source, p, opts
        self.participant, self.metric = source.participant, source.metric
        self._reset()

    def _reset(self) -> None:
        self.last_ts: np.datetime64 | None = None
        self.end = self.plan.start
        self.rejects: list[Reject] = []

    def _saw(self, ts: np.datetime64) -> None:
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def _blocks(self) -> Iterator[Block]:
        self._reset()
        start = self.plan.start
        total = max(0, self.source.path.stat().st_size - start.offset)
        for block in read_blocks(self.source.path, start):
            yield block
            self.end = block.end
            if self.opts.progress is not None:
                self.opts.progress(self.source, block.rows, block.end.offset - start.offset, total)

    def _parse(self, block: Block) -> Chunk:
        chunk, bad = parse_block(block, self.opts.source_tz)
        self.rejects += bad
        if len(self.rejects) > MAX_REJECTS:
            first = self.rejects[0]
            raise SourceError(f"{self.source.path}: more than {MAX_REJECTS:,} bad rows (the first "
                              f"on line {first.line}: {first.reason}); is it a metric file?")
        chunk = newer_than(chunk, self.plan.last_ts)
        if len(chunk):
            self._saw(chunk.ts.max())
        return chunk

    def copy_data(self, parse_all: bool) -> Iterator[bytes]:
        suffix = line_suffix(self.participant, self.metric)
        naive_ok = self.opts.source_tz == "UTC"  # the session's time zone is UTC
        for block in self._blocks():
            span = (None if self.plan.last_ts is not None or parse_all
                    else block.plain_span(naive_ok))
            if span is not None:  # plain: the file's own bytes go to COPY
                self._saw(max(span))
                yield from_block(block.data, suffix)
            else:
                chunk = self._parse(block)
                if len(chunk):
                    yield from_rows(chunk.ts, chunk.values, suffix)

    def parsed(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for block in self._blocks():
            chunk = self._parse(block)
            if len(chunk):
                yield chunk.ts, chunk.values


def load_file(db: Database, source: SourceFile, entry: checkpoint.Entry | None,
              opts: Options = Options()) -> FileResult:
    """Offer what the file gained since ``entry``, in one committed transaction."""
    # The checkpoint says the row at last_ts was loaded, but the table does not have it:
    # the database was reset or rows were deleted. Believing the checkpoint would skip
    # those rows forever, so read the file from the start instead.
    reloaded = (entry is not None and entry.last_ts is not None and opts.table_exists
                and not database.stored_at(db, source.participant, source.metric, entry.last_ts))
    p = plan(source, None if reloaded else entry)
    rows = FileRows(source, p, opts)
    if opts.dry_run:
        written = writer.count_new(db, rows) if opts.table_exists else _count_only(rows)
    else:
        # Straight into the hypertable when nothing is stored from the first row to
        # offer on (the nightly case): no row can conflict unless the file is out of order.
        first = first_ts(source, p, opts.source_tz) if opts.method == "copy" else None
        direct = first is not None and not database.stored_since(
            db, source.participant, source.metric, first)

        def fell_back(strategy: writer.Strategy, e: RowsRefused) -> None:
            log.debug("%s: %s refused (%s); trying the next way", source.label, strategy.name, e)

        written = writer.write(db, rows, writer.chain(opts.method, direct), opts.batch_rows,
                               fell_back)
    return FileResult(source, written.offered, written.inserted, rows.last_ts, rows.end,
                      rescanned=p.rescanned, reloaded=reloaded,
                      checkpoint_ts=entry.last_ts if entry else None,
                      rejects=rows.rejects, strategy=written.strategy)


def _count_only(rows: FileRows) -> writer.Written:
    """A dry run against a database without raw_data: every distinct row would be new."""
    stamps = [ts for ts, _ in rows.parsed()]
    offered = sum(len(ts) for ts in stamps)
    new = len(np.unique(np.concatenate(stamps))) if stamps else 0
    return writer.Written(offered, new, "dry run")


def run(cfg: Config, full: bool = False, dry_run: bool = False,
        metrics: set[str] | None = None, participants: set[int] | None = None,
        on_file: Callable[[FileResult], None] = lambda result: None,
        progress: Progress | None = None) -> RunResult:
    """Load every source file; ``on_file`` gets each file's result as it is done.

    ``full`` ignores the checkpoint for this run (every row is offered again);
    ``dry_run`` counts what would be inserted and writes nothing; ``metrics`` and
    ``participants`` limit the run to those files.

    Raises an IngestError (errors.py) when the run cannot start or the database
    stays unreachable; a problem with one file only fails that file.
    """
    outcome = RunResult(dry_run=dry_run)
    files, problems = discover(cfg.data_dir, cfg.participant_id)
    files = [f for f in files if (metrics is None or f.metric in metrics)
             and (participants is None or f.participant in participants)]
    for problem in problems:
        outcome.errors.append(str(problem))
        log.error("%s", problem)

    with locked(cfg.checkpoint_file):
        cp = checkpoint.load(cfg.checkpoint_file)
        db = Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay,
                      on_retry=lambda text: log.warning("%s", text)).open()
        try:
            table_exists = True
            if dry_run:
                table_exists = database.schema_exists(db)
            else:
                database.ensure_schema(db)
                outcome.run_id = database.start_run(db, cfg.trigger)
            opts = Options(cfg.method, cfg.batch_rows, cfg.source_tz, dry_run, table_exists,
                           progress)
            for source in files:
                result = _load_with_retries(db, source, cp, cfg, opts, full)
                outcome.files.append(result)
                if result.error:
                    outcome.errors.append(result.error)
                    log.error("%s", result.error)
                on_file(result)
            if outcome.run_id is not None:
                database.end_run(db, outcome.run_id, outcome.status, outcome.per_file(),
                                 "; ".join(outcome.errors) or None)
        finally:
            db.close()

        if outcome.ok and not dry_run:
            cp.finished_at = now_utc()
            checkpoint.save(cfg.checkpoint_file, cp)
        outcome.last_success = cp.finished_at
    return outcome


def _load_with_retries(db: Database, source: SourceFile, cp: checkpoint.Checkpoint,
                       cfg: Config, opts: Options, full: bool) -> FileResult:
    for attempt in range(cfg.retries + 1):
        try:
            return _load_one(db, source, cp, cfg, opts, full)
        except ConnectionLost as e:
            # Nothing of the file was committed and its checkpoint entry is unchanged,
            # so load it again on a new connection.
            if attempt == cfg.retries:
                raise
            log.warning("lost the database while loading %s (%s); reconnecting", source.label,
                        e.reason)
            db.open()
    raise AssertionError("unreachable")


def _load_one(db: Database, source: SourceFile, cp: checkpoint.Checkpoint, cfg: Config,
              opts: Options, full: bool) -> FileResult:
    """Load one file, then record how far it got; a bad file gives a FileResult with ``error``."""
    entry = None if full else cp.entry(source.participant, source.metric)
    try:
        result = load_file(db, source, entry, opts)
    except (SourceError, RowsRefused) as e:
        text = str(e) if isinstance(e, SourceError) else f"{source.path}: {e}"
        return FileResult(source, error=f"{text} ({source.label} not loaded; "
                                        "its checkpoint is unchanged)")
    if opts.dry_run:
        return result
    if result.rejects:
        rejects.append(cfg.rejects_file, source, result.rejects)
    end = result.end
    if (result.last_ts is not None or result.reloaded or entry is None
            or end.offset != entry.offset):
        cp.record(source.participant, source.metric, result.last_ts, end.offset, end.line,
                  tail_hash(source.path, end.offset), reset=result.reloaded)
        checkpoint.save(cfg.checkpoint_file, cp)
    return result
