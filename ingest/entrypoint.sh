#!/bin/sh
# Entrypoint of the ingestor container (and of the generator's one command).
#
#   entrypoint.sh                  install the crontab, then run cron in the foreground
#   entrypoint.sh COMMAND [ARG]... run COMMAND instead of cron
#                                  (docker compose run --rm ingestor python /app/ingest.py)
#
# Settings: INGEST_SCHEDULE (five cron fields, default "0 1 * * *", container
# time: TZ); APP_DIR (default /app), where the loader, crontab and cron-job.sh
# are; INGEST_RUN_AS (default ingest, the image's user): who runs the scheduled
# job and COMMAND. cron itself stays root; "root" keeps the job and COMMAND
# root too. Started as another user than root, everything runs as that user.
set -eu

APP_DIR=${APP_DIR:-/app}
export APP_DIR
ENV_DIR=/run/ingestor        # crontab reads $ENV_DIR/env: keep the two in step
RUN_AS=${INGEST_RUN_AS:-ingest}

say() { printf '%s ingestor: %s\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')" "$*"; }
die() { say "error: $*" >&2; exit 1; }

# Drop from root to RUN_AS? (run_uid, run_gid, run_home when so.)
drop=no
if [ "$(id -u)" -eq 0 ] && [ "$RUN_AS" != root ]; then
    entry=$(getent passwd "$RUN_AS") || die "INGEST_RUN_AS=$RUN_AS: no such user"
    RUN_AS=$(printf '%s\n' "$entry" | cut -d: -f1)
    run_uid=$(printf '%s\n' "$entry" | cut -d: -f3)
    run_gid=$(printf '%s\n' "$entry" | cut -d: -f4)
    run_home=$(printf '%s\n' "$entry" | cut -d: -f6)
    [ "$run_uid" -eq 0 ] || drop=yes
fi

# The checkpoint's folder belongs to RUN_AS, so that the loader can write the
# checkpoint and its lock there: a folder written by root before (a volume from
# an older image, a run as root) is handed over. Relative paths and / are left
# alone, and so are symbolic links, files with other hard links and other mounts.
foreign() {
    find "$state_dir" -xdev \( -type d -o -type f -links 1 \) \
        \( ! -user "$run_uid" -o ! -group "$run_gid" \) "$@"
}
own_state() {
    [ "$drop" = yes ] || return 0
    state_dir=$(dirname "${CHECKPOINT_FILE:-/checkpoint/last_run.json}")
    case $state_dir in /?*) ;; *) return 0 ;; esac
    [ -d "$state_dir" ] || return 0
    [ -n "$(foreign -print -quit)" ] || return 0
    if foreign -exec chown -h "$run_uid:$run_gid" {} +; then
        say "$state_dir now belongs to $RUN_AS, who runs the loader" >&2
    else
        say "warning: could not give $state_dir to $RUN_AS; the loader may not write there" >&2
    fi
}

if [ "$#" -gt 0 ]; then
    if [ "$drop" = yes ]; then
        own_state
        HOME=$run_home USER=$RUN_AS LOGNAME=$RUN_AS
        export HOME USER LOGNAME
        exec setpriv --reuid="$run_uid" --regid="$run_gid" --init-groups --no-new-privs -- "$@"
    fi
    exec "$@"
fi

schedule=${INGEST_SCHEDULE:-0 1 * * *}
# The schedule becomes the start of a crontab line: only what a cron field holds
# (digits, names such as mon or jan, * , - /) and spaces between fields. A tab,
# newline or backslash could end the line early or add another one, so the
# value is not even repeated in the message then.
fieldchars='0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ*,/-'
case $schedule in
    *[!"$fieldchars "]*)
        die "INGEST_SCHEDULE holds a character cron does not read in a schedule (a tab, newline, backslash or other): use five fields of digits, names and * , - / separated by spaces" ;;
esac
set -f   # the fields hold '*': no file name expansion
# shellcheck disable=SC2086  # split on purpose
set -- $schedule
set +f
[ "$#" -eq 5 ] ||
    die "INGEST_SCHEDULE='$schedule' must be five cron fields: minute hour day-of-month month day-of-week"
schedule="$1 $2 $3 $4 $5"

job_user=$(id -un)
[ "$drop" = no ] || job_user=$RUN_AS
own_state

umask 077
mkdir -p "$ENV_DIR"
chmod 0755 "$ENV_DIR"
# When cron started: healthcheck.sh allows the first run until STATUS_MAX_AGE_HOURS after it.
date +%s >"$ENV_DIR/started"
chmod 0644 "$ENV_DIR/started"

# The crontab with the schedule's five fields replacing the job line's, as the
# job user's (from the environment: awk -v would expand backslash escapes).
# crontab(1) checks it: a bad schedule stops the container here, with its error.
SCHEDULE=$schedule awk '
    /^[ \t]*(#|$)/ || /^[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*=/ { print; next }
    { for (i = 1; i <= 5; i++) sub(/^[ \t]*[^ \t]+[ \t]+/, ""); print ENVIRON["SCHEDULE"] " " $0 }
' "$APP_DIR/crontab" >"$ENV_DIR/crontab"
crontab -u "$job_user" "$ENV_DIR/crontab" ||
    die "INGEST_SCHEDULE='$schedule' is not a valid cron schedule"
rm -f "$ENV_DIR/crontab"

# The container's environment, for the job (cron starts jobs with an almost
# empty one; HOME and LOGNAME come from cron, for the job's user). It holds the
# database password: readable by the job's user only, and never printed.
(
    unset PWD OLDPWD SHLVL HOME USER LOGNAME
    export -p
    echo "export INGESTOR_LOG_DIR=$ENV_DIR"
) >"$ENV_DIR/env.tmp"

# The job's output: two FIFOs, the job user's (a job that is not root cannot
# write to cron's own stdout), each copied by a reader to this process's stdout or stderr, the container's log. A reader holds
# its FIFO open for writing too, so it never sees an end of file, and ends with
# cron (--pdeathsig: when cron, its parent, ends).
rm -f "$ENV_DIR/stdout" "$ENV_DIR/stderr"
mkfifo -m 0600 "$ENV_DIR/stdout" "$ENV_DIR/stderr"
if [ "$drop" = yes ]; then
    chown "$run_uid:$run_gid" "$ENV_DIR/env.tmp" "$ENV_DIR/stdout" "$ENV_DIR/stderr"
fi
mv "$ENV_DIR/env.tmp" "$ENV_DIR/env"
setpriv --pdeathsig TERM cat 0<>"$ENV_DIR/stdout" &
setpriv --pdeathsig TERM cat 0<>"$ENV_DIR/stderr" >&2 &

say "cron runs the loader at '$schedule' (TZ=${TZ:-UTC}) as $job_user; its output follows here"
exec cron -f
