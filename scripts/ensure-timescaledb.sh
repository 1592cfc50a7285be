#!/usr/bin/env bash
# Make sure PostgreSQL 15 and its TimescaleDB extension are installed, so the
# test suite can start a throwaway server. Does nothing when they already are.
#
# Two builds, best first:
#   1. The full TimescaleDB (compression, continuous aggregates, the job
#      scheduler), from the unmodified upstream source in ../shared/timescaledb/
#      where that folder is at hand (TIMESCALEDB_SOURCE names another archive).
#      It is the version the image timescale/timescaledb:latest-pg15 carries.
#      An Apache-only build already installed is replaced by it.
#   2. Otherwise the Apache-licensed part: Debian 12 has no TimescaleDB package,
#      but Debian 13 ("trixie") carries its source. We add a deb-src entry for
#      trixie, built from the mirror this machine's apt sources already use, and
#      build it against PostgreSQL 15. No binary package from trixie is installed.
#      The tests that need the full extension then skip, each saying why.
set -euo pipefail

me=ensure-timescaledb
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The upstream archive and its checksum file, when at hand.
source_archive() {
    if [ -n "${TIMESCALEDB_SOURCE:-}" ]; then
        printf '%s\n' "$TIMESCALEDB_SOURCE"
        return
    fi
    local f
    for f in "$here"/../../shared/timescaledb/timescaledb-*.tar.xz; do
        [ -f "$f" ] && { printf '%s\n' "$f"; return; }
    done
    true
}

have_timescaledb() {
    [ -x "$PG_CONFIG" ] &&
        [ -f "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control" ]
}
# The Timescale-licensed module: compression, continuous aggregates, policies.
have_full() {
    have_timescaledb && compgen -G "$("$PG_CONFIG" --pkglibdir)/timescaledb-tsl-*.so" >/dev/null
}
installed_version() {
    grep -h default_version "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control" |
        sed "s/.*= *'\(.*\)'.*/\1/"
}

archive=$(source_archive)
if have_full || { have_timescaledb && [ -z "$archive" ]; }; then
    if have_full; then kind="full"; else kind="Apache-only"; fi
    echo "$me: PostgreSQL $PG_MAJOR with TimescaleDB $(installed_version) ($kind) is installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "$me: PostgreSQL $PG_MAJOR with TimescaleDB is missing and installing it needs root;" >&2
    echo "  run 'sudo $0' once, or point TEST_DATABASE_URL at a server that has it" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# shellcheck source-path=SCRIPTDIR source=lib/debian-mirror.sh
. "$here/lib/debian-mirror.sh"

echo "$me: installing PostgreSQL $PG_MAJOR and build tools"
if [ -z "$archive" ]; then
    uri=$(require_mirror_uri "$me")
    cat > /etc/apt/sources.list.d/wearables-ingest-trixie-src.sources <<SRC
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
    cmake gcc make libssl-dev dpkg-dev xz-utils ca-certificates >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt-get source downloads as the _apt user
cd "$work"

if [ -n "$archive" ]; then
    sums="$(dirname "$archive")/SHA256SUMS"
    if [ -f "$sums" ]; then
        (cd "$(dirname "$archive")" &&
            grep " $(basename "$archive")\$" SHA256SUMS | sha256sum -c --quiet -) ||
            { echo "$me: $archive does not match its SHA256SUMS" >&2; exit 1; }
    fi
    echo "$me: building the full TimescaleDB from $(basename "$archive") for PostgreSQL $PG_MAJOR (about 4 minutes)"
    mkdir src
    tar -xJf "$archive" -C src --strip-components=1
    flags=()
else
    echo "$me: fetching the timescaledb source package (trixie)"
    apt-get source -qq --download-only timescaledb >/dev/null
    dpkg-source --no-check -x ./timescaledb_*.dsc src >/dev/null
    echo "$me: building TimescaleDB (Apache-licensed part) for PostgreSQL $PG_MAJOR"
    flags=(-DAPACHE_ONLY=1)
fi
cd src
./bootstrap "${flags[@]}" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
    -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_CONFIG" >build.log 2>&1 ||
    { tail -n 30 build.log >&2; exit 1; }
make -C build -j "$(nproc)" install >>build.log 2>&1 ||
    { tail -n 30 build.log >&2; exit 1; }

have_timescaledb
if have_full; then kind="full"; else kind="Apache-only"; fi
echo "$me: installed TimescaleDB $(installed_version) ($kind)"
