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
awk '
  { for (i = 1; i < NF; i++) if ($(i + 1) == "rows/s") rate = $i
    sink = $NF; sub(/]$/, "", sink) }
  /^genmodel/ { java = rate; jsink = sink }
  /^native/ {
    n++; r[n] = rate / java; nat[n] = rate; jv[n] = java
    d = sink - jsink; if (d < 0) d = -d; s = jsink < 0 ? -jsink : jsink
    if (d > 1e-4 * (s > 1 ? s : 1)) bad = bad " " n
    printf "pair %d: native %.0f rows/s, genmodel %.0f rows/s: %.2fx\n", n, rate, java, r[n]
  }
  function median(a, k,   i, j, t, b) {
    for (i = 1; i <= k; i++) b[i] = a[i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
  }
  END {
    if (n == 0) exit 1
    printf "median of %d pairs: native %.0f rows/s, genmodel %.0f rows/s, ratio %.2fx (goal 3x)\n", n, median(nat, n), median(jv, n), median(r, n)
    if (bad != "") { print "checksums differ in pair(s)" bad; exit 1 }
    print "checksums agree"
  }' "$work/shap.log"
