#!/bin/sh
# The database side of the stack's least privilege: the schema of raw_data, and
# the login role the ingestor connects as, which may only read and insert rows.
#
# The db service's image runs this once, when it creates the database (it is
# mounted at /docker-entrypoint-initdb.d/10-wearables.sh, after the image's own
# scripts, which install TimescaleDB). For a database created before this
# script existed, run it by hand; running it again changes nothing but the
# role's password:
#
#   docker compose exec db sh /docker-entrypoint-initdb.d/10-wearables.sh
#
# Settings (environment):
#   INGEST_DB_PASSWORD  the role's password (required; never printed)
#   INGEST_DB_USER      the role's name (default: ingest)
#   POSTGRES_USER       a superuser to connect as (default: postgres)
#   POSTGRES_DB         the database (default: wearables)
#   PGHOST, PGPORT, PGPASSWORD  where and how psql connects (libpq's own
#                       settings; in the db container, the local socket)
#
# The schema is the loader's own (ingest/db.py, SCHEMA), statement for
# statement, so the loader finds it in place and sends no DDL. The role gets
# CONNECT and TEMPORARY (the loader's COPY stages rows in a temporary table) on
# the database, USAGE on schema public, and SELECT and INSERT on raw_data:
# it cannot change or delete a row, empty or drop the table, or create one.
#
# The password reaches psql as a psql variable read from the environment
# (\getenv), quoted by psql (:'ingest_password'): it is never part of a command
# line or of SQL built here. This file may be sourced (as the image does with
# scripts that are not executable), so it neither exits on success nor sets -u.

if [ -z "${INGEST_DB_PASSWORD:-}" ]; then
    echo "10-wearables.sh: error: INGEST_DB_PASSWORD is empty; set it (in .env for the stack)" >&2
    exit 1
fi
INGEST_DB_USER=${INGEST_DB_USER:-ingest}
export INGEST_DB_PASSWORD INGEST_DB_USER

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-wearables}" <<'SQL'
\set VERBOSITY terse
\getenv ingest_password INGEST_DB_PASSWORD
\getenv ingest_user INGEST_DB_USER
SELECT current_database() AS ingest_database \gset

BEGIN;

-- The schema, as ingest/db.py's SCHEMA creates it.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE IF NOT EXISTS raw_data (
  ts          TIMESTAMPTZ NOT NULL,
  participant INT          NOT NULL,
  metric      TEXT         NOT NULL,
  value       DOUBLE PRECISION,
  PRIMARY KEY (ts, participant, metric)
);
SELECT create_hypertable('raw_data', 'ts', if_not_exists => TRUE) \g /dev/null
-- The record of runs, as ingest/db.py's RUNS_SCHEMA creates it.
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

-- The loader's role: log in, read and insert; nothing else.
SELECT format('CREATE ROLE %I', :'ingest_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'ingest_user') \gexec
ALTER ROLE :"ingest_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT PASSWORD :'ingest_password';
GRANT CONNECT, TEMPORARY ON DATABASE :"ingest_database" TO :"ingest_user";
-- PostgreSQL 15's default, stated: only the schema's owner creates objects in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"ingest_user";
REVOKE ALL ON TABLE raw_data FROM :"ingest_user";
GRANT SELECT, INSERT ON TABLE raw_data TO :"ingest_user";
-- Its own run records: start one (INSERT, the id from the sequence), complete it (UPDATE).
REVOKE ALL ON TABLE ingest_runs FROM :"ingest_user";
GRANT SELECT, INSERT, UPDATE ON TABLE ingest_runs TO :"ingest_user";
GRANT USAGE ON SEQUENCE ingest_runs_run_id_seq TO :"ingest_user";

COMMIT;
SQL
