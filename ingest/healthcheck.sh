#!/bin/sh
# The ingestor container's health (Dockerfile HEALTHCHECK; `docker compose ps`
# shows the verdict). It reads the metrics file the loader writes after every
# run, beside the checkpoint, and prints one line saying why.
#
#   healthy    the last run succeeded, within STATUS_MAX_AGE_HOURS (default 26);
#              or no run has been due yet: the container started less than
#              that long ago, and no run since has failed
#   unhealthy  the last run (since the container started) failed, or the last
#              success is older than STATUS_MAX_AGE_HOURS (a missed night)
#
# A container that runs a command instead of cron (`docker compose run`, the
# generator) has no schedule: it is healthy. Settings (environment):
# CHECKPOINT_FILE (default /checkpoint/last_run.json: the metrics file is
# wearables_ingest.prom in its folder), STATUS_MAX_AGE_HOURS, and
# INGESTOR_STARTED_FILE (default /run/ingestor/started, where entrypoint.sh
# records when cron started, in Unix time).
set -u

checkpoint=${CHECKPOINT_FILE:-/checkpoint/last_run.json}
prom="$(dirname "$checkpoint")/wearables_ingest.prom"
started_file=${INGESTOR_STARTED_FILE:-/run/ingestor/started}
max_age_hours=${STATUS_MAX_AGE_HOURS:-26}

case $max_age_hours in
    '' | *[!0-9.]* | *.*.* | .)
        echo "unhealthy: STATUS_MAX_AGE_HOURS='$max_age_hours' is not a number of hours"
        exit 1 ;;
esac

if [ ! -r "$started_file" ]; then
    echo "healthy: no schedule in this container (a one-off command); nothing to check"
    exit 0
fi

# One gauge's value from the metrics file (empty when absent).
gauge() {
    [ -r "$prom" ] || return 0
    awk -v name="wearables_ingest_$1" '$1 == name { print $2; exit }' "$prom"
}

# Everything is decided in one awk, which reads numbers with fractions.
awk -v now="$(date +%s)" -v started="$(cat "$started_file")" -v max_h="$max_age_hours" \
    -v last_run="$(gauge last_run_timestamp_seconds)" \
    -v success="$(gauge last_run_success)" \
    -v last_ok="$(gauge last_success_timestamp_seconds)" '
function when(t) { return sprintf("%.1f h ago", (now - t) / 3600) }
BEGIN {
    max_s = max_h * 3600
    if (last_run != "" && success == "0" && last_run + 0 >= started + 0) {
        print "unhealthy: the last run failed (" when(last_run) "); see docker compose logs ingestor"
        exit 1
    }
    if (last_ok != "" && now - last_ok <= max_s) {
        print "healthy: the last successful run ended " when(last_ok)
        exit 0
    }
    if (now - started <= max_s) {
        print "healthy: no run due yet; the container started " when(started)
        exit 0
    }
    if (last_ok == "") {
        print "unhealthy: no successful run in the " max_h " h since the container started"
    } else {
        print "unhealthy: the last successful run ended " when(last_ok) \
              ", more than " max_h " h ago"
    }
    exit 1
}'
