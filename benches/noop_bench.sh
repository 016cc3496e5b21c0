#!/usr/bin/env bash
# The no-op floor (issue 16 point 5): a fully cached `mlbuild run` on the demo, beside
# `mlbuild status` and the process floor (`mlbuild --version`), and optionally beside an older
# binary on the same project, interleaved in one run. docs/performance.md, "The no-op floor".
#
#   bash benches/noop_bench.sh                       # RUNS=60 WORK=/tmp/mlbuild-noop
#   NOOP_BEFORE=/path/to/old/mlbuild bash benches/noop_bench.sh
#
# The demo (ml.toml, data/prostate.csv) is copied into WORK and run once for real (H2O, about
# 15 s); every measured `run` is then checked to be a no-op (8 steps cached, no H2O). Each round
# runs every arm once, in a rotating order; medians and the middle half are printed. `run`
# records a run each time: RESET=1 starts from a fresh copy. BENCH_NO_BUILD=1 skips the build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-noop}")
RUNS=${RUNS:-60}
BIN=$(bench_release "$ROOT")
if [ -n "${NOOP_BEFORE:-}" ]; then
    [ -x "$NOOP_BEFORE" ] || bench_die "NOOP_BEFORE=$NOOP_BEFORE is not an executable"
fi

project=$WORK/demo
if [ -n "${RESET:-}" ] || [ ! -f "$project/ml.lock" ]; then
    rm -rf "$project"
    mkdir -p "$project/data"
    cp "$ROOT/ml.toml" "$project/"
    cp "$ROOT/data/prostate.csv" "$project/data/"
    (cd "$project" && "$BIN" run) || bench_die "the demo's first run failed"
fi
# The older binary runs on a copy of its own (each keeps its state database as it leaves it).
other=$WORK/demo-before
rm -rf "$other"
[ -n "${NOOP_BEFORE:-}" ] && cp -a "$project" "$other"
# Every measured run must be a no-op, for each binary.
check_noop() {
    local events cached
    events=$(cd "$2" && "$1" run --json) || bench_die "$1 run failed"
    cached=$(printf '%s\n' "$events" | grep -c '"status": *"cached"' || true)
    grep -q '"h2o_started": *false' <<<"$events" || bench_die "$1 run started H2O: not a no-op"
    [ "$cached" -ge 8 ] || bench_die "$1 run: $cached steps cached, not 8: not a no-op"
}
check_noop "$BIN" "$project"
[ -n "${NOOP_BEFORE:-}" ] && check_noop "$NOOP_BEFORE" "$other"

python3 - "$project" "$RUNS" "$BIN" "${NOOP_BEFORE:-}" "$other" <<'PY'
import os, statistics, subprocess, sys, time
project, runs, after, before, other = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
arms = [("--version", [after, "--version"], project), ("status", [after, "status"], project),
        ("run", [after, "run"], project)]
if before:
    arms.append(("run (before)", [before, "run"], other))
times = {name: [] for name, _, _ in arms}
for r in range(runs + 3):
    k = r % len(arms)
    for name, cmd, cwd in arms[k:] + arms[:k]:
        t0 = time.perf_counter_ns()
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = (time.perf_counter_ns() - t0) / 1e6
        if p.returncode != 0:
            sys.exit("error: %s exited %d" % (" ".join(cmd), p.returncode))
        if r >= 3:  # warm-up rounds are not counted
            times[name].append(dt)
print("%-14s %9s %9s %9s   (ms, %d rounds, load %s)" % ("arm", "median", "q1", "q3", runs, os.getloadavg()[0]))
for name, _, _ in arms:
    q = statistics.quantiles(times[name], n=4)
    print("%-14s %9.2f %9.2f %9.2f" % (name, statistics.median(times[name]), q[0], q[2]))
m = {n: statistics.median(v) for n, v in times.items()}
print("run - --version: %.2f ms" % (m["run"] - m["--version"]))
if before:
    print("run after / before: %.2f" % (m["run"] / m["run (before)"]))
PY
