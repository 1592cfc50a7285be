"""What a run tells, made from its counts: text lines, the JSON summary, the metrics (the
metrics file and the Pushgateway's gauges)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wearables_ingest.atomic import write_atomically
from wearables_ingest.status import (
    COMPLETE,
    PARTIAL,
    Attention,
    Day,
    Status,
    Tally,
    attention,
    hours_since,
    tallies,
)
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


# --- metrics ---------------------------------------------------------------------------------
# One set of gauges for the metrics file and the Pushgateway: stable names with their unit
# (Prometheus' naming guide). The alert rules (monitoring/alerts.yml) read them; renaming
# one breaks an alert.
PREFIX = "wearables_ingest_"
RUN_STATUSES = ("ok", "partial", "failed")


@dataclass(frozen=True)
class Gauge:
    """One gauge and its samples: (labels, value) pairs; labels as (name, value) pairs."""

    name: str  # without PREFIX
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...]

    @property
    def full_name(self) -> str:
        return PREFIX + self.name


def _one(name: str, help_text: str, value: float) -> Gauge:
    return Gauge(name, help_text, (((), value),))


def run_gauges(result: RunResult | None, seconds: float, now: float,
               last_success: float | None, limits: Mapping[str, float],
               newest_hours: Mapping[tuple[int, str], float] | None = None) -> list[Gauge]:
    """What a run pushes (and writes to the metrics file); ``result`` None: it failed to start.

    ``limits``: the alerts' thresholds from the settings, in seconds:
    ``success_max_age`` and ``newest_row_max_age``. ``newest_hours``: per (participant,
    metric), the Unix time of the start of the newest UTC hour holding one of its rows
    (ingest_coverage), for the age of its newest row.
    """
    ok = result is not None and result.ok
    status = result.status if result is not None else "failed"
    counts = {what: result.total(what) if result is not None else 0
              for what in ("inserted", "already_present", "rejected")}
    gauges = [
        _one("last_run_timestamp_seconds", "When the last run ended (Unix time).", now),
        _one("last_run_success", "1 if the last run loaded every file, else 0.", int(ok)),
        Gauge("last_run_status", "The last run's status: 1 for the one it had (ok: every "
              "file loaded; partial: some files failed; failed: none loaded, or no start).",
              tuple(((("status", s),), int(s == status)) for s in RUN_STATUSES)),
        _one("last_run_duration_seconds", "How long the last run took.", seconds),
        _one("last_run_inserted_rows", "Rows the last run inserted.", counts["inserted"]),
        _one("last_run_already_present_rows", "Rows the last run found already stored.",
             counts["already_present"]),
        _one("last_run_rejected_rows", "Rows the last run rejected (see rejects.csv).",
             counts["rejected"]),
        _one("last_run_failed_files", "Files the last run could not load.",
             len(result.errors) if result is not None else 0),
        _one("success_max_age_seconds", "How old the last success may be before the alert "
             "WearablesIngestNoRecentSuccess (STATUS_MAX_AGE_HOURS).",
             limits["success_max_age"]),
        _one("newest_row_max_age_seconds", "How old a participant's metric's newest row may "
             "be before the alert WearablesIngestNoNewRows (STALE_AFTER_HOURS).",
             limits["newest_row_max_age"]),
    ]
    if last_success is not None:
        gauges.insert(2, _one("last_success_timestamp_seconds",
                              "When the last fully successful run ended (Unix time).",
                              last_success))
    if newest_hours:
        gauges.append(Gauge(
            "newest_row_age_seconds",
            "Age of the participant's newest row of the metric when the run ended, from the "
            "start of the newest UTC hour holding one in ingest_coverage (up to an hour more "
            "than the row's own age).",
            tuple(((("participant", str(p)), ("metric", m)), round(now - t))
                  for (p, m), t in sorted(newest_hours.items()))))
    return gauges


def file_gauges(result: RunResult | None) -> list[Gauge]:
    """Per participant and metric, the last run's rows: the metrics file only (never pushed:
    3 series per file would multiply the Pushgateway's series)."""
    files = result.files if result is not None else []
    helps = (("inserted", "Rows the last run inserted."),
             ("already_present", "Rows the last run found already stored."),
             ("rejected", "Rows the last run rejected (see rejects.csv)."))
    return [Gauge(f"rows_{what}", help_text,
                  tuple(((("participant", str(f.source.participant)), ("metric", f.source.metric)),
                         getattr(f, what)) for f in files))
            for what, help_text in helps]


def metrics_text(gauges: Iterable[Gauge]) -> str:
    """Prometheus' text exposition format of the gauges."""
    lines: list[str] = []
    for g in gauges:
        lines.append(f"# HELP {g.full_name} {g.help}")
        lines.append(f"# TYPE {g.full_name} gauge")
        for labels, value in g.samples:
            text = ",".join(f'{k}="{_escaped(v)}"' for k, v in labels)
            lines.append(f"{g.full_name}{{{text}}} {_number(value)}" if labels
                         else f"{g.full_name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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


DAILY, LIMIT = 7, 20  # the summary's days one by one; participants listed who need attention
GAPS_WIDTH = 60  # a participant's incomplete days, in at most this many characters


def status_lines(st: Status, daily: int = DAILY, limit: int = LIMIT,
                 every_row: bool = False, stored: Figures | None = None) -> list[str]:
    """``status`` for a terminal, in sections: the summary per metric and day; the
    participants who need attention, worst first, at most ``limit`` (0: all), or with
    ``every_row`` the full table; then the storage (when known), the last run and a
    one-line verdict."""
    sections = [summary_lines(st, daily),
                every_row_lines(st) if every_row else attention_lines(st, limit),
                ([storage_line(stored)] if stored is not None else [])
                + [f"last run: {_run_text(st)}", status_verdict(st)]]
    lines: list[str] = []
    for section in filter(None, sections):
        lines += ([""] if lines else []) + section
    return lines


def summary_lines(st: Status, daily: int = DAILY) -> list[str]:
    """A row per day (the newest ``daily``; earlier ones together), a column per metric: how
    many participants are complete / partial / missing, each from its first day."""
    counts = tallies(st, daily)
    if not counts:
        return []
    metrics = sorted({t.metric for t in counts})
    rows = sorted({(t.first, t.last) for t in counts})
    cell = {(t.first, t.metric): t for t in counts}

    def text(t: Tally | None) -> str:
        return "–" if t is None else f"{t.complete}/{t.partial}/{t.missing}"

    day_w = max(len("day"), *(len(_days_text(a, b)) for a, b in rows))
    width = max(len(m) for m in metrics)
    width = 2 + max(width, *(len(text(t)) for t in counts))
    n = len(st.participants())
    lines = [f"{n:,} participant{'s' if n != 1 else ''}, {_days_text(st.first_day, st.last_day)} "
             f"({st.time_zone} days), each from its first day.",
             "Participants complete/partial/missing per metric and day:",
             f"{'day':<{day_w}}" + "".join(f"{m:>{width}}" for m in metrics)]
    for first, last in rows:
        label = _days_text(first, last)
        lines.append(f"{label:<{day_w}}"
                     + "".join(f"{text(cell.get((first, m))):>{width}}" for m in metrics))
    if rows[0][0] != rows[0][1]:
        lines.append(f"({_days_text(*rows[0])}: each participant by its worst day)")
    return lines


def attention_lines(st: Status, limit: int = LIMIT) -> list[str]:
    """The participants with a partial or missing day, worst first, at most ``limit``
    (0: all), one line each."""
    ranked = attention(st)
    if not ranked:
        return []
    needy = [a for a in ranked if a.needs_attention]
    if not needy:
        return [f"Needs attention: none of {len(ranked):,} participants"]
    shown = needy if limit == 0 else needy[:limit]
    more = f"the first {len(shown)}, --limit N; " if len(shown) < len(needy) else ""
    metrics = sorted({d.metric for d in st.days})
    lines = [f"Needs attention: {len(needy):,} of {len(ranked):,} participants, worst first "
             f"({more}every row: --all)",
             f"{'participant':>11}  {'first day':<10}  {'missing':>7}  {'partial':>7}  "
             f"{'stored':>6}  days not complete"]
    for a in shown:
        first = "–" if a.first_day is None else str(a.first_day)
        stored = "–" if a.share is None else f"{100 * a.share:.0f}%"
        lines.append(f"{a.participant:>11}  {first:<10}  {a.missing:>7,}  {a.partial:>7,}  "
                     f"{stored:>6}  {_gaps(a, metrics)}")
    if len(shown) < len(needy):
        lines.append(f"… and {len(needy) - len(shown):,} more (--limit 0 lists them all)")
    return lines


def _gaps(a: Attention, metrics: list[str]) -> str:
    """The participant's incomplete days, compactly: ``hr 01-05 50%; all 01-06..01-07 missing``."""
    runs: dict[str, list[str]] = {}
    for metric in metrics:
        own = [d for d in a.incomplete if d.metric == metric]
        if own:
            runs[metric] = _runs(own)
    same: dict[tuple[str, ...], list[str]] = {}  # metrics with the very same gaps, together
    for metric, text in runs.items():
        same.setdefault(tuple(text), []).append(metric)
    parts = []
    for text, names in same.items():
        who = "all" if len(names) == len(metrics) > 1 else ",".join(names)
        parts.append(f"{who} {', '.join(text)}")
    line = "; ".join(parts)
    return line if len(line) <= GAPS_WIDTH else line[:GAPS_WIDTH - 1] + "…"


def _runs(days: list[Day]) -> list[str]:
    """Consecutive days of one status as one run: ``01-02..01-04 missing``, ``01-05 50%``."""
    out: list[str] = []
    start = prev = days[0]
    for d in [*days[1:], None]:
        if d is not None and d.status == prev.status and (d.day - prev.day).days == 1:
            prev = d
            continue
        when = start.day.strftime("%m-%d")
        if prev is not start:
            out.append(f"{when}..{prev.day.strftime('%m-%d')} {prev.status}")
        elif start.status == PARTIAL and start.share is not None:
            out.append(f"{when} {100 * start.share:.0f}%")
        else:
            out.append(f"{when} {start.status}")
        start = prev = d
    return out


def every_row_lines(st: Status) -> list[str]:
    """``status --all``: every incomplete day, one line each, then one line per participant
    and metric for its complete days."""
    if not st.days:
        return []
    lines = [f"{'participant':>11}  {'metric':<10}{'day':<24}{'rows':>12}"
             f"{'expected':>12}{'share':>7}  status"]

    def row(participant, metric, days, rows, expected, status):
        lines.append(f"{participant:>11}  {metric:<10}{days:<24}{rows:>12,}"
                     f"{(f'{expected:,}' if expected else '–'):>12}"
                     f"{_share(rows, expected):>7}  {status}")

    for d in st.incomplete():
        row(d.participant, d.metric, str(d.day), d.rows, d.expected, d.status)
    done: dict[tuple[int, str], list[Day]] = {}
    rated: dict[tuple[int, str], int] = {}
    for d in st.days:
        rated[d.participant, d.metric] = rated.get((d.participant, d.metric), 0) + 1
        if d.status == COMPLETE:
            done.setdefault((d.participant, d.metric), []).append(d)
    for (participant, metric), days in done.items():
        expected = None if days[0].expected is None else sum(d.expected for d in days)
        period = rated[participant, metric]
        some = f"{len(days)} of {period}" if len(days) < period else f"{len(days)}"
        row(participant, metric, _days_text(days[0].day, days[-1].day),
            sum(d.rows for d in days), expected,
            f"complete ({some} day{'s' if len(days) != 1 else ''})")
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
        everyone = len(st.participants())
        if bad:
            partial = sum(d.status == PARTIAL for d in bad)
            who = len({d.participant for d in bad})
            coverage = (f"{len(bad):,} of {len(st.days):,} days incomplete ({who:,} of "
                        f"{everyone:,} participant{'s' if everyone != 1 else ''}) in {period}: "
                        f"{partial:,} partial, {len(bad) - partial:,} missing")
        elif st.days:
            coverage = (f"all {len(st.days):,} days complete ({everyone:,} "
                        f"participant{'s' if everyone != 1 else ''}) in {period}")
        else:
            coverage = f"nothing selected in {period}"
    run = st.run_problem or f"the last run (#{st.last_run.run_id}) succeeded " \
        f"{hours_since(st.last_run.finished, st.checked_at):.1f} h ago"
    return f"{'OK' if st.ok else 'NOT OK'}: {coverage}; {run}"


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _period_days(st: Status) -> int:
    return 1 if st.first_day is None else (st.last_day - st.first_day).days + 1


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
        "summary": [{"metric": t.metric, "day": t.first.isoformat(), "complete": t.complete,
                     "partial": t.partial, "missing": t.missing}
                    for t in tallies(st, _period_days(st))],
        "participants": [{"participant": a.participant, "first_day": _iso(a.first_day),
                          "complete": a.complete, "partial": a.partial, "missing": a.missing,
                          "share": None if a.share is None else round(a.share, 4)}
                         for a in attention(st)],
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
