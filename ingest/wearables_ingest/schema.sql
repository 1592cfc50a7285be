-- The schema of wearables-ingest: the one source for the loader (which runs it
-- when a table is missing) and for db/init/10-wearables.sh (which runs it when
-- the stack creates the database). Every statement may run again harmlessly.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- The seed's table, as a hypertable on ts. Unlike the seed's DDL, without
-- TimescaleDB's default index on (ts DESC): the primary key already starts with
-- ts, so that index only doubled the bytes written per row (docs/performance.md).
-- A database created with it keeps working.
CREATE TABLE IF NOT EXISTS raw_data (
  ts          TIMESTAMPTZ NOT NULL,
  participant INT          NOT NULL,
  metric      TEXT         NOT NULL,
  value       DOUBLE PRECISION,
  PRIMARY KEY (ts, participant, metric)
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

-- Coverage: rows stored per participant, metric and UTC hour. The loader keeps
-- it in the same transaction as the rows it inserts, counting inserted rows
-- only, so `status`, the view below and the heat map never count raw_data.
CREATE TABLE IF NOT EXISTS ingest_coverage (
  participant INT         NOT NULL,
  metric      TEXT        NOT NULL,
  hour        TIMESTAMPTZ NOT NULL,  -- the start of a UTC hour
  rows        BIGINT      NOT NULL CHECK (rows > 0),
  PRIMARY KEY (participant, metric, hour)
);
CREATE INDEX IF NOT EXISTS ingest_coverage_hour ON ingest_coverage (hour);
-- A database that holds rows from before ingest_coverage existed: count them once.
INSERT INTO ingest_coverage (participant, metric, hour, rows)
SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*)
FROM raw_data
WHERE NOT EXISTS (SELECT 1 FROM ingest_coverage)
GROUP BY 1, 2, 3;

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
