"""One delta-load run: what each source file gained since the checkpoint goes to the database.

For every file the checkpoint remembers how far reading got (plan.py). Files
are written in groups, one transaction each (many small files share a
commit, a large one has its own), each file under its own savepoint
(writer.py). Only after a group commits do its files' checkpoint entries move
forward, and the checkpoint is saved every few seconds and at the end, so a
crash at any point re-offers rows rather than skipping them, and ``ON
CONFLICT DO NOTHING`` turns re-offered rows into "already present" instead of
duplicates. The cost of a run grows with the files and the new rows, never
with the size of the checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from wearables_ingest import checkpoint, database, plainrows, rejects, reoffer, writer
from wearables_ingest.blocks import Block, Reject, read_blocks
from wearables_ingest.copydata import binary_rows, from_block, from_rows, line_suffix
from wearables_ingest.database import Database
from wearables_ingest.discovery import SourceFile, discover
from wearables_ingest.errors import ConnectionLost, IngestError, RowsRefused, SourceError
from wearables_ingest.lock import locked
from wearables_ingest.parse import Chunk, hours_of, newer_than, parse_block, whole_folds
from wearables_ingest.plan import Plan, first_ts, plan
from wearables_ingest.results import FileResult, RunResult
from wearables_ingest.settings import Config
from wearables_ingest.timestamps import now_utc

MAX_REJECTS = 10_000  # more bad rows than this in one file: it is probably not a metric file
GROUP_FILES = 500  # files written in one transaction at most
GROUP_BYTES = 32 << 20  # a group closes once its files have this much to read
SAVE_EVERY_S = 5.0  # the checkpoint is saved at most this often during a run (and at the end)
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
    settle_s: float = 0.0  # a last line without its line end is read once this old
    full: bool = False  # --full: every row offered, none skipped by the coverage's hours


class FileRows:
    """One file's rows from the plan's start (writer.Rows), read afresh for each strategy.

    Each reading also collects what the run needs to know afterwards: the newest
    timestamp offered, where reading stopped (and the tail hash there, from the
    same opened file), and the rows rejected. Whatever goes wrong while reading
    is this file's SourceError, so it fails alone.
    """

    def __init__(self, source: SourceFile, p: Plan, opts: Options) -> None:
        self.source, self.plan, self.opts = source, p, opts
        self.participant, self.metric = source.participant, source.metric
        self._reset()

    def _reset(self) -> None:
        self.last_ts: np.datetime64 | None = None
        self.end = self.plan.start
        self.tail = self.plan.tail
        self.rejects: list[Reject] = []
        self._hours: Counter[np.datetime64] = Counter()
        self._copied = 0
        self.skipped = 0  # rows in hours the plan does not offer: stored already

    def hours(self) -> dict[np.datetime64, int]:
        return dict(self._hours)

    def copied(self) -> int:
        return self._copied

    def _saw(self, ts: np.datetime64) -> None:
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    @contextmanager
    def _file_errors(self) -> Iterator[None]:
        """Any unexpected error while reading becomes this file's one-line SourceError."""
        try:
            yield
        except IngestError:
            raise
        except Exception as e:
            raise SourceError(f"{self.source.path}: cannot be read ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None

    def _blocks(self) -> Iterator[Block]:
        self._reset()
        start, view = self.plan.start, self.plan.view
        total = max(0, view.size - start.offset)
        blocks = read_blocks(view, start, settle_s=self.opts.settle_s, tail=self.plan.tail)
        for block in whole_folds(blocks, self.opts.source_tz):
            yield block
            self.end, self.tail = block.end, block.tail
            if self.opts.progress is not None:
                self.opts.progress(self.source, block.rows, block.end.offset - start.offset, total)

    def _parse(self, block: Block, tried_fast: bool = False) -> Chunk:
        """The block's rows to offer; ``tried_fast``: plainrows.read already gave None."""
        fast = None if tried_fast else plainrows.read(block, self.opts.source_tz == "UTC")
        if fast is not None:  # plain, and read exactly at numpy speed: no row to reject
            chunk = Chunk(*fast)
        else:
            chunk, bad = parse_block(block, self.opts.source_tz, self.source.path)
            self.rejects += bad
        if len(self.rejects) > MAX_REJECTS:
            # The reason is left out: it quotes the line, and this message is stored
            # in ingest_runs (rejects.csv holds the rows of files that load).
            raise SourceError(f"{self.source.path}: more than {MAX_REJECTS:,} bad rows (the "
                              f"first on line {self.rejects[0].line}); is it a metric file?")
        chunk = newer_than(chunk, self.plan.last_ts)
        if self.plan.hours is not None and len(chunk):
            keep = np.isin(chunk.ts.astype("datetime64[h]"),
                           np.array(sorted(self.plan.hours), dtype="datetime64[h]"))
            self.skipped += int(len(keep) - keep.sum())
            if not keep.all():
                self._saw(chunk.ts[~keep].max())
            chunk = Chunk(chunk.ts[keep], chunk.values[keep])
        if len(chunk):
            self._saw(chunk.ts.max())
            self._hours.update(hours_of(chunk.ts))
        return chunk

    def copy_data(self, parse_all: bool, count_hours: bool = False,
                  binary: bool = False) -> Iterator[bytes]:
        with self._file_errors():
            yield from self._copy_data(parse_all, count_hours, binary)

    def _copy_data(self, parse_all: bool, count_hours: bool, binary: bool) -> Iterator[bytes]:
        suffix = line_suffix(self.participant, self.metric)
        naive_ok = self.opts.source_tz == "UTC"  # the session's time zone is UTC
        for block in self._blocks():
            if self._skip(block, naive_ok):
                continue
            span = (None if self.plan.last_ts is not None or parse_all
                    or self.plan.hours is not None else block.plain_span(naive_ok))
            read = plainrows.read(block, naive_ok) if binary and span is not None else None
            if span is not None and (read is not None or not binary):
                # plain: the file's own bytes go to COPY, or their exact binary reading
                self._saw(max(span))
                if count_hours:
                    hours = block.utc_hours(naive_ok)
                    if hours is None:  # no such day (2024-02-30): the COPY fails anyway
                        hours = hours_of(parse_block(block, self.opts.source_tz,
                                                     self.source.path)[0].ts)
                    self._hours.update(hours)
                self._copied += block.rows
                yield (binary_rows(*read, self.participant, self.metric) if read is not None
                       else from_block(block.data, suffix))
            else:
                chunk = self._parse(block, tried_fast=binary and span is not None)
                if len(chunk):
                    self._copied += len(chunk)
                    yield (binary_rows(chunk.ts, chunk.values, self.participant, self.metric)
                           if binary else from_rows(chunk.ts, chunk.values, suffix))

    def _skip(self, block: Block, naive_ok: bool) -> bool:
        """Whether the plan's hours leave out every row of a plain block (none parsed)."""
        if self.plan.hours is None:
            return False
        span = block.plain_span(naive_ok)
        hours = None if span is None else block.utc_hours(naive_ok)
        if hours is None or not hours.keys().isdisjoint(self.plan.hours):
            return False
        self.skipped += block.rows
        self._saw(max(span))
        return True

    def parsed(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self._file_errors():
            for block in self._blocks():
                chunk = self._parse(block)
                if len(chunk):
                    yield chunk.ts, chunk.values


@dataclass
class _Job:
    """One file to write in a group: where reading starts, and whether COPY may go direct."""

    source: SourceFile
    entry: checkpoint.Entry | None
    plan: Plan
    reloaded: bool
    unchanged: bool = False  # nothing appended since the checkpoint: no database work
    direct: bool = False
    first: np.datetime64 | None = field(default=None, repr=False)


def _result(job: _Job, written: writer.Written, rows: FileRows) -> FileResult:
    # Rows the plan's hours left out were offered, in effect, and found present.
    return FileResult(job.source, written.offered + rows.skipped, written.inserted,
                      rows.last_ts, rows.end,
                      rescanned=job.plan.rescanned, reloaded=job.reloaded,
                      checkpoint_ts=job.entry.last_ts if job.entry else None,
                      rejects=rows.rejects, strategy=written.strategy, tail=rows.tail)


def _failed(source: SourceFile, e: Exception) -> FileResult:
    if isinstance(e, SourceError):
        text = str(e)
    elif isinstance(e, IngestError):
        text = f"{source.path}: {e}"
    else:  # a bug or a case not foreseen: still this file's one line, never a traceback
        text = f"{source.path}: cannot be read ({type(e).__name__}: {str(e)[:200]})"
    return FileResult(source, error=f"{text} ({source.label} not loaded; its checkpoint is "
                                    "unchanged)")


def _write_group(db: Database, jobs: list[_Job], opts: Options) -> list[FileResult]:
    """Write the group's files in one transaction; a bad file fails alone (savepoints)."""
    work = [job for job in jobs if not job.unchanged]
    if opts.method == "copy":
        for job in work:
            try:
                job.first = first_ts(job.plan, opts.source_tz, opts.settle_s)
            except Exception:  # noqa: BLE001 - reading it fails again below, with the file's error
                job.first = None
        probed = [job for job in work if job.first is not None]
        stored = database.stored_since(
            db, [(j.source.participant, j.source.metric, j.first) for j in probed])
        for job, taken in zip(probed, stored, strict=True):
            # Straight into the hypertable when nothing is stored from the first row to
            # offer on (the nightly case): no row can conflict unless the file is out of order.
            job.direct = not taken
    if not opts.full:  # read again from the start: only the hours with rows missing
        again = [job for job in work if not job.direct]
        for job, narrowed in zip(again, reoffer.narrow(
                db, [(job.source, job.plan) for job in again], opts.source_tz, opts.settle_s),
                strict=True):
            job.plan = narrowed
    together: dict[int, tuple[writer.Written, FileRows]] = {}
    results = []
    with db.transaction() as cur:
        direct = [i for i, job in enumerate(jobs) if job.direct and not job.unchanged]
        if len(direct) > 1:  # many small files: one COPY for all, when none objects
            many = [FileRows(jobs[i].source, jobs[i].plan, opts) for i in direct]
            written = writer.write_together(cur, db.target, many)
            if written is not None:
                together = {i: (w, rows) for i, w, rows in zip(direct, written, many,
                                                               strict=True)}
        for i, job in enumerate(jobs):
            if job.unchanged:
                results.append(_unchanged(job))
                continue
            if i in together:
                results.append(_result(job, *together[i]))
                continue
            rows = FileRows(job.source, job.plan, opts)

            def fell_back(strategy: writer.Strategy, e: RowsRefused, label=job.source.label):
                log.debug("%s: %s refused (%s); trying the next way", label, strategy.name, e)

            try:
                written = writer.write(cur, db.target, rows,
                                       writer.chain(opts.method, job.direct), opts.batch_rows,
                                       fell_back)
            except (SourceError, RowsRefused) as e:
                results.append(_failed(job.source, e))
                continue
            results.append(_result(job, written, rows))
    return results


def _unchanged(job: _Job) -> FileResult:
    return FileResult(job.source, end=job.plan.start, tail=job.plan.tail,
                      checkpoint_ts=job.entry.last_ts if job.entry else None)


def load_file(db: Database, source: SourceFile, entry: checkpoint.Entry | None,
              opts: Options = Options()) -> FileResult:
    """Offer what one file gained since ``entry``, in a committed transaction of its own."""
    reloaded = (entry is not None and entry.last_ts is not None and opts.table_exists
                and not database.stored_at(db, [(source.participant, source.metric,
                                                 entry.last_ts)])[0])
    job = _Job(source, entry, plan(source, None if reloaded else entry), reloaded)
    if opts.dry_run:
        return _dry_file(db, job, opts)
    (result,) = _write_group(db, [job], opts)
    if result.error:
        raise SourceError(result.error)
    return result


def _dry_file(db: Database, job: _Job, opts: Options) -> FileResult:
    rows = FileRows(job.source, job.plan, opts)
    written = writer.count_new(db, rows) if opts.table_exists else _count_only(rows)
    return _result(job, written, rows)


def _count_only(rows: FileRows) -> writer.Written:
    """A dry run against a database without raw_data: every distinct row would be new."""
    stamps = [ts for ts, _ in rows.parsed()]
    offered = sum(len(ts) for ts in stamps)
    new = len(np.unique(np.concatenate(stamps))) if stamps else 0
    return writer.Written(offered, new, "dry run")


class _Saver:
    """Saves the checkpoint while a run goes on: every SAVE_EVERY_S seconds, and never
    more often than keeps saving under a tenth of the run's time (a save of a large
    checkpoint costs more), so the run's cost stays linear in its files."""

    def __init__(self, cfg: Config, cp: checkpoint.Checkpoint) -> None:
        self.cfg, self.cp = cfg, cp
        self.dirty = False
        self.saved = time.monotonic()
        self.took = 0.0  # how long the last save took

    def maybe(self) -> None:
        if self.dirty and time.monotonic() - self.saved >= max(SAVE_EVERY_S, 10 * self.took):
            self.now()

    def now(self) -> None:
        start = time.monotonic()
        checkpoint.save(self.cfg.checkpoint_file, self.cp)
        self.saved = time.monotonic()
        self.dirty, self.took = False, self.saved - start


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
        saver = _Saver(cfg, cp)
        db = Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay,
                      on_retry=lambda text: log.warning("%s", text)).open()
        try:
            table_exists = True
            if dry_run:
                table_exists = database.schema_exists(db)
            else:
                stored = database.ensure_schema(db, cfg.compress_after_days)
                if stored.note:
                    log.info("%s", stored.note)
                if stored.problem:
                    log.warning("%s", stored.problem)
                outcome.run_id = database.start_run(db, cfg.trigger)
            opts = Options(cfg.method, cfg.batch_rows, cfg.source_tz, dry_run, table_exists,
                           progress, cfg.settle_s, full=full)
            entries = {f: None if full else cp.entry(f.participant, f.metric) for f in files}
            lost = _lost(db, entries) if table_exists else set()
            if not dry_run:
                database.rebuild_coverage(db, sorted(
                    (f.participant, f.metric) for f in (files if full else lost)))
            for group in _groups(files, entries, lost, on_file, outcome):
                for job, result in zip(group, _write_with_retries(db, group, cfg, opts),
                                       strict=True):
                    _done(result, cfg, cp, saver, outcome, on_file, job.entry)
                saver.maybe()
            if outcome.run_id is not None:
                database.end_run(db, outcome.run_id, outcome.status, outcome.per_file(),
                                 "; ".join(outcome.errors) or None)
        except BaseException as e:
            _end_failed(db, outcome, e)
            raise
        finally:
            db.close()
            if saver.dirty:  # what committed is kept, however the run ends
                saver.now()

        if outcome.ok and not dry_run:
            cp.finished_at = now_utc()
            saver.now()
        outcome.last_success = cp.finished_at
    return outcome


def _end_failed(db: Database, outcome: RunResult, e: BaseException) -> None:
    """Close the run record of a run that ends on an exception: ``failed``, with the
    reason, never left ``running`` (a kill -9 is the one end that cannot do this)."""
    if outcome.run_id is None:
        return
    reason = ("interrupted" if isinstance(e, KeyboardInterrupt)
              else str(e).splitlines()[0][:500] if str(e) else type(e).__name__)
    for attempt in range(2):
        try:
            if attempt:
                db.open()  # the error may have been the connection itself
            database.end_run(db, outcome.run_id, "failed", outcome.per_file(), reason)
            return
        except Exception as again:  # noqa: BLE001 - the first error is the one to report
            problem = again
    log.warning("the run record %d stays 'running': %s", outcome.run_id, problem)


def _lost(db: Database, entries: dict[SourceFile, checkpoint.Entry | None]) -> set[SourceFile]:
    """Files whose newest loaded row, by the checkpoint, is not in raw_data.

    The database was reset or lost rows: believing the checkpoint would skip
    those rows forever, so these files are read again from the start.
    """
    marked = [(f, e.last_ts) for f, e in entries.items() if e is not None and e.last_ts is not None]
    stored = database.stored_at(db, [(f.participant, f.metric, ts) for f, ts in marked])
    return {f for (f, _), here in zip(marked, stored, strict=True) if not here}


def _groups(files: list[SourceFile], entries: dict[SourceFile, checkpoint.Entry | None],
            lost: set[SourceFile], on_file: Callable[[FileResult], None],
            outcome: RunResult) -> Iterator[list[_Job]]:
    """The files to write, in groups; a file with nothing new is done here, without the database."""
    group: list[_Job] = []
    pending = 0
    for source in files:
        entry = entries[source]
        reloaded = source in lost
        try:
            p = plan(source, None if reloaded else entry)
        except Exception as e:  # noqa: BLE001 - whatever it is, this file fails alone
            result = _failed(source, e)
            outcome.files.append(result)
            outcome.errors.append(result.error)
            log.error("%s", result.error)
            on_file(result)
            continue
        size = p.view.size
        unchanged = 0 < p.start.offset >= size  # nothing appended since the last run
        group.append(_Job(source, entry, p, reloaded, unchanged))
        pending += size - p.start.offset
        if len(group) >= GROUP_FILES or pending >= GROUP_BYTES:
            yield group
            group, pending = [], 0
    if group:
        yield group


def _write_with_retries(db: Database, group: list[_Job], cfg: Config,
                        opts: Options) -> list[FileResult]:
    for attempt in range(cfg.retries + 1):
        try:
            if opts.dry_run:
                results = []
                for job in group:
                    try:
                        results.append(_unchanged(job) if job.unchanged
                                       else _dry_file(db, job, opts))
                    except (SourceError, RowsRefused) as e:
                        results.append(_failed(job.source, e))
                return results
            return _write_group(db, group, opts)
        except ConnectionLost as e:
            # Nothing of the group was committed and its checkpoint entries are unchanged,
            # so write it again on a new connection.
            if attempt == cfg.retries:
                raise
            log.warning("lost the database while loading %s (%s); reconnecting",
                        group[0].source.label if len(group) == 1
                        else f"{group[0].source.label} and {len(group) - 1} more files",
                        e.reason)
            db.open()
    raise AssertionError("unreachable")


def _done(result: FileResult, cfg: Config, cp: checkpoint.Checkpoint, saver: _Saver,
          outcome: RunResult, on_file: Callable[[FileResult], None],
          entry: checkpoint.Entry | None) -> None:
    """A file of a committed group: note its rejects and move its checkpoint entry."""
    outcome.files.append(result)
    if result.error:
        outcome.errors.append(result.error)
        log.error("%s", result.error)
    elif not outcome.dry_run:
        if result.rejects:
            rejects.append(cfg.rejects_file, result.source, result.rejects,
                           cfg.rejects_max_bytes)
        end = result.end
        # A rewrite of the same size still moves the fingerprint: else every later run
        # would read the file again from the start, and miss late rows appended to it.
        if (result.last_ts is not None or result.reloaded or entry is None
                or end.offset != entry.offset or result.tail != entry.tail):
            # The tail hash comes from the file as it was read, not as it is now: a file
            # replaced since is noticed by the next run, never recorded half.
            cp.record(result.source.participant, result.source.metric, result.last_ts,
                      end.offset, end.line, result.tail, reset=result.reloaded)
            saver.dirty = True
    on_file(result)
