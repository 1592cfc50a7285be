#!/bin/sh
# Entrypoint of the ingestor container.
#
#   entrypoint.sh                  install the crontab, then run cron in the foreground
#   entrypoint.sh COMMAND [ARG]... run COMMAND instead of cron
#                                  (docker compose run --rm ingestor python /app/ingest.py)
#
# Settings: INGEST_SCHEDULE (five cron fields, default "0 1 * * *", container
# time: TZ); APP_DIR (default /app), where the loader, crontab and cron-job.sh are.
set -eu

APP_DIR=${APP_DIR:-/app}
export APP_DIR
ENV_DIR=/run/ingestor        # crontab reads $ENV_DIR/env: keep the two in step

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

say() { printf '%s ingestor: %s\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')" "$*"; }
die() { say "error: $*" >&2; exit 1; }

schedule=${INGEST_SCHEDULE:-0 1 * * *}
set -f   # the fields hold '*': no file name expansion
# shellcheck disable=SC2086  # split on purpose
set -- $schedule
set +f
[ "$#" -eq 5 ] ||
    die "INGEST_SCHEDULE='$schedule' must be five cron fields: minute hour day-of-month month day-of-week"

# The container's environment, for the job (cron starts jobs with an empty one).
# It holds PGPASSWORD: readable by root only, and never printed. The job's
# output goes to this process's stdout/stderr, which cron inherits (exec below).
umask 077
mkdir -p "$ENV_DIR"
(
    unset PWD OLDPWD SHLVL schedule
    export -p
    echo "export INGESTOR_LOG_PID=$$"
) >"$ENV_DIR/env.tmp"
mv "$ENV_DIR/env.tmp" "$ENV_DIR/env"

# The crontab with the schedule's five fields replacing the job line's.
# crontab(1) checks it: a bad schedule stops the container here, with its error.
awk -v s="$schedule" '
    /^[ \t]*(#|$)/ || /^[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*=/ { print; next }
    { for (i = 1; i <= 5; i++) sub(/^[ \t]*[^ \t]+[ \t]+/, ""); print s " " $0 }
' "$APP_DIR/crontab" >"$ENV_DIR/crontab"
crontab "$ENV_DIR/crontab" || die "INGEST_SCHEDULE='$schedule' is not a valid cron schedule"
rm -f "$ENV_DIR/crontab"

say "cron runs the loader at '$schedule' (TZ=${TZ:-UTC}); its output follows here"
exec cron -f
