"""Finding the metric files: ``<metric>.csv`` in a participant's folder, or in
``participant_NNN`` folders under the data folder."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

from wearables_ingest.errors import ConfigError, SourceError

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
PARTICIPANT_DIR = re.compile(r"participant_([0-9]+)", re.ASCII)  # ASCII digits only, not "١"
MAX_PARTICIPANT = 2**31 - 1  # raw_data.participant is an INT


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


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, for its error; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: Path, kind: str) -> SourceError:
    """The error of a name in the data folder that is not a regular file: never read."""
    return SourceError(f"{path}: is {kind}, not a regular file; not read (the data folder "
                       "may hold only regular files and folders, no links)")


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
    if participant_id is not None and participant_id > MAX_PARTICIPANT:
        raise ConfigError(f"PARTICIPANT_ID={participant_id} is out of range (at most "
                          f"{MAX_PARTICIPANT:,})")
    own = folder_number(data_dir)
    if own is not None:
        if own > MAX_PARTICIPANT:
            raise SourceError(f"{data_dir}: participant number {own} is out of range "
                              f"(at most {MAX_PARTICIPANT:,}); nothing was loaded")
        _agrees(participant_id, own, data_dir)
        return _metric_files(data_dir, own, prefix="")
    folders, problems = _participant_folders(data_dir)
    if not folders and not problems:
        if participant_id is None and any(data_dir.glob("*.csv")):
            raise ConfigError(f"{data_dir}: the folder's name carries no participant number; "
                              "name it participant_NNN, or set PARTICIPANT_ID")
        return _metric_files(data_dir, participant_id or 0, prefix="")
    loose = sorted(p.name for p in data_dir.glob("*.csv"))
    if loose:
        raise SourceError(f"{data_dir}: holds both participant_NNN folders and CSV files "
                          f"({', '.join(loose)}); keep one layout")
    files: list[SourceFile] = []
    # With one participant the seed's labels stay as they were ("hr"); with several,
    # a line names the folder too ("participant_007/hr").
    several = len(folders) > 1
    for number, folder in folders:
        _agrees(participant_id, number, folder)
        found, bad = _metric_files(folder, number, prefix=f"{folder.name}/" if several else "")
        files += found
        problems += bad
    return files, problems


def _participant_folders(data_dir: Path) -> tuple[list[tuple[int, Path]], list[SourceError]]:
    """The participant_NNN folders by number, and the folders that cannot be loaded.

    Two folders with one number (participant_7, participant_007) stop the run
    before anything is written; a number beyond raw_data's INT, or a folder
    that is a symbolic link, is that folder's error.
    """
    found: dict[int, Path] = {}
    problems: list[SourceError] = []
    for p in sorted(data_dir.iterdir()):
        number = folder_number(p)
        if number is None:
            continue
        try:
            mode = p.lstat().st_mode
        except FileNotFoundError:  # gone since the listing
            continue
        if stat.S_ISLNK(mode):
            problems.append(not_regular(p, "a symbolic link"))
            continue
        if not stat.S_ISDIR(mode):
            continue
        if number > MAX_PARTICIPANT:
            problems.append(SourceError(f"{p}: participant number {number} is out of range "
                                        f"(at most {MAX_PARTICIPANT:,}); folder not loaded"))
            continue
        if number in found:
            raise ConfigError(f"{found[number]} and {p} are both participant {number}; "
                              "nothing was loaded (rename one of them)")
        found[number] = p
    return sorted(found.items()), problems


def _agrees(participant_id: int | None, number: int, folder: Path) -> None:
    if participant_id is not None and participant_id != number:
        raise ConfigError(f"PARTICIPANT_ID={participant_id} disagrees with {folder}, which is "
                          f"participant {number}; nothing was loaded (unset PARTICIPANT_ID: "
                          "a folder's number names its participant)")


def _metric_files(folder: Path, participant: int, prefix: str) -> tuple[list[SourceFile], list]:
    files, problems = [], []
    for path in sorted(folder.glob("*.csv")):
        metric = path.name[: -len(".csv")]
        try:
            kind = _kind(path.lstat().st_mode)
        except FileNotFoundError:  # gone since the listing
            continue
        if kind is not None:  # never opened: a FIFO would block, a link could leave the folder
            problems.append(not_regular(path, kind))
        elif METRIC_NAME.fullmatch(metric):
            files.append(SourceFile(participant, metric, path, prefix + metric))
        else:
            problems.append(SourceError(
                f"{path}: {metric!r} is not a metric name (lowercase letters, digits and _, "
                "starting with a letter); file skipped"))
    return files, problems
