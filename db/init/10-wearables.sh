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
#   ANALYST_DB_PASSWORD when set, a read-only login role for analysts is
#                       created (or its password set again); never printed
#   ANALYST_DB_USER     that role's name (default: analyst)
#   POSTGRES_USER       a superuser to connect as (default: postgres)
#   POSTGRES_DB         the database (default: wearables)
#   PGHOST, PGPORT, PGPASSWORD  where and how psql connects (libpq's own
#                       settings; in the db container, the local socket)
#
#   SCHEMA_FILE         the schema (default: /opt/wearables-ingest/schema.sql,
#                       where docker-compose.yml mounts ingest/wearables_ingest/schema.sql)
#
# The schema is the loader's own file, so the loader finds it in place and
# sends no DDL. The role gets
# CONNECT and TEMPORARY (the loader's COPY stages rows in a temporary table) on
# the database, USAGE on schema public, and SELECT and INSERT on raw_data:
# it cannot change or delete a row, empty or drop the table, or create one.
# It reads ingest_coverage and may only have it counted afresh from raw_data
# (EXECUTE on schema.sql's coverage_recount functions), never write it directly.
#
# The analysts' role, only when ANALYST_DB_PASSWORD is set, gets CONNECT on the
# database, USAGE on schema public and SELECT on raw_data, ingest_coverage,
# ingest_runs, metric_expected and the view participant_metrics: no temporary
# tables (TEMPORARY, which PostgreSQL gives PUBLIC, is revoked from PUBLIC; the
# ingest role has its own grant), no writes, no CREATE anywhere.
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
ANALYST_DB_PASSWORD=${ANALYST_DB_PASSWORD:-}
ANALYST_DB_USER=${ANALYST_DB_USER:-analyst}
export ANALYST_DB_PASSWORD ANALYST_DB_USER

SCHEMA_FILE=${SCHEMA_FILE:-/opt/wearables-ingest/schema.sql}
if [ ! -r "$SCHEMA_FILE" ]; then
    echo "10-wearables.sh: error: cannot read the schema $SCHEMA_FILE; set SCHEMA_FILE" >&2
    exit 1
fi

# One transaction: the schema file between the role's preamble and its grants.
# Query results (create_hypertable's row) go to /dev/null; errors to stderr.
{
    cat <<'SQL'
\set VERBOSITY terse
\getenv ingest_password INGEST_DB_PASSWORD
\getenv ingest_user INGEST_DB_USER
SELECT current_database() AS ingest_database \gset
BEGIN;
SQL
    cat "$SCHEMA_FILE"
    cat <<'SQL'
;
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
-- The coverage beside the rows (status reads it): read it, and have it counted afresh
-- from raw_data for the hours or pairs it wrote (schema.sql's SECURITY DEFINER
-- functions); no direct write, so it cannot make the coverage say anything else.
REVOKE ALL ON TABLE ingest_coverage FROM :"ingest_user";
GRANT SELECT ON TABLE ingest_coverage TO :"ingest_user";
GRANT EXECUTE ON FUNCTION coverage_recount(INT[], TEXT[], TIMESTAMPTZ[]),
    coverage_recount_pairs(INT[], TEXT[]) TO :"ingest_user";
-- Its own run records: start one (INSERT, the id from the sequence), complete it (UPDATE).
REVOKE ALL ON TABLE ingest_runs FROM :"ingest_user";
GRANT SELECT, INSERT, UPDATE ON TABLE ingest_runs TO :"ingest_user";
GRANT USAGE ON SEQUENCE ingest_runs_run_id_seq TO :"ingest_user";
-- What `status` reads beside the coverage and the runs (run in the ingestor).
REVOKE ALL ON TABLE metric_expected, participant_metrics FROM :"ingest_user";
GRANT SELECT ON TABLE metric_expected, participant_metrics TO :"ingest_user";
SQL
    if [ -n "$ANALYST_DB_PASSWORD" ]; then
        cat <<'SQL'
-- The analysts' role: log in and read; nothing else.
\getenv analyst_password ANALYST_DB_PASSWORD
\getenv analyst_user ANALYST_DB_USER
SELECT format('CREATE ROLE %I', :'analyst_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'analyst_user') \gexec
ALTER ROLE :"analyst_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT PASSWORD :'analyst_password';
-- PostgreSQL lets PUBLIC create temporary tables; only the roles granted it may.
REVOKE TEMPORARY ON DATABASE :"ingest_database" FROM PUBLIC;
REVOKE ALL ON DATABASE :"ingest_database" FROM :"analyst_user";
GRANT CONNECT ON DATABASE :"ingest_database" TO :"analyst_user";
GRANT USAGE ON SCHEMA public TO :"analyst_user";
REVOKE ALL ON TABLE raw_data, ingest_coverage, ingest_runs, metric_expected,
    participant_metrics FROM :"analyst_user";
GRANT SELECT ON TABLE raw_data, ingest_coverage, ingest_runs, metric_expected,
    participant_metrics TO :"analyst_user";
SQL
    fi
    echo 'COMMIT;'
} | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --output=/dev/null \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-wearables}"
