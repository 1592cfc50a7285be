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
#                       where docker-compose.yml mounts ingest/wearables_ingest/schema.sql);
#                       storage.sql and storage-apache.sql are read from beside it
#   COMPRESS_AFTER_DAYS the full TimescaleDB's compression policy: chunks older than
#                       this many days are compressed (default: 7)
#
# After the schema comes the storage: on the full TimescaleDB (its license
# setting says timescale) storage.sql, compression with its policy and the
# views raw_data_1m, raw_data_1h and raw_data_1d as continuous aggregates; on
# an Apache-only one storage-apache.sql, the same views, plain. Running the
# script again brings a database created before them up to date (the loader's
# role ingest may not run DDL, so the loader cannot).
#
# The schema is the loader's own file, so the loader finds it in place and
# sends no DDL. The role gets
# CONNECT and TEMPORARY (the loader's COPY stages rows in a temporary table) on
# the database, USAGE on schema public, and SELECT and INSERT on raw_data:
# it cannot change or delete a row, empty or drop the table, or create one.
#
# The analysts' role, only when ANALYST_DB_PASSWORD is set, gets CONNECT on the
# database, USAGE on schema public and SELECT on raw_data, ingest_coverage,
# ingest_runs, metric_expected, the view participant_metrics and the views
# raw_data_1m, raw_data_1h and raw_data_1d: no temporary
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
# The storage files sit beside the schema (the package's own, as the loader has them).
STORAGE_DIR=$(dirname "$SCHEMA_FILE")
for file in storage.sql storage-apache.sql; do
    if [ ! -r "$STORAGE_DIR/$file" ]; then
        echo "10-wearables.sh: error: cannot read $STORAGE_DIR/$file, which belongs beside" \
            "the schema $SCHEMA_FILE" >&2
        exit 1
    fi
done
COMPRESS_AFTER_DAYS=${COMPRESS_AFTER_DAYS:-7}
case $COMPRESS_AFTER_DAYS in
    '' | *[!0-9]* | 0 | 0*)
        echo "10-wearables.sh: error: COMPRESS_AFTER_DAYS='$COMPRESS_AFTER_DAYS' is not a" \
            "whole number of days of at least 1" >&2
        exit 1 ;;
esac
export COMPRESS_AFTER_DAYS

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
-- Storage: compression and continuous aggregates on the full TimescaleDB, plain
-- views on an Apache-only one (the loader's storage.py makes the same choice).
SELECT coalesce(current_setting('timescaledb.license', true) = 'timescale', false)
    AS full_timescaledb \gset
\getenv compress_after_days COMPRESS_AFTER_DAYS
SELECT set_config('wearables.compress_after', :'compress_after_days' || ' days', true);
\if :full_timescaledb
SQL
    cat "$STORAGE_DIR/storage.sql"
    printf '\n;\n\\else\n'
    cat "$STORAGE_DIR/storage-apache.sql"
    cat <<'SQL'
;
\endif
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
-- The coverage it keeps beside the rows (status reads it): add to it; --full recounts.
REVOKE ALL ON TABLE ingest_coverage FROM :"ingest_user";
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ingest_coverage TO :"ingest_user";
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
-- The down-sampled views (storage.sql, storage-apache.sql).
REVOKE ALL ON TABLE raw_data_1m, raw_data_1h, raw_data_1d FROM :"analyst_user";
GRANT SELECT ON TABLE raw_data_1m, raw_data_1h, raw_data_1d TO :"analyst_user";
SQL
    fi
    echo 'COMMIT;'
} | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --output=/dev/null \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-wearables}"
