#!/usr/bin/env python3
"""Delta-load Fitbit-style intraday CSV files into the TimescaleDB table ``raw_data``.

Reads one ``<metric>.csv`` per metric from DATA_DIR, offers the database the
rows newer than the checkpoint, and moves the checkpoint forward. Settings come
from the environment and an optional ``.env`` file (see .env.example).
Exit status: 0 when every file loaded; 75 when another run holds the lock;
1 otherwise. Every failure is reported as one line on standard error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import config
import loader
from checkpoint import CheckpointError, LockedError
from db import DatabaseError
from source import SourceError

EXIT_LOCKED = 75  # EX_TEMPFAIL: nothing is wrong, try again later


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Delta-load wearable CSV files into TimescaleDB.",
        epilog="Settings (PGHOST, DATA_DIR, CHECKPOINT_FILE, ...) come from the environment "
               "or a .env file in the current folder.")
    parser.add_argument("--method", choices=config.METHODS,
                        help="how rows are written (default: INGEST_METHOD, else copy): copy "
                             "streams COPY, values sends INSERT ... VALUES batches")
    parser.add_argument("--full", action="store_true",
                        help="ignore the checkpoint for this run: offer every row again (rows "
                             "already stored are skipped); the same as the light reset")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each line reaches cron's log as it happens

    def warn(level: str, message: str) -> None:
        print(f"{level}: {message}", file=sys.stderr, flush=True)

    try:
        cfg = config.load()
        if args.method:
            cfg = dataclasses.replace(cfg, method=args.method)
        result = loader.run(cfg, report=print, warn=warn, full=args.full)
    except LockedError as e:
        warn("error", str(e))
        return EXIT_LOCKED
    except (config.ConfigError, SourceError, CheckpointError, DatabaseError) as e:
        warn("error", str(e))
        return 1
    except KeyboardInterrupt:
        warn("error", "interrupted; rows not yet committed will be offered again on the next run")
        return 130

    if not result.ok:
        failed = len(result.errors)
        warn("error", f"ingestion incomplete: {failed} file{'s' if failed != 1 else ''} not loaded")
        return 1
    print("ingestion complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
