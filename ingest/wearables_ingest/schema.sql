-- The schema of wearables-ingest: the one source for the loader (which runs it
-- when a table is missing) and for db/init/10-wearables.sh (which runs it when
-- the stack creates the database). Every statement may run again harmlessly.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- The seed's table, as a hypertable on ts.
CREATE TABLE IF NOT EXISTS raw_data (
  ts          TIMESTAMPTZ NOT NULL,
  participant INT          NOT NULL,
  metric      TEXT         NOT NULL,
  value       DOUBLE PRECISION,
  PRIMARY KEY (ts, participant, metric)
);
SELECT create_hypertable('raw_data', 'ts', if_not_exists => TRUE);

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
