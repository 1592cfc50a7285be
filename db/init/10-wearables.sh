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
# Its run records it writes through schema.sql's ingest_run_start/_end only.
# It reads ingest_coverage and may only have it counted afresh from raw_data
# (EXECUTE on schema.sql's coverage_recount functions), never write it directly.
#
# For every role but the superuser, the script also takes back what PostgreSQL
# and TimescaleDB give PUBLIC: CONNECT and TEMPORARY on this database (granted
# back to the roles above), on postgres and on the templates; the large-object
# functions; TimescaleDB's job, policy and chunk functions, public and internal
# (docs/security.md lists them; run the script again after a TimescaleDB update).
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
-- PostgreSQL lets every role connect to every database and create temporary
-- tables there: here only the roles granted it may (the analyst may not), and no
-- role but the superuser reaches postgres or the templates.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', datname) FROM pg_database
WHERE datname IN (current_database(), 'postgres', 'template0', 'template1') \gexec
-- Large objects are storage outside every table's grants (lo_from_bytea writes
-- one of any size): no role but the superuser may use them.
SELECT format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', oid::regprocedure) FROM pg_proc
WHERE pronamespace = 'pg_catalog'::regnamespace
  AND (proname LIKE 'lo\_%' OR proname IN ('loread', 'lowrite')) \gexec
-- TimescaleDB's functions that schedule jobs, add or remove policies, or change
-- chunks and hypertables: for the owner only (a role may otherwise add a job
-- that runs whenever it likes, and compress or move chunks it can read).
SELECT format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', p.oid::regprocedure)
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'
WHERE p.pronamespace::regnamespace::text IN ('public', 'timescaledb_experimental')
  AND p.proname ~ ('^(add|alter|remove|delete|run|drop|create|set|attach|detach|enable|'
                   'disable|compress|decompress|recompress|convert|reorder|move|merge|'
                   'split|refresh|timescaledb_pre|timescaledb_post)_') \gexec
-- Its internal functions that change chunks, jobs or workers check no owner:
-- _timescaledb_functions.drop_chunk drops a chunk, its rows with it, for any
-- role that may call it. TimescaleDB's own jobs run as their owner, unaffected.
SELECT format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', p.oid::regprocedure)
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'
WHERE p.pronamespace::regnamespace::text IN ('_timescaledb_functions', '_timescaledb_internal')
  AND (p.proname ~ ('^(alter|attach|create|drop|freeze|unfreeze|rebuild|recompress|remove|'
                    'restart|start|stop|lock)_')
       OR p.proname IN ('chunk_constraint_add_table_constraint', 'chunk_rewrite_cleanup',
                        'chunk_statistics_reset', 'constraint_clone',
                        'hypertable_osm_range_update')
       OR (p.proname LIKE 'policy\_%' AND p.proname NOT LIKE '%\_check')) \gexec
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
-- Its own run records, through schema.sql's two functions only: it starts a run and
-- completes that one, once (no INSERT, UPDATE or DELETE on the table itself).
REVOKE ALL ON TABLE ingest_runs FROM :"ingest_user";
REVOKE ALL ON SEQUENCE ingest_runs_run_id_seq FROM :"ingest_user";
GRANT SELECT ON TABLE ingest_runs TO :"ingest_user";
GRANT EXECUTE ON FUNCTION ingest_run_start(text),
    ingest_run_end(bigint, text, text, jsonb, text) TO :"ingest_user";
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
