#!/usr/bin/env bash
# What a fresh page costs this machine (docs/performance.md, the data path's fourth round).
# Times two writes of MB megabytes into a new file: right after the same amount
# was written and deleted (the kernel hands those pages straight back out), and WAIT seconds
# after a delete (a VM whose balloon reports free pages has returned them to the host by then,
# and each page must be faulted in from the host again). Prints both times, and whether the
# virtio balloon's free page reporting is on. No mlbuild involved: this is the machine.
#
#   bash benches/host_pages.sh            # MB=1024 WAIT=15 ROUNDS=3 WORK=/tmp/mlbuild-host-pages
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
WORK=$(bench_workdir "${WORK:-/tmp/mlbuild-host-pages}")
MB=${MB:-1024}
WAIT=${WAIT:-15}
ROUNDS=${ROUNDS:-3}
FILE=$WORK/pages.bin
trap 'rm -f "$FILE"' EXIT

echo "virtio balloon free page reporting: $(bench_page_reporting)"

# Milliseconds to write MB megabytes into a new file (4 MB writes, no sync).
write_new() {
    rm -f "$FILE"
    local start end
    start=$(date +%s%N)
    dd if=/dev/zero of="$FILE" bs=4M count=$((MB / 4)) status=none || bench_die "dd failed in $WORK"
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

for r in $(seq "$ROUNDS"); do
    write_new >/dev/null
    hot=$(write_new)
    rm -f "$FILE"
    sleep "$WAIT"
    cold=$(write_new)
    printf 'round %d: %d MB into a new file: %d ms right after a delete, %d ms %d s after one\n' \
        "$r" "$MB" "$hot" "$cold" "$WAIT"
done
