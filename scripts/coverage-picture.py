#!/usr/bin/env python3
"""Draw docs/img/coverage.svg, the README's heat map, with the real `status --plot`.

    .venv/bin/python scripts/coverage-picture.py            # after make setup and make db-server

Five participants over 14 days (2024-01-01..14), written straight into ingest_coverage
on a throwaway server (status reads nothing else), with the gaps docs/operations.md
describes: participant 2's hr from noon on the 9th, everything of participant 3's on
the 5th, participant 4's night of the 11th, participant 5 joining on the 3rd, missing
most of the 8th's azm and four hours of the 12th's hr. Rows an hour as the synthetic
data has them: hr 3,600, azm 60, activity and br one at midnight, hrv and spo2 441 a
night over its first eight hours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from wearables_ingest.database import Database, ensure_schema
from wearables_ingest.devserver import throwaway_server

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "img" / "coverage.svg"

COVERAGE = """
WITH m (metric, hour, rows) AS (
  SELECT 'hr', h, 3600 FROM generate_series(0, 23) h
  UNION ALL SELECT 'azm', h, 60 FROM generate_series(0, 23) h
  UNION ALL SELECT 'activity', 0, 1 UNION ALL SELECT 'br', 0, 1
  UNION ALL SELECT s.metric, h, CASE WHEN h < 7 THEN 60 ELSE 21 END
            FROM (VALUES ('hrv'), ('spo2')) s (metric), generate_series(0, 7) h)
INSERT INTO ingest_coverage (participant, metric, hour, rows)
SELECT p, m.metric, d + make_interval(hours => m.hour), m.rows
FROM generate_series(1, 5) p
CROSS JOIN m
CROSS JOIN generate_series('2024-01-01'::timestamptz, '2024-01-14', '1 day') d
WHERE NOT (p = 2 AND m.metric = 'hr' AND d = '2024-01-09' AND m.hour >= 12)
  AND NOT (p = 3 AND d = '2024-01-05')
  AND NOT (p = 4 AND m.metric IN ('hrv', 'spo2') AND d = '2024-01-11')
  AND NOT (p = 5 AND d < '2024-01-03')
  AND NOT (p = 5 AND m.metric = 'azm' AND d = '2024-01-08' AND m.hour >= 6)
  AND NOT (p = 5 AND m.metric = 'hr' AND d = '2024-01-12' AND m.hour BETWEEN 8 AND 11)"""


def main() -> int:
    with throwaway_server() as url:
        db = Database({"dsn": url}, "picture").open()
        ensure_schema(db)
        db.close()
        conn = psycopg2.connect(url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(COVERAGE)
                cur.execute("INSERT INTO ingest_runs (trigger, status, finished) "
                            "VALUES ('cron', 'ok', now())")
        finally:
            conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["DATABASE_URL"] = url
        proc = subprocess.run([sys.executable, str(REPO / "ingest" / "ingest.py"), "status",
                               "--days", "14", "--plot", str(OUT)], env=env, cwd=REPO,
                              capture_output=True, text=True)
        if proc.returncode not in (0, 1):  # 1: the picture's gaps make the verdict NOT OK
            sys.exit(f"status failed: {proc.stderr.strip()}")
        print(proc.stdout, end="")
    print(f"written: {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
