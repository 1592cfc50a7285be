"""Generate a synthetic Fitbit-style intraday data set as flattened CSV files.

    python -m wearables_ingest.synth --out data/participant_001              # 30 days
    python -m wearables_ingest.synth --out data/participant_001 --append-days 1

Each metric goes to ``<out>/<metric>.csv`` with the header ``ts,value``, one row
per sample, sorted by time, ``ts`` in ISO 8601 with a UTC offset. Every day is
drawn from its own random stream, keyed by the seed and the date, so a data set
made in one go equals one made a day at a time with ``--append-days``.

Rows per day: activity 1 and br 1 (daily summaries at 00:00), azm 1,440
(1-minute), hr 86,400 (1-second), hrv and spo2 one per minute of the night's
sleep window, which lasts 441 or 442 minutes (13,248 over any 30 nights).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from wearables_ingest.errors import IngestError

METRICS = ("activity", "azm", "br", "hr", "hrv", "spo2")
HEADER = "ts,value\n"
SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 1_440
DEFAULT_START = date(2024, 1, 1)
DEFAULT_DAYS = 30
DEFAULT_SEED = 42
# Value formats: integers for counts and heart rate, one decimal elsewhere.
FLOAT_METRICS = {"br": "%.1f", "hrv": "%.1f", "spo2": "%.1f"}


class SynthError(IngestError):
    """A problem with the output folder, reported as one line."""


def sleep_minutes(day: date) -> int:
    """Length of the sleep window in the early hours of ``day``: 441 or 442 minutes.

    Three residues of the date's ordinal modulo 5 get 442, so any 5 consecutive
    nights sum to 2,208 minutes and any 30 to exactly 13,248.
    """
    return 442 if day.toordinal() % 5 in (0, 2, 4) else 441


def _smooth_noise(rng: np.random.Generator, n: int, alpha: float, scale: float) -> np.ndarray:
    """Slowly wandering noise: white noise through an exponential filter, rescaled."""
    raw = pd.Series(rng.standard_normal(n)).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return raw / (raw.std() or 1.0) * scale


def generate_day(day: date, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One day's samples: metric -> (seconds since midnight UTC, values)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    t = np.arange(SECONDS_PER_DAY)

    # Sleep: starts between 00:30 and 01:29 and lasts sleep_minutes(day).
    n_sleep = sleep_minutes(day)
    sleep_start = (30 + int(rng.integers(0, 60))) * 60
    sleep_end = sleep_start + n_sleep * 60
    asleep = (t >= sleep_start) & (t < sleep_end)

    # Heart rate: circadian rhythm (low before dawn, high in the afternoon),
    # lower while asleep, a few exercise bursts while awake, wandering noise.
    hr = 64 + 6 * np.cos(2 * np.pi * (t - 17 * 3600) / SECONDS_PER_DAY)
    hr = hr - 10 * asleep
    burst_minutes = 0
    for _ in range(int(rng.integers(1, 5))):
        length = int(rng.integers(10, 61)) * 60
        begin = int(rng.integers(7 * 3600, 21 * 3600))
        end = min(begin + length, SECONDS_PER_DAY)
        shape = np.sin(np.linspace(0, np.pi, end - begin)) ** 0.5  # ramp up, hold, ramp down
        hr[begin:end] += rng.uniform(30, 75) * shape
        burst_minutes += (end - begin) // 60
    hr += _smooth_noise(rng, SECONDS_PER_DAY, alpha=0.01, scale=3.0)
    hr += rng.normal(0, 1.0, SECONDS_PER_DAY)
    hr = np.clip(np.rint(hr), 40, 200).astype(np.int64)

    # Active zone minutes from each minute's mean heart rate: fat burn counts 1,
    # cardio and peak count 2 (as Fitbit counts them).
    minute_hr = hr.reshape(MINUTES_PER_DAY, 60).mean(axis=1)
    azm = np.where(minute_hr >= 130, 2, np.where(minute_hr >= 105, 1, 0)).astype(np.int64)

    steps = int(np.clip(rng.normal(6500, 1800) + 45 * burst_minutes, 300, None))
    breathing = round(float(np.clip(rng.normal(15.0, 1.2), 12.0, 20.0)), 1)

    sleep_secs = sleep_start + 60 * np.arange(n_sleep)
    spo2 = 96.2 + _smooth_noise(rng, n_sleep, alpha=0.1, scale=0.9)
    for _ in range(int(rng.integers(0, 4))):  # a few short desaturation dips
        at = int(rng.integers(0, n_sleep - 5))
        spo2[at : at + 5] -= rng.uniform(1.5, 4.0)
    spo2 = np.clip(np.round(spo2, 1), 90.0, 100.0)

    night_rmssd = float(np.exp(rng.normal(np.log(42), 0.15)))
    hrv = night_rmssd * np.exp(_smooth_noise(rng, n_sleep, alpha=0.05, scale=0.25))
    hrv = np.clip(np.round(hrv, 1), 8.0, 160.0)

    midnight = np.array([0])
    return {
        "activity": (midnight, np.array([steps])),
        "azm": (60 * np.arange(MINUTES_PER_DAY), azm),
        "br": (midnight, np.array([breathing])),
        "hr": (t, hr),
        "hrv": (sleep_secs, hrv),
        "spo2": (sleep_secs, spo2),
    }


def format_rows(day: date, seconds: np.ndarray, values: np.ndarray, metric: str) -> str:
    """CSV lines (no header) for one metric's samples of one day."""
    instants = np.datetime64(day, "s") + seconds.astype("timedelta64[s]")
    frame = pd.DataFrame({"ts": np.char.add(np.datetime_as_string(instants, unit="s"), "+00:00"),
                          "value": values})
    return frame.to_csv(header=False, index=False, lineterminator="\n",
                        float_format=FLOAT_METRICS.get(metric))


@dataclass(frozen=True)
class Written:
    first_day: date
    last_day: date
    rows: dict[str, int]


def _days(first: date, count: int) -> Iterator[date]:
    for i in range(count):
        yield first + timedelta(days=i)


def _last_line(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read()
    if not tail.endswith(b"\n"):
        raise SynthError(f"{path}: does not end with a newline; not appending to a partial file")
    lines = tail.rstrip(b"\n").split(b"\n")
    return lines[-1].decode("utf-8", "replace")


def last_day(out: Path) -> date:
    """The last day present in an existing data set (all metric files must agree)."""
    days = {}
    for metric in METRICS:
        path = out / f"{metric}.csv"
        if not path.is_file():
            raise SynthError(f"{path}: missing; --append-days needs a complete data set")
        line = _last_line(path)
        try:
            days[metric] = datetime.fromisoformat(line.split(",", 1)[0]).date()
        except ValueError:
            raise SynthError(f"{path}: last line {line!r} has no timestamp") from None
    if len(set(days.values())) != 1:
        found = ", ".join(f"{m} {d}" for m, d in days.items())
        raise SynthError(f"{out}: metric files end on different days ({found})")
    return next(iter(days.values()))


def write(out: Path, first_day: date, days: int, seed: int, append: bool) -> Written:
    """Write (or append) ``days`` days starting at ``first_day``; return the rows per metric."""
    out.mkdir(parents=True, exist_ok=True)
    rows = dict.fromkeys(METRICS, 0)
    targets = {m: out / f"{m}.csv" for m in METRICS}
    # A new data set is written beside the final files and renamed into place,
    # so an interrupted run never leaves a half-written file under a real name.
    paths = targets if append else {m: p.with_name(f".{p.name}.tmp") for m, p in targets.items()}
    mode = "a" if append else "w"
    files = {m: p.open(mode, encoding="utf-8", newline="") for m, p in paths.items()}
    try:
        if not append:
            for f in files.values():
                f.write(HEADER)
        for day in _days(first_day, days):
            for metric, (seconds, values) in generate_day(day, seed).items():
                files[metric].write(format_rows(day, seconds, values, metric))
                rows[metric] += len(values)
    finally:
        for f in files.values():
            f.close()
    if not append:
        for metric, path in paths.items():
            path.replace(targets[metric])
    return Written(first_day, first_day + timedelta(days=days - 1), rows)


# A study's coverage written straight into ingest_coverage, without the rows: how `status`
# and its heat map are tried at 1,000 participants in seconds (tests, bench). Each
# participant joins on day ``p % join_days``; every 97th stops two days before the end;
# every 13th stores half of the last day's hr. Rows an hour: hr 3,600, azm 60, activity
# and br one at midnight, hrv and spo2 12 an hour over eight night hours.
STUDY_COVERAGE = """
WITH m (metric, rows, hours) AS (
  VALUES ('activity', 1, 1), ('azm', 60, 24), ('br', 1, 1), ('hr', 3600, 24),
         ('hrv', 12, 8), ('spo2', 12, 8))
INSERT INTO ingest_coverage (participant, metric, hour, rows)
SELECT p, m.metric, d + make_interval(hours => h), m.rows
FROM generate_series(1, %(participants)s) AS p
CROSS JOIN m
CROSS JOIN generate_series(%(first)s::timestamptz, %(last)s::timestamptz, '1 day') AS d
CROSS JOIN LATERAL generate_series(0, m.hours - 1) AS h
WHERE d >= %(first)s::timestamptz + (p %% %(join_days)s) * interval '1 day'
  AND NOT (p %% 97 = 0 AND d > %(last)s::timestamptz - interval '2 days')
  AND NOT (p %% 13 = 0 AND m.metric = 'hr' AND d = %(last)s::timestamptz AND h >= 12)"""


def study_coverage(participants: int, days: int, join_days: int = 4,
                   last: date = date(2024, 1, 14)) -> tuple[str, dict]:
    """The statement and parameters that fill ingest_coverage with a study (see above)."""
    first = last - timedelta(days=days - 1)
    return STUDY_COVERAGE, {"participants": participants, "join_days": join_days,
                            "first": f"{first}T00:00Z", "last": f"{last}T00:00Z"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m wearables_ingest.synth",
                                description="Generate synthetic Fitbit-style intraday CSV files.")
    p.add_argument("--out", type=Path, default=Path("data/participant_001"),
                   help="output folder, one <metric>.csv per metric (default: %(default)s)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS,
                   help="days to generate (default: %(default)s)")
    p.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START,
                   help="first day, YYYY-MM-DD (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="random seed; the same seed gives the same files (default: %(default)s)")
    p.add_argument("--append-days", type=int, metavar="N",
                   help="add N days after the last day already in --out, to the same files")
    p.add_argument("--force", action="store_true",
                   help="overwrite metric files already in --out")
    args = p.parse_args(argv)
    if args.days < 1:
        p.error("--days must be at least 1")
    if args.append_days is not None and args.append_days < 1:
        p.error("--append-days must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    try:
        if args.append_days is not None:
            written = write(out, last_day(out) + timedelta(days=1), args.append_days,
                            args.seed, append=True)
        else:
            existing = [m for m in METRICS if (out / f"{m}.csv").exists()]
            if existing and not args.force:
                raise SynthError(f"{out}: already holds {', '.join(existing)}; use --append-days "
                                 "to extend it or --force to overwrite")
            written = write(out, args.start, args.days, args.seed, append=False)
    except (SynthError, OSError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{m} {n:,}" for m, n in written.rows.items())
    verb = "Appended" if args.append_days is not None else "Wrote"
    print(f"{verb} {written.first_day} to {written.last_day} in {out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
