#!/usr/bin/env bash
# TreeSHAP contributions beside genmodel's (issue 17 point 4), single thread, paired passes.
#
#   benches/shap_bench.sh          # ROWS=20000 PASSES=5 REPEAT=5 WORK=/tmp/mlbuild-shapbench
#
# The 50-tree GBM of benches/mojo_bench.sh (trained once into WORK: H2O 3.46.0.11, max_depth 5,
# seed 42, on data/prostate.csv), ROWS rows (prostate repeated), encoded once on each side:
# genmodel's `calculateContributions` (benches/java/MojoBench.java … contributions) against
# `Mojo::contributions` (benches/mojo_score.rs … contributions); best of PASSES passes each,
# alternated REPEAT times. Prints each pair's ratio and the medians, and checks that both sides'
# checksums (the first contribution plus the bias, summed over the rows) agree to 1e-4.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
rows=${ROWS:-20000}
passes=${PASSES:-5}
work=$(bench_workdir "${WORK:-/tmp/mlbuild-shapbench}")

MOJO_TRAIN_ONLY=1 WORK="$work" bash "$root/benches/mojo_bench.sh"
[ -f "$work/gbm50.zip" ] || bench_die "benches/mojo_bench.sh left no gbm50.zip in $work"
bench_rows "$root/data/prostate.csv" "$work/rows.csv" "$rows"
javac -d "$work" -cp "$work/h2o-genmodel.jar" "$root/benches/java/MojoBench.java"
(cd "$root" && cargo bench -q --bench mojo_score --no-run)

echo "== contributions, one thread, $rows rows, best of $passes passes"
: >"$work/shap.log"
for _ in $(seq 1 "${REPEAT:-5}"); do
  java -cp "$work/h2o-genmodel.jar:$work" MojoBench "$work/gbm50.zip" "$work/rows.csv" "$passes" \
    contributions | tee -a "$work/shap.log"
  (cd "$root" && cargo bench -q --bench mojo_score -- "$work/gbm50.zip" "$work/rows.csv" "$passes" \
    contributions) | tee -a "$work/shap.log"
done
bench_pairs "$work/shap.log" 1e-4 "(goal 3x)"
