#!/bin/sh
# One scheduled run of the loader, started by cron (see crontab) with the
# container's environment loaded. Its output goes to the container's log (the
# stdout/stderr of cron, pid INGESTOR_LOG_PID), where cron itself would only
# mail it. A failed run says so there, with its exit status. Two runs never
# overlap: the loader holds a lock, and a second run exits 75 with a message.
set -u

if [ -n "${INGESTOR_LOG_PID:-}" ] && [ -w "/proc/$INGESTOR_LOG_PID/fd/1" ]; then
    exec >>"/proc/$INGESTOR_LOG_PID/fd/1" 2>>"/proc/$INGESTOR_LOG_PID/fd/2"
fi

say() { printf '%s ingestor: %s\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')" "$*"; }

cd "${APP_DIR:-/app}" || exit 1
say "scheduled run started"
python "${APP_DIR:-/app}/ingest.py"
status=$?
case $status in
    0) say "scheduled run finished" ;;
    75) say "scheduled run skipped: the previous run still holds the lock (exit status 75)" >&2 ;;
    *) say "scheduled run FAILED with exit status $status" >&2 ;;
esac
exit "$status"
