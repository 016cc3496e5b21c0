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
#
# What a long-lived project adds (each binary's project gets the same, before measuring):
#   NOOP_HISTORY=30000   that many finished runs (each with the last run's 8 step rows) in the
#                        state database, as a project run by CI for a year would have
#   NOOP_MOJO_MB=50      a second tag, `big`, on a MOJO of that many MB (the demo's MOJO with a
#                        stored entry of random bytes; `mlbuild deploy --mojo`)
# With NOOP_BEFORE the older binary's project is trained by that binary (an older mlbuild
# refuses a state database of a newer schema), so the first run happens twice.
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

# The demo, trained by binary $1 in directory $2 (kept unless RESET is set).
demo() {
    if [ -n "${RESET:-}" ] || [ ! -f "$2/ml.lock" ]; then
        rm -rf "$2"
        mkdir -p "$2/data"
        cp "$ROOT/ml.toml" "$2/"
        cp "$ROOT/data/prostate.csv" "$2/data/"
        (cd "$2" && "$1" run) || bench_die "the demo's first run ($1) failed"
    fi
}
# Gives project $2 (binary $1) the history and the large MOJO asked for, once.
grow() {
    if [ -n "${NOOP_HISTORY:-}" ] && [ ! -f "$2/.history-$NOOP_HISTORY" ]; then
        python3 - "$2/cache/state.db" "$NOOP_HISTORY" <<'PY' || bench_die "adding history to $2"
import sqlite3, sys
db, n = sqlite3.connect(sys.argv[1]), int(sys.argv[2])
run = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
steps = db.execute("SELECT * FROM step_runs WHERE run = ?", (run[0],)).fetchall()
top = db.execute("SELECT MAX(id) FROM runs").fetchone()[0]
marks = ",".join("?" * len(run))
for i in range(1, n + 1):
    db.execute("INSERT INTO runs VALUES (%s)" % marks, (top + i,) + tuple(run[1:]))
    db.executemany("INSERT INTO step_runs VALUES (%s)" % ",".join("?" * len(steps[0])),
                   [(top + i,) + tuple(s[1:]) for s in steps])
db.execute("UPDATE counters SET value = ? WHERE name = 'run'", (top + n,))
db.commit()
PY
        touch "$2/.history-$NOOP_HISTORY"
    fi
    if [ -n "${NOOP_MOJO_MB:-}" ] && [ ! -f "$2/models/big.zip" ]; then
        python3 - "$2/models/staging.zip" "$2/big.zip" "$NOOP_MOJO_MB" <<'PY' || bench_die "making a large MOJO"
import os, shutil, sys, zipfile
shutil.copy(sys.argv[1], sys.argv[2])
with zipfile.ZipFile(sys.argv[2], "a", compression=zipfile.ZIP_STORED) as z:
    # Outside `experimental/`, so that the canonical digest (docs/registry.md) is a new one.
    z.writestr("padding.bin", os.urandom(int(sys.argv[3]) << 20))
PY
        (cd "$2" && "$1" deploy --mojo big.zip --tag big >/dev/null) || bench_die "deploy of the large MOJO ($1)"
    fi
}
project=$WORK/demo
demo "$BIN" "$project"
grow "$BIN" "$project"
# The older binary runs on a project of its own (each keeps its state database as it leaves it).
other=$WORK/demo-before
if [ -n "${NOOP_BEFORE:-}" ]; then
    demo "$NOOP_BEFORE" "$other"
    grow "$NOOP_BEFORE" "$other"
fi
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
