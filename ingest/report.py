"""What a run tells: the totals line, the JSON summary, and the Prometheus metrics file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from checkpoint import write_atomically
from loader import RunResult


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
        "last_success": result.last_success,
    }


def metrics_text(result: RunResult | None, seconds: float, now: float,
                 last_success: float | None) -> str:
    """Prometheus text exposition of the last run (``result`` None: it failed to start)."""
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
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def write_metrics(path: Path, text: str) -> None:
    """Replace the metrics file atomically (a textfile collector may read it at any time)."""
    write_atomically(path, text, mode=0o644)


def epoch(iso: str | None) -> float | None:
    """Unix time of an ISO 8601 timestamp with offset (None stays None)."""
    return None if iso is None else datetime.fromisoformat(iso).timestamp()
