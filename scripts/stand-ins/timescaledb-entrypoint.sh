#!/usr/bin/env bash
# Entrypoint of the timescale/timescaledb:latest-pg15 stand-in (see
# timescaledb.Dockerfile). It honours the part of the official image's
# contract that the stack relies on:
#
# - started as root, it hands PGDATA and the socket folder to postgres and
#   runs everything else as postgres;
# - on an empty PGDATA: initdb with POSTGRES_USER (default postgres) and
#   POSTGRES_PASSWORD (required), trust on the local socket and
#   scram-sha-256 over TCP from any address; TimescaleDB preloaded
#   (shared_preload_libraries) and CREATE EXTENSION timescaledb in template1 and
#   in POSTGRES_DB (default: POSTGRES_USER), which it creates;
# - then, once, each /docker-entrypoint-initdb.d/*.sh (executed if executable,
#   else sourced), *.sql and *.sql.gz, in name order, while a temporary server
#   listens on its socket only (so a check over TCP waits for the real start);
# - then the server in the foreground, on all addresses. SIGTERM and SIGINT
#   stop it with a fast shutdown, SIGQUIT with an immediate one.
#
# A first argument other than "postgres" (or an option) runs that command.
# Like the official entrypoint, no -u: sourced init scripts may use unset names.
set -Eeo pipefail

say() { printf '%s\n' "stand-in entrypoint: $*"; }
die() { say "error: $*" >&2; exit 1; }

if [ "${1:0:1}" = - ]; then
    set -- postgres "$@"
fi
if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres {} +
    chmod 0700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid="$(id -u postgres)" --regid="$(id -g postgres)" --init-groups \
        -- "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] ||
        die "POSTGRES_PASSWORD is empty; the database is not initialised without one"
    POSTGRES_USER=${POSTGRES_USER:-postgres}
    POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
    export POSTGRES_USER POSTGRES_DB POSTGRES_PASSWORD

    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
    printf '\n# Any address, with a password (as the official image).\nhost all all all scram-sha-256\n' \
        >>"$PGDATA/pg_hba.conf"
    cat >>"$PGDATA/postgresql.conf" <<'CONF'

# Set by the stand-in entrypoint, as the official timescaledb image does.
listen_addresses = '*'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
CONF

    # The temporary server: the socket only.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)

    if [ "$POSTGRES_DB" != postgres ]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for db in template1 "$POSTGRES_DB"; do
        "${psql[@]}" --dbname "$db" <<<'CREATE EXTENSION IF NOT EXISTS timescaledb;'
    done

    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case $f in
            *.sh)
                if [ -x "$f" ]; then
                    say "running $f"
                    "$f"
                else
                    say "sourcing $f"
                    # shellcheck disable=SC1090  # the image's user supplies it
                    . "$f"
                fi
                ;;
            *.sql) say "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) say "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) say "ignoring $f" ;;
        esac
    done

    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    say "PostgreSQL init process complete; ready for start up."
fi

# The server proper, as a child, so that SIGTERM can become a fast shutdown
# (postgres itself would wait for every client to leave).
"$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' TERM INT
trap 'kill -QUIT "$pid" 2>/dev/null || true' QUIT
status=0
while :; do
    if wait "$pid"; then status=0; else status=$?; fi
    kill -0 "$pid" 2>/dev/null || break
done
# Interrupted by a signal just as the server ended: its own status, if bash kept it.
if wait "$pid" 2>/dev/null; then status=0; else s=$?; [ "$s" -eq 127 ] || status=$s; fi
exit "$status"
