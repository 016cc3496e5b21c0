#!/usr/bin/env bash
# `mlbuild predict` of a Word2Vec text model on raw rows (the prepare transform, Word2Vec
# included, replayed natively) beside genmodel's PredictCsv on prepared rows (issue 16 point 2,
# its last part). docs/performance.md, "predict on every core".
#
#   bash benches/w2v_predict.sh        # ROWS=200000 PAIRS=3 WORK=/tmp/mlbuild-w2v
#
# The model is examples/text's (reviews with a Word2Vec `review` column, AutoML), trained once
# on H2O in WORK/text; h2o-genmodel.jar comes from benches/mojo_bench.sh (MOJO_TRAIN_ONLY=1).
# Rows: raw = examples/text/data/reviews.csv's rows repeated to ROWS; prepared = the prepared
# train and holdout files of that run (Word2Vec columns in place of `review`) repeated to ROWS.
# Three arms, whole process, rotating order: mlbuild on the raw rows (`--model staging`),
# mlbuild on the prepared rows (`--model` the MOJO file: no transform) and PredictCsv on the
# prepared rows; the last two are compared value for value. BENCH_NO_BUILD=1 skips the build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-w2v}")
ROWS=${ROWS:-200000}
PAIRS=${PAIRS:-3}
[ -x /usr/bin/time ] || bench_die "/usr/bin/time is missing (apt-get install time)"
BIN=$(bench_release "$ROOT")
if [ ! -f "$WORK/h2o-genmodel.jar" ]; then
    MOJO_TRAIN_ONLY=1 WORK="$WORK" bash "$ROOT/benches/mojo_bench.sh"
fi

project=$WORK/text
if [ ! -f "$project/models/staging.zip" ]; then
    rm -rf "$project"
    mkdir -p "$project/data"
    cp "$ROOT/examples/text/ml.toml" "$project/"
    cp "$ROOT/examples/text/data/reviews.csv" "$project/data/"
    (cd "$project" && "$BIN" run >"$WORK/train.log" 2>&1) || { tail -20 "$WORK/train.log" >&2; bench_die "training the text model failed"; }
fi
cp "$project/models/staging.zip" "$WORK/text.zip"

raw=$WORK/raw-$ROWS.csv
prepared=$WORK/prepared-$ROWS.csv
if [ ! -f "$raw" ] || [ ! -f "$prepared" ]; then
    python3 - "$project" "$raw" "$prepared" "$ROWS" <<'PY'
import csv, io, json, os, sys
project, raw, prepared, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def repeat(lines, out):
    with open(out, "w") as f:
        f.write(lines[0] + "\n")
        body = lines[1:]
        for i in range(n):
            f.write(body[i % len(body)] + "\n")
repeat(open(os.path.join(project, "data/reviews.csv")).read().splitlines(), raw)
steps = json.load(open(os.path.join(project, "ml.lock")))["steps"]
outs = next(s["outputs"] for s in steps if s["step"] == "prepare")
def blob(d):
    for root, _, files in os.walk(os.path.join(project, "cache")):
        if d in files:
            return os.path.join(root, d)
    sys.exit("error: blob %s not in the store" % d)
train = open(blob(outs["train"])).read().splitlines()
holdout = open(blob(outs["holdout"])).read().splitlines()
repeat(train + holdout[1:], prepared)
PY
fi

# side NAME: runs it once, prints "SECONDS MAXRSS_KB".
side() {
    local t="$WORK/time.$1"
    case $1 in
        raw)
            (cd "$project" && /usr/bin/time -o "$t" -f "%e %M" "$BIN" predict --model staging "$raw" -o "$WORK/raw.out.csv") \
                2>"$WORK/raw.err" || { cat "$WORK/raw.err" >&2; bench_die "mlbuild predict (raw) failed"; } ;;
        prepared)
            (cd "$WORK" && /usr/bin/time -o "$t" -f "%e %M" "$BIN" predict --model text.zip "$prepared" -o ours.csv) \
                2>"$WORK/prepared.err" || { cat "$WORK/prepared.err" >&2; bench_die "mlbuild predict (prepared) failed"; } ;;
        genmodel)
            /usr/bin/time -o "$t" -f "%e %M" java -cp "$WORK/h2o-genmodel.jar" hex.genmodel.tools.PredictCsv \
                --mojo "$WORK/text.zip" --input "$prepared" --output "$WORK/theirs.csv" \
                >"$WORK/genmodel.out" 2>&1 || { cat "$WORK/genmodel.out" >&2; bench_die "PredictCsv failed"; } ;;
    esac
    cat "$t"
}

echo "== predict, $ROWS rows, Word2Vec text model ($(unzip -p "$WORK/text.zip" model.ini | awk -F' = ' '/^algorithm/ {print $2}')), $(nproc) cores, $PAIRS rounds"
results=""
arms=(raw prepared genmodel)
for i in $(seq 1 "$PAIRS"); do
    line="round $i:"
    for k in 0 1 2; do
        s=${arms[$(((i + k) % 3))]}
        r=$(side "$s")
        line="$line $s $r"
        results="$results$s $r
"
    done
    echo "$line"
done

python3 - "$WORK/ours.csv" "$WORK/theirs.csv" <<PY
import statistics, sys
t, rss = {}, {}
for r in """$results""".strip().splitlines():
    name, secs, kb = r.split()
    t.setdefault(name, []).append(float(secs)); rss.setdefault(name, []).append(int(kb))
label = {"raw": "mlbuild, raw rows (transform replayed)", "prepared": "mlbuild, prepared rows",
         "genmodel": "PredictCsv, prepared rows"}
for n in ("raw", "prepared", "genmodel"):
    print(f"  {label[n]:40} median {statistics.median(t[n]):.2f} s, max RSS {max(rss[n]) / 1024:.0f} MB")
g = statistics.median(t["genmodel"])
print(f"  PredictCsv (prepared) / mlbuild (raw): {g / statistics.median(t['raw']):.2f}x; "
      f"/ mlbuild (prepared): {g / statistics.median(t['prepared']):.2f}x (ratios of medians)")
ours, theirs = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read().splitlines()
assert len(ours) == len(theirs), (len(ours), len(theirs))
def num(x):
    return float.fromhex(x) if "0x" in x else float(x)
worst = 0.0
for a, b in zip(ours[1:], theirs[1:]):
    for x, y in zip(a.split(",")[1:], b.split(",")[1:]):
        worst = max(worst, abs(num(x) - num(y)))
print(f"  mlbuild vs PredictCsv on the prepared rows: {len(ours) - 1} rows, worst |difference| of a probability {worst:.3g}")
PY
