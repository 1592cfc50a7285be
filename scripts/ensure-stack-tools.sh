#!/usr/bin/env bash
# Make sure the tools that check the Compose stack are here, so tests/test_stack.py
# runs them for real. Does nothing for a tool that is already installed.
#
# - The Docker Compose v2 plugin, for `docker compose config`. Debian 12 has no
#   package of it; Debian 13 ("trixie") packages it as `docker-compose`, one
#   static binary. We download that .deb with a throwaway apt configuration
#   (a trixie entry built from the mirror this machine's apt sources already
#   use), extract the binary with dpkg-deb and place it where the docker CLI
#   looks for plugins. Nothing from trixie is installed into the system, and
#   the machine's apt sources are not changed.
# - Debian's cron daemon, which the entrypoint test runs (isolated) on this machine.
# - Debian's prometheus (with promtool) and prometheus-pushgateway: make test
#   checks and unit-tests the alert rules with promtool, and tests/monitoring
#   starts both servers on loopback ports of their own. The packages would
#   start their services on install: a policy-rc.d forbids that while they
#   install, and the script checks that none runs afterwards.
# (hadolint comes from PyPI, in requirements-dev.txt.)
set -euo pipefail

me=ensure-stack-tools

compose_works() {
    if command -v docker >/dev/null 2>&1; then
        docker compose version >/dev/null 2>&1
    else
        # No docker CLI: the tests run the plugin binary directly.
        local p
        for p in /usr/local/lib/docker/cli-plugins/docker-compose "$HOME/.docker/cli-plugins/docker-compose"; do
            [ -x "$p" ] && "$p" version >/dev/null 2>&1 && return 0
        done
        return 1
    fi
}

install_compose() {
    local dest uri arch work
    if [ "$(id -u)" -eq 0 ]; then
        dest=/usr/local/lib/docker/cli-plugins
    else
        dest=$HOME/.docker/cli-plugins
    fi
    # shellcheck source-path=SCRIPTDIR source=lib/debian-mirror.sh
    . "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"
    uri=$(require_mirror_uri "$me")
    arch=$(dpkg --print-architecture)
    work=$(mktemp -d)
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    chmod 755 "$work"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts" "$work/deb"
    # apt downloads as the _apt user where it can.
    if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$work/deb"; fi
    echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" \
        >"$work/sources.list"
    local apt=(apt-get -qq
        -o "Dir::Etc::SourceList=$work/sources.list"
        -o "Dir::Etc::SourceParts=$work/parts"
        -o "Dir::State::Lists=$work/lists"
        -o "Dir::Cache=$work/cache"
        -o "Dir::Cache::pkgcache=$work/cache/pkgcache.bin"
        -o "Dir::Cache::srcpkgcache=$work/cache/srcpkgcache.bin"
        -o "Debug::NoLocking=true")
    echo "$me: fetching the Compose v2 plugin (Debian trixie's docker-compose package)"
    "${apt[@]}" update
    (cd "$work/deb" && "${apt[@]}" download docker-compose)
    dpkg-deb -x "$work"/deb/docker-compose_*.deb "$work/root"
    local bin
    bin=$(find "$work/root" -type f -name docker-compose -perm -u+x | head -n 1)
    if [ -z "$bin" ]; then
        echo "$me: the docker-compose package holds no docker-compose binary" >&2
        exit 1
    fi
    install -d "$dest"
    install -m 755 "$bin" "$dest/docker-compose"
    echo "$me: installed $("$dest/docker-compose" version) as $dest/docker-compose"
}

if compose_works; then
    echo "$me: Docker Compose v2 is installed"
else
    install_compose
    compose_works || { echo "$me: docker compose still does not work" >&2; exit 1; }
fi

if command -v cron >/dev/null 2>&1 || [ -x /usr/sbin/cron ]; then
    echo "$me: cron is installed"
elif [ "$(id -u)" -eq 0 ]; then
    echo "$me: installing Debian's cron"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cron >/dev/null   # no MTA
else
    echo "$me: cron is not installed and installing it needs root; the cron test will be skipped" >&2
fi

# The prometheus and prometheus-pushgateway processes (a comm is 15 characters at most).
servers() { pgrep -x 'prometheus|prometheus-push' 2>/dev/null || true; }

install_prometheus() (   # a subshell: its EXIT trap is its own
    export DEBIAN_FRONTEND=noninteractive
    # invoke-rc.d and deb-systemd-invoke ask policy-rc.d first: 101, start nothing.
    # One already on the machine is left as it is; ours goes again on exit.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# %s: no service starts while prometheus installs\nexit 101\n' "$me" >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    before=" $(servers | tr '\n' ' ') "
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends --no-remove "$@" >/dev/null
    # Nothing may be left serving (9090, 9091) or start at the next boot: under
    # systemd, the units the packages enabled are disabled and stopped; a server
    # the install started anyway is stopped by its id. One that ran before
    # (someone's own) is left alone.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now prometheus.service prometheus-pushgateway.service \
            >/dev/null 2>&1 || true
    fi
    for pid in $(servers); do
        case $before in
            *" $pid "*) ;;
            *) echo "$me: stopping process $pid, started by the install" >&2
               kill "$pid" 2>/dev/null || true ;;
        esac
    done
)

prometheus_missing=()
command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || prometheus_missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || [ -x /usr/bin/prometheus-pushgateway ] ||
    prometheus_missing+=(prometheus-pushgateway)
if [ "${#prometheus_missing[@]}" -eq 0 ]; then
    echo "$me: prometheus (promtool) and prometheus-pushgateway are installed"
elif [ "$(id -u)" -eq 0 ]; then
    echo "$me: installing Debian's ${prometheus_missing[*]}"
    install_prometheus "${prometheus_missing[@]}"
    echo "$me: installed $(promtool --version 2>&1 | head -n 1) and the Pushgateway;" \
        "no service left running"
else
    echo "$me: ${prometheus_missing[*]} not installed and installing needs root; make test's" \
        "rules and the monitoring tests will fail" >&2
fi
