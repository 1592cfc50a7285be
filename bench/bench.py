#!/usr/bin/env python3
"""Benchmark the loader against ``psql \\copy`` of the same rows, measured side by side in one run.

    make bench                                   # after make test's setup
    .venv/bin/python bench/bench.py --repeat 3 --history-days 365 --out bench/results.json

Each case runs the real command line (``python ingest/ingest.py``) on a
durable throwaway server (fsync on), or on BENCH_DATABASE_URL (a superuser
URL; its databases bench_30 and bench_history are dropped and recreated).
Times are wall-clock seconds for the whole process; every ratio divides by
the reference measured in this same run, so a busy machine slows both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

from wearables_ingest.database import Database, ensure_schema
from wearables_ingest.devserver import throwaway_server

REPO = Path(__file__).resolve().parent.parent
INGEST = REPO / "ingest" / "ingest.py"
SYNTH = [sys.executable, "-m", "wearables_ingest.synth"]

METRICS = ("activity", "azm", "br", "hr", "hrv", "spo2")


@dataclass
class Case:
    name: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def with_db(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def fresh_database(admin: str, name: str) -> str:
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(admin, f'CREATE DATABASE "{name}"')
    url = with_db(admin, name)
    db = Database({"dsn": url}, name).open()
    ensure_schema(db)  # the loader's own schema
    db.close()
    return url


def synth(out: Path, *args: str) -> None:
    subprocess.run([*SYNTH, "--out", str(out), *args], check=True,
                   stdout=subprocess.DEVNULL)


def run_loader(url: str, data: Path, state: Path, *args: str) -> tuple[float, float, str]:
    """Run the loader once; return (wall seconds, peak RSS in MB, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=url, DATA_DIR=str(data), CHECKPOINT_FILE=str(state / "last_run.json"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(INGEST), *args], env=env, cwd=state,
                                stdout=out, stderr=err)
        # wait4 rather than wait: it also gives this one child's peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"bench: the loader failed ({proc.returncode}): {err.read().decode().strip()}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def row_counts(url: str) -> int:
    return sql(url, "SELECT count(*) FROM raw_data")[0][0]


def reference_csv(data: Path, out: Path, participant: int = 1) -> int:
    """The same rows as COPY input for psql: each line plus participant and metric."""
    rows = 0
    with out.open("wb") as f:
        for metric in METRICS:
            with (data / f"{metric}.csv").open("rb") as src:
                src.readline()
                body = src.read()
            f.write(body.replace(b"\n", f",{participant},{metric}\n".encode()))
            rows += body.count(b"\n")
    return rows


def psql_copy(url: str, csv: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    f"\\copy raw_data (ts, value, participant, metric) from '{csv}' csv"],
                   check=True)
    return time.perf_counter() - start


def file_sizes(data: Path) -> dict[str, int]:
    return {m: (data / f"{m}.csv").stat().st_size for m in METRICS}


def daily_delta(url: str, data: Path, state: Path, repeat: int, name: str) -> Case:
    """Append one day, load it, then put files, checkpoint and table back; ``repeat`` times."""
    sizes = file_sizes(data)
    saved = state / "before-delta.json"
    shutil.copy(state / "last_run.json", saved)
    newest = sql(url, "SELECT max(ts) FROM raw_data")[0][0]
    case = Case(name, 0)
    for _ in range(repeat):
        synth(data, "--append-days", "1")
        before = row_counts(url)
        seconds, _, _ = run_loader(url, data, state)
        case.seconds.append(seconds)
        case.rows = row_counts(url) - before
        for metric, size in sizes.items():
            os.truncate(data / f"{metric}.csv", size)
        shutil.copy(saved, state / "last_run.json")
        sql(url, "DELETE FROM raw_data WHERE ts > %s", (newest,))
    return case


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs of each case (default 3)")
    p.add_argument("--values-repeat", type=int, default=1,
                   help="runs of the slow 'values' method (default 1)")
    p.add_argument("--history-days", type=int, default=365,
                   help="history before the second daily delta (default 365)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    args = p.parse_args(argv)

    admin = os.environ.get("BENCH_DATABASE_URL")
    if admin:
        return bench(admin, args)
    with throwaway_server(durable=True) as url:
        return bench(url, args)


def bench(admin: str, args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="wearables-bench-"))
    try:
        return _bench(admin, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(admin: str, args: argparse.Namespace, work: Path) -> int:
    r = args.repeat
    log = print
    data, state = work / "data30", work / "state30"
    state.mkdir()
    log("generating the 30-day data set ...")
    synth(data)
    csv = work / "reference.csv"
    total = reference_csv(data, csv)
    url = fresh_database(admin, "bench_30")
    cases: dict[str, Case] = {}

    def fresh_load(name: str, *loader_args: str, times: int = r) -> Case:
        case = Case(name, total)
        for _ in range(times):
            sql(url, "TRUNCATE raw_data")
            (state / "last_run.json").unlink(missing_ok=True)
            seconds, rss, _ = run_loader(url, data, state, *loader_args)
            assert row_counts(url) == total, "the load did not store every row"
            case.seconds.append(seconds)
            case.peak_rss_mb = max(case.peak_rss_mb or 0, rss)
        return case

    log(f"reference: psql \\copy of {total:,} rows x{r} ...")
    ref = cases["reference"] = Case("psql \\copy (reference)", total)
    for _ in range(r):
        sql(url, "TRUNCATE raw_data")
        ref.seconds.append(psql_copy(url, csv))

    log("loader, copy method: first load, rerun, light reset ...")
    cases["first_load_copy"] = fresh_load("first load, copy")
    rerun = cases["rerun_nothing_new"] = Case("rerun, nothing new", 0)
    light = cases["light_reset"] = Case("light reset (all present)", total)
    for _ in range(r):
        rerun.seconds.append(run_loader(url, data, state)[0])
    for _ in range(r):
        (state / "last_run.json").unlink()
        light.seconds.append(run_loader(url, data, state)[0])

    log("daily delta after 30 days ...")
    cases["delta_30"] = daily_delta(url, data, state, r, "daily delta after 30 days")

    log(f"loader, values method x{args.values_repeat} ...")
    cases["first_load_values"] = fresh_load("first load, values", "--method", "values",
                                            times=args.values_repeat)

    days = args.history_days
    log(f"generating and loading {days} days of history ...")
    hist_data, hist_state = work / "history", work / "state_history"
    hist_state.mkdir()
    synth(hist_data, "--days", str(days))
    hist_url = fresh_database(admin, "bench_history")
    seconds, rss, _ = run_loader(hist_url, hist_data, hist_state)
    cases["first_load_history"] = Case(f"first load, {days} days", row_counts(hist_url),
                                       [seconds], rss)
    log(f"daily delta after {days} days ...")
    cases["delta_history"] = daily_delta(hist_url, hist_data, hist_state, r,
                                         f"daily delta after {days} days")
    sql(admin, 'DROP DATABASE IF EXISTS "bench_history" WITH (FORCE)')
    sql(admin, 'DROP DATABASE IF EXISTS "bench_30" WITH (FORCE)')

    report(cases, args, admin)
    return 0


def report(cases: dict[str, Case], args: argparse.Namespace, admin: str) -> None:
    ref = cases["reference"].best
    delta_ratio = cases["delta_history"].best / cases["delta_30"].best
    targets = {
        "first_load_copy": ("<= 1.3x reference", cases["first_load_copy"].best / ref <= 1.3),
        "first_load_values": ("<= 4.7x reference", cases["first_load_values"].best / ref <= 4.7),
        "rerun_nothing_new": ("< 1 s", cases["rerun_nothing_new"].best < 1.0),
        "light_reset": ("<= 1.5x reference", cases["light_reset"].best / ref <= 1.5),
        "delta_history": (f"<= 1.2x delta after 30 days ({delta_ratio:.2f}x) and < 3 s",
                          delta_ratio <= 1.2 and cases["delta_history"].best < 3.0),
    }
    rss = cases["first_load_copy"].peak_rss_mb
    versions = sql(admin, "SELECT current_setting('server_version'), (SELECT default_version "
                          "FROM pg_available_extensions WHERE name = 'timescaledb')")
    print()
    print(f"{'case':32} {'rows':>10} {'min s':>8} {'median s':>9} {'x ref':>7}  target")
    for key, case in cases.items():
        target, ok = targets.get(key, ("", None))
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{case.name:32} {case.rows:>10,} {case.best:>8.2f} {case.median:>9.2f} "
              f"{case.best / ref:>6.2f}x  {target} {verdict}")
    rss_ok = rss is not None and rss <= 300
    print(f"{'peak RSS, first load (copy)':32} {rss:>10.0f} MB{'':19} <= 300 MB "
          f"{'ok' if rss_ok else 'MISSED'}")
    print(f"\nPostgreSQL {versions[0][0]}, TimescaleDB {versions[0][1]}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; min of {args.repeat} runs per case")

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "postgresql": versions[0][0], "timescaledb": versions[0][1]},
        "repeat": args.repeat,
        "cases": {k: {"name": c.name, "rows": c.rows, "seconds": c.seconds, "min": c.best,
                      "median": c.median, "ratio_to_reference": c.best / ref,
                      "peak_rss_mb": c.peak_rss_mb} for k, c in cases.items()},
        "delta_history_vs_delta_30": delta_ratio,
        "targets_met": {**{k: ok for k, (_, ok) in targets.items()}, "peak_rss": rss_ok},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
