"""Finding the metric files: ``<metric>.csv`` in a participant's folder, or in
``participant_NNN`` folders under the data folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wearables_ingest.errors import ConfigError, SourceError

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
PARTICIPANT_DIR = re.compile(r"participant_(\d+)")


@dataclass(frozen=True)
class SourceFile:
    participant: int
    metric: str
    path: Path
    label: str  # how the summary names it: "hr", or "participant_007/hr"


def folder_number(folder: Path) -> int | None:
    """The participant number a folder's name carries (``participant_007`` is 7), or None."""
    m = PARTICIPANT_DIR.fullmatch(folder.name)
    return int(m.group(1)) if m else None


def discover(data_dir: Path, participant_id: int | None = None
             ) -> tuple[list[SourceFile], list[SourceError]]:
    """The metric files under ``data_dir``, sorted, and the files that cannot be metrics.

    ``data_dir`` holds either the ``<metric>.csv`` files of one participant, or
    folders named ``participant_NNN``, each holding that participant's files. A
    folder's number is its participant's; ``participant_id`` (PARTICIPANT_ID)
    only names a folder whose name carries no number, and a run stops here,
    before writing anything, when it disagrees with a folder's number.
    """
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}: data folder not found")
    own = folder_number(data_dir)
    if own is not None:
        _agrees(participant_id, own, data_dir)
        return _metric_files(data_dir, own, prefix="")
    folders = sorted((n, p) for p in data_dir.iterdir()
                     if p.is_dir() and (n := folder_number(p)) is not None)
    if not folders:
        if participant_id is None and any(data_dir.glob("*.csv")):
            raise ConfigError(f"{data_dir}: the folder's name carries no participant number; "
                              "name it participant_NNN, or set PARTICIPANT_ID")
        return _metric_files(data_dir, participant_id or 0, prefix="")
    loose = sorted(p.name for p in data_dir.glob("*.csv"))
    if loose:
        raise SourceError(f"{data_dir}: holds both participant_NNN folders and CSV files "
                          f"({', '.join(loose)}); keep one layout")
    files: list[SourceFile] = []
    problems: list[SourceError] = []
    # With one participant the seed's labels stay as they were ("hr"); with several,
    # a line names the folder too ("participant_007/hr").
    several = len(folders) > 1
    for number, folder in folders:
        _agrees(participant_id, number, folder)
        found, bad = _metric_files(folder, number, prefix=f"{folder.name}/" if several else "")
        files += found
        problems += bad
    return files, problems


def _agrees(participant_id: int | None, number: int, folder: Path) -> None:
    if participant_id is not None and participant_id != number:
        raise ConfigError(f"PARTICIPANT_ID={participant_id} disagrees with {folder}, which is "
                          f"participant {number}; nothing was loaded (unset PARTICIPANT_ID: "
                          "a folder's number names its participant)")


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
