#!/usr/bin/env bash
# A cold `mlbuild run` of the demo beside the same job done with the h2o Python client, in
# one run, paired (issue 14 point 5). See docs/performance.md, "Cold start".
#
#   bash benches/cold_start.sh
#
# Each pair runs, in an order that alternates from pair to pair:
#   mlbuild   `mlbuild run` in a fresh copy of the demo (ml.toml + data/): a fresh cache, so
#             every step runs and a managed H2O node is started and stopped
#   python    benches/cold_start_peer.py: h2o.init, import, 80/20 split, AutoML (max_models 4,
#             nfolds 5, seed 42, no DeepLearning, the holdout as leaderboard frame), predictions
#             and SHAP on the holdout, MOJO download, shutdown
# and, for the levers one at a time, `mlbuild run` with one of them turned off:
#   no-cds    MLBUILD_H2O_CDS=0 (no class-data archive)
#   no-early  MLBUILD_H2O_EARLY_START=0 (the JVM starts when execute needs it)
#   no-native MLBUILD_H2O_NATIVE_LIBS=0 (H2O unpacks XGBoost's native library at every start)
# The shutdown lever is timed apart: one node, then `POST /3/Shutdown` vs SIGTERM, until the
# JVM is reaped.
#
# Knobs: COLD_PAIRS (default 5), COLD_WORK (default /tmp/mlbuild-cold), COLD_NO_BUILD=1,
# COLD_ARMS (default "mlbuild python no-cds no-early no-native"). Needs python3 (venv), Java 17, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=${COLD_WORK:-/tmp/mlbuild-cold}
PAIRS=${COLD_PAIRS:-5}
ARMS=${COLD_ARMS:-"mlbuild python no-cds no-early no-native"}
export MLBUILD_NO_PROGRESS=1 NO_COLOR=1 MLBUILD_CONFIG=""
unset MLBUILD_CACHE_DIR MLBUILD_STATE_URL MLBUILD_H2O_URL MLBUILD_H2O_JAR MLBUILD_H2O_NATIVE_LIBS

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ -z "${COLD_NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin mlbuild) || die "cargo build failed"
fi
BIN=$(bench_bin "$ROOT")
[ -x "$BIN" ] || die "no $BIN (set CARGO_TARGET_DIR)"
mkdir -p "$WORK/bin"
cp "$BIN" "$WORK/bin/mlbuild"
MLBUILD=$WORK/bin/mlbuild

if [ ! -x "$WORK/venv/bin/python" ]; then
    log "python venv with h2o 3.46.0.11 (once)"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q h2o==3.46.0.11 || die "pip install h2o failed"
fi
PY=$WORK/venv/bin/python

# One warm-up of each, outside the figures: provisions the jar and builds the class-data
# archive, and brings the Python package into the page cache.
fresh_project() {
    rm -rf "$WORK/project" && mkdir -p "$WORK/project"
    cp "$ROOT/ml.toml" "$WORK/project/" && cp -r "$ROOT/data" "$WORK/project/"
}

secs() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.3f}')" "$@"; }

# arm NAME: runs it once in a fresh place and prints its wall time in seconds.
arm() {
    local t0 t1 env=()
    case $1 in
        mlbuild) ;;
        no-cds) env=(MLBUILD_H2O_CDS=0) ;;
        no-early) env=(MLBUILD_H2O_EARLY_START=0) ;;
        no-native) env=(MLBUILD_H2O_NATIVE_LIBS=0) ;;
        python)
            rm -rf "$WORK/py" && mkdir -p "$WORK/py"
            t0=$(date +%s%N)
            (cd "$WORK/py" && timeout 600 "$PY" "$ROOT/benches/cold_start_peer.py" "$ROOT/data/prostate.csv" "$WORK/py" \
                > "$WORK/py.log" 2>&1) || { tail -20 "$WORK/py.log" >&2; die "the Python job failed"; }
            t1=$(date +%s%N)
            secs "$t0" "$t1"
            return ;;
        *) die "unknown arm $1" ;;
    esac
    fresh_project
    t0=$(date +%s%N)
    (cd "$WORK/project" && env "${env[@]}" timeout 600 "$MLBUILD" run > "$WORK/mlbuild.log" 2>&1) \
        || { tail -20 "$WORK/mlbuild.log" >&2; die "mlbuild run failed"; }
    t1=$(date +%s%N)
    secs "$t0" "$t1"
}

log "warm-up"
arm mlbuild > /dev/null
arm python > /dev/null

declare -A times
read -r -a arms <<< "$ARMS"
for ((i = 0; i < PAIRS; i++)); do
    # Rotate the order so no arm always runs first (a warmer page cache, a cooler CPU).
    order=("${arms[@]:i % ${#arms[@]}}" "${arms[@]:0:i % ${#arms[@]}}")
    line="pair $((i + 1)):"
    for a in "${order[@]}"; do
        t=$(arm "$a")
        times[$a]+="$t "
        line+=" $a $t s"
    done
    log "$line"
done

log "shutdown lever: one node, POST /3/Shutdown vs SIGTERM"
JAR=$(ls "${XDG_CACHE_HOME:-$HOME/.cache}"/mlbuild/h2o/3.46.0.11/h2o.jar)
stop_times=""
for mode in rest term rest term rest term; do
    port=$((40000 + RANDOM % 5000 * 2))
    java -Xmx1g -jar "$JAR" -name "cold-$port" -ip 127.0.0.1 -port "$port" -ice_root "$WORK/ice" \
        > "$WORK/node.log" 2>&1 &
    pid=$!
    bench_wait "the H2O node" 60 "$pid" "$WORK/node.log" curl -sf "http://127.0.0.1:$port/3/Cloud"
    t0=$(date +%s%N)
    case $mode in
        rest) curl -s -X POST "http://127.0.0.1:$port/3/Shutdown" > /dev/null || true ;;
        term) kill -TERM "$pid" ;;
    esac
    ( sleep 30; kill -9 "$pid" 2>/dev/null ) & guard=$!
    wait "$pid" || true
    t1=$(date +%s%N)
    kill "$guard" 2>/dev/null || true
    stop_times+="$mode $(secs "$t0" "$t1") "
done
rm -rf "$WORK/ice"

python3 - "$PAIRS" "$stop_times" "${arms[@]}" <<PY
import statistics, sys
pairs, stops, arms = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
times = {$(for a in "${arms[@]}"; do printf '"%s": [float(x) for x in "%s".split()], ' "$a" "${times[$a]}"; done)}
print(f"cold demo run, {pairs} pairs, median (min–max):")
for a in arms:
    t = times[a]
    print(f"  {a:9} {statistics.median(t):6.2f} s ({min(t):.2f}–{max(t):.2f})")
if "python" in times and "mlbuild" in times:
    ratios = [m / p for m, p in zip(times["mlbuild"], times["python"])]
    print(f"  mlbuild / python: median of pair ratios {statistics.median(ratios):.2f} "
          f"(ratio of medians {statistics.median(times['mlbuild']) / statistics.median(times['python']):.2f})")
for a in ("no-cds", "no-early", "no-native"):
    if a in times and "mlbuild" in times:
        d = [x - m for x, m in zip(times[a], times["mlbuild"])]
        print(f"  {a} - mlbuild: median {statistics.median(d):+.2f} s per pair")
rest = [float(stops[i + 1]) for i in range(0, len(stops), 2) if stops[i] == "rest"]
term = [float(stops[i + 1]) for i in range(0, len(stops), 2) if stops[i] == "term"]
print(f"node exit until reaped: POST /3/Shutdown {statistics.median(rest):.2f} s, SIGTERM {statistics.median(term):.2f} s (medians of {len(rest)})")
PY
