"""A plain block's rows read at numpy speed, for the binary COPY of the nightly way.

The server then parses nothing: it takes each timestamp as microseconds and each
value as a double, which saves it about a quarter of its work per row. So these
readings must be exactly the server's own: a timestamp of the plain shape
(blocks.py) in UTC is whole arithmetic, and a value of at most 15 significant
digits without an exponent is one integer divided by a power of ten, a single
correctly rounded step, as PostgreSQL's strtod rounds it. Anything else (an
empty value, an exponent, a space, an impossible date) gives None, and the
block is parsed row by row instead (parse.py).
"""

from __future__ import annotations

import numpy as np

from wearables_ingest.blocks import Block, Lines

_ZERO = ord("0")
MAX_DIGITS = 15  # below 2**53: the integer of digits is exact in a double
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_POWERS = np.array([float(10 ** i) for i in range(MAX_DIGITS + 1)])  # each exact


def read(block: Block, naive_ok: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """(timestamps as datetime64[us] UTC, values as float64) of a plain block, or None
    when a row falls outside what this reads exactly (then parse it)."""
    lines = block.lines(naive_ok)
    if lines is None:
        return None
    a = np.frombuffer(block.data, dtype=np.uint8)
    ts = _timestamps(a, lines)
    if ts is None:
        return None
    values = _values(a, lines.commas + 1, lines.ends)
    if values is None:
        return None
    return ts, values


# Weights of the digits at these places of ``YYYY-MM-DDTHH:MM:SS``.
_DATE_PLACES, _DATE_WEIGHTS = [0, 1, 2, 3, 5, 6, 8, 9], 10 ** np.arange(7, -1, -1)
_TIME_PLACES, _TIME_WEIGHTS = [11, 12, 14, 15, 17, 18], np.array([36000, 3600, 600, 60, 10, 1])


def _timestamps(a: np.ndarray, lines: Lines) -> np.ndarray | None:
    """``YYYY-MM-DD[T ]HH:MM:SS[.f]`` (UTC, the plain shape) as datetime64[us]; None for a
    date that does not exist (the row-by-row parse rejects it with its line)."""
    digits = lines.fixed - np.uint8(_ZERO)  # the places that are not digits are not used
    dates = digits[:, _DATE_PLACES].astype(np.int64) @ _DATE_WEIGHTS  # YYYYMMDD
    # Rows come in time order, mostly: each run of one date is converted once.
    runs = np.concatenate(([0], np.flatnonzero(dates[1:] != dates[:-1]) + 1))
    days = _days(dates[runs])
    if days is None:
        return None
    seconds = (np.repeat(days, np.diff(np.append(runs, len(dates)))) * 86_400
               + digits[:, _TIME_PLACES].astype(np.int64) @ _TIME_WEIGHTS)
    micros = np.zeros(len(dates), dtype=np.int64)
    places = np.maximum(lines.fraction - 1, 0)  # 0 to 6 digits after the point
    if places.any():
        last = len(a) - 1
        for i in range(6):
            digit = a[np.minimum(lines.starts + 20 + i, last)].astype(np.int64) - _ZERO
            micros = micros * 10 + np.where(places > i, digit, 0)
    return (seconds * 1_000_000 + micros).astype("datetime64[us]")


def _days(dates: np.ndarray) -> np.ndarray | None:
    """Days since 1970-01-01 of dates written YYYYMMDD (proleptic Gregorian, as PostgreSQL
    counts them); None when one does not exist."""
    year, month, day = dates // 10000, dates // 100 % 100, dates % 100
    if not ((year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)).all():
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if (day > _DAYS[month - 1] + ((month == 2) & leap)).any():
        return None
    # H. Hinnant's days_from_civil.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _values(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``[-]digits[.digits]`` with 1 to 15 digits, as float64; None when any value is not."""
    width = ends - starts
    if not len(width) or width.min() < 1 or width.max() > MAX_DIGITS + 2:
        return None
    last = len(a) - 1
    mantissa = np.zeros(len(starts), dtype=np.int64)
    decimals = np.zeros(len(starts), dtype=np.int64)
    digits = np.zeros(len(starts), dtype=np.int64)
    pointed = np.zeros(len(starts), dtype=bool)
    negative = a[starts] == ord("-")
    for i in range(int(width.max())):
        inside = width > i
        char = a[np.minimum(starts + i, last)]
        digit = inside & (char >= _ZERO) & (char <= _ZERO + 9)
        point = inside & (char == ord("."))
        sign = negative if i == 0 else False
        if not (digit | point | sign | ~inside).all() or (point & pointed).any():
            return None
        pointed |= point
        mantissa = np.where(digit, mantissa * 10 + (char.astype(np.int64) - _ZERO), mantissa)
        decimals += digit & pointed
        digits += digit
    if digits.min() < 1 or digits.max() > MAX_DIGITS:
        return None
    values = mantissa.astype(np.float64) / _POWERS[decimals]
    return np.where(negative, -values, values)
