#!/bin/sh
# One line about the holdout predictions: how many rows, and how many predicted positive.
# Arguments: the predictions CSV (H2O's: predict,p0,p1), the output file.
set -eu
rows=$(tail -n +2 "$1" | wc -l)
positive=$(tail -n +2 "$1" | cut -d, -f1 | grep -c '^"\{0,1\}1"\{0,1\}$' || true)
echo "holdout rows: $rows, predicted positive: $positive" > "$2"
