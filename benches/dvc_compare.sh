#!/usr/bin/env bash
# mlbuild vs DVC, side by side in one run (issue #3, point 8). See docs/performance.md.
#
#   bash benches/dvc_compare.sh
#
# Everything generated lives under $BENCH_DIR (default /tmp/mlbuild-bench), never in the repo:
#   venv/               DVC (pip install dvc), made on first use
#   tools/bin/b3sum     cargo install b3sum, when b3sum is not on PATH
#   bin/mlbuild         a copy of the freshly built release binary (immune to rebuilds mid-run)
#   data/raw-*.csv      the generated CSV files (benches/gen_data.py), reused across runs
#   SIZE/dvc, SIZE/mlbuild   the two projects, recreated every run (the cold run is measured);
#                       both have data/raw.csv as a hard link to the same generated file
#   results/            hyperfine JSON per measure, env.txt, summary.md (the tables)
#
# Knobs (environment):
#   BENCH_DIR           work dir (default /tmp/mlbuild-bench)
#   BENCH_SIZES         "100mb 1gb" (any of 10mb 100mb 1gb)
#   BENCH_RUNS          runs of each fast measure (no-op, status, --version), default 20
#   BENCH_SLOW_RUNS     runs of each slow measure (touch, param change), default 7
#   BENCH_HASH_RUNS     rounds of the interleaved hash measures, default 10
#   BENCH_SEED          data seed (default 1)
#   BENCH_SAMPLE_ROWS   rows both pipelines train on (default 20000, the peer's load.sample_rows)
#   BENCH_KEEP_PROJECTS=1   reuse the projects (skip the cold runs) instead of recreating them
#   BENCH_NO_BUILD=1    use the existing release binary (under CARGO_TARGET_DIR, else target/) without building
#   DVC_PEER            the DVC peer pipeline (default ../shared/bench/dvc-peer next to the repo)
#   DVC_VERSION         pin DVC (e.g. 3.67.1) when the venv is created
# Needs: bash, python3 (venv), cargo, Java + the H2O jar for the cold mlbuild run (mlbuild
# provisions the jar itself); hyperfine is used when present (else benches/timeit.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/mlbuild-bench}
SIZES=${BENCH_SIZES:-"100mb 1gb"}
RUNS=${BENCH_RUNS:-20}
SLOW_RUNS=${BENCH_SLOW_RUNS:-7}
HASH_RUNS=${BENCH_HASH_RUNS:-10}
SEED=${BENCH_SEED:-1}
SAMPLE_ROWS=${BENCH_SAMPLE_ROWS:-20000}
PEER=${DVC_PEER:-$ROOT/../shared/bench/dvc-peer}
RESULTS=$BENCH_DIR/results
export DVC_NO_ANALYTICS=1 MLBUILD_NO_PROGRESS=1 NO_COLOR=1
# Each project keeps its store and registry in its own cache/.
unset MLBUILD_CACHE_DIR MLBUILD_STATE_URL

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now_ns() { date +%s%N; }

[ -d "$PEER" ] || die "no DVC peer pipeline at $PEER (set DVC_PEER)"
mkdir -p "$BENCH_DIR"/{data,bin,tools} "$RESULTS"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RESULTS=$BENCH_DIR/results
rm -f "$RESULTS"/*.json "$RESULTS"/*.txt "$RESULTS"/summary.md

# ---------------------------------------------------------------- tools
log "tools"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin mlbuild)
fi
BIN=$(bench_bin "$ROOT")
[ -x "$BIN" ] || die "no $BIN (build it, or set CARGO_TARGET_DIR)"
cp -f "$BIN" "$BENCH_DIR/bin/mlbuild.tmp"
mv -f "$BENCH_DIR/bin/mlbuild.tmp" "$BENCH_DIR/bin/mlbuild"
MLBUILD=$BENCH_DIR/bin/mlbuild

if [ ! -x "$BENCH_DIR/venv/bin/dvc" ]; then
    log "installing DVC into $BENCH_DIR/venv (first run only)"
    python3 -m venv "$BENCH_DIR/venv"
    "$BENCH_DIR/venv/bin/pip" install -q --upgrade pip
    "$BENCH_DIR/venv/bin/pip" install -q "dvc${DVC_VERSION:+==$DVC_VERSION}"
fi
DVC=$BENCH_DIR/venv/bin/dvc
# The peer's stages run `python src/…`: the venv's python, first on PATH.
export PATH="$BENCH_DIR/venv/bin:$PATH"

B3SUM=$(command -v b3sum || true)
if [ -z "$B3SUM" ]; then
    if [ ! -x "$BENCH_DIR/tools/bin/b3sum" ]; then
        log "installing b3sum into $BENCH_DIR/tools (first run only)"
        cargo install --quiet --locked b3sum --root "$BENCH_DIR/tools"
    fi
    B3SUM=$BENCH_DIR/tools/bin/b3sum
fi

HYPERFINE=$(command -v hyperfine || true)
if [ -z "$HYPERFINE" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing hyperfine (apt-get)"
    { apt-get install -y -qq hyperfine || { apt-get update -qq && apt-get install -y -qq hyperfine; }; } \
        >/dev/null 2>&1 || true
    HYPERFINE=$(command -v hyperfine || true)
fi
[ -n "$HYPERFINE" ] || log "hyperfine not found: timing with benches/timeit.py"

# measure ID RUNS WARMUP PREPARE CMD…  (in the current directory; PREPARE "" = none)
measure() {
    local id=$1 runs=$2 warmup=$3 prep=$4
    shift 4
    local out=$RESULTS/$id.json
    if [ -n "$HYPERFINE" ]; then
        local args=(-N --style basic --runs "$runs" --warmup "$warmup" --export-json "$out"
            --command-name "$id")
        [ -z "$prep" ] || args+=(--prepare "$prep")
        "$HYPERFINE" "${args[@]}" "$(printf '%q ' "$@")" >&2
    else
        python3 "$ROOT/benches/timeit.py" --runs "$runs" --warmup "$warmup" --prepare "$prep" \
            --name "$id" --export-json "$out" -- "$@" >&2
    fi
}

# single ID CMD…: time one run (the cold runs), keep its output in results/ID.log
single() {
    local id=$1
    shift
    local t0 t1 rc=0
    t0=$(now_ns)
    "$@" >"$RESULTS/$id.log" 2>&1 || rc=$?
    t1=$(now_ns)
    [ "$rc" = 0 ] || { tail -20 "$RESULTS/$id.log" >&2; die "$id failed (exit $rc): $*"; }
    python3 - "$RESULTS/$id.json" "$id" "$t0" "$t1" <<'EOF'
import json, sys
out, name, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = (t1 - t0) / 1e9
json.dump({"results": [{"command": name, "mean": t, "median": t, "min": t, "max": t, "times": [t]}]},
          open(out, "w"), indent=1)
print("%-40s %.2f s (1 run)" % (name, t), file=sys.stderr)
EOF
}

# ---------------------------------------------------------------- environment
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cores: $(nproc)"
    echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "kernel: $(uname -sr)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "filesystem of BENCH_DIR: $(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}')"
    echo "mlbuild: $("$MLBUILD" --version) (git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes'))"
    echo "dvc: $("$DVC" --version)"
    echo "python: $(python3 --version 2>&1)"
    echo "b3sum: $("$B3SUM" --version)"
    echo "hyperfine: $([ -n "$HYPERFINE" ] && "$HYPERFINE" --version || echo 'absent (timeit.py)')"
    echo "java: $(java -version 2>&1 | head -1)"
    echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt" >&2

# ---------------------------------------------------------------- data
bytes_of() {
    case $1 in
        10mb) echo 10000000 ;; 100mb) echo 100000000 ;; 1gb) echo 1000000000 ;;
        *) die "unknown size $1 (10mb, 100mb, 1gb)" ;;
    esac
}
for size in $SIZES; do
    f=$BENCH_DIR/data/raw-$size-seed$SEED.csv
    if [ ! -f "$f" ]; then
        log "generating $f"
        python3 "$ROOT/benches/gen_data.py" --bytes "$(bytes_of "$size")" --seed "$SEED" --out "$f"
    fi
done

# Does this mlbuild have `[prepare] sample`? (A 3-row probe project, no hashing of big files.)
probe=$BENCH_DIR/probe
rm -rf "$probe" && mkdir -p "$probe"
printf 'a,label\n1,0\n2,1\n3,0\n' >"$probe/d.csv"
printf '[define]\ntarget = "label"\n[locate]\npath = "d.csv"\n[prepare]\nsample = 0.5\n' >"$probe/ml.toml"
if "$MLBUILD" -C "$probe" status >/dev/null 2>"$probe/err"; then
    HAS_SAMPLE=1
elif grep -q sample "$probe/err"; then
    HAS_SAMPLE=
    log "this mlbuild has no [prepare] sample: fallback, the cold run trains GLM on every row"
else
    cat "$probe/err" >&2
    die "probe project failed"
fi
rm -rf "$probe"

# ---------------------------------------------------------------- projects
setup_dvc() { # DIR DATA
    local d=$1 data=$2
    rm -rf "$d" && mkdir -p "$d/data"
    cp -r "$PEER"/. "$d"/ && chmod -R u+w "$d"
    ln -f "$data" "$d/data/raw.csv" 2>/dev/null || cp "$data" "$d/data/raw.csv"
    (cd "$d" && git init -q && "$DVC" init -q && "$DVC" config core.analytics false \
        && "$DVC" config core.check_update false)
}

setup_mlbuild() { # DIR DATA ROWS
    local d=$1 data=$2 rows=$3
    rm -rf "$d" && mkdir -p "$d/data"
    ln -f "$data" "$d/data/raw.csv" 2>/dev/null || cp "$data" "$d/data/raw.csv"
    local sample_line="" memory_line=""
    if [ -n "$HAS_SAMPLE" ]; then
        sample_line=$(python3 -c "print('sample = %.6g' % min(1.0, $SAMPLE_ROWS / $rows))")
    else
        memory_line='memory = "6g"'
    fi
    # The DVC peer's job, in mlbuild's terms: a logistic model (GLM) on a sample, a holdout AUC,
    # a threshold checked late (the counterpart of deploy.min_auc), a tag moved.
    cat >"$d/ml.toml" <<EOF
# Written by benches/dvc_compare.sh: the DVC peer pipeline's job in mlbuild.
[project]
name = "bench"

[define]
target = "label"
problem = "binary"
metric = "auc"
threshold = 0.6

[locate]
path = "data/raw.csv"

[prepare]
types = { label = "enum" }
holdout = 0.2
seed = 7
$sample_line

[confirm]
min_rows = 100
max_null_fraction = 0.25

[execute]
max_models = 1
seed = 1
nfolds = 0
include_algos = ["GLM"]

[modify]
max_attempts = 1

[conclude]
promote = ["staging"]

[h2o]
$memory_line
EOF
}

# settle DVC_DIR ML_DIR: leave both projects up to date, the data file's stat entries trusted
# (mlbuild does not trust a stat-cache entry recorded < 2 s after the file's mtime).
settle() {
    sleep 2.2
    (cd "$1" && "$DVC" repro -q >/dev/null)
    (cd "$2" && "$MLBUILD" -q run >/dev/null && "$MLBUILD" -q run >/dev/null)
}

# ran_steps EVENTS.jsonl: which steps of a `mlbuild run --json` ran, and whether H2O started
ran_steps() {
    python3 - "$1" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [e for e in ev if e.get("event") == "step"]
done = [e for e in ev if e.get("event") == "done"]
ran = [e["step"] for e in steps if e.get("status") != "cached"]
h2o = done[-1].get("h2o_started") if done else None
print("%d steps, %s; h2o_started: %s" % (len(steps), "all cached" if not ran else "ran " + ",".join(ran),
                                          str(h2o).lower()))
EOF
}

for size in $SIZES; do
    data=$BENCH_DIR/data/raw-$size-seed$SEED.csv
    bytes=$(stat -c %s "$data")
    rows=$(($(wc -l <"$data") - 1))
    dd=$BENCH_DIR/$size/dvc
    md=$BENCH_DIR/$size/mlbuild
    cat "$data" >/dev/null # warm the page cache

    log "$size: projects and cold runs"
    if [ -n "${BENCH_KEEP_PROJECTS:-}" ] && [ -f "$dd/dvc.lock" ] && [ -f "$md/ml.lock" ]; then
        log "$size: reusing the projects (BENCH_KEEP_PROJECTS), no cold runs"
    else
        setup_dvc "$dd" "$data"
        setup_mlbuild "$md" "$data" "$rows"
        (cd "$dd" && single "$size.dvc_repro_cold" "$DVC" repro)
        (cd "$md" && single "$size.mlbuild_run_cold" "$MLBUILD" run)
    fi
    settle "$dd" "$md"

    # The no-op must really be one: every step cached, no H2O.
    (cd "$md" && "$MLBUILD" run --json >"$RESULTS/$size.mlbuild_noop_events.jsonl")
    noop_check=$(ran_steps "$RESULTS/$size.mlbuild_noop_events.jsonl")
    log "$size: mlbuild no-op: $noop_check"
    dvc_noop_msg=$(cd "$dd" && "$DVC" repro 2>&1 | awk "/didn't change/ {n++} END {print n+0 \" stages didn't change\"}")

    log "$size: start-up floor"
    (cd "$dd" && measure "$size.dvc_version" "$RUNS" 2 "" "$DVC" --version)
    (cd "$md" && measure "$size.mlbuild_version" "$RUNS" 2 "" "$MLBUILD" --version)

    log "$size: no-op status"
    (cd "$dd" && measure "$size.dvc_status" "$RUNS" 2 "" "$DVC" status)
    (cd "$md" && measure "$size.mlbuild_status" "$RUNS" 2 "" "$MLBUILD" status)

    log "$size: no-op repro / run"
    (cd "$dd" && measure "$size.dvc_repro_noop" "$RUNS" 2 "" "$DVC" repro)
    (cd "$md" && measure "$size.mlbuild_run_noop" "$RUNS" 2 "" "$MLBUILD" run)

    # Interleaved (one run of each per round): the ratio to b3sum is close to 1, and a noisy
    # machine's load drifts over the seconds that sequential blocks would take.
    log "$size: first hash of the data file (interleaved)"
    (cd "$md" && python3 "$ROOT/benches/interleave.py" --runs "$HASH_RUNS" --warmup 1 --json-dir "$RESULTS" \
        --cmd "$size.b3sum_1t" "" "$(printf '%q ' "$B3SUM" --num-threads 1 data/raw.csv)" \
        --cmd "$size.b3sum" "" "$(printf '%q ' "$B3SUM" data/raw.csv)" \
        --cmd "$size.md5sum" "" "md5sum data/raw.csv" \
        --cmd "$size.mlbuild_status_hash" "rm -f cache/v1/stat.json" "$(printf '%q ' "$MLBUILD" status)" \
        --cmd "$size.mlbuild_status_i" "" "$(printf '%q ' "$MLBUILD" status)")

    log "$size: after touch data/raw.csv"
    (cd "$dd" && measure "$size.dvc_repro_touch" "$SLOW_RUNS" 1 "touch data/raw.csv" "$DVC" repro)
    (cd "$md" && measure "$size.mlbuild_run_touch" "$SLOW_RUNS" 1 "touch data/raw.csv" "$MLBUILD" run)
    (cd "$md" && touch data/raw.csv && "$MLBUILD" run --json >"$RESULTS/$size.mlbuild_touch_events.jsonl")
    ml_touch_ran=$(ran_steps "$RESULTS/$size.mlbuild_touch_events.jsonl")
    settle "$dd" "$md"

    log "$size: after one late-stage param changed"
    (cd "$dd" && measure "$size.dvc_repro_param" "$SLOW_RUNS" 1 \
        "python3 set_param.py deploy.min_auc --bump" "$DVC" repro)
    (cd "$md" && measure "$size.mlbuild_run_param" "$SLOW_RUNS" 1 \
        "python3 $ROOT/benches/bump_threshold.py ml.toml" "$MLBUILD" run)
    # What one more of each reran, for the record.
    (cd "$dd" && python3 set_param.py deploy.min_auc --bump && "$DVC" repro >"$RESULTS/$size.dvc_param.log" 2>&1)
    dvc_param_ran=$(sed -n "s/^Running stage '\([a-z]*\)'.*/\1/p" "$RESULTS/$size.dvc_param.log" | paste -sd, -)
    (cd "$md" && python3 "$ROOT/benches/bump_threshold.py" ml.toml \
        && "$MLBUILD" run --json >"$RESULTS/$size.mlbuild_param_events.jsonl")
    ml_param_ran=$(ran_steps "$RESULTS/$size.mlbuild_param_events.jsonl")

    if [ -n "$HAS_SAMPLE" ]; then
        train_sample="prepare.sample = $SAMPLE_ROWS/$rows of the rows"
    else
        train_sample="every row (this mlbuild has no prepare.sample)"
    fi
    python3 - "$RESULTS/$size.meta.json" "$bytes" "$rows" "$train_sample" "$noop_check" \
        "$dvc_noop_msg" "$ml_touch_ran" "$ml_param_ran" "$dvc_param_ran" <<'EOF'
import json, sys
out, b, rows, sample, noop, dvc, touch, param, dvc_param = sys.argv[1:]
json.dump({"bytes": int(b), "rows": int(rows), "mlbuild trains on": sample,
           "mlbuild no-op": noop, "dvc no-op says": dvc.strip(),
           "mlbuild after touch": touch, "mlbuild after threshold change": param,
           "dvc after deploy.min_auc change ran": dvc_param or "nothing"},
          open(out, "w"), indent=1)
EOF
done

# ---------------------------------------------------------------- a quick profile of the no-op
last=${SIZES##* }
if command -v strace >/dev/null; then
    (cd "$BENCH_DIR/$last/mlbuild" && strace -f -c -o "$RESULTS/$last.mlbuild_noop_strace.txt" \
        "$MLBUILD" run >/dev/null 2>&1) || true
    (cd "$BENCH_DIR/$last/mlbuild" && strace -f -tt -e trace=fsync,fdatasync,openat,rename,flock,execve \
        -o "$RESULTS/$last.mlbuild_noop_strace_tt.txt" "$MLBUILD" run >/dev/null 2>&1) || true
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/env.txt"

log "summary"
python3 "$ROOT/benches/report.py" "$RESULTS" $SIZES | tee "$RESULTS/summary.md"
echo >&2
echo "results: $RESULTS (summary.md, env.txt, one JSON per measure)" >&2
