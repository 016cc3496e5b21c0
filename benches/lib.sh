# Shared by the bench scripts (source it): the binary under CARGO_TARGET_DIR, a work folder
# that exists, and waits that are bounded and fail with a message when the process waited for
# dies. docs/performance.md ("Running the benchmarks").

# bench_die MESSAGE…: prints `error: MESSAGE` and exits 1.
bench_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# bench_bin ROOT: the release binary cargo builds for ROOT, honouring CARGO_TARGET_DIR (a
# relative one is relative to ROOT, where the scripts run cargo).
bench_bin() {
    local dir=${CARGO_TARGET_DIR:-$1/target}
    case $dir in /*) ;; *) dir=$1/$dir ;; esac
    printf '%s/release/mlbuild\n' "$dir"
}

# bench_release ROOT: builds the release binary (unless BENCH_NO_BUILD is set) and prints its
# path (bench_bin); fails when there is none.
bench_release() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        (cd "$1" && cargo build --release --bin mlbuild >&2) || bench_die "cargo build --release failed"
    fi
    local bin
    bin=$(bench_bin "$1")
    [ -x "$bin" ] || bench_die "no $bin (build it, or set CARGO_TARGET_DIR)"
    printf '%s\n' "$bin"
}

# bench_workdir DIR: creates DIR (and its parents) and prints its absolute path.
bench_workdir() {
    mkdir -p "$1" || bench_die "cannot create the work folder $1"
    (cd "$1" && pwd)
}

# bench_rows SOURCE OUT N: writes OUT, SOURCE's header then its rows repeated to N rows.
bench_rows() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
with open(sys.argv[2], "w") as f:
    f.write(lines[0] + "\n")
    body = lines[1:]
    for i in range(int(sys.argv[3])):
        f.write(body[i % len(body)] + "\n")
PY
}

# bench_alive PID: whether PID runs (a child that exited but was not reaped yet is a zombie,
# which `kill -0` still reports as alive).
bench_alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# bench_wait WHAT SECONDS PID LOG COMMAND…: runs COMMAND (quietly) until it succeeds. Fails
# with a message — and LOG's last lines, when LOG names a file — when PID dies first or when
# SECONDS pass. Polls every BENCH_POLL seconds (default 0.05).
bench_wait() {
    local what=$1 secs=$2 pid=$3 log=$4
    shift 4
    local deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        if ! bench_alive "$pid"; then
            [ -n "$log" ] && [ -f "$log" ] && tail -n 20 "$log" >&2
            bench_die "$what: the process it waits for (pid $pid) exited before it was ready${log:+ (log: $log)}"
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            [ -n "$log" ] && [ -f "$log" ] && tail -n 20 "$log" >&2
            bench_die "$what: not ready after ${secs} s${log:+ (log: $log)}"
        fi
        sleep "${BENCH_POLL:-0.05}"
    done
}

# bench_pairs LOG TOLERANCE [NOTE]: LOG holds alternating `genmodel … = N rows/s … [sink S]`
# and `native … = N rows/s … [sink S]` lines; prints each pair's native ÷ genmodel ratio and the
# medians (NOTE after them), and fails when a pair's checksums differ: as text when TOLERANCE is
# 0, else by more than TOLERANCE × max(1, |genmodel's|).
bench_pairs() {
    awk -v tol="$2" -v note="${3:-}" '
      { for (i = 1; i < NF; i++) if ($(i + 1) == "rows/s") rate = $i
        sink = $NF; sub(/]$/, "", sink) }
      /^genmodel/ { java = rate; jsink = sink }
      /^native/ {
        n++; r[n] = rate / java; nat[n] = rate; jv[n] = java
        if (tol == 0) { if (sink != jsink) bad = bad " " n }
        else {
          d = sink - jsink; if (d < 0) d = -d; s = jsink < 0 ? -jsink : jsink
          if (d > tol * (s > 1 ? s : 1)) bad = bad " " n
        }
        printf "pair %d: native %.0f rows/s, genmodel %.0f rows/s: %.2fx\n", n, rate, java, r[n]
      }
      function median(a, k,   i, j, t, b) {
        for (i = 1; i <= k; i++) b[i] = a[i]
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
        return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
      }
      END {
        if (n == 0) exit 1
        printf "median of %d pairs: native %.0f rows/s, genmodel %.0f rows/s, ratio %.2fx %s\n", n, median(nat, n), median(jv, n), median(r, n), note
        if (bad != "") { print "checksums differ in pair(s)" bad; exit 1 }
        print "checksums agree"
      }' "$1"
}

# bench_page_reporting: whether this machine's virtio balloon reports free pages to the host
# (`yes`, `no`, or `no balloon`). When it does, memory freed a few seconds ago comes back only
# through the host, and a run that writes GBs pays for each page (benches/host_pages.sh).
bench_page_reporting() {
    local f found="no balloon"
    for f in /sys/bus/virtio/drivers/virtio_balloon/*/features; do
        [ -r "$f" ] || continue
        # Feature bit 5: VIRTIO_BALLOON_F_REPORTING.
        if [ "$(cut -c6 "$f")" = 1 ]; then found=yes; else found=no; fi
    done
    printf '%s\n' "$found"
}
