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
