"""The command line: parse the options, wire them into one run, print, set the exit status.

Standard output: one line per file, a totals line and ``ingestion complete``,
or exactly one JSON object with ``--json`` (``"ok": false`` and the error on
any failure, including those before a run starts). Standard error: log lines
with time and level. Exit status: 0 when every file loaded (or verified
equal); 75 when another run holds the lock; 2 for bad options; 1 otherwise.

``wearables-ingest status`` (the first argument) is the one subcommand: the
coverage per participant, metric and day, summed up for a study, and the last
run. Exit status 0 when every day is complete and the last run succeeded
recently, else 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wearables_ingest import coverage, plot, report, status, storage
from wearables_ingest.atomic import write_atomically
from wearables_ingest.database import Database
from wearables_ingest.errors import CheckpointError, IngestError, LockedError
from wearables_ingest.masking import MaskingFilter, known_passwords, mask_all

if TYPE_CHECKING:
    from wearables_ingest.results import FileResult, RunResult

# The load's modules (numpy, the reader, the writer) are imported when a load or
# --verify runs, not for `status` or --version, which answer in well under a second.
from wearables_ingest.settings import METHODS, Config, load
from wearables_ingest.timestamps import epoch

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: nothing is wrong, try again later
EXIT_INTERRUPTED = 130
log = logging.getLogger("wearables_ingest")
_masking = MaskingFilter()  # on stderr's handler: no log line shows a password


def _names(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, comma-separated")
    return names


def _numbers(text: str) -> set[int]:
    # ASCII digits only, as folder numbers are: int() would also take '١' as 1.
    names = _names(text)
    if not all(n.isascii() and n.isdigit() for n in names):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers")
    return {int(n) for n in names}


class _Parser(argparse.ArgumentParser):
    """argparse, except that with --json a usage error is a JSON object on stdout too."""

    json_wanted = False

    def error(self, message: str):  # type: ignore[override]
        if self.json_wanted:
            print(json.dumps({"ok": False, "status": "failed", "error": message,
                              "exit_status": EXIT_USAGE}))
        super().error(message)


class _Version(argparse.Action):
    """--version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from wearables_ingest import __version__
        print(f"{parser.prog} {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wearables-ingest",
        description="Delta-load wearable CSV files into TimescaleDB.",
        epilog="Settings (PGHOST, DATA_DIR, CHECKPOINT_FILE, ...) come from the environment "
               "or a .env file in the current folder; see docs/settings.md. "
               "`wearables-ingest status --help`: is every participant's data there?")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
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
                        help="print one JSON object instead of text, whatever happens")
    parser.add_argument("--method", choices=METHODS,
                        help="how rows are written (default: INGEST_METHOD, else copy): copy "
                             "streams COPY, values sends INSERT ... VALUES batches")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser.json_wanted = "--json" in args_list
    args = parser.parse_args(args_list)
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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["status"]:  # the one subcommand; anything else is a load
        return status_main(args_list[1:])
    args = parse_args(args_list)
    _start_logging()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.monotonic()
    cfg: Config | None = None

    def failed(e: BaseException, status: int) -> int:
        log.error("%s", e)
        if args.json:
            _print_json(report.error_json(str(e), started, time.monotonic() - clock, status))
        return status

    try:
        cfg = _loaded(load())
        if args.method:
            cfg = dataclasses.replace(cfg, method=args.method)
        if args.verify:
            return _verify(cfg, args)
        result = _load(cfg, args)
    except LockedError as e:
        return failed(e, EXIT_LOCKED)
    except IngestError as e:
        _write_metrics(cfg, args, None, clock)
        return failed(e, EXIT_FAILED)
    except KeyboardInterrupt:
        return failed(KeyboardInterrupt("interrupted; rows not yet committed will be offered "
                                        "again on the next run"), EXIT_INTERRUPTED)

    seconds = time.monotonic() - clock
    _write_metrics(cfg, args, result, clock)
    if args.json:
        _print_json(report.as_json(result, started, seconds))
    else:
        print(report.totals_line(result, seconds))
    if result.total("rejected"):
        where = "would go to" if args.dry_run else "listed in"
        log.info("%s rows rejected, %s %s", f"{result.total('rejected'):,}", where,
                 cfg.rejects_file)
    if not result.ok:
        failed_files = len(result.errors)
        log.error("ingestion incomplete: %d file%s not loaded", failed_files,
                  "s" if failed_files != 1 else "")
        return EXIT_FAILED
    if not args.json:
        print("dry run complete: nothing written" if args.dry_run else "ingestion complete")
    return EXIT_OK


def _start_logging() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # each line reaches cron's log as it happens
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S%z", level=logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_masking)


def _print_json(value: dict) -> None:
    """One JSON object on stdout, every password in it masked."""
    print(json.dumps(mask_all(value, _masking.known)))


def _loaded(cfg: Config) -> Config:
    """The settings, now that they are read: their passwords are masked from here on."""
    _masking.known = known_passwords(cfg.connect_args)
    log.setLevel(cfg.log_level)
    return cfg


def _load(cfg: Config, args: argparse.Namespace) -> RunResult:
    bars = _Bars() if sys.stderr.isatty() and not args.json else None

    def done(result: FileResult) -> None:  # a file is done: its bar goes, its line stays
        if bars is not None:
            bars.close()
        if result.error:
            return
        for note in report.notes(result):
            log.info("%s", note)
        if not args.json:
            print(report.file_line(result, args.dry_run))

    try:
        from wearables_ingest import loader
        return loader.run(cfg, full=args.full, dry_run=args.dry_run, metrics=args.metrics,
                          participants=args.participants, on_file=done, progress=bars)
    finally:
        if bars is not None:
            bars.close()


def _write_metrics(cfg: Config | None, args: argparse.Namespace, result: RunResult | None,
                   clock: float) -> None:
    """After a real run (not a dry run): write the metrics file and, with PUSHGATEWAY_URL,
    push the gauges; never fail the run for either."""
    if cfg is None or args.dry_run or args.verify:
        return
    if result is not None:
        last = epoch(result.last_success)
    else:  # the run did not get going: the last success is still the checkpoint's
        try:
            from wearables_ingest import checkpoint
            last = epoch(checkpoint.load(cfg.checkpoint_file).finished_at)
        except CheckpointError:
            last = None
    limits = {"success_max_age": cfg.status_max_age_hours * 3600,
              "newest_row_max_age": cfg.stale_after_hours * 3600}
    gauges = report.run_gauges(result, time.monotonic() - clock, time.time(), last, limits,
                               _newest_hours(cfg) if result is not None else None)
    try:
        report.write_metrics(cfg.metrics_file,
                             report.metrics_text(gauges + report.file_gauges(result)))
    except OSError as e:
        log.warning("cannot write %s: %s", cfg.metrics_file, e.strerror)
    if cfg.pushgateway_url:
        from wearables_ingest import push
        push.push(cfg.pushgateway_url, gauges)


def _newest_hours(cfg: Config) -> dict[tuple[int, str], float] | None:
    """Per (participant, metric), when its newest hour in ingest_coverage starts (Unix
    time); None when the database cannot tell (the metrics go out anyway)."""
    db = Database(cfg.connect_args, cfg.target(), retries=0)
    try:
        db.open()
        coverage.require(db, coverage.COVERAGE)
        return {pair: hour.timestamp()
                for pair, hour in coverage.newest_hour_per_pair(db).items()}
    except IngestError as e:
        log.warning("no newest-row ages in the metrics: %s", e)
        return None
    finally:
        db.close()


def _verify(cfg: Config, args: argparse.Namespace) -> int:
    from wearables_ingest import verify
    rows = verify.compare(cfg, metrics=args.metrics, participants=args.participants)
    equal = all(r.equal for r in rows)
    if args.json:
        print(json.dumps({"ok": equal, "equal": equal,
                          "rows": [dataclasses.asdict(r) for r in rows]}, default=str))
    else:
        for line in verify.table(rows):
            print(line)
    different = [r for r in rows if not r.equal]
    if different:
        log.error("%d of %d participant/metric pairs differ", len(different), len(rows))
        return EXIT_FAILED
    return EXIT_OK


# --- status ----------------------------------------------------------------------------------

def _whole(least: int, what: str, floor: str) -> Callable[[str], int]:
    """An argparse type: a whole number (of ``what``) no smaller than ``least``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{what}") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give {floor}")
        return n
    return parse


_days = _whole(1, " of days", "at least 1 day")
_count = _whole(0, "", "0 or more")


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not hours > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give more than 0 hours")
    return hours


def _svg_file(text: str) -> Path:
    if not text.lower().endswith(".svg"):
        raise argparse.ArgumentTypeError(f"{text!r} does not end in .svg: the heat map is "
                                         "written as SVG only")
    return Path(text)


def build_status_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wearables-ingest status",
        description="Coverage per participant, metric and day (rows stored against rows "
                    "expected, from the summary ingest_coverage; raw_data is never counted), "
                    "each participant from its first day, and the last run: a summary per "
                    "metric and day, then the participants who need attention, worst first. "
                    "Exit status 0 when every day of the period is complete and the last "
                    "run succeeded within --max-age; 1 otherwise.",
        epilog="Settings: STATUS_EXPECTED_ROWS, STATUS_COMPLETE_PCT, STATUS_TZ, "
               "STATUS_MAX_AGE_HOURS and the connection (docs/settings.md).")
    parser.add_argument("--days", type=_days, default=7, metavar="N",
                        help="the period: N days ending with the newest day stored (default 7)")
    parser.add_argument("--participants", type=_numbers, metavar="IDS",
                        help="only these participants, comma-separated (e.g. 1,7)")
    parser.add_argument("--metrics", type=_names, metavar="NAMES",
                        help="only these metrics, comma-separated (e.g. hr,spo2)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the text, with every row, "
                             "whatever happens")
    parser.add_argument("--max-age", type=_hours, metavar="HOURS",
                        help="the last run must have succeeded within this many hours "
                             "(default: STATUS_MAX_AGE_HOURS, 26)")
    rows = parser.add_mutually_exclusive_group()
    rows.add_argument("--all", action="store_true",
                      help="print every participant, metric and day (incomplete days one "
                           "line each) instead of the participants who need attention")
    rows.add_argument("--limit", type=_count, default=report.LIMIT, metavar="N",
                      help=f"list at most N participants who need attention, worst first "
                           f"(default {report.LIMIT}; 0: all of them)")
    parser.add_argument("--summary-days", type=_days, default=report.DAILY, metavar="N",
                        help=f"the summary shows the newest N days one line each (default "
                             f"{report.DAILY}) and the period's earlier days on one line")
    parser.add_argument("--plot", type=_svg_file, metavar="FILE",
                        help="also write a heat map, participants × days per metric, to FILE "
                             "(.svg); with many participants, those who need attention most, "
                             "worst first, and one row for the rest")
    return parser


def parse_status_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_status_parser()
    parser.json_wanted = "--json" in argv
    return parser.parse_args(list(argv))


def status_main(argv: Sequence[str]) -> int:
    """``wearables-ingest status``: print the coverage; 0 when all is well, else 1."""
    args = parse_status_args(argv)
    _start_logging()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.monotonic()
    try:
        cfg = _loaded(load())
        st = _status(cfg, args)
        stored = _storage(cfg)
        if args.plot is not None:
            try:
                write_atomically(args.plot, plot.heatmap_svg(st), mode=0o644)
            except OSError as e:
                raise IngestError(f"cannot write the plot {args.plot}: {e.strerror}") from None
    except IngestError as e:
        log.error("%s", e)
        if args.json:
            _print_json(report.error_json(str(e), started, time.monotonic() - clock,
                                          EXIT_FAILED))
        return EXIT_FAILED
    if args.json:
        _print_json({**report.status_json(st),
                     "storage": None if stored is None else report.storage_json(stored)})
    else:
        for line in report.status_lines(st, args.summary_days, args.limit, args.all, stored):
            print(line)
    return EXIT_OK if st.ok else EXIT_FAILED


def _storage(cfg: Config) -> storage.Figures | None:
    """raw_data's bytes and compressed chunks (storage.py), for status's own section."""
    db = Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay,
                  on_retry=lambda text: log.warning("%s", text)).open()
    try:
        return storage.figures(db)
    finally:
        db.close()


def _status(cfg: Config, args: argparse.Namespace) -> status.Status:
    """Read the summary and the last run, and rate the period's days from each participant's
    first day."""
    db = Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay,
                  on_retry=lambda text: log.warning("%s", text)).open()
    try:
        needed = [coverage.COVERAGE, coverage.RUNS]
        if cfg.status_expected_rows is None:
            needed.append(coverage.EXPECTED)
        coverage.require(db, *needed)
        expected = (cfg.status_expected_rows if cfg.status_expected_rows is not None
                    else coverage.expected_rows(db))
        newest = coverage.newest_hour(db)
        first = last = None
        daily: status.DailyRows = {}
        if newest is not None:
            first, last = status.period(status.local_day(newest, cfg.status_tz), args.days)
            daily = coverage.daily_rows(db, first, last, cfg.status_tz, args.participants,
                                        args.metrics)
        firsts = coverage.first_hours(db)
        run = coverage.last_run(db)
    finally:
        db.close()
    rules = status.Expectations(
        expected, cfg.status_complete_pct,
        args.max_age if args.max_age is not None else cfg.status_max_age_hours)
    pairs = status.chosen(firsts, args.participants, args.metrics)
    return status.evaluate(pairs, daily, first, last, rules, run, datetime.now(UTC),
                           cfg.status_tz, status.first_days(firsts, cfg.status_tz))
