#!/usr/bin/env bash
# The data path (locate + prepare + confirm) beside H2O's own import + parse of the same file.
#
#   bash benches/data_path.sh
#
# For each size, in one run:
#   (a) H2O 3.46.0.11: ImportFiles + ParseSetup + Parse of the CSV, timed from the import request
#       to the parse job's DONE (benches/h2o_parse.py), BENCH_RUNS rounds after one unmeasured
#       warm-up parse of each file (a warm JVM, as issue 16 measures it), on one node started
#       here (`java -Xmx4g -jar h2o.jar …`) and shut down before (b);
#   (b) `mlbuild run confirm --json` on a fresh project (cold: the source hashed and profiled,
#       snapshot, split + transform, gate; no H2O, checked: `h2o_started: false`), under
#       /usr/bin/time -v for wall time and max RSS, BENCH_RUNS rounds, the project (and so its
#       cache) recreated before each;
#   (c) the ratio of the medians.
#
# Everything generated lives under $BENCH_DIR (default /tmp/mlbuild-bench), never in the repo:
#   data/raw-*-seed1.csv      the CSV files (benches/gen_data.py; shared with dvc_compare.sh)
#   data/raw-*-seed1-parts*/  the same split into 100 files (SIZE-parts) or N (SIZE-partsN)
#   bin/mlbuild               the binary measured (copied, so a rebuild cannot swap it mid-run)
#   datapath/SIZE             the project of the last round
#   results/datapath/         h2o-*.json, time-*.txt, events-*.jsonl, env.txt, summary.md
#
# Knobs:
#   BENCH_DIR           work dir (default /tmp/mlbuild-bench)
#   BENCH_SIZES         "1m 1gb" (default); 1m = ~1,000,000 rows (105 MB), 1gb = 9,489,962 rows;
#                       also 10mb, 100mb; and SIZE-parts (1m-parts, 1gb-parts): the same rows
#                       split into 100 files of consecutive rows, each with the header, read as
#                       a glob (`path = "data/parts/*.csv"`: converted to canonical CSV) and by
#                       H2O as a directory; SIZE-partsN splits into N files instead (1gb-parts10:
#                       ten files of ~100 MB, each too large to convert in memory, so streamed)
#                       H2O as a directory (ImportFiles of the folder: one frame of its files)
#   BENCH_RUNS          rounds per measure (default 3)
#   BENCH_NO_BUILD=1    use the existing release binary (under CARGO_TARGET_DIR, else target/) without building
#   BENCH_NO_H2O=1      skip (a) (mlbuild only; the ratio column is left empty)
#   H2O_JAR             default ~/.cache/mlbuild/h2o/3.46.0.11/h2o.jar
#   H2O_PORT            default 54720 (uses PORT and PORT+1)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/mlbuild-bench}
SIZES=${BENCH_SIZES:-1m 1gb}
RUNS=${BENCH_RUNS:-3}
SEED=1
H2O_JAR=${H2O_JAR:-$HOME/.cache/mlbuild/h2o/3.46.0.11/h2o.jar}
H2O_PORT=${H2O_PORT:-54720}

log() { printf '[data_path %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$BENCH_DIR"/{data,bin,datapath,results/datapath}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RESULTS=$BENCH_DIR/results/datapath
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"

# ---------------------------------------------------------------- binary
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --bin mlbuild)
fi
BIN=$(bench_bin "$ROOT")
[ -x "$BIN" ] || die "no $BIN (build it, or set CARGO_TARGET_DIR)"
cp -f "$BIN" "$BENCH_DIR/bin/mlbuild.tmp"
mv -f "$BENCH_DIR/bin/mlbuild.tmp" "$BENCH_DIR/bin/mlbuild"
MLBUILD=$BENCH_DIR/bin/mlbuild

# ---------------------------------------------------------------- data
bytes_of() {
    case ${1%-parts*} in
        10mb) echo 10000000 ;; 100mb) echo 100000000 ;; 1gb) echo 1000000000 ;;
        1m) echo 105370000 ;; # gen_data.py writes ~105.37 bytes a row: 1,000,000 rows
        *) die "unknown size $1 (1m, 10mb, 100mb, 1gb)" ;;
    esac
}
# The data of a size: a CSV file, or for SIZE-parts[N] a folder of 100 [N] CSV files.
file_of() {
    case $1 in
        *-parts*) echo "$BENCH_DIR/data/raw-${1%-parts*}-seed$SEED-parts${1##*-parts}" ;;
        *) echo "$BENCH_DIR/data/raw-$1-seed$SEED.csv" ;;
    esac
}
for size in $SIZES; do
    f=$(file_of "${size%-parts*}")
    if [ ! -f "$f" ]; then
        log "generating $f"
        python3 "$ROOT/benches/gen_data.py" --bytes "$(bytes_of "$size")" --seed "$SEED" --out "$f"
    fi
    parts=$(file_of "$size")
    if [ "$parts" != "$f" ] && [ ! -f "$parts/.complete" ]; then
        n=${size##*-parts}
        n=${n:-100}
        log "splitting $f into $n files in $parts"
        rm -rf "$parts" && mkdir -p "$parts"
        # The first piece starts with the file's header; the others get it prepended.
        split -n "l/$n" -d -a 3 --additional-suffix=.csv "$f" "$parts/body-"
        mv "$parts/body-000.csv" "$parts/part-000.csv"
        for body in "$parts"/body-*.csv; do
            { head -1 "$f"; cat "$body"; } >"${body/body-/part-}" && rm "$body"
        done
        touch "$parts/.complete"
    fi
done
# Rows of a size's data (a folder: its files', less one header each).
data_rows() {
    local f n
    f=$(file_of "$1")
    if [ -d "$f" ]; then
        n=$(cat "$f"/*.csv | wc -l)
        echo $((n - $(find "$f" -name '*.csv' | wc -l)))
    else
        echo $(($(wc -l <"$f") - 1))
    fi
}
data_cat() { if [ -d "$1" ]; then cat "$1"/*.csv; else cat "$1"; fi; }

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "java: $(java -version 2>&1 | head -1)"
    echo "h2o: $H2O_JAR"
    echo "mlbuild: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src || echo ' + uncommitted changes')"
    echo "rustc: $(rustc --version)"
    echo "filesystem: $(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}')"
    echo "free page reporting: $(bench_page_reporting) (benches/host_pages.sh)"
    for size in $SIZES; do
        echo "data $size: $(data_cat "$(file_of "$size")" | wc -c) bytes, $(data_rows "$size") rows"
    done
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt" >&2
# Warm the page cache: both sides then read from memory.
for size in $SIZES; do data_cat "$(file_of "$size")" >/dev/null; done

# ---------------------------------------------------------------- (a) H2O
# A stale h2o.json from an earlier run must not be compared with this run's mlbuild figures.
rm -f "$RESULTS/h2o.json"
if [ -z "${BENCH_NO_H2O:-}" ]; then
    [ -f "$H2O_JAR" ] || die "no H2O jar at $H2O_JAR (an mlbuild run downloads it)"
    log "starting H2O on port $H2O_PORT"
    h2o_log=$RESULTS/h2o-node.log
    java -Xmx4g -jar "$H2O_JAR" -ip 127.0.0.1 -web_ip 127.0.0.1 -port "$H2O_PORT" -name bench \
        >"$h2o_log" 2>&1 &
    H2O_PID=$!
    trap 'kill $H2O_PID 2>/dev/null || true' EXIT
    bench_wait "H2O" 120 "$H2O_PID" "$h2o_log" \
        sh -c "curl -sf 'http://127.0.0.1:$H2O_PORT/3/Cloud' | grep -q '\"cloud_healthy\":true'"
    files=()
    for size in $SIZES; do files+=("$(file_of "$size")"); done
    python3 "$ROOT/benches/h2o_parse.py" --url "http://127.0.0.1:$H2O_PORT" --runs "$RUNS" \
        --out "$RESULTS/h2o.json" "${files[@]}"
    curl -s -X POST "http://127.0.0.1:$H2O_PORT/3/Shutdown" >/dev/null || true
    for _ in $(seq 100); do kill -0 $H2O_PID 2>/dev/null || break; sleep 0.1; done
    kill $H2O_PID 2>/dev/null || true
    trap - EXIT
fi

# ---------------------------------------------------------------- (b) mlbuild
setup_project() { # DIR DATA
    local d=$1 data=$2 path=data/raw.csv
    rm -rf "$d" && mkdir -p "$d/data"
    if [ -d "$data" ]; then
        path="data/parts/*.csv"
        mkdir "$d/data/parts"
        for part in "$data"/*.csv; do
            ln -f "$part" "$d/data/parts/" 2>/dev/null || cp "$part" "$d/data/parts/"
        done
    else
        ln -f "$data" "$d/data/raw.csv" 2>/dev/null || cp "$data" "$d/data/raw.csv"
    fi
    cat >"$d/ml.toml" <<EOF
# Written by benches/data_path.sh.
[project]
name = "bench"

[define]
target = "label"
problem = "binary"
metric = "auc"

[locate]
path = "$path"

[prepare]
types = { label = "enum" }
holdout = 0.2
seed = 7
impute = { num_0 = "median", num_1 = "mean", cat_0 = "mode" }

[confirm]
min_rows = 100
max_null_fraction = 0.25
EOF
}

for size in $SIZES; do
    data=$(file_of "$size")
    d=$BENCH_DIR/datapath/$size
    for r in $(seq "$RUNS"); do
        setup_project "$d" "$data"
        sync -f "$d" 2>/dev/null || true
        /usr/bin/time -v -o "$RESULTS/time-$size-$r.txt" \
            "$MLBUILD" -C "$d" run confirm --json >"$RESULTS/events-$size-$r.jsonl" \
            2>"$RESULTS/log-$size-$r.txt" || die "mlbuild failed (see $RESULTS/log-$size-$r.txt)"
        grep -q '"h2o_started":false' "$RESULTS/events-$size-$r.jsonl" \
            || die "H2O was started in round $r of $size (see $RESULTS/events-$size-$r.jsonl)"
        log "mlbuild $size round $r: $(grep -E 'Elapsed|Maximum resident' "$RESULTS/time-$size-$r.txt" | sed 's/^\s*//' | tr '\n' ' ')"
    done
done

# ---------------------------------------------------------------- (c) summary
python3 - "$RESULTS" "$RUNS" "$SIZES" "$BENCH_DIR" <<'PY'
import glob, json, os, re, statistics, sys
results, runs, sizes, bench = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
h2o = {}
if os.path.exists(os.path.join(results, "h2o.json")):
    h2o = json.load(open(os.path.join(results, "h2o.json")))

def wall(text):
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))

def rss(text):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024

rows = []
for size in sizes:
    if "-parts" in size:
        base, n = size.split("-parts")
        f = os.path.join(bench, "data", "raw-%s-seed1-parts%s" % (base, n))
        nbytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(f, "*.csv")))
    else:
        f = os.path.join(bench, "data", "raw-%s-seed1.csv" % size)
        nbytes = os.path.getsize(f)
    t = [open(os.path.join(results, "time-%s-%d.txt" % (size, r))).read() for r in range(1, runs + 1)]
    walls, rsss = [wall(x) for x in t], [rss(x) for x in t]
    steps = {}
    for r in range(1, runs + 1):
        for line in open(os.path.join(results, "events-%s-%d.jsonl" % (size, r))):
            e = json.loads(line)
            if e.get("event") == "step" and "duration_ms" in e:
                steps.setdefault(e["step"], []).append(e["duration_ms"] / 1000)
    h = h2o.get(f)
    hm = statistics.median(h["seconds"]) if h else None
    m = statistics.median(walls)
    rows.append((size, nbytes, h, hm, walls, m, rsss, steps))

# Issue 16's goals: at most 0.3 x H2O's warm parse at 1M rows, 0.5 x at 1 GB (none set for
# the parts: "–").
def goal(size):
    return None if "-parts" in size else 0.5 if size == "1gb" else 0.3

out = ["| data | H2O import + parse (median) | mlbuild locate + prepare + confirm (median) | mlbuild ÷ H2O | goal (≤ 0.3; 1 GB ≤ 0.5) | max RSS (median, max) | goal ≤ 256 MB |",
       "|---|---:|---:|---:|:---:|---:|:---:|"]
for size, nbytes, h, hm, walls, m, rsss, steps in rows:
    label = "%s: %s rows, %.0f MB" % (size, "{:,}".format(h["rows"]) if h else "?", nbytes / 1e6)
    ratio = m / hm if hm else None
    out.append("| %s | %s | %.2f s (%s) | %s | %s | %.0f MB (%.0f) | %s |" % (
        label,
        "%.2f s (%s)" % (hm, ", ".join("%.2f" % x for x in h["seconds"])) if h else "–",
        m, ", ".join("%.2f" % x for x in walls),
        "%.3f" % ratio if ratio else "–",
        ("met" if ratio <= goal(size) else "not met") if ratio and goal(size) else "–",
        statistics.median(rsss), max(rsss),
        "met" if max(rsss) <= 256 else "not met"))
out.append("")
out.append("Steps (median seconds, from `--json`): " + "; ".join(
    "%s: %s" % (size, ", ".join("%s %.2f" % (k, statistics.median(v)) for k, v in steps.items()))
    for size, _, _, _, _, _, _, steps in rows))
text = "\n".join(out) + "\n"
open(os.path.join(results, "summary.md"), "w").write(text)
print(text)
PY
