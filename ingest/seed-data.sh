#!/bin/sh
# The stack's one-shot generator: when DATA_DIR holds no CSV files (a fresh
# clone), fill it with the synthetic data set (30 days; arguments go to
# python -m wearables_ingest.synth). Files already there, generated or real, are left as they are.
set -eu
DATA_DIR=${DATA_DIR:-/data}

if [ -n "$(find "$DATA_DIR" -maxdepth 2 -name '*.csv' 2>/dev/null | head -n 1)" ]; then
    echo "generator: $DATA_DIR already holds CSV files; not generating"
    exit 0
fi
echo "generator: $DATA_DIR holds no CSV files; generating the synthetic data set"
exec python -m wearables_ingest.synth --out "$DATA_DIR" "$@"
