#!/usr/bin/env bash
# Make sure PostgreSQL 15 and its TimescaleDB extension are installed, so the
# test suite can start a throwaway server. Does nothing when they already are.
#
# Debian 12 has no TimescaleDB package, but Debian 13 ("trixie") carries its
# source. We add a deb-src entry for trixie, built from the mirror this
# machine's apt sources already use, and build the Apache-licensed part of the
# extension against PostgreSQL 15. No binary package from trixie is installed.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

have_timescaledb() {
    [ -x "$PG_CONFIG" ] &&
        [ -f "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control" ]
}

if have_timescaledb; then
    echo "ensure-timescaledb: PostgreSQL $PG_MAJOR with TimescaleDB is installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-timescaledb: PostgreSQL $PG_MAJOR with TimescaleDB is missing and installing it needs root;" >&2
    echo "  run 'sudo $0' once, or point TEST_DATABASE_URL at a server that has it" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# shellcheck source-path=SCRIPTDIR source=lib/debian-mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"
uri=$(require_mirror_uri ensure-timescaledb)

cat > /etc/apt/sources.list.d/wearables-ingest-trixie-src.sources <<SRC
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

echo "ensure-timescaledb: installing PostgreSQL $PG_MAJOR and build tools"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
    cmake gcc make libssl-dev dpkg-dev ca-certificates >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt-get source downloads as the _apt user
cd "$work"
echo "ensure-timescaledb: fetching the timescaledb source package (trixie)"
apt-get source -qq --download-only timescaledb >/dev/null
dpkg-source --no-check -x ./timescaledb_*.dsc src >/dev/null
cd src
echo "ensure-timescaledb: building TimescaleDB (Apache-licensed part) for PostgreSQL $PG_MAJOR"
./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
    -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_CONFIG" >build.log 2>&1 ||
    { tail -n 30 build.log >&2; exit 1; }
make -C build -j "$(nproc)" install >>build.log 2>&1 ||
    { tail -n 30 build.log >&2; exit 1; }

have_timescaledb
echo "ensure-timescaledb: installed $(grep -h default_version "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control")"
