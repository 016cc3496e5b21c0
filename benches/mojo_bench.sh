#!/usr/bin/env bash
# Native MOJO scoring vs genmodel, and `mlbuild serve` vs a JVM, in one run (issue #7 point 5).
#
#   benches/mojo_bench.sh          # PORT=54730 ROWS=100000 PASSES=7 REPEAT=3 RATE=2000 SECS=20
#   WORK=/tmp/mojobench benches/mojo_bench.sh   # keeps the trained MOJO there; later runs skip H2O
#
# 1. Starts H2O 3.46.0.11 (~/.cache/mlbuild/h2o/3.46.0.11/h2o.jar), trains a 50-tree GBM
#    (max_depth 5, seed 42) on data/prostate.csv over REST, downloads its MOJO and
#    h2o-genmodel.jar, stops the node.
# 2. Scoring, single thread, the same ROWS rows (prostate repeated), encoded once:
#    genmodel `score0` (benches/java/MojoBench.java) vs `Mojo::score_encoded`
#    (benches/mojo_score.rs); best of PASSES passes each, alternated REPEAT times; prints each
#    pair's ratio, the medians, and whether both sides' checksums of p1 agree.
# 3. `mlbuild serve --model gbm50.zip`: start-to-first-answer, RSS; next to it the JVM's
#    `PredictCsv` on a one-row CSV (start, load, score one row, exit) with its max RSS.
# 4. With `oha` on PATH (`cargo install oha`): a fixed-rate load of RATE requests/s for SECS s
#    on loopback (one row per request); p50/p99 latency. Then the same with `?explain=true`
#    (each row's contributions) at EXPLAIN_RATE (1000) requests/s. The generator shares the
#    machine's cores. MOJO_SERVE_ONLY=1 skips step 2.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
jar=${H2O_JAR:-$HOME/.cache/mlbuild/h2o/3.46.0.11/h2o.jar}
port=${PORT:-54730}
rows=${ROWS:-100000}
passes=${PASSES:-7}
rate=${RATE:-2000}
secs=${SECS:-20}
work=$(bench_workdir "${WORK:-$(mktemp -d)}")
url=http://127.0.0.1:$port
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; true; }
trap cleanup EXIT

if [ ! -f "$work/gbm50.zip" ] || [ ! -f "$work/h2o-genmodel.jar" ]; then
  [ -f "$jar" ] || bench_die "no H2O jar at $jar (run mlbuild once, or set H2O_JAR)"
  java -Xmx2g -jar "$jar" -ip 127.0.0.1 -web_ip 127.0.0.1 -port "$port" -name "mojobench$$" \
    -ice_root "$work/ice" >"$work/h2o.log" 2>&1 &
  h2o=$!; pids+=("$h2o")
  bench_wait "H2O" 120 "$h2o" "$work/h2o.log" \
    sh -c "curl -sf '$url/3/Cloud' | grep -q '\"cloud_healthy\":true'"
  python3 - "$url" "$root/data/prostate.csv" "$work" <<'PY'
import json, sys, time, urllib.parse, urllib.request
H2O, data, work = sys.argv[1:]
def call(m, p, form=None):
    d = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(urllib.request.Request(H2O + p, data=d, method=m), timeout=600) as r:
        return r.read()
def jcall(m, p, form=None): return json.loads(call(m, p, form))
def wait(key):
    deadline = time.monotonic() + 600
    while True:
        j = jcall("GET", "/3/Jobs/" + urllib.parse.quote(key, safe=""))["jobs"][0]
        if j["status"] == "DONE": return
        if j["status"] in ("FAILED", "CANCELLED"): sys.exit(f"job {j['status']}: {j.get('exception')}")
        if time.monotonic() > deadline: sys.exit(f"job {key} did not finish in 10 min")
        time.sleep(0.2)
src = jcall("POST", "/3/ImportFiles", {"path": data})["destination_frames"]
s = jcall("POST", "/3/ParseSetup", {"source_frames": json.dumps(src), "check_header": 1})
types = ["Enum" if n in ("CAPSULE", "RACE") else t for n, t in zip(s["column_names"], s["column_types"])]
r = jcall("POST", "/3/Parse", {"source_frames": json.dumps(src), "destination_frame": "pros",
    "parse_type": s["parse_type"], "separator": s["separator"], "check_header": 1,
    "number_columns": s["number_columns"], "chunk_size": s["chunk_size"],
    "column_names": json.dumps(s["column_names"]), "column_types": json.dumps(types), "delete_on_done": "true"})
wait(r["job"]["key"]["name"])
r = jcall("POST", "/3/ModelBuilders/gbm", {"model_id": "gbm50", "training_frame": "pros",
    "response_column": "CAPSULE", "ignored_columns": json.dumps(["ID"]), "ntrees": 50, "max_depth": 5, "seed": 42})
wait(r["job"]["key"]["name"])
open(f"{work}/gbm50.zip", "wb").write(call("GET", "/3/Models/gbm50/mojo"))
open(f"{work}/h2o-genmodel.jar", "wb").write(call("GET", "/3/h2o-genmodel.jar"))
print("trained gbm50 (50 trees, depth 5); MOJO and h2o-genmodel.jar downloaded")
PY
  kill "$h2o"; wait "$h2o" 2>/dev/null || true; pids=()
fi
# MOJO_TRAIN_ONLY=1: stop here (benches/predict_bench.sh needs only the model and the jar).
[ -z "${MOJO_TRAIN_ONLY:-}" ] || exit 0

# The rows: prostate's 380 rows repeated to ROWS.
bench_rows "$root/data/prostate.csv" "$work/rows.csv" "$rows"
head -2 "$work/rows.csv" >"$work/one.csv"

if [ -z "${MOJO_SERVE_ONLY:-}" ]; then
echo "== scoring, one thread, $rows rows, best of $passes passes"
javac -d "$work" -cp "$work/h2o-genmodel.jar" "$root/benches/java/MojoBench.java"
(cd "$root" && cargo bench -q --bench mojo_score --no-run)
# Alternated REPEAT times, so that load from other processes hits both sides alike; each
# pair's ratio is native ÷ genmodel from that pair alone.
: >"$work/scoring.log"
for _ in $(seq 1 "${REPEAT:-3}"); do
  java -cp "$work/h2o-genmodel.jar:$work" MojoBench "$work/gbm50.zip" "$work/rows.csv" "$passes" \
    | tee -a "$work/scoring.log"
  (cd "$root" && cargo bench -q --bench mojo_score -- "$work/gbm50.zip" "$work/rows.csv" "$passes") \
    | tee -a "$work/scoring.log"
done
# Both sides print `= N rows/s` and `[sink S]` (a checksum of p1): pair them up, check the
# checksums agree, and report each pair's ratio and the medians.
bench_pairs "$work/scoring.log" 0
fi

echo "== start-up and memory"
bin=$(bench_release "$root")
sport=$((port + 1))
body='{"ID":1,"AGE":65,"RACE":"1","DPROS":2,"DCAPS":1,"PSA":1.4,"VOL":0,"GLEASON":6}'
t0=$(date +%s%N)
(cd "$work" && exec "$bin" serve --model gbm50.zip --port "$sport" 2>"$work/serve.log") &
serve=$!; pids+=("$serve")
BENCH_POLL=0.001 bench_wait "mlbuild serve" 60 "$serve" "$work/serve.log" \
  curl -sf -o /dev/null -X POST -d "$body" "http://127.0.0.1:$sport/predict"
t1=$(date +%s%N)
echo "mlbuild serve: start to first /predict answer $(( (t1 - t0) / 1000000 )) ms, RSS $(awk '/VmRSS/ {print $2}' /proc/$serve/status) kB"
/usr/bin/time -f "JVM PredictCsv (start, load, score 1 row, exit): %e s wall, max RSS %M kB" \
  java -cp "$work/h2o-genmodel.jar" hex.genmodel.tools.PredictCsv --mojo "$work/gbm50.zip" \
  --input "$work/one.csv" --output "$work/one.out.csv"

echo "== serve latency under a fixed-rate load"
if command -v oha >/dev/null; then
  load() { # RATE PATH
    oha --no-tui -q "$1" -z "${secs}s" -m POST -H 'content-type: application/json' -d "$body" \
      "http://127.0.0.1:$sport$2" | grep -E "Requests/sec|Success rate|50.00%|99.00%|99.90%|Status code|\[200\]|Error"
  }
  echo "-- /predict, $rate requests/s"
  load "$rate" /predict
  # Issue 17: each row explained (TreeSHAP over the 50 trees) at EXPLAIN_RATE requests/s.
  curl -sf -X POST -d "$body" "http://127.0.0.1:$sport/predict?explain=true" | grep -q '"BiasTerm"\|"bias"' \
    || bench_die "/predict?explain=true gave no contributions"
  echo "-- /predict?explain=true, ${EXPLAIN_RATE:-1000} requests/s"
  load "${EXPLAIN_RATE:-1000}" "/predict?explain=true"
else
  echo "oha not found: skipped (cargo install oha)"
fi
