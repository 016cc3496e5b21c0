#!/usr/bin/env bash
# Many-file sources (issue 16 point 4): a glob source of 10,000 small CSV files and one of 100
# files of 10 MB, beside DVC tracking the same directory, in one run. docs/performance.md,
# "Many-file sources".
#
#   bash benches/many_files.sh        # SETS="small big" RUNS=15 WORK=/tmp/mlbuild-many
#
# Per set, WORK/SET holds `parts/` (the files: data/prostate.csv's rows, shuffled per file), an
# mlbuild project whose `[locate] path` is `parts/*.csv` (GLM only, a 5 % sample for the 1 GB
# set) and a DVC project with `dvc add parts` and one stage depending on `parts`. After one
# real run of each, it times, alternating the tools: the no-op (`mlbuild run`, `dvc status`,
# `dvc repro`), then a touch of one file (new mtime, same bytes) and the run after it. With
# strace present, the no-op and the run after the touch are traced for opens of `parts/`:
# a no-op must open none, the run after a touch exactly the touched file. DVC comes from
# BENCH_DIR's venv (benches/dvc_compare.sh makes it) or PATH; NO_DVC=1 measures mlbuild alone.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-many}")
RUNS=${RUNS:-15}
SETS=${SETS:-small big}
BIN=$(bench_release "$ROOT")
DVC=
if [ -z "${NO_DVC:-}" ]; then
    for d in "${BENCH_DIR:-/tmp/mlbuild-bench}/venv/bin/dvc" "$(command -v dvc || true)"; do
        [ -n "$d" ] && [ -x "$d" ] && DVC=$d && break
    done
    [ -n "$DVC" ] || bench_die "no dvc (run benches/dvc_compare.sh once to make its venv, or NO_DVC=1)"
fi

# make_parts DIR FILES BYTES: FILES csv files of about BYTES each, every one with the header.
make_parts() {
    python3 - "$ROOT/data/prostate.csv" "$1" "$2" "$3" <<'PY'
import os, random, sys
src, out, files, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines = open(src).read().splitlines()
header, rows = lines[0], lines[1:]
os.makedirs(out, exist_ok=True)
rng = random.Random(7)
for i in range(files):
    body, n = [], len(header) + 1
    while n < size:
        r = rows[rng.randrange(len(rows))]
        body.append(r)
        n += len(r) + 1
    with open(os.path.join(out, "part-%05d.csv" % i), "w") as f:
        f.write(header + "\n" + "\n".join(body) + "\n")
PY
}

# setup SET FILES BYTES SAMPLE
setup() {
    local dir=$WORK/$1
    if [ ! -f "$dir/.made" ]; then
        rm -rf "$dir"
        mkdir -p "$dir/ml" "$dir/dvc"
        make_parts "$dir/ml/parts" "$2" "$3"
        cp -a "$dir/ml/parts" "$dir/dvc/parts"
        cat >"$dir/ml/ml.toml" <<TOML
[project]
name = "many-$1"
[define]
target = "CAPSULE"
problem = "binary"
metric = "auc"
threshold = 0.5
ignore = ["ID"]
[locate]
path = "parts/*.csv"
[prepare]
types = { RACE = "enum", CAPSULE = "enum" }
holdout = 0.2
seed = 42
sample = $4
[execute]
max_models = 1
nfolds = 0
seed = 42
include_algos = ["GLM"]
[conclude]
promote = ["staging"]
TOML
        touch "$dir/.made"
    fi
    log "$1: first mlbuild run (H2O)"
    (cd "$dir/ml" && "$BIN" run >"$dir/first-run.log" 2>&1) || { tail -20 "$dir/first-run.log" >&2; bench_die "$1: the first run failed"; }
    # A file modified within 2 s of its hash is hashed again next time (racy mtimes, see
    # src/store/stat.rs): wait that out and run once, so no measured no-op includes a hash.
    sleep 2.2
    (cd "$dir/ml" && "$BIN" run >/dev/null 2>&1) || bench_die "$1: the second run failed"
    if [ -n "$DVC" ]; then
        (
            cd "$dir/dvc"
            if [ ! -d .dvc ]; then
                git init -q . && "$DVC" init -q
                "$DVC" add -q parts
                "$DVC" stage add -q -n count -d parts -o count.txt "ls parts | wc -l > count.txt"
            fi
            "$DVC" repro -q
        ) >"$dir/dvc-setup.log" 2>&1 || { tail -20 "$dir/dvc-setup.log" >&2; bench_die "$1: dvc setup failed"; }
    fi
}

log() { printf '== %s\n' "$*" >&2; }

# opens COMMAND…: how many files under parts/ COMMAND opens (strace), or "-".
opens() {
    command -v strace >/dev/null || { echo -; return; }
    strace -f -qq -e trace=openat -o "$WORK/trace" "$@" >/dev/null 2>&1 || true
    grep -c 'parts/part-[0-9]*\.csv"' "$WORK/trace" || true
}

summary=$WORK/summary.txt
: >"$summary"
for set in $SETS; do
    case $set in
        small) setup small 10000 300 1 ;;
        big) setup big 100 10485760 0.05 ;;
        *) bench_die "unknown set $set (small, big)" ;;
    esac
    dir=$WORK/$set
    victim=parts/part-00042.csv
    [ -f "$dir/ml/$victim" ] || victim=parts/part-00007.csv
    noop_opens=$(cd "$dir/ml" && opens "$BIN" run)
    python3 - "$dir" "$RUNS" "$BIN" "$DVC" "$victim" "$set" "$noop_opens" >>"$summary" <<'PY'
import os, re, statistics, subprocess, sys, time
dir, runs, mlbuild, dvc, victim, name, noop_opens = sys.argv[1:8]
runs = int(runs)
def timed(cmd, cwd):
    t0 = time.perf_counter_ns()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = (time.perf_counter_ns() - t0) / 1e6
    if p.returncode != 0:
        sys.exit("error: %s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout[-2000:]))
    return dt, p.stdout
ml, dv = os.path.join(dir, "ml"), os.path.join(dir, "dvc")
arms = [("mlbuild run (no-op)", [mlbuild, "run"], ml)]
if dvc:
    arms += [("dvc status (no-op)", [dvc, "status"], dv), ("dvc repro (no-op)", [dvc, "repro"], dv)]
times = {a[0]: [] for a in arms}
for r in range(runs + 1):
    k = r % len(arms)
    for label, cmd, cwd in arms[k:] + arms[:k]:
        dt, out = timed(cmd, cwd)
        if label.startswith("mlbuild") and re.search(r"(?m)^\s*ran ", out):
            sys.exit("error: the mlbuild no-op ran a step:\n" + out)
        if r:
            times[label].append(dt)
# A touch: same bytes, new mtime; then the run after it (each round touches again).
touch = {"mlbuild run after touching one file": ([mlbuild, "run"], ml)}
if dvc:
    touch["dvc status after touching one file"] = ([dvc, "status"], dv)
    touch["dvc repro after touching one file"] = ([dvc, "repro"], dv)
for label in touch:
    times[label] = []
for r in range(max(3, runs // 3)):
    for label, (cmd, cwd) in touch.items():
        os.utime(os.path.join(cwd, victim))
        dt, _ = timed(cmd, cwd)
        times[label].append(dt)
print("## %s (%s)" % (name, dir))
print("%-40s %10s %10s %10s" % ("measure", "median ms", "q1", "q3"))
for label, v in times.items():
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0], v[0], v[0]]
    print("%-40s %10.1f %10.1f %10.1f" % (label, statistics.median(v), q[0], q[2]))
print("files under parts/ a no-op mlbuild run opens: %s" % noop_opens)
PY
    touch "$dir/ml/$victim"
    after_touch=$(cd "$dir/ml" && opens "$BIN" run)
    echo "files under parts/ the run after touching $victim opens: $after_touch" >>"$summary"
    echo >>"$summary"
done
cat "$summary"
