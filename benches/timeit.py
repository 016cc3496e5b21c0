#!/usr/bin/env python3
"""Fallback timer when hyperfine is absent; writes hyperfine's --export-json shape.

    timeit.py --runs N --warmup W [--prepare SHELL_CMD] --name NAME --export-json OUT -- CMD ARGS…

CMD runs without a shell, stdout/stderr discarded; PREPARE (a shell command) runs before each
timed and warm-up run, outside the timing. A non-zero exit of CMD aborts.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, required=True)
ap.add_argument("--warmup", type=int, default=0)
ap.add_argument("--prepare", default="")
ap.add_argument("--name", required=True)
ap.add_argument("--export-json", required=True)
ap.add_argument("cmd", nargs=argparse.REMAINDER)
a = ap.parse_args()
cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd


def once():
    if a.prepare:
        subprocess.run(a.prepare, shell=True, check=True)
    t0 = time.perf_counter_ns()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = (time.perf_counter_ns() - t0) / 1e9
    if r.returncode != 0:
        sys.exit("%s: exit %d: %s" % (a.name, r.returncode, " ".join(cmd)))
    return dt


for _ in range(a.warmup):
    once()
times = [once() for _ in range(a.runs)]
res = {"command": a.name, "mean": statistics.mean(times), "median": statistics.median(times),
       "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
       "min": min(times), "max": max(times), "times": times}
json.dump({"results": [res]}, open(a.export_json, "w"), indent=1)
print("%-40s median %8.1f ms  (min %.1f, max %.1f, %d runs)"
      % (a.name, res["median"] * 1e3, res["min"] * 1e3, res["max"] * 1e3, len(times)))
