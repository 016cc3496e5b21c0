#!/usr/bin/env bash
# Regenerate tests/fixtures/mojo/: start H2O 3.46.0.11 (the last release that exports MOJOs),
# train the small fixture models over its REST API, download their MOJOs and genmodel, score
# the fixture CSVs with genmodel's PredictCsv (hex output), then stop the node.
#
#   scripts/mojo_fixtures.sh            # uses ~/.cache/mlbuild/h2o/3.46.0.11/h2o.jar
#   H2O_JAR=/path/h2o.jar PORT=54720 scripts/mojo_fixtures.sh
#   SERVER_CONTRIBUTIONS=1 scripts/mojo_fixtures.sh   # only tests/fixtures/mojo/server/: the
#       H2O server's own predict_contributions for a binomial DRF and GLM (issue 17), beside
#       their MOJOs; the other fixtures are left as they are
#
# Needs Java 8–17 and python3 (standard library only). Takes about two minutes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jar=${H2O_JAR:-$HOME/.cache/mlbuild/h2o/3.46.0.11/h2o.jar}
port=${PORT:-54720}
out=$root/tests/fixtures/mojo
work=$(mktemp -d)
url=http://127.0.0.1:$port

[ -f "$jar" ] || { echo "error: no H2O jar at \`$jar\` (run mlbuild once, or set H2O_JAR)" >&2; exit 1; }

java -Xmx2g -jar "$jar" -ip 127.0.0.1 -web_ip 127.0.0.1 -port "$port" -name "mojofix$$" \
  -ice_root "$work/ice" >"$work/h2o.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  curl -sf "$url/3/Cloud" | grep -q '"cloud_healthy":true' && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/h2o.log" >&2; exit 1; }
  sleep 0.2
done
curl -sf "$url/3/Cloud" | grep -q '"version":"3.46.0.11"' \
  || { echo "error: \`$jar\` is not H2O 3.46.0.11" >&2; exit 1; }

if [ "${SERVER_CONTRIBUTIONS:-0}" = 1 ]; then
  rm -rf "$out/server"
else
  rm -f "$out"/*.zip "$out"/*.csv "$out"/manifest.tsv
fi
python3 "$root/scripts/mojo_fixtures.py" "$url" "$root" "$out" "$work"
du -sh "$out"
