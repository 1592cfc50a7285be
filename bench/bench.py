#!/usr/bin/env python3
"""Benchmark the loader against ``psql \\copy`` of the same rows, measured side by side in one run.

    make bench                                   # after make test's setup
    .venv/bin/python bench/bench.py --repeat 3 --history-days 365 --out bench/results.json

Each case runs the real command line (``python ingest/ingest.py``) on a
durable throwaway server (fsync on), or on BENCH_DATABASE_URL (a superuser
URL; its databases bench_* are dropped and recreated). The cases, in groups
(--cases picks some): ``seed30``, the 30-day set against psql \\copy, into
this schema and into the seed's (with TimescaleDB's default ts index), reruns,
a daily delta, the cost of keeping the coverage; ``history``, a 365-day history,
its daily delta and `status` over it; ``study``, a study of 100 and 1,000
participants with six tiny files each; ``night``, a study's full-density night
(--night-participants, one synthetic day each) against psql \\copy of the same
rows into the seed's schema; ``midhour``, 1,000 participants' next night
starting in an hour that already holds their rows; ``status_study``, `status` for a
study of 1,000 participants, its default text beside a plain count of the
coverage and --json, and the size of its heat map; ``storage`` (the full
TimescaleDB only), bytes a row before and after compression, the light reset
and the daily delta over compressed chunks, and late rows into one.
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
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

from wearables_ingest.database import Database, ensure_schema
from wearables_ingest.devserver import throwaway_server
from wearables_ingest.synth import study_coverage

REPO = Path(__file__).resolve().parent.parent
INGEST = REPO / "ingest" / "ingest.py"
SYNTH = [sys.executable, "-m", "wearables_ingest.synth"]

METRICS = ("activity", "azm", "br", "hr", "hrv", "spo2")
# The seed's DDL, as its walkthrough creates the table: the reference the loader is measured
# against. create_hypertable's default index on (ts DESC) is what this project leaves out.
SEED_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE raw_data (ts TIMESTAMPTZ NOT NULL, participant INT NOT NULL, metric TEXT NOT NULL,
                       value DOUBLE PRECISION, PRIMARY KEY (ts, participant, metric));
SELECT create_hypertable('raw_data', 'ts');
"""
# The loader with the coverage switched off (no counting, no upsert): only to price the coverage.
WITHOUT_COVERAGE = (
    "import sys\n"
    "from wearables_ingest import blocks, cli, loader\n"
    "blocks.Block.utc_hours = lambda self, naive_ok=True: {}\n"
    "loader.FileRows.hours = lambda self: {}\n"
    "sys.exit(cli.main())\n")


@dataclass
class Case:
    name: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    reference: str = "reference"  # the case its ratio divides by

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


def fresh_database(admin: str, name: str, schema: str | None = None) -> str:
    """A new database with the loader's own schema, or with ``schema`` (SQL)."""
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(admin, f'CREATE DATABASE "{name}"')
    url = with_db(admin, name)
    if schema is not None:
        sql(url, schema)
        return url
    db = Database({"dsn": url}, name).open()
    ensure_schema(db)
    db.close()
    return url


STUDY_ROWS = 10  # rows per file in the study case, one a minute


def write_study(root: Path, participants: int, night: int,
                apart: timedelta = timedelta(days=1)) -> int:
    """Each participant's six files, with ``STUDY_ROWS`` rows more per file for each night,
    the nights ``apart``: a day, or ``STUDY_ROWS`` minutes (the next night from mid-hour)."""
    start = datetime(2024, 1, 1, tzinfo=UTC) + night * apart
    rows = 0
    for p in range(1, participants + 1):
        folder = root / f"participant_{p:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, metric in enumerate(METRICS):
            lines = "".join(f"{(start + timedelta(minutes=k)).isoformat()},{60 + i + k % 7}\n"
                            for k in range(STUDY_ROWS))
            path = folder / f"{metric}.csv"
            with path.open("a") as f:
                f.write(("ts,value\n" if night == 0 else "") + lines)
            rows += STUDY_ROWS
    return rows


def study(admin: str, work: Path, participants: int, repeat: int) -> dict[str, Case]:
    """First load, rerun with nothing new, and the next night, for a study of tiny files."""
    name = f"bench_study_{participants}"
    root, state = work / name / "data", work / name / "state"
    first = Case(f"study {participants:,}: first load", 0)
    for _ in range(repeat):
        shutil.rmtree(work / name, ignore_errors=True)
        state.mkdir(parents=True)
        first.rows = write_study(root, participants, night=0)
        url = fresh_database(admin, name)
        seconds, rss, _ = run_loader(url, root, state)
        assert row_counts(url) == first.rows, "the study's first load did not store every row"
        first.seconds.append(seconds)
        first.peak_rss_mb = max(first.peak_rss_mb or 0, rss)
    rerun = Case(f"study {participants:,}: rerun, nothing new", 0)
    for _ in range(repeat):
        rerun.seconds.append(run_loader(url, root, state)[0])
    night = Case(f"study {participants:,}: next night", write_study(root, participants, 1))
    night.seconds.append(run_loader(url, root, state)[0])
    assert row_counts(url) == first.rows + night.rows, "the next night lost or doubled rows"
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(work / name, ignore_errors=True)
    return {f"study_{participants}_first": first, f"study_{participants}_rerun": rerun,
            f"study_{participants}_night": night}


def synth(out: Path, *args: str) -> None:
    subprocess.run([*SYNTH, "--out", str(out), *args], check=True,
                   stdout=subprocess.DEVNULL)


def run_loader(url: str, data: Path, state: Path, *args: str,
               command: list[str] | None = None, check: bool = True) -> tuple[float, float, str]:
    """Run the loader once; return (wall seconds, peak RSS in MB, stdout)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and k != "PARTICIPANT_ID"}
    env.update(DATABASE_URL=url, DATA_DIR=str(data), CHECKPOINT_FILE=str(state / "last_run.json"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([*(command or [sys.executable, str(INGEST)]), *args], env=env,
                                cwd=state, stdout=out, stderr=err)
        # wait4 rather than wait: it also gives this one child's peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if check and proc.returncode != 0:
            sys.exit(f"bench: the loader failed ({proc.returncode}): {err.read().decode().strip()}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def row_counts(url: str) -> int:
    return sql(url, "SELECT count(*) FROM raw_data")[0][0]


def reference_csv(data: Path, out: Path, participant: int = 1) -> int:
    """The same rows as COPY input for psql: each line plus participant and metric."""
    with out.open("wb") as f:
        return _reference_lines(f, data, participant)


def _reference_lines(f, data: Path, participant: int) -> int:
    rows = 0
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
        # and the coverage of those hours: else the next day looks stored already, and
        # goes the careful way rather than straight into the table, as a real night does.
        sql(url, "DELETE FROM ingest_coverage WHERE hour > %s", (newest,))
    return case


def full_night(admin: str, work: Path, participants: int, repeat: int) -> dict[str, Case]:
    """A study's full-density night: each participant's one synthetic day (86,400 hr rows and
    the rest), loaded into a new database, against psql \\copy of the same rows into the
    seed's schema and into this one (``repeat`` times each, interleaved)."""
    one = work / "night_day"
    synth(one, "--days", "1")
    root, state = work / "night" / "data", work / "night" / "state"
    csv = work / "night.csv"
    total = 0
    with csv.open("wb") as f:
        for p in range(1, participants + 1):
            folder = root / f"participant_{p:03d}"
            folder.mkdir(parents=True)
            for metric in METRICS:  # the same day for each: only the rows' count matters here
                os.link(one / f"{metric}.csv", folder / f"{metric}.csv")
            total += _reference_lines(f, folder, p)
    seed_url = fresh_database(admin, "bench_night_seed", schema=SEED_SCHEMA)
    own_url = fresh_database(admin, "bench_night_own")
    url = fresh_database(admin, "bench_night")
    label = f"night, {participants} participants"
    seed = Case(f"{label}: psql, seed's schema", total)
    own = Case(f"{label}: psql, this schema", total)
    loader = Case(f"{label}: loader", total)
    for _ in range(repeat):
        for target, case in ((seed_url, seed), (own_url, own)):
            sql(target, "TRUNCATE raw_data")
            case.seconds.append(psql_copy(target, csv))
        sql(url, "TRUNCATE raw_data, ingest_coverage")
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        seconds, rss, _ = run_loader(url, root, state)
        assert row_counts(url) == total, "the night did not store every row"
        loader.seconds.append(seconds)
        loader.peak_rss_mb = max(loader.peak_rss_mb or 0, rss)
    for name in ("bench_night_seed", "bench_night_own", "bench_night"):
        sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    csv.unlink()
    shutil.rmtree(work / "night", ignore_errors=True)
    return {"night_psql_seed": seed, "night_psql_own": own, "night_loader": loader}


def midhour_night(admin: str, work: Path, participants: int, repeat: int) -> Case:
    """A study's next night that starts in the hour its last night ended in (syncs end at any
    minute): every file's first new row shares an hour with stored rows."""
    name = f"bench_midhour_{participants}"
    root, state = work / name / "data", work / name / "state"
    apart = timedelta(minutes=STUDY_ROWS)
    case = Case(f"study {participants:,}: next night from mid-hour", 0)
    for _ in range(repeat):
        shutil.rmtree(work / name, ignore_errors=True)
        state.mkdir(parents=True)
        first = write_study(root, participants, 0, apart)
        url = fresh_database(admin, name)
        run_loader(url, root, state)
        case.rows = write_study(root, participants, 1, apart)
        case.seconds.append(run_loader(url, root, state)[0])
        assert row_counts(url) == first + case.rows, "the mid-hour night lost or doubled rows"
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(work / name, ignore_errors=True)
    return case


GROUPS = ("seed30", "history", "study", "night", "midhour", "status_study",
          "storage")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs of each case (default 3)")
    p.add_argument("--values-repeat", type=int, default=1,
                   help="runs of the slow 'values' method (default 1)")
    p.add_argument("--history-days", type=int, default=365,
                   help="history before the second daily delta (default 365)")
    p.add_argument("--night-participants", type=int, default=100,
                   help="participants of the full-density night (default 100)")
    p.add_argument("--cases", default=",".join(GROUPS),
                   help=f"groups of cases to run, comma-separated (default: all, "
                        f"{','.join(GROUPS)})")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    args = p.parse_args(argv)
    args.groups = [g.strip() for g in args.cases.split(",") if g.strip()]
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown or not args.groups:
        p.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(GROUPS)}")

    admin = os.environ.get("BENCH_DATABASE_URL")
    if admin:
        return bench(admin, args)
    with throwaway_server(durable=True) as url:
        return bench(url, args)


def bench(admin: str, args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="wearables-bench-"))
    try:
        loads = [g for g in args.groups if g != "status_study"]
        if loads:
            _bench(admin, args, work)
        if "status_study" in args.groups:
            print("status for a study of 1,000 participants ...")
            status_report(*status_study(admin, work, args.repeat), args, keep=bool(loads))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(admin: str, args: argparse.Namespace, work: Path) -> int:
    cases: dict[str, Case] = {}
    notes: dict[str, object] = {}
    r = args.repeat
    data = work / "data30" / "participant_001"
    if {"seed30", "storage"} & set(args.groups):
        print("generating the 30-day data set ...")
        synth(data)
    if "seed30" in args.groups:
        cases.update(seed30(admin, args, work, data))
    if "history" in args.groups:
        cases.update(history(admin, args, work))
    if "study" in args.groups:
        for n in (100, 1000):
            print(f"a study of {n:,} participants x {len(METRICS)} files x {STUDY_ROWS} rows ...")
            cases.update(study(admin, work, n, r))
    if "night" in args.groups:
        n = args.night_participants
        print(f"a full-density night of {n} participants, one day each x{r} ...")
        cases.update(full_night(admin, work, n, r))
    if "midhour" in args.groups:
        print(f"a study of 1,000 participants, the next night from mid-hour x{r} ...")
        cases["study_1000_midhour"] = midhour_night(admin, work, 1000, r)
    if "storage" in args.groups:
        found, facts = storage_cases(admin, r, work, data)
        cases.update(found)
        notes.update(facts)
    report(cases, args, admin, notes)
    return 0


def seed30(admin: str, args: argparse.Namespace, work: Path,
           data: Path) -> dict[str, Case]:
    """The seed's 30 days of one participant: psql \\copy, first loads, rerun, delta, values."""
    r = args.repeat
    log = print
    state = work / "state30"
    state.mkdir()
    csv = work / "reference.csv"
    total = reference_csv(data, csv)
    url = fresh_database(admin, "bench_30")
    cases: dict[str, Case] = {}

    def fresh_load(name: str, *loader_args: str, times: int = r,
                   command: list[str] | None = None) -> Case:
        case = Case(name, total)
        for _ in range(times):
            sql(url, "TRUNCATE raw_data, ingest_coverage")
            (state / "last_run.json").unlink(missing_ok=True)
            seconds, rss, _ = run_loader(url, data, state, *loader_args, command=command)
            assert row_counts(url) == total, "the load did not store every row"
            case.seconds.append(seconds)
            case.peak_rss_mb = max(case.peak_rss_mb or 0, rss)
        return case

    log(f"reference: psql \\copy of {total:,} rows x{r} ...")
    ref = cases["reference"] = Case("psql \\copy (reference)", total)
    for _ in range(r):
        sql(url, "TRUNCATE raw_data")
        ref.seconds.append(psql_copy(url, csv))

    log(f"reference: psql \\copy into the seed's schema x{r} ...")
    seed_url = fresh_database(admin, "bench_seed", schema=SEED_SCHEMA)
    seed_ref = cases["reference_seed"] = Case("psql \\copy, seed's schema", total)
    for _ in range(r):
        sql(seed_url, "TRUNCATE raw_data")
        seed_ref.seconds.append(psql_copy(seed_url, csv))
    sql(admin, 'DROP DATABASE IF EXISTS "bench_seed" WITH (FORCE)')

    log("loader, copy method: first load, with and without the coverage, rerun, light reset ...")
    with_coverage = cases["first_load_copy"] = Case("first load, copy", total)
    without = cases["first_load_no_coverage"] = Case("first load, coverage switched off", total)
    for _ in range(r):  # interleaved, so that a busier minute slows both alike
        # With the coverage last: the rerun and the light reset below start from its load
        # (a light reset offers only the hours the coverage lacks rows in).
        for case, command in ((without, [sys.executable, "-c", WITHOUT_COVERAGE]),
                              (with_coverage, None)):
            once = fresh_load(case.name, times=1, command=command)
            case.seconds += once.seconds
            case.peak_rss_mb = max(case.peak_rss_mb or 0, once.peak_rss_mb)
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
    sql(admin, 'DROP DATABASE IF EXISTS "bench_30" WITH (FORCE)')
    return cases


def history(admin: str, args: argparse.Namespace, work: Path) -> dict[str, Case]:
    """A long history of one participant: its first load, a daily delta, `status` over it."""
    r = args.repeat
    log = print
    cases: dict[str, Case] = {}
    days = args.history_days
    log(f"generating and loading {days} days of history ...")
    hist_data, hist_state = work / "history" / "participant_001", work / "state_history"
    hist_state.mkdir()
    synth(hist_data, "--days", str(days))
    hist_url = fresh_database(admin, "bench_history")
    seconds, rss, _ = run_loader(hist_url, hist_data, hist_state)
    cases["first_load_history"] = Case(f"first load, {days} days", row_counts(hist_url),
                                       [seconds], rss)
    log(f"daily delta after {days} days ...")
    cases["delta_history"] = daily_delta(hist_url, hist_data, hist_state, r,
                                         f"daily delta after {days} days")
    log(f"status over all {days} days ...")
    status = cases["status_history"] = Case(f"status --days {days + 1}", 0)
    for _ in range(r):
        status.seconds.append(run_loader(hist_url, hist_data, hist_state, "status", "--days",
                                         str(days + 1), "--json", check=False)[0])
    sql(admin, 'DROP DATABASE IF EXISTS "bench_history" WITH (FORCE)')
    return cases


def _drop_hour(path: Path, prefix: bytes) -> bytes:
    """Take out the lines that start with ``prefix``; return them."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(line for line in lines if not line.startswith(prefix)))
    return b"".join(line for line in lines if line.startswith(prefix))


def _compress_all(url: str) -> None:
    sql(url, "SELECT count(compress_chunk(c, true)) FROM show_chunks('raw_data') c")


def _refresh_views(url: str) -> None:
    """Run the views' refresh policies now, as the database's scheduler would."""
    for (job,) in sql(url, "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = "
                           "'policy_refresh_continuous_aggregate' ORDER BY job_id"):
        sql(url, "CALL run_job(%s)", (job,))


def _hypertable_bytes(url: str) -> int:
    return sql(url, "SELECT hypertable_size('raw_data')")[0][0]


COMPRESS_AFTER = "7 days"  # the compression policy's default age (COMPRESS_AFTER_DAYS)
LATE_HOUR = "2024-01-15T05:"  # an hour of hr held back from the first load, loaded late


def storage_cases(admin: str, repeat: int, work: Path,
                  seed: Path) -> tuple[dict[str, Case], dict[str, object]]:
    """Compression (the full TimescaleDB only): bytes a row before and after, the daily
    delta, the light reset over compressed chunks, and late rows into a compressed chunk."""
    url = fresh_database(admin, "bench_storage")
    if not sql(url, "SELECT current_setting('timescaledb.license', true) = 'timescale'")[0][0]:
        print("storage cases skipped: compression needs the full TimescaleDB")
        sql(admin, 'DROP DATABASE IF EXISTS "bench_storage" WITH (FORCE)')
        return {}, {}
    data, state = work / "storage" / "participant_001", work / "state_storage"
    shutil.copytree(seed, data)
    state.mkdir()
    late = _drop_hour(data / "hr.csv", LATE_HOUR.encode())
    total = row_counts_file(data)
    cases: dict[str, Case] = {}
    print(f"storage: first load x{repeat} ...")
    first = cases["storage_first_load"] = Case("storage: first load (uncompressed)", total)
    for _ in range(repeat):
        sql(url, "TRUNCATE raw_data, ingest_coverage")
        (state / "last_run.json").unlink(missing_ok=True)
        first.seconds.append(run_loader(url, data, state)[0])
        assert row_counts(url) == total, "the first load did not store every row"
    before = _hypertable_bytes(url)
    print("storage: light reset, uncompressed ...")
    light = cases["storage_light_reset_plain"] = Case("storage: light reset, uncompressed", total)
    for _ in range(repeat):
        (state / "last_run.json").unlink()
        light.seconds.append(run_loader(url, data, state)[0])
    # A second database with the same rows, left uncompressed: the daily deltas of the
    # two run interleaved below, so that a busier minute slows both alike.
    plain_url, plain_state = fresh_database(admin, "bench_storage_plain"), work / "state_plain"
    plain_state.mkdir()
    run_loader(plain_url, data, plain_state)
    print("storage: compressing every chunk ...")
    start = time.perf_counter()
    _compress_all(url)
    cases["storage_compress"] = Case("storage: compress every chunk", total,
                                     [time.perf_counter() - start])
    after = _hypertable_bytes(url)
    print("storage: daily deltas, history compressed and not, interleaved ...")
    # As the policy leaves it the night after: chunks older than COMPRESS_AFTER_DAYS
    # compressed, the newest (where the day's rows go) not.
    newest = sql(url, "SELECT max(ts) FROM raw_data")[0][0]
    for (chunk,) in sql(url, "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM "
                             "timescaledb_information.chunks WHERE hypertable_name = 'raw_data' "
                             "AND range_end > %s::timestamptz + interval '1 day' - %s::interval",
                        (newest, COMPRESS_AFTER)):
        sql(url, "SELECT decompress_chunk(%s::regclass)", (chunk,))
    plain = cases["storage_delta_plain"] = Case("storage: daily delta, uncompressed", 0)
    compressed = cases["storage_delta_compressed"] = Case(
        "storage: daily delta, history compressed", 0)
    for _ in range(repeat):
        for case, where, kept in ((plain, plain_url, plain_state), (compressed, url, state)):
            once = daily_delta(where, data, kept, 1, case.name)
            case.seconds += once.seconds
            case.rows = once.rows
    sql(admin, 'DROP DATABASE IF EXISTS "bench_storage_plain" WITH (FORCE)')
    _compress_all(url)
    print("storage: daily delta into a compressed chunk ...")
    cases["storage_delta_into_compressed"] = daily_delta(
        url, data, state, 1, "storage: daily delta into a compressed chunk")
    _compress_all(url)  # the delta's chunk, decompressed in part by its rows, again
    print("storage: refreshing the views over the compressed month ...")
    start = time.perf_counter()
    _refresh_views(url)
    cases["storage_refresh"] = Case("storage: refresh raw_data_1m/1h/1d", total,
                                    [time.perf_counter() - start])
    print("storage: late rows into a compressed chunk ...")
    with (data / "hr.csv").open("ab") as f:
        f.write(late)
    late_rows = late.count(b"\n")
    seconds = run_loader(url, data, state)[0]
    cases["storage_late_rows"] = Case("storage: late rows into a compressed chunk", late_rows,
                                      [seconds])
    _refresh_views(url)  # the policies' next run: the late hour was marked for it
    hour = LATE_HOUR.rstrip(":") + ":00Z"
    counted = {
        "raw_data": row_counts(url) == total + late_rows,
        "coverage": sql(url, "SELECT rows FROM ingest_coverage WHERE participant = 1 AND "
                             "metric = 'hr' AND hour = %s", (hour,)) == [(late_rows,)],
        "raw_data_1h": sql(url, "SELECT samples FROM raw_data_1h WHERE participant = 1 AND "
                                "metric = 'hr' AND bucket = %s", (hour,)) == [(late_rows,)],
    }
    print("storage: light reset over compressed chunks ...")
    total += late_rows
    _compress_all(url)
    reset = cases["storage_light_reset_compressed"] = Case(
        "storage: light reset, compressed", total)
    for _ in range(repeat):
        (state / "last_run.json").unlink()
        reset.seconds.append(run_loader(url, data, state)[0])
        assert row_counts(url) == total, "the light reset lost or doubled rows"
    views = dict(sql(url, "SELECT view_name, hypertable_size(format('%I.%I', "
                          "materialization_hypertable_schema, materialization_hypertable_name)) "
                          "FROM timescaledb_information.continuous_aggregates"))
    sql(admin, 'DROP DATABASE IF EXISTS "bench_storage" WITH (FORCE)')
    facts = {"storage_bytes_per_row_before": before / first.rows,
             "storage_view_bytes": views,
             "storage_bytes_per_row_after": after / first.rows,
             "storage_compressed_vs_uncompressed": after / before,
             "storage_late_rows_counted": counted}
    return cases, facts


def row_counts_file(data: Path) -> int:
    """Rows in a folder's metric files (lines after each header)."""
    return sum((data / f"{m}.csv").read_bytes().count(b"\n") - 1 for m in METRICS)


Targets = dict[str, tuple[str, bool]]


def storage_targets(cases: dict[str, Case], notes: dict[str, object]) -> tuple[Targets,
                                                                              dict[str, float]]:
    """The storage group's targets, and its ratios for results.json."""
    first = cases["storage_first_load"].best
    size = notes["storage_compressed_vs_uncompressed"]
    delta = cases["storage_delta_compressed"].best / cases["storage_delta_plain"].best
    plain = cases["storage_light_reset_plain"].best / first
    compressed = cases["storage_light_reset_compressed"].best / first
    counted = notes["storage_late_rows_counted"]
    targets = {
        "storage_compress": (f"bytes {notes['storage_bytes_per_row_before']:.1f} -> "
                             f"{notes['storage_bytes_per_row_after']:.2f} a row ({size:.3f}x) "
                             "<= 0.05x", size <= 0.05),
        "storage_delta_compressed": (f"<= 1.2x uncompressed ({delta:.2f}x)", delta <= 1.2),
        "storage_delta_into_compressed": (
            f"(no target: {cases['storage_delta_into_compressed'].best / first:.2f}x first load)",
            True),
        "storage_light_reset_plain": (f"<= 0.5x first load ({plain:.2f}x)", plain <= 0.5),
        "storage_light_reset_compressed": (f"<= 0.5x first load ({compressed:.2f}x)",
                                           compressed <= 0.5),
        "storage_late_rows": ("all stored, counted in the coverage and raw_data_1h ("
                              + ", ".join(k for k, ok in counted.items() if ok) + ")",
                              all(counted.values())),
    }
    return targets, {"storage_compressed_vs_uncompressed": size,
                     "storage_delta_compressed_vs_plain": delta,
                     "storage_light_reset_plain_vs_first_load": plain,
                     "storage_light_reset_compressed_vs_first_load": compressed}




def _targets(cases: dict[str, Case],
             notes: dict[str, object]) -> tuple[Targets, dict[str, float]]:
    """The targets of the cases that ran, and the ratios between cases."""
    have = cases.__contains__
    best = {k: c.best for k, c in cases.items()}
    targets: dict[str, tuple[str, bool]] = {}
    ratios: dict[str, float] = {}
    if have("reference"):
        ref = best["reference"]
        seed_ratio = ratios["first_load_vs_seed_schema_copy"] = (
            best["first_load_copy"] / best["reference_seed"])
        cost = ratios["coverage_cost"] = (
            best["first_load_copy"] / best["first_load_no_coverage"] - 1)
        targets.update({
            "first_load_copy": (f"<= 0.7x psql into the seed's schema ({seed_ratio:.2f}x)",
                                seed_ratio <= 0.7),
            "first_load_no_coverage": (f"coverage costs <= 5% ({cost:+.1%})", cost <= 0.05),
            "first_load_values": ("<= 4.7x reference", best["first_load_values"] / ref <= 4.7),
            "rerun_nothing_new": ("< 1 s", best["rerun_nothing_new"] < 1.0),
            "light_reset": ("<= 1.5x reference", best["light_reset"] / ref <= 1.5),
        })
    if have("delta_history"):
        targets["status_history"] = ("<= 0.5 s", best["status_history"] <= 0.5)
        if have("delta_30"):
            delta_ratio = ratios["delta_history_vs_delta_30"] = (
                best["delta_history"] / best["delta_30"])
            targets["delta_history"] = (
                f"<= 1.2x delta after 30 days ({delta_ratio:.2f}x) and < 3 s",
                delta_ratio <= 1.2 and best["delta_history"] < 3.0)
    if have("study_1000_first"):
        study_ratio = ratios["study_1000_vs_100"] = (
            best["study_1000_first"] / best["study_100_first"])
        targets.update({
            "study_1000_first": (f"<= 30 s, <= 12x 100 participants ({study_ratio:.1f}x)",
                                 best["study_1000_first"] <= 30 and study_ratio <= 12),
            "study_1000_rerun": ("<= 3 s", best["study_1000_rerun"] <= 3),
            "study_1000_night": ("<= 30 s", best["study_1000_night"] <= 30),
        })
    if have("night_loader"):
        night = ratios["night_vs_seed_schema_copy"] = (
            best["night_loader"] / best["night_psql_seed"])
        targets["night_loader"] = (f"<= 0.5x psql into the seed's schema ({night:.2f}x)",
                                   night <= 0.5)
    if have("study_1000_midhour"):
        targets["study_1000_midhour"] = ("<= 10 s", best["study_1000_midhour"] <= 10)
    if have("storage_first_load"):
        found, more = storage_targets(cases, notes)
        targets.update(found)
        ratios.update(more)
    return targets, ratios


def report(cases: dict[str, Case], args: argparse.Namespace, admin: str,
           notes: dict[str, object]) -> None:
    ref = cases["reference"].best if "reference" in cases else None
    targets, ratios = _targets(cases, notes)
    measured = [c.peak_rss_mb for k, c in cases.items()
                if k in ("first_load_copy", "study_1000_first", "night_loader")]
    rss = max(measured) if measured else None
    versions = sql(admin, "SELECT current_setting('server_version'), (SELECT default_version "
                          "FROM pg_available_extensions WHERE name = 'timescaledb')")
    print()
    print(f"{'case':44} {'rows':>10} {'min s':>8} {'median s':>9} {'x ref':>7}  target")
    for key, case in cases.items():
        target, ok = targets.get(key, ("", None))
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        ratio = f"{case.best / ref:>6.2f}x" if ref else f"{'':>7}"
        print(f"{case.name:44} {case.rows:>10,} {case.best:>8.2f} {case.median:>9.2f} "
              f"{ratio}  {target} {verdict}")
    rss_ok = None if rss is None else rss <= 300
    if rss is not None:
        print(f"{'peak RSS of the loader':44} {rss:>10.0f} MB{'':19} <= 300 MB "
              f"{'ok' if rss_ok else 'MISSED'}")
    print(f"\nPostgreSQL {versions[0][0]}, TimescaleDB {versions[0][1]}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; min of {args.repeat} runs per case; "
          f"cases: {','.join(args.groups)}")
    if "storage_view_bytes" in notes:
        print("views, refreshed: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size
                                               in sorted(notes["storage_view_bytes"].items())))

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "postgresql": versions[0][0], "timescaledb": versions[0][1]},
        "repeat": args.repeat,
        "groups": args.groups,
        "cases": {k: {"name": c.name, "rows": c.rows, "seconds": c.seconds, "min": c.best,
                      "median": c.median, "ratio_to_reference": c.best / ref if ref else None,
                      "peak_rss_mb": c.peak_rss_mb} for k, c in cases.items()},
        **ratios,
        **{k: v for k, v in notes.items() if k.startswith(("storage_bytes", "storage_view"))},
        "targets_met": {**{k: ok for k, (_, ok) in targets.items()},
                        **({"peak_rss": rss_ok} if rss_ok is not None else {})},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")


STATUS_PARTICIPANTS, STATUS_DAYS = 1000, 14  # the study; status rates the newest 7 days


def status_study(admin: str, work: Path, repeat: int) -> tuple[dict[str, Case], dict]:
    """`status` at 1,000 participants (two weeks, joining over the first ten days): the default
    text's seconds and lines beside a plain count of the coverage (psql) and --json, run by
    turns; then the heat map's size in px and bytes."""
    url = fresh_database(admin, "bench_status")
    statement, params = study_coverage(STATUS_PARTICIPANTS, STATUS_DAYS, join_days=10)
    sql(url, statement, params)
    sql(url, "INSERT INTO ingest_runs (trigger, status, finished) VALUES ('cron', 'ok', now())")
    sql(url, "ANALYZE ingest_coverage")
    hours = sql(url, "SELECT count(*) FROM ingest_coverage")[0][0]
    data, state = work / "status_study" / "data", work / "status_study" / "state"
    data.mkdir(parents=True)
    state.mkdir()
    count = Case("psql: SELECT count(*) FROM ingest_coverage", hours, reference="status_count")
    text = Case("status, 1,000 participants: text", hours, reference="status_count")
    as_json = Case("status --json, 1,000 participants", hours, reference="status_count")
    lines = 0
    for _ in range(repeat):  # by turns, so that a busier minute slows all three alike
        start = time.perf_counter()
        subprocess.run(["psql", url, "-qAt", "-c", "SELECT count(*) FROM ingest_coverage"],
                       check=True, stdout=subprocess.DEVNULL)
        count.seconds.append(time.perf_counter() - start)
        seconds, _, out = run_loader(url, data, state, "status", check=False)
        text.seconds.append(seconds)
        lines = len(out.splitlines())
        as_json.seconds.append(run_loader(url, data, state, "status", "--json", check=False)[0])
    svg = state / "coverage.svg"
    run_loader(url, data, state, "status", "--plot", str(svg), check=False)
    root = ET.parse(svg).getroot()
    figures = {"participants": STATUS_PARTICIPANTS, "coverage_rows": hours, "text_lines": lines,
               "heatmap_width_px": float(root.get("width")),
               "heatmap_height_px": float(root.get("height")),
               "heatmap_bytes": svg.stat().st_size}
    sql(admin, 'DROP DATABASE IF EXISTS "bench_status" WITH (FORCE)')
    return {"status_count": count, "status_study_text": text, "status_study_json": as_json}, figures


def status_study_targets(cases: dict[str, Case], figures: dict) -> dict[str, tuple[str, bool]]:
    """The issue's targets for status at 1,000 participants."""
    lines, seconds = figures["text_lines"], cases["status_study_text"].best
    height, size = figures["heatmap_height_px"], figures["heatmap_bytes"]
    return {
        "status_study_text": (f"one screen: <= 80 lines ({lines}), <= 2 s",
                              lines <= 80 and seconds <= 2.0),
        "status_study_heatmap": (f"heat map {figures['heatmap_width_px']:.0f} x {height:.0f} px, "
                                 f"{size / 1e6:.2f} MB: <= 5,000 px tall, <= 2 MB",
                                 height <= 5000 and size <= 2_000_000),
    }


def status_report(cases: dict[str, Case], figures: dict, args: argparse.Namespace,
                  keep: bool) -> None:
    """The status cases' table and targets; their figures added to the results file (to the
    loads' when they ran too)."""
    targets = status_study_targets(cases, figures)
    print()
    print(f"{'case':42} {'rows':>10} {'min s':>8} {'median s':>9} {'x ref':>7}  target")
    for key, case in cases.items():
        target, ok = targets.get(key, ("", None))
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{case.name:42} {case.rows:>10,} {case.best:>8.2f} {case.median:>9.2f} "
              f"{case.best / cases[case.reference].best:>6.2f}x  {target} {verdict}")
    target, ok = targets["status_study_heatmap"]
    print(f"{'heat map, 1,000 participants':42} {'':>38}  {target} {'ok' if ok else 'MISSED'}")
    results = json.loads(args.out.read_text()) if keep and args.out.exists() else {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "repeat": args.repeat, "cases": {},
        "targets_met": {}}
    results["cases"].update({k: {"name": c.name, "rows": c.rows, "seconds": c.seconds,
                                 "min": c.best, "median": c.median, "reference": c.reference,
                                 "ratio_to_reference": c.best / cases[c.reference].best}
                             for k, c in cases.items()})
    results["status_study"] = figures
    results["targets_met"].update({k: ok for k, (_, ok) in targets.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
