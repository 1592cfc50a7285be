#!/usr/bin/env bash
# Make sure a Docker engine and debootstrap are installed, so that the container
# tests (tests/containers/) can start their own dockerd and build the stack's
# images for real. Does nothing when both are already installed.
#
# - Debian 12's docker.io package (dockerd 20.10, containerd, runc, tini). The
#   tests start and stop their own dockerd, with a data root of their own; this
#   script never starts a daemon: a policy-rc.d that exits 101 keeps the
#   package's scripts from starting one while it is installed. The docker CLI
#   the package brings (/usr/bin/docker) is left alongside a newer one on PATH.
# - debootstrap, with which scripts/build-stand-ins.sh makes Debian root file
#   systems for the base images when they cannot be pulled.
# Without root the script only reports what is missing (the tests then fail
# and say so).
set -euo pipefail

me=ensure-docker

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "$me: dockerd and debootstrap are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "$me: ${missing[*]} missing and installing needs root; run 'sudo $0' once" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# No daemon may start while the packages install: invoke-rc.d and
# deb-systemd-invoke ask policy-rc.d first. A policy-rc.d already on the
# machine is left as it is; ours is removed again on exit.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# %s: no service starts while docker.io installs\nexit 101\n' "$me" >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

echo "$me: installing ${missing[*]} (Debian 12)"
apt-get update -qq
# --no-remove: never make room by removing packages (docker-ce conflicts with docker.io).
apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" >/dev/null

command -v dockerd >/dev/null 2>&1 || { echo "$me: dockerd is still missing after installing docker.io" >&2; exit 1; }
echo "$me: installed $(dockerd --version)"
