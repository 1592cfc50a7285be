"""How raw_data is stored: compression and the down-sampled views, and what they hold.

The full TimescaleDB (its license setting says ``timescale``) gets storage.sql:
compression with a policy, and raw_data_1m/1h/1d as continuous aggregates. An
Apache-only server gets storage-apache.sql: the same views, plain. Both files
sit beside schema.sql; db/init/10-wearables.sh makes the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from wearables_ingest.database import Database
from wearables_ingest.errors import DatabaseError

VIEWS = ("raw_data_1m", "raw_data_1h", "raw_data_1d")
RESOLUTIONS = {"1m": "raw_data_1m", "1h": "raw_data_1h", "1d": "raw_data_1d"}
NOT_AVAILABLE = ("compression is not available: this TimescaleDB is the Apache-only build "
                 "(timescale/timescaledb:latest-pg15 has it); rows are stored uncompressed")

FULL = "SELECT coalesce(current_setting('timescaledb.license', true) = 'timescale', false)"
# Whether everything storage.sql makes is in place, with the age asked for. Read from
# TimescaleDB's catalog views, which any role may read: the stack's loader, which may
# not run DDL, asks without changing anything.
FULL_IN_PLACE = """
SELECT (SELECT compression_enabled FROM timescaledb_information.hypertables
        WHERE hypertable_name = 'raw_data' AND hypertable_schema = current_schema())
   AND EXISTS (SELECT 1 FROM timescaledb_information.jobs
               WHERE proc_name = 'policy_compression' AND hypertable_name = 'raw_data'
                 AND hypertable_schema = current_schema()
                 AND (config->>'compress_after')::interval = %(age)s::interval)
   AND (SELECT count(*) FROM timescaledb_information.continuous_aggregates
        WHERE view_schema = current_schema() AND view_name = ANY (%(views)s)) = 3
   AND (SELECT count(*) FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_refresh_continuous_aggregate'
          AND hypertable_schema = current_schema() AND hypertable_name = ANY (%(views)s)) = 3"""
APACHE_IN_PLACE = ("SELECT to_regclass('raw_data_1m') IS NOT NULL AND "
                   "to_regclass('raw_data_1h') IS NOT NULL AND "
                   "to_regclass('raw_data_1d') IS NOT NULL")
# Bytes stored now, and the bytes the compressed chunks held before compression.
FIGURES_FULL = """
SELECT hypertable_size('raw_data'),
       coalesce(s.before_compression_total_bytes, 0), coalesce(s.after_compression_total_bytes, 0),
       coalesce(s.number_compressed_chunks, 0), coalesce(s.total_chunks, 0)
FROM (SELECT sum(before_compression_total_bytes) AS before_compression_total_bytes,
             sum(after_compression_total_bytes) AS after_compression_total_bytes,
             sum(number_compressed_chunks) AS number_compressed_chunks,
             sum(total_chunks) AS total_chunks
      FROM hypertable_compression_stats('raw_data')) s"""
FIGURES_APACHE = """
SELECT hypertable_size('raw_data'), 0, 0, 0,
       (SELECT count(*) FROM timescaledb_information.chunks
        WHERE hypertable_name = 'raw_data' AND hypertable_schema = current_schema())"""


def storage_sql(full: bool) -> str:
    """storage.sql (the full TimescaleDB) or storage-apache.sql (Apache-only)."""
    name = "storage.sql" if full else "storage-apache.sql"
    return files("wearables_ingest").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Applied:
    """What ensure() found: the server's kind, and a line to log when there is one."""

    full: bool  # compression and continuous aggregates available
    note: str | None = None  # compression is not available (said once a run)
    problem: str | None = None  # the settings could not be brought up to date


def full_timescaledb(db: Database) -> bool:
    """Whether the server has the full TimescaleDB (compression, continuous aggregates)."""
    with db.transaction() as cur:
        cur.execute(FULL)
        return bool(cur.fetchone()[0])


def apply(db: Database, full: bool, compress_after_days: int) -> None:
    """Run the storage SQL for this kind of server in one transaction (DDL: the owner's)."""
    with db.transaction() as cur:
        cur.execute("SELECT set_config('wearables.compress_after', %s, true)",
                    (f"{compress_after_days} days",))
        cur.execute(storage_sql(full))


def ensure(db: Database, compress_after_days: int) -> Applied:
    """Bring compression and the views up to date when anything is missing; else no DDL.

    A role that may not run DDL (the stack's ``ingest``) gets a problem to log, not
    an error: the rows still load, and db/init/10-wearables.sh, run as the owner,
    applies the settings (docs/operations.md).
    """
    full = full_timescaledb(db)
    with db.transaction() as cur:
        if full:
            cur.execute(FULL_IN_PLACE, {"age": f"{compress_after_days} days",
                                        "views": list(VIEWS)})
        else:
            cur.execute(APACHE_IN_PLACE)
        in_place = bool(cur.fetchone()[0])
    note = None if full else NOT_AVAILABLE
    if in_place:
        return Applied(full, note)
    try:
        apply(db, full, compress_after_days)
    except DatabaseError as e:
        return Applied(full, note, f"{e} (bringing compression and the views raw_data_1m/1h/1d "
                                   "up to date; run db/init/10-wearables.sh as the database's "
                                   "owner, see docs/operations.md)")
    return Applied(full, note)


@dataclass(frozen=True)
class Figures:
    """raw_data's storage: bytes now, bytes before compression, chunks compressed."""

    compression_available: bool
    bytes_stored: int  # raw_data's chunks, indexes and compressed data, as stored now
    bytes_uncompressed: int  # the same with every compressed chunk at its size before
    chunks: int
    chunks_compressed: int

    @property
    def note(self) -> str | None:
        """What to say once when compression is not available; None when it is."""
        return None if self.compression_available else NOT_AVAILABLE

    @property
    def ratio(self) -> float | None:
        """Bytes stored as a share of the bytes before compression (None without rows)."""
        return self.bytes_stored / self.bytes_uncompressed if self.bytes_uncompressed else None


def figures(db: Database) -> Figures | None:
    """raw_data's storage figures, from TimescaleDB's size functions (no row is read);
    None without the table, or for a role that may not read it."""
    full = full_timescaledb(db)
    with db.transaction() as cur:
        cur.execute("SELECT to_regclass('raw_data') IS NOT NULL "
                    "AND has_table_privilege('raw_data', 'SELECT')")
        if not cur.fetchone()[0]:
            return None
        cur.execute(FIGURES_FULL if full else FIGURES_APACHE)
        stored, before, after, compressed, chunks = cur.fetchone()
    stored = int(stored or 0)
    return Figures(full, stored, stored - int(after) + int(before), int(chunks), int(compressed))
