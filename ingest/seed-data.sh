#!/bin/sh
# The stack's one-shot generator: demo data for a fresh clone, and nothing else.
#
# It writes only into the repository's own demo folder (./data, mounted at
# DATA_DIR, default /data), as participant_001: the 30-day synthetic data set
# (arguments go to python -m wearables_ingest.synth). It does so only when
#   - HOST_DATA_DIR, the folder the ingestor loads, is that demo folder (unset,
#     or ./data: the default). Pointed anywhere else, at real data or at an
#     empty or mistyped folder, nothing is generated anywhere; and
#   - the demo folder holds no CSV file at any depth, and nothing besides an
#     empty participant_001 (files whose names start with . aside): real
#     participant folders put there are never joined by a synthetic one.
# Each outcome is one line on standard output (then synth's own) and exit status 0.
set -eu
DATA_DIR=${DATA_DIR:-/data}
DEMO=participant_001

say() { echo "generator: $*"; }

host_dir=${HOST_DATA_DIR:-./data}
# ./data, data, ./data/ name the demo folder; anything else does not.
case $(printf '%s' "$host_dir" | sed -e 's#/*$##' -e 's#^\./##') in
    data) ;;
    *)
        say "HOST_DATA_DIR is set to $host_dir: not generating demo data (only ./data, the default, gets it)"
        exit 0
        ;;
esac

csv=$(find "$DATA_DIR" -iname '*.csv' -print -quit 2>/dev/null || true)
if [ -n "$csv" ]; then
    say "$DATA_DIR already holds CSV files (${csv#"$DATA_DIR"/}); not generating demo data"
    exit 0
fi
other=$(find "$DATA_DIR" -mindepth 1 -maxdepth 1 ! -name '.*' ! -name "$DEMO" -print -quit \
    2>/dev/null || true)
if [ -n "$other" ]; then
    say "$DATA_DIR holds ${other##*/}, which is not demo data; not generating demo data"
    exit 0
fi
say "$DATA_DIR holds no CSV files; generating the synthetic demo data set into $DATA_DIR/$DEMO"
python -m wearables_ingest.synth --out "$DATA_DIR/$DEMO" "$@"
# The demo data belongs to whoever owns the demo folder (on a clone, the user
# who made it): they may delete it, or put their own beside it, without root.
chown -R --reference="$DATA_DIR" "$DATA_DIR/$DEMO" 2>/dev/null || true
