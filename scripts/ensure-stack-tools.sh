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
