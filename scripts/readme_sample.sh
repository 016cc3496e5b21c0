#!/usr/bin/env bash
# Regenerates the "What a run looks like" sample of README.md from a real run of the repo's own
# ml.toml: a cold `mlbuild run` in a copy of the project (its own cache, a managed H2O node),
# then the threshold edit the README shows. The text between the markers
# `<!-- sample:begin -->` and `<!-- sample:end -->` is replaced.
#
#   bash scripts/readme_sample.sh            # builds the release binary first
#   MLBUILD_BIN=path/to/mlbuild bash scripts/readme_sample.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${MLBUILD_BIN:-} ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
  MLBUILD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mlbuild"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$ROOT/ml.toml" "$work/" && mkdir -p "$work/data" && cp "$ROOT/data/prostate.csv" "$work/data/"

# Paths of this machine are not for the README: the home directory is shown as `~`.
run() { (cd "$work" && MLBUILD_NO_PROGRESS=1 NO_COLOR=1 "$MLBUILD_BIN" "$@" 2>&1) | sed "s|$HOME|~|g"; }
first=$(run run)
sed -i 's/threshold = 0.70/threshold = 0.65/' "$work/ml.toml"
second=$(run run | grep -E '^ +(cached define|ran monitor)' | sed 's/^\( *cached define\).*/\1   …/')

sample=$(printf '```text\n$ mlbuild run\n%s\n\n$ sed -i '"'"'s/threshold = 0.70/threshold = 0.65/'"'"' ml.toml && mlbuild run\n%s\n```' "$first" "$second")
python3 - "$ROOT/README.md" "$sample" <<'PY'
import sys
path, sample = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = "<!-- sample:begin -->", "<!-- sample:end -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(path, "w").write(text[:i] + "\n" + sample + "\n" + text[j:])
PY
echo "README.md: sample regenerated" >&2
