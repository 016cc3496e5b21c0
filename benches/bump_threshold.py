#!/usr/bin/env python3
"""bump_threshold.py [ML_TOML]: set `[define] threshold` to a value never used before.

The mlbuild counterpart of the DVC peer's `set_param.py deploy.min_auc --bump`: an edit of one
late-stage parameter (threshold enters only monitor's key), to 0.5 + n/1e6 with the counter n
kept in `.bench_bump` beside the file, so no action-cache entry can short-cut the rerun.
"""
import os
import re
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "ml.toml"
counter = os.path.join(os.path.dirname(os.path.abspath(path)), ".bench_bump")
try:
    n = int(open(counter).read()) + 1
except (OSError, ValueError):
    n = 1
open(counter, "w").write(str(n))
text = open(path).read()
section = None
out = []
done = False
for line in text.split("\n"):
    m = re.match(r"\s*\[([^\]]+)\]", line)
    if m:
        section = m.group(1).strip()
    elif section == "define" and re.match(r"\s*threshold\s*=", line):
        line = "threshold = %.6f" % (0.5 + n / 1e6)
        done = True
    out.append(line)
if not done:
    sys.exit("%s: no `threshold` in [define]" % path)
open(path, "w").write("\n".join(out))
