"""Stored rows as a pandas DataFrame, for analysts (the database side of "Reading the data").

    from wearables_ingest.read import read_rows
    hr = read_rows("postgresql://analyst:secret@localhost:5432/wearables",
                   participant=1, metric="hr", start="2024-01-01", end="2024-01-02")

    hourly = read_rows(url, participant=1, metric="hr", start="2024-01-01",
                       end="2024-02-01", resolution="1h")

The role ``analyst`` (docs/security.md) may read everything this needs.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd

from wearables_ingest.database import Database
from wearables_ingest.masking import mask
from wearables_ingest.settings import Config, load

# COPY streams the rows as text, far faster than fetching millions of tuples. ts
# travels as whole microseconds since 1970 (exact, and no time zone text to parse);
# value as PostgreSQL's shortest text that reads back as the same double.
ROWS = ("COPY (SELECT (extract(epoch FROM ts) * 1000000)::bigint, value FROM raw_data "
        "WHERE participant = %s AND metric = %s AND ts >= %s AND ts < %s ORDER BY ts) "
        "TO STDOUT WITH (FORMAT csv)")  # COPY takes no parameters: mogrify quotes them
# The down-sampled views (storage.sql), by resolution: a constant name each, never input.
VIEWS = {"1m": "raw_data_1m", "1h": "raw_data_1h", "1d": "raw_data_1d"}
BUCKETS = ("COPY (SELECT (extract(epoch FROM bucket) * 1000000)::bigint, samples, mean, min, max "
           "FROM {view} WHERE participant = %s AND metric = %s AND bucket >= %s AND bucket < %s "
           "ORDER BY bucket) TO STDOUT WITH (FORMAT csv)")


def _utc(when: datetime | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _database(source: str | Config | None) -> Database:
    if isinstance(source, str):
        return Database({"dsn": source}, mask(source), retries=0)
    cfg = load() if source is None else source
    return Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay)


def read_rows(source: str | Config | None, participant: int, metric: str,
              start: datetime | str | pd.Timestamp,
              end: datetime | str | pd.Timestamp,
              resolution: str | None = None) -> pd.DataFrame:
    """One participant's metric with ``start <= ts < end``, exactly as stored, or down-sampled.

    ``source``: a libpq URL, a ``settings.Config``, or None for the loader's
    settings (the environment and ``.env``). ``start`` and ``end``: datetimes,
    pandas Timestamps or ISO 8601 text; without a time zone they are UTC.
    Without ``resolution``: a DataFrame indexed by ``ts`` (UTC, time-zone aware,
    ascending) with one float column, ``value`` (NaN where the stored value is NULL).
    With ``resolution`` "1m", "1h" or "1d": read from raw_data_1m/1h/1d, indexed by
    ``bucket`` (each bucket's start, ``start <= bucket < end``) with the columns
    ``samples`` (rows), ``mean``, ``min`` and ``max`` (of the values; NaN when all are NULL).
    Raises errors.DatabaseError (or ConnectionLost) when the database refuses.
    """
    if resolution is not None and resolution not in VIEWS:
        raise ValueError(f"resolution {resolution!r} is not one of {', '.join(VIEWS)} "
                         "(or None for the rows as stored)")
    first, last = _utc(start), _utc(end)
    if last <= first:
        raise ValueError(f"end ({last.isoformat()}) must be after start ({first.isoformat()})")
    template = ROWS if resolution is None else BUCKETS.format(view=VIEWS[resolution])
    db = _database(source).open()
    buffer = io.StringIO()
    try:
        with db.rolled_back() as cur:
            statement = cur.mogrify(template, (int(participant), metric, first.isoformat(),
                                               last.isoformat()))
            cur.copy_expert(statement.decode(), buffer)
    finally:
        db.close()
    buffer.seek(0)
    if resolution is None:
        columns, name = ["value"], "ts"
    else:
        columns, name = ["samples", "mean", "min", "max"], "bucket"
    # Values as text, then numpy's exact conversion: pandas' own float parser may
    # round the last digit (an empty field is a NULL value: NaN).
    frame = pd.read_csv(buffer, header=None, names=["us", *columns],
                        dtype={"us": "int64", **dict.fromkeys(columns, str)}, na_filter=False)
    index = pd.DatetimeIndex(pd.to_datetime(frame["us"].to_numpy(), unit="us", utc=True),
                             name=name)
    out = {}
    for column in columns:
        text = frame[column].to_numpy(dtype=object)
        out[column] = np.where(text == "", "nan", text).astype(np.float64)
    if resolution is not None:
        out["samples"] = out["samples"].astype(np.int64)
    return pd.DataFrame(out, index=index)
