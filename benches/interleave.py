#!/usr/bin/env python3
"""Time several commands in alternation, so a noisy machine's drift hits them all alike.

    interleave.py --runs N [--warmup W] --json-dir DIR \
        --cmd ID PREPARE COMMAND [--cmd ID PREPARE COMMAND …]

COMMAND is split like a shell would (shlex) and run without a shell, output discarded; PREPARE
("" for none) is a shell command run before each run of its command, outside the timing. Each
round runs every command once, starting from a different one each round. Writes
DIR/ID.json in hyperfine's --export-json shape. A non-zero exit aborts.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, required=True)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--json-dir", required=True)
ap.add_argument("--cmd", nargs=3, action="append", metavar=("ID", "PREPARE", "COMMAND"), required=True)
a = ap.parse_args()
os.makedirs(a.json_dir, exist_ok=True)
devnull = os.open(os.devnull, os.O_WRONLY)
fa = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]


def once(prep, argv):
    if prep:
        subprocess.run(prep, shell=True, check=True)
    t0 = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
    _, status = os.waitpid(pid, 0)
    dt = (time.perf_counter_ns() - t0) / 1e9
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("exit %d: %s" % (os.waitstatus_to_exitcode(status), " ".join(argv)))
    return dt


cmds = [(i, p, shlex.split(c)) for i, p, c in a.cmd]
times = {i: [] for i, _, _ in cmds}
for r in range(a.warmup + a.runs):
    k = r % len(cmds)
    for ident, prep, argv in cmds[k:] + cmds[:k]:
        t = once(prep, argv)
        if r >= a.warmup:
            times[ident].append(t)
for ident, ts in times.items():
    res = {"command": ident, "mean": statistics.mean(ts), "median": statistics.median(ts),
           "stddev": statistics.stdev(ts) if len(ts) > 1 else 0.0, "min": min(ts), "max": max(ts),
           "times": ts}
    json.dump({"results": [res]}, open(os.path.join(a.json_dir, ident + ".json"), "w"), indent=1)
    print("%-40s median %8.1f ms  (min %.1f, max %.1f, %d runs, interleaved)"
          % (ident, res["median"] * 1e3, res["min"] * 1e3, res["max"] * 1e3, len(ts)), file=sys.stderr)
