#!/usr/bin/env bash
# prepare on a very wide file (issue 11: 100,000 columns took ~61 s; prepare was quadratic in
# the number of columns).
#
#   bash benches/wide_prepare.sh [BIN ...]
#
# For each binary given (default: the release binary under CARGO_TARGET_DIR, else target/, built first), BENCH_RUNS rounds of
# `mlbuild run prepare --json` on a fresh project over one generated CSV of BENCH_COLS columns
# and BENCH_ROWS rows (no H2O: the run stops after prepare). Prints prepare's own duration (from
# its step event) and the wall time of the whole command, each round and the median. Giving
# the binary before a change and after it measures both side by side, in one run.
#
# Knobs: BENCH_DIR (default /tmp/mlbuild-bench), BENCH_COLS (100000), BENCH_ROWS (20),
# BENCH_RUNS (3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/mlbuild-bench}
COLS=${BENCH_COLS:-100000}
ROWS=${BENCH_ROWS:-20}
RUNS=${BENCH_RUNS:-3}

if [[ $# -eq 0 ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
  set -- "$(bench_bin "$ROOT")"
fi

data="$BENCH_DIR/wide/w-${COLS}x${ROWS}.csv"
BENCH_DIR=$(bench_workdir "$BENCH_DIR")
mkdir -p "$BENCH_DIR/wide"
if [[ ! -f $data ]]; then
  python3 - "$data" "$COLS" "$ROWS" <<'PY'
import random, sys
path, cols, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(1)
with open(path, "w") as f:
    f.write(",".join(["y"] + [f"c{i}" for i in range(cols)]) + "\n")
    for r in range(rows):
        f.write(",".join([str(r % 2)] + [str(random.randint(0, 9)) for _ in range(cols)]) + "\n")
PY
fi

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for bin in "$@"; do
  prep=() wall=()
  for round in $(seq "$RUNS"); do
    project="$BENCH_DIR/wide/project"
    rm -rf "$project" && mkdir -p "$project/data"
    cp "$data" "$project/data/w.csv"
    printf '[define]\ntarget = "y"\n[locate]\npath = "data/w.csv"\n[confirm]\nmin_rows = 10\n' > "$project/ml.toml"
    start=$(date +%s.%N)
    out=$(cd "$project" && MLBUILD_H2O_URL=http://127.0.0.1:9 "$bin" run prepare --json)
    end=$(date +%s.%N)
    ms=$(printf '%s\n' "$out" | python3 -c 'import json,sys; print([e for e in map(json.loads, sys.stdin) if e.get("step") == "prepare"][0]["duration_ms"])')
    prep+=("$ms")
    wall+=("$(python3 -c "print(round(($end - $start) * 1000))")")
  done
  printf '%s: %s columns × %s rows; prepare ms %s (median %s); command ms %s (median %s)\n' \
    "$bin" "$COLS" "$ROWS" "${prep[*]}" "$(printf '%s\n' "${prep[@]}" | median)" \
    "${wall[*]}" "$(printf '%s\n' "${wall[@]}" | median)"
done
