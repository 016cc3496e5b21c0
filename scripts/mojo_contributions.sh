#!/usr/bin/env bash
# Genmodel's contributions for the fixture MOJOs (issue 17): `PredictCsv --predictContributions`
# (EasyPredictModelWrapper.predictContributions, single precision) on each fixture's input CSV,
# written as tests/fixtures/mojo/NAME.contrib.csv (decimal). Genmodel 3.46 answers for GBM and
# XGBoost MOJOs with one set of contributions (binomial, regression); it refuses DRF, GLM and
# multinomial models, which are skipped here with its reason. The models are not retrained.
#
#   scripts/mojo_contributions.sh       # uses ~/.cache/mlbuild/h2o/3.46.0.11/h2o.jar
#   H2O_JAR=/path/h2o.jar scripts/mojo_contributions.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jar=${H2O_JAR:-$HOME/.cache/mlbuild/h2o/3.46.0.11/h2o.jar}
fixtures=$root/tests/fixtures/mojo
[ -f "$jar" ] || { echo "error: no H2O jar at \`$jar\` (run mlbuild once, or set H2O_JAR)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

while IFS=$'\t' read -r name data _algo _kind; do
    out=$fixtures/$name.contrib.csv
    rm -f "$out"
    if java -Xmx512m -cp "$jar" hex.genmodel.tools.PredictCsv --mojo "$fixtures/$name.zip" \
        --input "$fixtures/$data.in.csv" --output "$out" --predictContributions --decimal \
        >"$log" 2>&1 && [ -s "$out" ]; then
        echo "$name: $(($(wc -l <"$out") - 1)) rows"
    else
        rm -f "$out"
        echo "$name: genmodel refuses: $(grep -m1 -E 'Exception|Error|not supported' "$log" | cut -c1-160)"
    fi
done <"$fixtures/manifest.tsv"
