"""What a run tells, made from its counts: text lines, the JSON summary, the metrics file."""

from __future__ import annotations

from pathlib import Path

from wearables_ingest.atomic import write_atomically
from wearables_ingest.results import FileResult, RunResult
from wearables_ingest.timestamps import format_ts


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


def error_json(error: str, started: str, seconds: float, exit_status: int) -> dict:
    """The JSON object of a run that could not start or stopped early (``--json``)."""
    return {"ok": False, "status": "failed", "error": error, "exit_status": exit_status,
            "started": started, "duration_s": round(seconds, 3)}
