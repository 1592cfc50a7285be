"""What a run tells, made from its counts: text lines, the JSON summary, the metrics file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from wearables_ingest.atomic import write_atomically
from wearables_ingest.status import COMPLETE, PARTIAL, Day, Status, hours_since
from wearables_ingest.timestamps import format_ts

if TYPE_CHECKING:
    from wearables_ingest.results import FileResult, RunResult
    from wearables_ingest.storage import Figures


def file_line(result: FileResult, dry_run: bool = False) -> str:
    """The seed's line for one file: ``Ingested 43,200 rows → azm``, plus what was skipped."""
    verb = "Would ingest" if dry_run else "Ingested"
    line = f"{verb} {result.inserted:,} rows → {result.source.label}"
    extra = []
    if result.already_present:
        extra.append(f"{result.already_present:,} already present")
    if result.rejects:
        extra.append(f"{result.rejected:,} rejected")
    return line + (f" ({', '.join(extra)})" if extra else "")


def notes(result: FileResult) -> list[str]:
    """What the user should know about how this file was read."""
    path, label = result.source.path, result.source.label
    if result.reloaded:
        return [f"raw_data holds no {label} rows up to the checkpoint's "
                f"{format_ts(result.checkpoint_ts)} (was the database reset?); "
                f"read {path} again from the start"]
    if result.rescanned:
        return [f"{path} changed since the last run (rewritten or truncated); read it "
                "again from the start, offering rows newer than "
                f"{format_ts(result.checkpoint_ts)} (--full offers every row)"]
    return []


def totals_line(result: RunResult, seconds: float) -> str:
    """The line after the per-metric ones: totals, rejects and the duration."""
    verb = "would be inserted" if result.dry_run else "inserted"
    return (f"Total: {result.total('inserted'):,} rows {verb}, "
            f"{result.total('already_present'):,} already present, "
            f"{result.total('rejected'):,} rejected, "
            f"{len(result.errors)} file error{'s' if len(result.errors) != 1 else ''}, "
            f"in {seconds:.1f} s")


def as_json(result: RunResult, started: str, seconds: float) -> dict:
    """The run's summary as one JSON-ready object (``--json``)."""
    return {
        "ok": result.ok,
        "status": result.status,
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "started": started,
        "duration_s": round(seconds, 3),
        "inserted": result.total("inserted"),
        "already_present": result.total("already_present"),
        "rejected": result.total("rejected"),
        "files": list(result.per_file().values()),
        "errors": result.errors,
        "error": "; ".join(result.errors) or None,
        "last_success": result.last_success,
    }


def metrics_text(result: RunResult | None, seconds: float, now: float,
                 last_success: float | None, newest_hours: Mapping[int, float] | None = None
                 ) -> str:
    """Prometheus text exposition of the last run (``result`` None: it failed to start).

    ``newest_hours``: per participant, the Unix time of the start of the newest UTC
    hour holding one of its rows (ingest_coverage), for the age of its newest row.
    """
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP wearables_ingest_{name} {help_text}")
        lines.append(f"# TYPE wearables_ingest_{name} gauge")
        lines.extend(f"wearables_ingest_{name}{labels} {_number(value)}"
                     for labels, value in samples)

    ok = result is not None and result.ok
    gauge("last_run_timestamp_seconds", "When the last run ended (Unix time).", [("", now)])
    gauge("last_run_success", "1 if the last run loaded every file, else 0.", [("", int(ok))])
    gauge("last_run_duration_seconds", "How long the last run took.", [("", seconds)])
    if last_success is not None:
        gauge("last_success_timestamp_seconds", "When the last fully successful run ended.",
              [("", last_success)])
    files = result.files if result is not None else []
    for what, help_text in (("inserted", "Rows the last run inserted."),
                            ("already_present", "Rows the last run found already stored."),
                            ("rejected", "Rows the last run rejected (see rejects.csv).")):
        gauge(f"rows_{what}", help_text,
              [(f'{{participant="{f.source.participant}",metric="{f.source.metric}"}}',
                getattr(f, what)) for f in files])
    if newest_hours:
        gauge("newest_row_age_seconds",
              "Age of the participant's newest row, from the start of the newest UTC hour "
              "holding one in ingest_coverage (up to an hour more than the row's own age).",
              [(f'{{participant="{p}"}}', round(now - t)) for p, t in sorted(newest_hours.items())])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def write_metrics(path: Path, text: str) -> None:
    """Replace the metrics file atomically (a textfile collector may read it at any time)."""
    write_atomically(path, text, mode=0o644)


def error_json(error: str, started: str, seconds: float, exit_status: int) -> dict:
    """The JSON object of a run that could not start or stopped early (``--json``)."""
    return {"ok": False, "status": "failed", "error": error, "exit_status": exit_status,
            "started": started, "duration_s": round(seconds, 3)}


# --- status ----------------------------------------------------------------------------------

def _share(rows: int, expected: int | None) -> str:
    return "–" if not expected else f"{100 * rows / expected:.0f}%"


def _days_text(first, last) -> str:
    return str(first) if first == last else f"{first}..{last}"


def status_lines(st: Status) -> list[str]:
    """``status`` for a terminal: incomplete days first, one line each, then one line per
    participant and metric for its complete days; the last run; a one-line verdict."""
    lines: list[str] = []
    if st.days:
        lines.append(f"{'participant':>11}  {'metric':<10}{'day':<24}{'rows':>12}"
                     f"{'expected':>12}{'share':>7}  status")

        def row(participant, metric, days, rows, expected, status):
            lines.append(f"{participant:>11}  {metric:<10}{days:<24}{rows:>12,}"
                         f"{(f'{expected:,}' if expected else '–'):>12}"
                         f"{_share(rows, expected):>7}  {status}")

        for d in st.incomplete():
            row(d.participant, d.metric, str(d.day), d.rows, d.expected, d.status)
        done: dict[tuple[int, str], list[Day]] = {}
        for d in st.days:
            if d.status == COMPLETE:
                done.setdefault((d.participant, d.metric), []).append(d)
        period = (st.last_day - st.first_day).days + 1
        for (participant, metric), days in done.items():
            expected = None if days[0].expected is None else sum(d.expected for d in days)
            some = f"{len(days)} of {period}" if len(days) < period else f"{len(days)}"
            row(participant, metric, _days_text(days[0].day, days[-1].day),
                sum(d.rows for d in days), expected,
                f"complete ({some} day{'s' if len(days) != 1 else ''})")
    lines.append(f"last run: {_run_text(st)}")
    lines.append(status_verdict(st))
    return lines


def _run_text(st: Status) -> str:
    run = st.last_run
    if run is None:
        return "none recorded"
    when = run.finished or run.started
    verb = "finished" if run.finished else "started"
    return (f"#{run.run_id} {run.status} ({run.trigger}), {verb} "
            f"{when.isoformat(timespec='seconds')}, "
            f"{hours_since(when, st.checked_at):.1f} h ago")


def status_verdict(st: Status) -> str:
    """One line: OK or NOT OK, and why."""
    if st.first_day is None:
        coverage = "no rows stored yet"
    else:
        period = f"{_days_text(st.first_day, st.last_day)} ({st.time_zone} days)"
        bad = st.incomplete()
        if bad:
            partial = sum(d.status == PARTIAL for d in bad)
            coverage = (f"{len(bad)} of {len(st.days)} days incomplete in {period}: "
                        f"{partial} partial, {len(bad) - partial} missing")
        elif st.days:
            coverage = f"all {len(st.days)} days complete in {period}"
        else:
            coverage = f"nothing selected in {period}"
    run = st.run_problem or f"the last run (#{st.last_run.run_id}) succeeded " \
        f"{hours_since(st.last_run.finished, st.checked_at):.1f} h ago"
    return f"{'OK' if st.ok else 'NOT OK'}: {coverage}; {run}"


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def status_json(st: Status) -> dict:
    """``status --json``: one JSON-ready object."""
    run = st.last_run
    return {
        "ok": st.ok,
        "complete": st.complete,
        "first_day": _iso(st.first_day),
        "last_day": _iso(st.last_day),
        "time_zone": st.time_zone,
        "complete_pct": st.expectations.complete_pct,
        "max_age_hours": st.expectations.max_age_hours,
        "incomplete": len(st.incomplete()),
        "days": [{"participant": d.participant, "metric": d.metric, "day": d.day.isoformat(),
                  "rows": d.rows, "expected": d.expected, "status": d.status,
                  "share": None if d.share is None else round(d.share, 4)} for d in st.days],
        "last_run": None if run is None else {
            "run_id": run.run_id, "started": _iso(run.started), "finished": _iso(run.finished),
            "status": run.status, "trigger": run.trigger, "error": run.error,
            "metrics": run.metrics},
        "last_run_ok": st.run_problem is None,
        "problem": st.run_problem,
        "verdict": status_verdict(st),
    }


# --- storage (status's own section) -----------------------------------------------------------

def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def storage_line(fig: Figures) -> str:
    """One line: raw_data's bytes now and before compression, chunks compressed."""
    if not fig.compression_available:
        return f"storage: {_bytes(fig.bytes_stored)} in {fig.chunks} chunks; {fig.note}"
    share = "" if fig.ratio is None else f" ({100 * fig.ratio:.1f}%)"
    return (f"storage: {_bytes(fig.bytes_stored)} stored, {_bytes(fig.bytes_uncompressed)} "
            f"before compression{share}; {fig.chunks_compressed} of {fig.chunks} chunks "
            "compressed")


def storage_json(fig: Figures) -> dict:
    """status --json's "storage" object."""
    return {"compression_available": fig.compression_available,
            "bytes_stored": fig.bytes_stored,
            "bytes_before_compression": fig.bytes_uncompressed,
            "chunks": fig.chunks, "chunks_compressed": fig.chunks_compressed}
