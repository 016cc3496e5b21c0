#!/usr/bin/env bash
# `mlbuild cache push` / `cache pull` of a ~1 GB store against nginx (WebDAV) on loopback,
# beside curl moving the same bytes, in one run (issue 16 point 3). docs/performance.md,
# "The remote cache at 1 GB".
#
#   bash benches/remote_bench.sh        # BYTES=1073741824 PAIRS=3 WORK=/tmp/mlbuild-remote
#
# The store: the demo (ml.toml + data/, trained once on a managed H2O node) plus a `[[steps]]`
# step after conclude that writes BYTES of random data — one big blob among the demo's small
# ones, every one named by ml.lock. Each pair, in alternating order: mlbuild pushes the store
# to an empty server and curl PUTs the same blobs (one request each, sequentially) to another
# empty folder; then mlbuild pulls it into an emptied local store and curl GETs the same blobs.
# Wall time and max RSS from /usr/bin/time. Needs nginx (Debian's, with its dav module).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-remote}")
BYTES=${BYTES:-1073741824}
PAIRS=${PAIRS:-3}
PORT=${PORT:-54790}
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || bench_die "no nginx at $NGINX (apt-get install nginx)"
[ -x /usr/bin/time ] || bench_die "/usr/bin/time is missing (apt-get install time)"

BIN=$(bench_release "$ROOT")

project=$WORK/project
if [ ! -f "$project/ml.lock" ] || ! grep -q '"big"' "$project/ml.lock"; then
    rm -rf "$project" && mkdir -p "$project"
    cp "$ROOT/ml.toml" "$project/" && cp -r "$ROOT/data" "$project/"
    cat >>"$project/ml.toml" <<TOML

[[steps]]
name = "big"
after = "conclude"
run = ["sh", "-c", "head -c $BYTES /dev/urandom > big.bin"]
outputs = { big = "big.bin" }
TOML
    (cd "$project" && "$BIN" run) >"$WORK/run.log" 2>&1 || { tail -20 "$WORK/run.log" >&2; bench_die "mlbuild run failed"; }
fi

# nginx: one process serving WORK/nginx/docroot with WebDAV PUT.
ng=$WORK/nginx
rm -rf "$ng" && mkdir -p "$ng/docroot"
cat >"$ng/nginx.conf" <<CONF
master_process off;
daemon off;
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    client_max_body_size 0;
    sendfile on;
    server {
        listen 127.0.0.1:$PORT;
        root $ng/docroot;
        location / { dav_methods PUT; create_full_put_path on; }
    }
}
CONF
"$NGINX" -c "$ng/nginx.conf" -p "$ng" &
nginx_pid=$!
trap 'kill $nginx_pid 2>/dev/null || true' EXIT
bench_wait "nginx" 20 "$nginx_pid" "$ng/error.log" curl -s -o /dev/null "http://127.0.0.1:$PORT/"
url=http://127.0.0.1:$PORT

# The blobs ml.lock's entries name (what push uploads), with their sizes.
blobs=$(python3 - "$project" <<'PY'
import json, os, sys
p = sys.argv[1]
lock = json.load(open(os.path.join(p, "ml.lock")))
seen = set()
for s in lock["steps"]:
    entry = json.load(open(os.path.join(p, "cache/v1/ac", s["key"] + ".json")))
    for d in entry["outputs"].values():
        if d not in seen:
            seen.add(d)
            print(d)
PY
)
total=0
for d in $blobs; do total=$((total + $(stat -c %s "$project/cache/v1/cas/${d:0:2}/$d"))); done
echo "== $(echo "$blobs" | wc -l) blobs, $total bytes; nginx on loopback; $(nproc) cores; $PAIRS pairs"

timed() { /usr/bin/time -o "$WORK/time" -f "%e %M" "$@" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; bench_die "$1 failed"; }; cat "$WORK/time"; }
mlbuild_push() { rm -rf "$ng/docroot/m" && mkdir -p "$ng/docroot/m"; (cd "$project" && MLBUILD_REMOTE_CACHE=$url/m timed "$BIN" cache push); }
curl_push() {
    rm -rf "$ng/docroot/c" && mkdir -p "$ng/docroot/c"
    local list=$WORK/curl-put.sh
    : >"$list"
    for d in $blobs; do echo "curl -sf -T '$project/cache/v1/cas/${d:0:2}/$d' '$url/c/cas/$d'" >>"$list"; done
    timed sh "$list"
}
# Pull: the local store's entries and blobs moved aside, restored afterwards.
mlbuild_pull() {
    local aside=$WORK/aside
    rm -rf "$aside" && mkdir -p "$aside"
    mv "$project/cache/v1/ac" "$project/cache/v1/cas" "$aside/"
    local r
    r=$(cd "$project" && MLBUILD_REMOTE_CACHE=$url/m timed "$BIN" cache pull)
    rm -rf "$project/cache/v1/ac" "$project/cache/v1/cas"
    mv "$aside/ac" "$aside/cas" "$project/cache/v1/"
    echo "$r"
}
curl_pull() {
    rm -rf "$WORK/got" && mkdir -p "$WORK/got"
    local list=$WORK/curl-get.sh
    : >"$list"
    for d in $blobs; do echo "curl -sf -o '$WORK/got/$d' '$url/m/cas/$d'" >>"$list"; done
    timed sh "$list"
}

results=""
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then order="mlbuild curl"; else order="curl mlbuild"; fi
    for s in $order; do results+="push $s $(${s}_push)
"; done
    for s in $order; do results+="pull $s $(${s}_pull)
"; done
    echo "pair $i done"
done
rm -rf "$WORK/got" "$WORK/aside"

python3 - "$total" <<PY
import statistics, sys
total = int(sys.argv[1])
rows = [r.split() for r in """$results""".strip().splitlines()]
for op in ("push", "pull"):
    t = {s: [float(r[2]) for r in rows if r[0] == op and r[1] == s] for s in ("mlbuild", "curl")}
    rss = max(int(r[3]) for r in rows if r[0] == op and r[1] == "mlbuild")
    ratios = [c / m for m, c in zip(t["mlbuild"], t["curl"])]
    mb = total / 1e6
    print(f"{op}: mlbuild {statistics.median(t['mlbuild']):.2f} s ({mb / statistics.median(t['mlbuild']):.0f} MB/s, max RSS {rss / 1024:.0f} MB), "
          f"curl {statistics.median(t['curl']):.2f} s ({mb / statistics.median(t['curl']):.0f} MB/s); "
          f"mlbuild throughput / curl's: median of pair ratios {statistics.median(ratios):.2f}")
PY
