#!/usr/bin/env bash
# Make sure the Docker engine at DOCKER_HOST has the base images of the stack:
# python:3.11-slim (the ingestor's), timescale/timescaledb:latest-pg15 (the
# database's), and the monitoring profile's prom/prometheus and
# prom/pushgateway at the tags docker-compose.yml pins. The container tests
# (tests/containers/) call this once their dockerd runs.
#
# For each image, in this order:
#   1. the real image is there already: it is used;
#   2. `docker pull` works (a developer's machine): the real image is pulled;
#   3. a stand-in built from the same inputs is there: it is used;
#   4. otherwise a stand-in is built, from Debian 12 and this machine's tools:
#      - a debootstrap root file system (minbase), from the Debian mirror of
#        this machine's apt sources, with this machine's Debian apt sources
#        (so it upgrades to the same point releases) and CA bundle (pip inside
#        a build must trust what this machine trusts); imported once and
#        shared by both stand-ins;
#      - python:3.11-slim: stand-ins/python.Dockerfile (Debian's Python 3.11);
#      - timescale/timescaledb:latest-pg15: stand-ins/timescaledb.Dockerfile,
#        Debian's postgresql-15 at this machine's version, the TimescaleDB that
#        scripts/ensure-timescaledb.sh built here against that version, and an
#        entrypoint of ours (stand-ins/timescaledb-entrypoint.sh);
#      - prom/prometheus and prom/pushgateway: stand-ins/prometheus.Dockerfile
#        and stand-ins/pushgateway.Dockerfile, Debian's prometheus and
#        prometheus-pushgateway packages.
# A stand-in carries the label org.wearables-ingest.stand-in (the image it
# stands in for) and a hash of its inputs; it is rebuilt when they change.
# Builds use the classic builder with host networking: the tests' dockerd
# runs without a default bridge.
#
# Usage: build-stand-ins.sh        (STAND_INS_PULL=no skips step 2)
# Needs: root (debootstrap), a reachable engine (DOCKER_HOST), debootstrap
# (scripts/ensure-docker.sh installs it), PostgreSQL 15 with TimescaleDB on
# this machine (scripts/ensure-timescaledb.sh).
set -euo pipefail

me=build-stand-ins
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/debian-mirror.sh
. "$here/lib/debian-mirror.sh"

SUITE=bookworm           # Debian 12: Python 3.11 and PostgreSQL 15, as the real images
PG_MAJOR=15
PYTHON_IMAGE=python:3.11-slim
TSDB_IMAGE=timescale/timescaledb:latest-pg15
ROOTFS_REPO=wearables-ingest/stand-in-rootfs
LABEL=org.wearables-ingest.stand-in

say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

# The monitoring profile's images, as docker-compose.yml pins them (one place for the tags).
compose_image() {
    sed -n "s|^[[:space:]]*image:[[:space:]]*\($1:[^[:space:]]*\).*|\1|p" "$here/../docker-compose.yml" |
        head -n 1
}
PROMETHEUS_IMAGE=$(compose_image prom/prometheus)
PUSHGATEWAY_IMAGE=$(compose_image prom/pushgateway)
[ -n "$PROMETHEUS_IMAGE" ] && [ -n "$PUSHGATEWAY_IMAGE" ] ||
    die "docker-compose.yml names no prom/prometheus:TAG or prom/pushgateway:TAG image"

command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "no Docker engine answers at ${DOCKER_HOST:-the default socket}"
export DOCKER_BUILDKIT=0   # the classic builder: --network host works without a bridge

work=$(mktemp -d "${TMPDIR:-/var/tmp}/stand-ins.XXXXXX")
trap 'rm -rf "$work"' EXIT

exists() { docker image inspect "$1" >/dev/null 2>&1; }
label() {
    docker image inspect -f "{{ if .Config.Labels }}{{ index .Config.Labels \"$2\" }}{{ end }}" \
        "$1" 2>/dev/null || true
}
hash_of() { sha256sum | cut -c1-16; }

# This machine's Debian apt entries for SUITE, SUITE-updates and
# SUITE-security, as one-line "deb URI SUITE COMPONENTS" (deb822 *.sources and
# one-line *.list files; no deb-src, no other suites, no third parties).
debian_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            function flush(  i, j) {
                if (types ~ / deb / && enabled != "no")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        if (s[j] ~ ("^" suite "(-updates|-security)?$"))
                            print "deb " u[i] " " s[j] comps
                types = ""; comps = ""; enabled = ""; nu = 0; ns = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { next }   # a continuation line (an inline key, say)
            { key = tolower($1) }
            key == "types:" { types = " "; for (i = 2; i <= NF; i++) types = types $i " " }
            key == "uris:" { for (i = 2; i <= NF; i++) u[++nu] = $i }
            key == "suites:" { for (i = 2; i <= NF; i++) s[++ns] = $i }
            key == "components:" { comps = ""; for (i = 2; i <= NF; i++) comps = comps " " $i }
            key == "enabled:" { enabled = tolower($2) }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v suite="$SUITE" '
            $1 == "deb" && $3 ~ ("^" suite "(-updates|-security)?$") { print }
        '
    done
}

# --- the shared root file system ---------------------------------------------------------

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (Debian's ca-certificates)"
sources=$(debian_sources | awk '!seen[$0]++')
if [ -z "$sources" ]; then
    mirror=$(require_mirror_uri "$me")
    sources="deb $mirror $SUITE main
deb $mirror $SUITE-updates main"
    say "warning: no $SUITE entries in this machine's apt sources; using $mirror" >&2
fi
rootfs_inputs=$({ echo "rootfs 1 $SUITE minbase ca-certificates"; echo "$sources"; cat "$ca_bundle"; } | hash_of)
ROOTFS_IMAGE=$ROOTFS_REPO:$SUITE-$rootfs_inputs

ensure_rootfs() {
    exists "$ROOTFS_IMAGE" && return 0
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] ||
        die "debootstrap is missing: run scripts/ensure-docker.sh (make test does)"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
    local mirror rootfs=$work/rootfs start=$SECONDS
    mirror=$(require_mirror_uri "$me")
    say "debootstrap: Debian $SUITE (minbase) from $mirror, about a minute"
    PATH=$PATH:/usr/sbin:/sbin debootstrap --variant=minbase --include=ca-certificates \
        "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    # This machine's Debian sources, so the images upgrade to its point releases.
    rm -f "$rootfs"/etc/apt/sources.list.d/*
    printf '%s\n' "# This machine's Debian sources (scripts/build-stand-ins.sh)" "$sources" \
        >"$rootfs/etc/apt/sources.list"
    # What this machine trusts, kept when update-ca-certificates runs in a build.
    install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    install -D -m 0644 "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/machine-ca-bundle.crt"
    # No service starts while a build installs packages (as Docker's Debian images).
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    tar -C "$rootfs" --numeric-owner -c . |
        docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "imported the root file system as $ROOTFS_IMAGE ($((SECONDS - start)) s)"
}

# --- the two images ----------------------------------------------------------------------

# build TARGET INPUTS DOCKERFILE CONTEXT [BUILD-ARG...] (the root file system is there)
build() {
    local target=$1 inputs=$2 dockerfile=$3 context=$4 start=$SECONDS
    shift 4
    local log=$work/build-${target//[^a-z0-9]/_}.log
    local args=(--network host --pull=false -f "$dockerfile" -t "$target"
        --build-arg "ROOTFS=$ROOTFS_IMAGE" --build-arg "INPUTS=$inputs")
    local a
    for a in "$@"; do args+=(--build-arg "$a"); done
    say "building a stand-in for $target"
    if ! docker build "${args[@]}" "$context" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        if grep -q "was not found" "$log"; then
            echo "$me: the mirror no longer has a package version this machine has; upgrade" \
                "this machine's (apt-get install --only-upgrade postgresql-$PG_MAJOR), then" \
                "rebuild TimescaleDB (rm $(pg_sharedir)/extension/timescaledb.control;" \
                "make db-server)" >&2
        fi
        die "building the stand-in for $target failed (log above)"
    fi
    say "built a stand-in for $target ($((SECONDS - start)) s)"
}

# needs_build TARGET PREFIX: steps 1 to 3 of the header for one image; true when
# a stand-in must be built (step 4), with the hash of its inputs in
# $work/PREFIX.inputs. PREFIX_inputs prints that hash; PREFIX_build INPUTS builds.
needs_build() {
    local target=$1 prefix=$2 inputs
    if exists "$target" && [ -z "$(label "$target" "$LABEL")" ]; then
        say "$target: the real image is here"
        return 1
    fi
    if [ "${STAND_INS_PULL:-yes}" != no ] && timeout 900 docker pull -q "$target" >/dev/null 2>&1; then
        say "$target: pulled the real image"
        return 1
    fi
    inputs=$("${prefix}_inputs") || exit 1   # (errexit is off in a function called by &&)
    if [ "$(label "$target" "$LABEL.inputs")" = "$inputs" ]; then
        say "$target: cannot pull it; the stand-in built before is up to date"
        return 1
    fi
    say "$target: cannot pull it; building a stand-in"
    echo "$inputs" >"$work/$prefix.inputs"
}

python_inputs() { { echo "$rootfs_inputs"; cat "$here/stand-ins/python.Dockerfile"; } | hash_of; }
python_build() {
    mkdir -p "$work/python"
    build "$PYTHON_IMAGE" "$1" "$here/stand-ins/python.Dockerfile" "$work/python"
}

pg_config_bin=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
pg_sharedir() { "$pg_config_bin" --sharedir; }
tsdb_context=$work/timescaledb
# The context (the extension as built here, the entrypoint), then the hash of it all.
tsdb_inputs() {
    [ -x "$pg_config_bin" ] && [ -f "$(pg_sharedir)/extension/timescaledb.control" ] ||
        die "PostgreSQL $PG_MAJOR with TimescaleDB is not installed here: run scripts/ensure-timescaledb.sh (make test does)"
    pg_version=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null) ||
        die "postgresql-$PG_MAJOR is not a Debian package here; the stand-in needs its version"
    rm -rf "$tsdb_context"
    mkdir -p "$tsdb_context/extension/lib" "$tsdb_context/extension/share"
    cp -p "$("$pg_config_bin" --pkglibdir)"/timescaledb*.so "$tsdb_context/extension/lib/"
    cp -p "$(pg_sharedir)"/extension/timescaledb* "$tsdb_context/extension/share/"
    cp -p "$here/stand-ins/timescaledb-entrypoint.sh" "$tsdb_context/"
    echo "$pg_version" >"$tsdb_context/pg-version"
    {
        echo "$rootfs_inputs $pg_version"
        cat "$here/stand-ins/timescaledb.Dockerfile" "$here/stand-ins/timescaledb-entrypoint.sh"
        (cd "$tsdb_context/extension" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    } | hash_of
}
tsdb_build() {
    build "$TSDB_IMAGE" "$1" "$here/stand-ins/timescaledb.Dockerfile" "$tsdb_context" \
        "PG_VERSION=$(cat "$tsdb_context/pg-version")"
}

# The monitoring profile's two: Debian's packages, on the same root file system.
prometheus_inputs() { { echo "$rootfs_inputs"; cat "$here/stand-ins/prometheus.Dockerfile"; } | hash_of; }
prometheus_build() {
    mkdir -p "$work/prometheus"
    build "$PROMETHEUS_IMAGE" "$1" "$here/stand-ins/prometheus.Dockerfile" "$work/prometheus" \
        "IMAGE=$PROMETHEUS_IMAGE"
}
pushgateway_inputs() { { echo "$rootfs_inputs"; cat "$here/stand-ins/pushgateway.Dockerfile"; } | hash_of; }
pushgateway_build() {
    mkdir -p "$work/pushgateway"
    build "$PUSHGATEWAY_IMAGE" "$1" "$here/stand-ins/pushgateway.Dockerfile" "$work/pushgateway" \
        "IMAGE=$PUSHGATEWAY_IMAGE"
}

todo=()
needs_build "$PYTHON_IMAGE" python && todo+=(python)
needs_build "$TSDB_IMAGE" tsdb && todo+=(tsdb)
needs_build "$PROMETHEUS_IMAGE" prometheus && todo+=(prometheus)
needs_build "$PUSHGATEWAY_IMAGE" pushgateway && todo+=(pushgateway)
if [ "${#todo[@]}" -gt 0 ]; then
    ensure_rootfs
    # Side by side: mostly downloads and unpacking, and 2 minutes instead of 3 (or 5).
    pids=()
    for prefix in "${todo[@]}"; do
        "${prefix}_build" "$(cat "$work/$prefix.inputs")" &
        pids+=("$!")
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" -eq 0 ] || die "a stand-in could not be built (see above)"
fi

# Stand-ins replaced by newer ones, and root file systems no image uses any more.
docker image prune -f --filter "label=$LABEL" >/dev/null
for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$ROOTFS_REPO"); do
    [ "$old" = "$ROOTFS_IMAGE" ] || docker image rm "$old" >/dev/null 2>&1 || true
done
