#!/bin/sh
# The stack's one-shot generator: when DATA_DIR holds no CSV files (a fresh
# clone), fill it with the synthetic data set (30 days; arguments go to
# synth.py). Files already there, generated or real, are left as they are.
set -eu
APP_DIR=${APP_DIR:-/app}
DATA_DIR=${DATA_DIR:-/data}

if [ -n "$(find "$DATA_DIR" -maxdepth 2 -name '*.csv' 2>/dev/null | head -n 1)" ]; then
    echo "generator: $DATA_DIR already holds CSV files; not generating"
    exit 0
fi
echo "generator: $DATA_DIR holds no CSV files; generating the synthetic data set"
exec python "$APP_DIR/synth.py" --out "$DATA_DIR" "$@"
