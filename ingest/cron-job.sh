#!/bin/sh
# One scheduled run of the loader, started by cron (see crontab) as the job's
# user with the container's environment loaded. Its output goes to the
# container's log, through the FIFOs in INGESTOR_LOG_DIR that entrypoint.sh
# copies to cron's stdout/stderr (cron itself would only mail it). A failed run
# says so there, with its exit status. Two runs never overlap: the loader holds
# a lock, and a second run exits 75 with a message.
set -u

log=${INGESTOR_LOG_DIR:-}
if [ -n "$log" ] && [ -p "$log/stdout" ] && [ -w "$log/stdout" ] &&
    [ -p "$log/stderr" ] && [ -w "$log/stderr" ]; then
    exec >>"$log/stdout" 2>>"$log/stderr"
fi

say() { printf '%s ingestor: %s\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')" "$*"; }

cd "${APP_DIR:-/app}" || exit 1
say "scheduled run started"
INGEST_TRIGGER=cron python "${APP_DIR:-/app}/ingest.py"
status=$?
case $status in
    0) say "scheduled run finished" ;;
    75) say "scheduled run skipped: the previous run still holds the lock (exit status 75)" >&2 ;;
    *) say "scheduled run FAILED with exit status $status" >&2 ;;
esac
exit "$status"
