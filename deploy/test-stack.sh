#!/usr/bin/env bash
# Builds the stack's images, brings it up, runs the demo against it and tears it down
# (docs/deploy.md). Run as root on a Debian 12 machine:
#
#   bash deploy/test-stack.sh
#
# What it checks: the demo trains on the 2-node H2O cluster (declared `nodes = 2`, data handed
# over through the exchange directory), its state is in the stack's PostgreSQL, its artifacts
# are pushed to the stack's cache, `serve` answers on the served tag and follows it when a
# second run moves it, and `ui` answers with its token.
#
# Knobs: MLBUILD_STACK_DIR (default /srv/mlbuild-stack: exchange/, project/, config.toml, logs),
# MLBUILD_STACK_KEEP=1 (leave the stack running), CARGO_TARGET_DIR (where the release binary is).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$ROOT/deploy
export MLBUILD_STACK_DIR=${MLBUILD_STACK_DIR:-/srv/mlbuild-stack}
export MLBUILD_STACK_CACHE_TOKEN=${MLBUILD_STACK_CACHE_TOKEN:-stack-cache-token}
export MLBUILD_STACK_UI_TOKEN=${MLBUILD_STACK_UI_TOKEN:-stack-ui-token}
export MLBUILD_STACK_SERVE_TOKEN=${MLBUILD_STACK_SERVE_TOKEN:-stack-serve-token}
export MLBUILD_STACK_DB_PASSWORD=${MLBUILD_STACK_DB_PASSWORD:-stack-db-password}
PROJECT=$MLBUILD_STACK_DIR/project
COMPOSE=(docker-compose -p mlbuild-stack -f "$DEPLOY/docker-compose.yml")

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"

# ------------------------------------------------------------------ tools and the engine
need=()
command -v docker > /dev/null || need+=(docker.io)
command -v docker-compose > /dev/null || need+=(docker-compose)
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v curl > /dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
fi
if ! docker info > /dev/null 2>&1; then
    log "starting dockerd (log: /var/log/mlbuild-dockerd.log)"
    nohup dockerd > /var/log/mlbuild-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info > /dev/null 2>&1 && break; sleep 1; done
    docker info > /dev/null 2>&1 || { tail -20 /var/log/mlbuild-dockerd.log >&2; die "dockerd did not start"; }
fi

# ------------------------------------------------------------------ images
# No registry is reachable: the Debian 12 base is made here, once, from Debian's mirror.
if ! docker image inspect mlbuild/debian12:local > /dev/null 2>&1; then
    log "making the Debian 12 base image (debootstrap, once)"
    rootfs=$(mktemp -d /var/tmp/mlbuild-rootfs.XXXXXX)
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian > /dev/null \
        || die "debootstrap failed"
    tar -C "$rootfs" -c . | docker import - mlbuild/debian12:local > /dev/null
    rm -rf "$rootfs"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building mlbuild (release)"
(cd "$ROOT" && cargo build --release --bin mlbuild -q)
MLBUILD=$TARGET_DIR/release/mlbuild
cp "$MLBUILD" "$DEPLOY/mlbuild/mlbuild"
JAR=${XDG_CACHE_HOME:-$HOME/.cache}/mlbuild/h2o/3.46.0.11/h2o.jar
if [ ! -f "$JAR" ]; then
    log "provisioning the pinned H2O jar"
    "$MLBUILD" h2o start > /dev/null && "$MLBUILD" h2o stop > /dev/null
fi
cp "$JAR" "$DEPLOY/h2o/h2o.jar"
log "building the images"
"${COMPOSE[@]}" build -q

# ------------------------------------------------------------------ up
teardown() {
    if [ "${MLBUILD_STACK_KEEP:-}" = 1 ]; then
        log "left running (MLBUILD_STACK_KEEP=1); stop it with: ${COMPOSE[*]} down -v"
        return
    fi
    log "tearing down"
    "${COMPOSE[@]}" logs --no-color > "$MLBUILD_STACK_DIR/compose.log" 2>&1 || true
    "${COMPOSE[@]}" down -v > /dev/null 2>&1 || true
}
trap teardown EXIT
rm -rf "$PROJECT" "$MLBUILD_STACK_DIR/exchange"
mkdir -p "$PROJECT" "$MLBUILD_STACK_DIR/exchange"
log "starting H2O (2 nodes), PostgreSQL and the cache"
"${COMPOSE[@]}" up -d h2o-1 h2o-2 postgres cache
healthy() {
    local id
    id=$("${COMPOSE[@]}" ps -q "$1")
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ]
}
for svc in h2o-1 h2o-2 postgres cache; do
    for _ in $(seq 1 120); do healthy "$svc" && break; sleep 1; done
    healthy "$svc" || { "${COMPOSE[@]}" logs --tail 30 "$svc" >&2; die "$svc is not healthy after 120 s"; }
    log "$svc is healthy"
done

# ------------------------------------------------------------------ the demo, from the host
cp "$ROOT/ml.toml" "$PROJECT/" && cp -r "$ROOT/data" "$PROJECT/"
printf '\n[h2o]\nnodes = 2\nthreads = 1\n' >> "$PROJECT/ml.toml"
cat > "$MLBUILD_STACK_DIR/config.toml" <<TOML
state_url = "postgres://mlbuild:$MLBUILD_STACK_DB_PASSWORD@127.0.0.1:${MLBUILD_STACK_DB_PORT:-55432}/mlbuild"

[remote]
url = "http://127.0.0.1:${MLBUILD_STACK_CACHE_PORT:-58080}/mlbuild"
token = "$MLBUILD_STACK_CACHE_TOKEN"

[h2o]
url = "http://172.31.240.11:54321"
exchange_dir = "$MLBUILD_STACK_DIR/exchange"
TOML
chmod 600 "$MLBUILD_STACK_DIR/config.toml"
export MLBUILD_CONFIG=$MLBUILD_STACK_DIR/config.toml NO_COLOR=1 MLBUILD_NO_PROGRESS=1
unset MLBUILD_H2O_URL MLBUILD_STATE_URL MLBUILD_REMOTE_CACHE MLBUILD_CACHE_DIR
log "mlbuild run (the demo on the stack)"
"$MLBUILD" -C "$PROJECT" run --json > "$MLBUILD_STACK_DIR/run1.json" 2> "$MLBUILD_STACK_DIR/run1.log" \
    || { cat "$MLBUILD_STACK_DIR/run1.log" >&2; die "the demo failed on the stack"; }
cat "$MLBUILD_STACK_DIR/run1.log" >&2
first=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["version"])' "$MLBUILD_STACK_DIR/run1.json")
grep -q "through one node" "$MLBUILD_STACK_DIR/run1.log" && die "data went through one node: the exchange was not used"
[ -z "$(find "$MLBUILD_STACK_DIR/exchange" -name '*.csv')" ] || die "files left in the exchange directory"
"$MLBUILD" -C "$PROJECT" tags | grep -q "staging.*$first" || die "staging is not $first in the stack's PostgreSQL"
cached=$("${COMPOSE[@]}" exec -T cache sh -c 'find /srv/cache/mlbuild -type f | wc -l')
[ "$cached" -gt 0 ] || die "nothing was pushed to the stack's cache"
log "trained $first on the 2-node cluster; state in PostgreSQL; $cached files in the cache"

# ------------------------------------------------------------------ serve and ui
log "starting serve (staging) and ui"
"${COMPOSE[@]}" up -d serve ui
SERVE=http://127.0.0.1:${MLBUILD_STACK_SERVE_PORT:-58081}
for _ in $(seq 1 60); do curl -sf "$SERVE/health" > /dev/null && break; sleep 1; done
curl -sf "$SERVE/health" | grep -q "$first" || { "${COMPOSE[@]}" logs --tail 30 serve >&2; die "serve does not answer with $first"; }
row='{"rows": [{"AGE":65,"RACE":"1","DPROS":2,"DCAPS":1,"PSA":1.4,"VOL":0,"GLEASON":6}]}'
[ "$(curl -s -o /dev/null -w '%{http_code}' -d "$row" "$SERVE/predict")" = 401 ] \
    || die "serve scored a row without its token"
answer=$(curl -sf -H "Authorization: Bearer $MLBUILD_STACK_SERVE_TOKEN" \
    -H 'Content-Type: application/json' -d "$row" "$SERVE/predict") \
    || die "serve refused a row: $(curl -s -H "Authorization: Bearer $MLBUILD_STACK_SERVE_TOKEN" -d "$row" "$SERVE/predict")"
log "serve answers on staging ($first): $answer"
UI=http://127.0.0.1:${MLBUILD_STACK_UI_PORT:-56789}
ui_auth=(-H "Authorization: Bearer $MLBUILD_STACK_UI_TOKEN")
for _ in $(seq 1 30); do curl -sf -o /dev/null "${ui_auth[@]}" "$UI/" && break; sleep 1; done
curl -sf -o /dev/null "${ui_auth[@]}" "$UI/" || { "${COMPOSE[@]}" logs --tail 30 ui >&2; die "ui does not answer"; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$UI/")" = 401 ] || die "ui answered without its token"
curl -sf "${ui_auth[@]}" "$UI/api/tags" | grep -q "$first" || die "ui does not show staging = $first"
log "ui answers at $UI (with its token; 401 without) and shows staging = $first"

# A second run with another parameter registers a new version and moves staging; serve swaps.
log "mlbuild run --set execute.max_models=2 (moves staging)"
"$MLBUILD" -C "$PROJECT" run --set execute.max_models=2 --json > "$MLBUILD_STACK_DIR/run2.json" 2> "$MLBUILD_STACK_DIR/run2.log" \
    || { cat "$MLBUILD_STACK_DIR/run2.log" >&2; die "the second run failed"; }
second=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["version"])' "$MLBUILD_STACK_DIR/run2.json")
[ "$second" != "$first" ] || die "the second run registered no new version"
for _ in $(seq 1 30); do curl -sf "$SERVE/health" | grep -q "$second" && break; sleep 1; done
curl -sf "$SERVE/health" | grep -q "$second" || die "serve did not follow staging to $second"
log "serve followed staging: $first -> $second"
log "stack OK"
