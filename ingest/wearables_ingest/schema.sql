-- The schema of wearables-ingest: the one source for the loader (which runs it
-- when a table is missing) and for db/init/10-wearables.sh (which runs it when
-- the stack creates the database). Every statement may run again harmlessly.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- The seed's table, as a hypertable on ts. Two changes from the seed's DDL
-- (docs/how-it-works.md, docs/performance.md): the primary key's columns in the
-- order (participant, metric, ts), the same uniqueness, so each file's rows
-- append to their own part of the index rather than interleaving with every
-- other participant's; and no TimescaleDB default index on (ts DESC), which
-- only doubled the bytes written per row. A database created with the seed's
-- key (ts, participant, metric) or the default index keeps working.
CREATE TABLE IF NOT EXISTS raw_data (
  ts          TIMESTAMPTZ NOT NULL,
  participant INT          NOT NULL,
  metric      TEXT         NOT NULL,
  value       DOUBLE PRECISION,
  PRIMARY KEY (participant, metric, ts)
);
SELECT create_hypertable('raw_data', 'ts', if_not_exists => TRUE,
                         create_default_indexes => FALSE);

-- A record of every run: written when it starts, completed when it ends, so a
-- run that crashed shows as unfinished (finished IS NULL, status 'running').
CREATE TABLE IF NOT EXISTS ingest_runs (
  run_id    BIGSERIAL   PRIMARY KEY,
  started   TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished  TIMESTAMPTZ,
  status    TEXT        NOT NULL DEFAULT 'running'
            CHECK (status IN ('running', 'ok', 'partial', 'failed')),
  trigger   TEXT        NOT NULL,
  metrics   JSONB,
  error     TEXT
);
-- Runs are recorded through the two functions below, so the loader's role needs
-- no INSERT or UPDATE on the table: it completes only a run it started (it holds
-- that run's random key; the table keeps the key's hash), once, while it is
-- 'running', and cannot change or delete any other record (docs/security.md).
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS key_hash BYTEA;

CREATE OR REPLACE FUNCTION ingest_run_start(run_trigger TEXT, OUT new_run BIGINT,
                                            OUT run_key TEXT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  run_key := gen_random_uuid()::text;
  INSERT INTO ingest_runs (trigger, key_hash)
  VALUES (run_trigger, sha256(convert_to(run_key, 'UTF8')))
  RETURNING run_id INTO new_run;
END
$$;

CREATE OR REPLACE FUNCTION ingest_run_end(run BIGINT, run_key TEXT, final_status TEXT,
                                          run_metrics JSONB, run_error TEXT)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF final_status IS NULL OR final_status = 'running' THEN
    RAISE EXCEPTION 'a run ends ok, partial or failed, not %', coalesce(final_status, 'NULL')
      USING ERRCODE = 'check_violation';
  END IF;
  UPDATE ingest_runs
  SET finished = now(), status = final_status, metrics = run_metrics, error = run_error
  WHERE run_id = run AND status = 'running' AND key_hash = sha256(convert_to(run_key, 'UTF8'));
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % is not a running run started with this key', run
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$$;
-- Only the roles granted it (db/init/10-wearables.sh: the loader's) may call them.
REVOKE ALL ON FUNCTION ingest_run_start(TEXT), ingest_run_end(BIGINT, TEXT, TEXT, JSONB, TEXT)
  FROM PUBLIC;

-- Coverage: rows stored per participant, metric and UTC hour, and the newest ts
-- in the hour. Kept in the same transaction as the rows the loader inserts, and
-- only as a count of raw_data (the functions below), so `status`, the view
-- below and the heat map never count raw_data, and the loader knows exactly
-- whether anything is stored from a file's first new row on.
CREATE TABLE IF NOT EXISTS ingest_coverage (
  participant INT         NOT NULL,
  metric      TEXT        NOT NULL,
  hour        TIMESTAMPTZ NOT NULL,  -- the start of a UTC hour
  rows        BIGINT      NOT NULL CHECK (rows > 0),
  last_ts     TIMESTAMPTZ,           -- the newest ts in the hour (NULL: counted by an
                                     -- older version; taken as the end of the hour)
  PRIMARY KEY (participant, metric, hour)
);
-- A coverage made by an older version: add last_ts (silently, unlike ADD COLUMN IF NOT EXISTS).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'ingest_coverage'::regclass
                 AND attname = 'last_ts' AND NOT attisdropped) THEN
    ALTER TABLE ingest_coverage ADD COLUMN last_ts TIMESTAMPTZ;
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS ingest_coverage_hour ON ingest_coverage (hour);
-- raw_data created afresh (after DROP TABLE raw_data CASCADE, say) is empty: the
-- coverage starts afresh with it, in this same transaction.
DELETE FROM ingest_coverage WHERE NOT EXISTS (SELECT 1 FROM raw_data);
-- A database that holds rows from before ingest_coverage existed: count them once.
INSERT INTO ingest_coverage (participant, metric, hour, rows, last_ts)
SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*), max(ts)
FROM raw_data
WHERE NOT EXISTS (SELECT 1 FROM ingest_coverage)
GROUP BY 1, 2, 3;

-- The only ways the coverage is written by the loader: counted afresh from
-- raw_data, for the (participant, metric, hour) keys a write touched, or for
-- whole (participant, metric) pairs (--full, a database that lost rows). They
-- run as their owner (SECURITY DEFINER), so the loader's role needs no write
-- on ingest_coverage and can at most trigger a true recount. The bodies are
-- bound to these tables when created (BEGIN ATOMIC), and search_path is pinned
-- with pg_temp last, so no object of the caller's can stand in for them.
CREATE OR REPLACE FUNCTION coverage_recount(in_participants INT[], in_metrics TEXT[],
                                            in_hours TIMESTAMPTZ[])
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  DELETE FROM ingest_coverage c
  USING (SELECT DISTINCT k.p, k.m, date_trunc('hour', k.h, 'UTC') AS hour
         FROM unnest(in_participants, in_metrics, in_hours) AS k (p, m, h)) AS k
  WHERE c.participant = k.p AND c.metric = k.m AND c.hour = k.hour
    AND NOT EXISTS (SELECT 1 FROM raw_data r
                    WHERE r.participant = k.p AND r.metric = k.m
                      AND r.ts >= k.hour AND r.ts < k.hour + interval '1 hour');
  INSERT INTO ingest_coverage AS c (participant, metric, hour, rows, last_ts)
  SELECT k.p, k.m, k.hour, n.rows, n.last_ts
  FROM (SELECT DISTINCT k.p, k.m, date_trunc('hour', k.h, 'UTC') AS hour
        FROM unnest(in_participants, in_metrics, in_hours) AS k (p, m, h)) AS k
  CROSS JOIN LATERAL (SELECT count(*) AS rows, max(r.ts) AS last_ts FROM raw_data r
                      WHERE r.participant = k.p AND r.metric = k.m
                        AND r.ts >= k.hour AND r.ts < k.hour + interval '1 hour') AS n
  WHERE n.rows > 0
  ON CONFLICT (participant, metric, hour)
  DO UPDATE SET rows = EXCLUDED.rows, last_ts = EXCLUDED.last_ts;
END;
CREATE OR REPLACE FUNCTION coverage_recount_pairs(in_participants INT[], in_metrics TEXT[])
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  DELETE FROM ingest_coverage
  WHERE (participant, metric) IN (SELECT * FROM unnest(in_participants, in_metrics));
  INSERT INTO ingest_coverage (participant, metric, hour, rows, last_ts)
  SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*), max(ts)
  FROM raw_data
  WHERE (participant, metric) IN (SELECT * FROM unnest(in_participants, in_metrics))
  GROUP BY 1, 2, 3;
END;
-- Functions are executable by PUBLIC by default: only the owner, and the roles
-- granted it (db/init/10-wearables.sh: the loader's), may call these.
REVOKE ALL ON FUNCTION coverage_recount(INT[], TEXT[], TIMESTAMPTZ[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION coverage_recount_pairs(INT[], TEXT[]) FROM PUBLIC;

-- Rows a day per metric, at the data's own resolution: the one place these
-- counts live. `status` rates days against them (unless STATUS_EXPECTED_ROWS
-- says otherwise), and so does the view below. NULL, or a metric not listed:
-- no fixed count (hrv and spo2 are measured during sleep only), so a day with
-- any row is complete. Filled only while empty: a study's own counts stay.
CREATE TABLE IF NOT EXISTS metric_expected (
  metric       TEXT   PRIMARY KEY,
  rows_per_day BIGINT CHECK (rows_per_day > 0)
);
INSERT INTO metric_expected (metric, rows_per_day)
SELECT metric, rows_per_day
FROM (VALUES ('hr', 86400), ('azm', 1440), ('activity', 1), ('br', 1),
             ('hrv', NULL), ('spo2', NULL)) AS defaults (metric, rows_per_day)
WHERE NOT EXISTS (SELECT 1 FROM metric_expected);

-- One row per participant and metric, for analysts, from the coverage summary:
-- rows stored, days with data, and days complete (UTC days, at 95% of
-- metric_expected's rows, status's default STATUS_COMPLETE_PCT). The first and
-- last sample are exact: looked up in raw_data within the first and the last
-- hour only, so the view never scans raw_data.
CREATE OR REPLACE VIEW participant_metrics AS
WITH days AS (
  SELECT participant, metric, (hour AT TIME ZONE 'UTC')::date AS day, sum(rows) AS rows,
         min(hour) AS first_hour, max(hour) AS last_hour
  FROM ingest_coverage
  GROUP BY 1, 2, 3
), pairs AS (
  SELECT d.participant, d.metric, min(d.first_hour) AS first_hour,
         max(d.last_hour) AS last_hour, sum(d.rows)::bigint AS rows,
         count(*) AS days_with_data,
         count(*) FILTER (WHERE e.rows_per_day IS NULL
                          OR d.rows * 100 >= 95 * e.rows_per_day) AS days_complete,
         min(e.rows_per_day) AS expected_per_day
  FROM days d
  LEFT JOIN metric_expected e ON e.metric = d.metric
  GROUP BY 1, 2
)
SELECT p.participant, p.metric,
       (SELECT min(r.ts) FROM raw_data r
        WHERE r.participant = p.participant AND r.metric = p.metric
          AND r.ts >= p.first_hour AND r.ts < p.first_hour + interval '1 hour') AS first_ts,
       (SELECT max(r.ts) FROM raw_data r
        WHERE r.participant = p.participant AND r.metric = p.metric
          AND r.ts >= p.last_hour AND r.ts < p.last_hour + interval '1 hour') AS last_ts,
       p.rows, p.days_with_data, p.days_complete, p.expected_per_day
FROM pairs p;
