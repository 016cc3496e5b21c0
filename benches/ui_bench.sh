#!/usr/bin/env bash
# `mlbuild ui` at scale (issue 13 point 6): a registry seeded with BENCH_VERSIONS versions and
# BENCH_RUNS runs (8 step records each), every page requested BENCH_REPEAT times with curl;
# prints each page's median server time (curl's time to first byte on loopback) and size, and
# the pipeline page's weight with its stylesheet.
#
#   bash benches/ui_bench.sh [BIN]
#
# BIN defaults to the release binary (under CARGO_TARGET_DIR, else target/), built first. No H2O: the project has a fixture
# `ml.toml` and the repo's data; the registry is made by `mlbuild cache gc` (which creates and
# migrates it) and filled with SQL.
#
# Knobs: BENCH_DIR (default /tmp/mlbuild-bench), BENCH_VERSIONS (1000), BENCH_RUNS (10000),
# BENCH_REPEAT (21).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
BENCH_DIR=$(bench_workdir "${BENCH_DIR:-/tmp/mlbuild-bench}")
VERSIONS=${BENCH_VERSIONS:-1000}
RUNS=${BENCH_RUNS:-10000}
REPEAT=${BENCH_REPEAT:-21}

BIN=${1:-}
if [[ -z $BIN ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$(bench_bin "$ROOT")
fi
[[ -x $BIN ]] || bench_die "no $BIN (build it, or set CARGO_TARGET_DIR)"

project="$BENCH_DIR/ui"
rm -rf "$project"
mkdir -p "$project/data"
cp "$ROOT/tests/fixtures/prostate/ml.toml" "$project/ml.toml"
cp "$ROOT/data/prostate.csv" "$project/data/prostate.csv"
(cd "$project" && "$BIN" -q cache gc >/dev/null)

python3 - "$project/cache/state.db" "$VERSIONS" "$RUNS" <<'PY'
import json, sqlite3, sys
db, versions, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db)
steps = ["define", "locate", "prepare", "confirm", "execute", "monitor", "modify", "conclude"]
con.executemany(
    "INSERT INTO runs (id, project, command, started_at, finished_at, status, report, host, pid,"
    " git_commit, user_name, error) VALUES (?, 'bench', 'run', ?, ?, 'ok', NULL, 'h', 1, ?, 'bench', NULL)",
    [(i, f"2026-01-01T00:00:{i % 60:02}.000Z", f"2026-01-01T00:01:{i % 60:02}.000Z", f"{i:040x}")
     for i in range(1, runs + 1)])
con.executemany(
    "INSERT INTO step_runs (run, step, attempt, status, step_key, duration_ms, reason, recorded_at)"
    " VALUES (?, ?, 1, ?, ?, 5, 'up to date', '2026-01-01T00:00:00.000Z')",
    [(i, s, "cached" if i % 3 else "ran", f"{i:032x}{k:032x}")
     for i in range(1, runs + 1) for k, s in enumerate(steps)])
con.execute("UPDATE counters SET value = ? WHERE name = 'run'", (runs,))
digest = lambda i, salt: f"{salt:08x}{i:056x}"
con.executemany(
    "INSERT INTO versions (id, created_at, model, canonical, algo, metrics, card, provenance, run)"
    " VALUES (?, ?, ?, ?, 'GBM', ?, ?, ?, ?)",
    [(f"v20260101.{i:06}-{i:06x}", f"2026-01-01T00:00:00.{i % 1000:03}Z", digest(i, 1), digest(i, 2),
      json.dumps({"auc": 0.8 + (i % 100) / 1000, "logloss": 0.4 - (i % 50) / 1000}), digest(i, 3),
      json.dumps({"config": {"execute": {"max_models": i % 7, "seed": 7}}, "data_snapshot": digest(i, 4)}),
      i) for i in range(1, versions + 1)])
last = f"v20260101.{versions:06}-{versions:06x}"
con.execute("INSERT INTO tags (tag, version, seq, stack_top) VALUES ('staging', ?, 1, NULL)", (last,))
con.execute(
    "INSERT INTO tag_history (tag, seq, from_version, to_version, moved_at, moved_by, reason, kind, parent)"
    " VALUES ('staging', 1, NULL, ?, '2026-01-01T00:00:00.000Z', 'bench', 'seed', 'promote', NULL)", (last,))
con.commit()
PY

log="$BENCH_DIR/ui.log"
(cd "$project" && exec "$BIN" ui --port 0) 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
bench_wait "mlbuild ui" 30 "$server" "$log" grep -q '^Listening on ' "$log"
url=$(sed -n 's/^Listening on //p' "$log")

first="v20260101.$(printf %06d 1)-$(printf %06x 1)"
last="v20260101.$(printf %06d "$VERSIONS")-$(printf %06x "$VERSIONS")"
pages=("/" "/runs" "/runs?page=$((RUNS / 50))" "/runs/$RUNS" "/models" "/models?sort=auc" "/models/$last"
  "/compare?a=$first&b=$last" "/tags" "/data" "/steps/execute" "/api/runs" "/api/versions" "/api/job")
printf '%-44s %10s %10s\n' page "median ms" bytes
for page in "${pages[@]}"; do
  times=()
  for _ in $(seq 1 "$REPEAT"); do
    times+=("$(curl -s -o /dev/null -w '%{time_starttransfer}' "$url$page")")
  done
  size=$(curl -s -o /dev/null -w '%{size_download}' "$url$page")
  median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] * 1000}')
  printf '%-44s %10s %10s\n' "$page" "$median" "$size"
done
html=$(curl -s -o /dev/null -w '%{size_download}' "$url/")
css=$(curl -s -o /dev/null -w '%{size_download}' "$url/assets/ui.css")
js=$(curl -s -o /dev/null -w '%{size_download}' "$url/assets/ui.js")
icon=$(curl -s -o /dev/null -w '%{size_download}' "$url/assets/icon.svg")
echo "pipeline page weight: $((html + css + js + icon)) bytes (HTML $html + CSS $css + script $js + icon $icon)"
