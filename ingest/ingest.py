#!/usr/bin/env python3
"""Delta-load Fitbit-style intraday CSV files into the TimescaleDB table ``raw_data``.

Reads one ``<metric>.csv`` per metric from DATA_DIR, offers the database what
the files gained since the checkpoint, and moves the checkpoint forward.
Settings come from the environment and an optional ``.env`` file (see
.env.example); ``--help`` lists the options.

Standard output: one line per metric, a totals line and ``ingestion complete``
(or one JSON object with ``--json``). Standard error: log lines with time and
level. Exit status: 0 when every file loaded (or verified equal); 75 when
another run holds the lock; 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from datetime import UTC, datetime

import checkpoint
import config
import loader
import report
import verify
from checkpoint import CheckpointError, LockedError
from db import DatabaseError
from source import SourceError

EXIT_LOCKED = 75  # EX_TEMPFAIL: nothing is wrong, try again later
log = logging.getLogger("wearables-ingest")


def _names(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, comma-separated")
    return names


def _numbers(text: str) -> set[int]:
    try:
        return {int(n) for n in _names(text)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest.py",
        description="Delta-load wearable CSV files into TimescaleDB.",
        epilog="Settings (PGHOST, DATA_DIR, CHECKPOINT_FILE, ...) come from the environment "
               "or a .env file in the current folder; see the README.")
    parser.add_argument("--dry-run", action="store_true",
                        help="read, filter and validate everything and print what would be "
                             "inserted; write nothing (database and checkpoint untouched)")
    parser.add_argument("--full", action="store_true",
                        help="ignore the checkpoint for this run: offer every row again (rows "
                             "already stored are skipped); the light reset without deleting it")
    parser.add_argument("--metrics", type=_names, metavar="NAMES",
                        help="only these metrics, comma-separated (e.g. hr,spo2)")
    parser.add_argument("--participants", type=_numbers, metavar="IDS",
                        help="only these participants, comma-separated (e.g. 1,7)")
    parser.add_argument("--verify", action="store_true",
                        help="compare the source files with raw_data per participant and "
                             "metric (rows, first and last ts); exit 1 on any difference; "
                             "read-only")
    parser.add_argument("--json", action="store_true",
                        help="print the run's summary as one JSON object instead of text")
    parser.add_argument("--method", choices=config.METHODS,
                        help="how rows are written (default: INGEST_METHOD, else copy): copy "
                             "streams COPY, values sends INSERT ... VALUES batches")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verify and (args.dry_run or args.full or args.method):
        parser.error("--verify reads only: it takes no --dry-run, --full or --method")
    return args


class _Bars:
    """One progress bar per file while a person watches (stderr is a terminal)."""

    def __init__(self) -> None:
        from tqdm import tqdm
        self._tqdm = tqdm
        self._bar = None
        self._source = None
        self._file = sys.stderr  # this one: during a COPY, sys.stderr is briefly elsewhere

    def __call__(self, source, rows: int, done: int, total: int) -> None:
        if source is not self._source:
            self.close()
            self._source = source
            self._bar = self._tqdm(desc=source.label, unit=" rows", unit_scale=True,
                                   leave=False, dynamic_ncols=True, file=self._file)
        if done and total:  # the total in rows, from the bytes read so far
            self._bar.total = max(self._bar.n + rows, round((self._bar.n + rows) * total / done))
        self._bar.update(rows)
        self._bar.refresh()  # once per 4 MiB block: cheap, and every block shows

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each line reaches cron's log as it happens
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S%z", level=logging.INFO)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.monotonic()
    cfg = None
    try:
        cfg = config.load()
        log.setLevel(cfg.log_level)
        if args.method:
            cfg = dataclasses.replace(cfg, method=args.method)
        if args.verify:
            return _verify(cfg, args)
        bars = _Bars() if sys.stderr.isatty() and not args.json else None

        def say(line: str) -> None:  # a file is done: its bar goes, its line stays
            if bars is not None:
                bars.close()
            if not args.json:
                print(line)

        try:
            result = loader.run(
                cfg, report=say,
                log=lambda level, text: log.log(logging.getLevelName(level.upper()), text),
                full=args.full, dry_run=args.dry_run, metrics=args.metrics,
                participants=args.participants, progress=bars)
        finally:
            if bars is not None:
                bars.close()
    except LockedError as e:
        log.error("%s", e)
        return EXIT_LOCKED
    except (config.ConfigError, SourceError, CheckpointError, DatabaseError) as e:
        log.error("%s", e)
        _metrics(cfg, args, None, clock)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; rows not yet committed will be offered again on the next run")
        return 130

    seconds = time.monotonic() - clock
    _metrics(cfg, args, result, clock)
    if args.json:
        print(json.dumps(report.as_json(result, started, seconds)))
    else:
        print(report.totals_line(result, seconds))
    if not result.ok:
        failed = len(result.errors)
        log.error("ingestion incomplete: %d file%s not loaded", failed, "s" if failed != 1 else "")
        return 1
    if not args.json:
        print("dry run complete: nothing written" if args.dry_run else "ingestion complete")
    return 0


def _metrics(cfg, args: argparse.Namespace, result, clock: float) -> None:
    """Write the metrics file after a real run (not a dry run); never fail the run for it."""
    if cfg is None or args.dry_run:
        return
    if result is not None:
        last = report.epoch(result.last_success)
    else:  # the run did not get going: the last success is still the checkpoint's
        try:
            last = report.epoch(checkpoint.load(cfg.checkpoint_file).finished_at)
        except CheckpointError:
            last = None
    text = report.metrics_text(result, time.monotonic() - clock, time.time(), last)
    try:
        report.write_metrics(cfg.metrics_file, text)
    except OSError as e:
        log.warning("cannot write %s: %s", cfg.metrics_file, e.strerror)


def _verify(cfg, args: argparse.Namespace) -> int:
    rows = verify.compare(cfg, metrics=args.metrics, participants=args.participants)
    if args.json:
        print(json.dumps({"equal": all(r.equal for r in rows),
                          "rows": [dataclasses.asdict(r) for r in rows]}, default=str))
    else:
        for line in verify.table(rows):
            print(line)
    different = [r for r in rows if not r.equal]
    if different:
        log.error("%d of %d participant/metric pairs differ", len(different), len(rows))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
