#!/usr/bin/env bash
# `mlbuild predict` (every core) against genmodel's PredictCsv on the same file and model, whole
# process each, in one run (issue 16 point 2). docs/performance.md, "predict on every core".
#
#   bash benches/predict_bench.sh        # ROWS=1000000 PAIRS=3 WORK=/tmp/mlbuild-predict
#
# The model is the 50-tree GBM of benches/mojo_bench.sh (trained once on H2O into WORK, with
# h2o-genmodel.jar); the rows are data/prostate.csv's repeated to ROWS. Pairs alternate which
# side runs first; each side's wall time and max RSS come from /usr/bin/time; the two outputs
# are compared value for value. BENCH_NO_BUILD=1 skips `cargo build --release`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-predict}")
ROWS=${ROWS:-1000000}
PAIRS=${PAIRS:-3}
[ -x /usr/bin/time ] || bench_die "/usr/bin/time is missing (apt-get install time)"

if [ ! -f "$WORK/gbm50.zip" ] || [ ! -f "$WORK/h2o-genmodel.jar" ]; then
    MOJO_TRAIN_ONLY=1 WORK="$WORK" bash "$ROOT/benches/mojo_bench.sh"
fi
BIN=$(bench_release "$ROOT")

rows=$WORK/rows-$ROWS.csv
[ -f "$rows" ] || bench_rows "$ROOT/data/prostate.csv" "$rows" "$ROWS"

# side NAME: runs it once, prints "SECONDS MAXRSS_KB".
side() {
    local t="$WORK/time.$1"
    case $1 in
        mlbuild)
            (cd "$WORK" && /usr/bin/time -o "$t" -f "%e %M" "$BIN" predict --model gbm50.zip "$rows" -o ours.csv) \
                2>"$WORK/mlbuild.err" || { cat "$WORK/mlbuild.err" >&2; bench_die "mlbuild predict failed"; } ;;
        genmodel)
            /usr/bin/time -o "$t" -f "%e %M" java -cp "$WORK/h2o-genmodel.jar" hex.genmodel.tools.PredictCsv \
                --mojo "$WORK/gbm50.zip" --input "$rows" --output "$WORK/theirs.csv" \
                >"$WORK/genmodel.out" 2>&1 || { cat "$WORK/genmodel.out" >&2; bench_die "PredictCsv failed"; } ;;
    esac
    cat "$t"
}

echo "== predict, $ROWS rows, 50-tree GBM, $(nproc) cores, $PAIRS pairs"
results=""
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then order="mlbuild genmodel"; else order="genmodel mlbuild"; fi
    line="pair $i:"
    for s in $order; do
        r=$(side "$s")
        line="$line $s $r"
        results="$results$s $r
"
    done
    echo "$line"
done

python3 - "$WORK/ours.csv" "$WORK/theirs.csv" <<PY
import statistics, sys
rows = """$results""".strip().splitlines()
t = {"mlbuild": [], "genmodel": []}
rss = {"mlbuild": [], "genmodel": []}
for r in rows:
    name, secs, kb = r.split()
    t[name].append(float(secs)); rss[name].append(int(kb))
ratios = [g / m for m, g in zip(t["mlbuild"], t["genmodel"])]
for n in ("mlbuild", "genmodel"):
    print(f"  {n:9} median {statistics.median(t[n]):.2f} s, max RSS {max(rss[n]) / 1024:.0f} MB")
print(f"  genmodel / mlbuild: median of pair ratios {statistics.median(ratios):.2f}x "
      f"(ratio of medians {statistics.median(t['genmodel']) / statistics.median(t['mlbuild']):.2f}x)")
ours, theirs = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read().splitlines()
assert len(ours) == len(theirs), (len(ours), len(theirs))
assert ours[0].replace('"', "") == theirs[0].replace('"', ""), (ours[0], theirs[0])
def num(x):
    # PredictCsv writes Java's hex doubles (0x1.98p-1); mlbuild, round-trip decimals.
    return float.fromhex(x) if "0x" in x else float(x)
labels = bits = 0
worst = 0.0
for a, b in zip(ours[1:], theirs[1:]):
    a, b = a.replace('"', "").split(","), b.replace('"', "").split(",")
    labels += a[0] != b[0]
    x, y = [num(v) for v in a[1:]], [num(v) for v in b[1:]]
    if x != y:
        bits += 1
        worst = max(worst, max(abs(p - q) for p, q in zip(x, y)))
print(f"  outputs: {len(ours) - 1} rows; labels differ in {labels}; numbers differ in {bits} "
      f"(largest difference {worst:.3g})")
# The same label everywhere; numbers equal but for the last bits of an exp (Java's Math.exp
# and the C library's may round one input differently).
sys.exit(1 if labels or worst > 1e-12 else 0)
PY
