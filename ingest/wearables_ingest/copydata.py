"""COPY data: the CSV lines ``ts,value,participant,metric`` that the writer streams.

Pure functions, no I/O: a block of plain source lines passes through with the
participant and metric appended; parsed rows are formatted anew.
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("ts", "value", "participant", "metric")  # the order of a COPY line's fields


def line_suffix(participant: int, metric: str) -> bytes:
    """What turns a source line ``ts,value`` into a COPY line ``ts,value,participant,metric``.

    ``metric`` is a plain lowercase identifier (the file name was checked), so
    it needs no CSV quoting.
    """
    return f",{int(participant)},{metric}\n".encode("ascii")


def from_block(lines: bytes, suffix: bytes) -> bytes:
    """COPY data from a block of plain source lines, each ending in \\n."""
    return lines.replace(b"\n", suffix)


def from_rows(ts: np.ndarray, values: np.ndarray, suffix: bytes) -> bytes:
    """COPY data from parsed rows (an empty field is NULL)."""
    stamps = np.datetime_as_string(ts, unit="us").tolist()
    end = suffix.decode("ascii")
    return "".join(f"{t}Z,{'' if v != v else repr(v)}{end}"
                   for t, v in zip(stamps, values.tolist(), strict=True)).encode("ascii")
