"""COPY data: the CSV lines ``ts,value,participant,metric`` that the writer streams,
or the same rows in COPY's binary format.

Pure functions, no I/O: a block of plain source lines passes through with the
participant and metric appended; parsed rows are formatted anew, as text or binary.
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


# COPY's binary format: a header, then per row the field count and each field as its
# length and its bytes (length -1: NULL), in network byte order; a trailer of -1.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
BINARY_TRAILER = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")  # where PostgreSQL counts from


def _row_type(metric: bytes, with_value: bool) -> np.dtype:
    fields = [("n", ">i2"), ("ts_len", ">i4"), ("ts", ">i8"), ("value_len", ">i4")]
    fields += [("value", ">f8")] if with_value else []
    fields += [("p_len", ">i4"), ("p", ">i4"), ("m_len", ">i4"), ("m", f"S{len(metric)}")]
    return np.dtype(fields)


def binary_rows(ts: np.ndarray, values: np.ndarray, participant: int, metric: str) -> bytes:
    """Rows in COPY's binary format, fields in COLUMNS order (NaN = NULL); no header.

    Rows with a NULL value follow the others: a COPY's row order means nothing.
    """
    name = metric.encode("ascii")
    null = np.isnan(values)
    parts = []
    for with_value, take in ((True, ~null), (False, null)):
        if not take.any():
            continue
        rows = np.zeros(int(take.sum()), dtype=_row_type(name, with_value))
        rows["n"] = len(COLUMNS)
        rows["ts_len"] = 8
        rows["ts"] = (ts[take].astype("datetime64[us]") - _PG_EPOCH).astype(np.int64)
        if with_value:
            rows["value_len"] = 8
            rows["value"] = values[take]
        else:
            rows["value_len"] = -1
        rows["p_len"], rows["p"] = 4, participant
        rows["m_len"], rows["m"] = len(name), name
        parts.append(rows.tobytes())
    return b"".join(parts)
