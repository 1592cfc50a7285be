"""Finding the metric files: ``<metric>.csv`` in a participant's folder, or in
``participant_NNN`` folders under the data folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wearables_ingest.errors import SourceError

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
PARTICIPANT_DIR = re.compile(r"participant_(\d+)")


@dataclass(frozen=True)
class SourceFile:
    participant: int
    metric: str
    path: Path
    label: str  # how the summary names it: "hr", or "participant_007/hr"


def discover(data_dir: Path, participant: int) -> tuple[list[SourceFile], list[SourceError]]:
    """The metric files under ``data_dir``, sorted, and the files that cannot be metrics.

    ``data_dir`` holds either the ``<metric>.csv`` files of one participant, or
    folders named ``participant_NNN``, each holding that participant's files.
    """
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}: data folder not found")
    folders = sorted(
        (int(m.group(1)), p)
        for p in data_dir.iterdir()
        if p.is_dir() and (m := PARTICIPANT_DIR.fullmatch(p.name))
    )
    if not folders:
        return _metric_files(data_dir, participant, prefix="")
    loose = sorted(p.name for p in data_dir.glob("*.csv"))
    if loose:
        raise SourceError(f"{data_dir}: holds both participant_NNN folders and CSV files "
                          f"({', '.join(loose)}); keep one layout")
    files: list[SourceFile] = []
    problems: list[SourceError] = []
    for number, folder in folders:
        found, bad = _metric_files(folder, number, prefix=f"{folder.name}/")
        files += found
        problems += bad
    return files, problems


def _metric_files(folder: Path, participant: int, prefix: str) -> tuple[list[SourceFile], list]:
    files, problems = [], []
    for path in sorted(folder.glob("*.csv")):
        metric = path.name[: -len(".csv")]
        if METRIC_NAME.fullmatch(metric):
            files.append(SourceFile(participant, metric, path, prefix + metric))
        else:
            problems.append(SourceError(
                f"{path}: {metric!r} is not a metric name (lowercase letters, digits and _, "
                "starting with a letter); file skipped"))
    return files, problems
