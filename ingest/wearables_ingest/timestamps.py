"""Timestamps as this package writes them: ISO 8601 in UTC, and Unix time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def now_utc() -> str:
    """Now, as ISO 8601 with the UTC offset, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def format_ts(ts: np.datetime64) -> str:
    """A datetime64 (UTC, no zone attached) as ISO 8601 with ``+00:00``."""
    return datetime.fromisoformat(str(ts.astype("datetime64[us]"))).replace(
        tzinfo=UTC).isoformat()


def parse_ts(text: str) -> np.datetime64:
    """ISO 8601 with a UTC offset to datetime64[us] in UTC; ValueError without an offset."""
    import numpy as np  # here, not at the top: `status` never needs it

    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return np.datetime64(parsed.astimezone(UTC).replace(tzinfo=None), "us")


def epoch(iso: str | None) -> float | None:
    """Unix time of an ISO 8601 timestamp with offset (None stays None)."""
    return None if iso is None else datetime.fromisoformat(iso).timestamp()
