#!/usr/bin/env python3
"""report.py RESULTS_DIR SIZE…: the markdown tables of a dvc_compare.sh run (stdout).

Reads the hyperfine-shaped JSON files `SIZE.ID.json` and `SIZE.meta.json` that
dvc_compare.sh writes; medians throughout.
"""
import json
import os
import sys

res_dir, sizes = sys.argv[1], sys.argv[2:]


def med(size, ident):
    p = os.path.join(res_dir, "%s.%s.json" % (size, ident))
    try:
        r = json.load(open(p))["results"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return r["median"], len(r.get("times", [])) or 1


def best(size, ident):
    p = os.path.join(res_dir, "%s.%s.json" % (size, ident))
    try:
        r = json.load(open(p))["results"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return r["min"], len(r.get("times", [])) or 1


def meta(size):
    try:
        return json.load(open(os.path.join(res_dir, "%s.meta.json" % size)))
    except (OSError, ValueError):
        return {}


def fmt_t(m):
    if m is None:
        return "—"
    t, n = m
    s = "%.1f ms" % (t * 1e3) if t < 1 else "%.2f s" % t
    return s if n > 1 else s + " (1 run)"


def ratio(a, b):  # a / b
    return "—" if a is None or b is None or b[0] == 0 else "%.3f" % (a[0] / b[0])


def speedup(dvc, ml):
    return "—" if dvc is None or ml is None or ml[0] == 0 else "%.1f×" % (dvc[0] / ml[0])


rows = [
    ("start-up floor: `dvc --version` / `mlbuild --version`", "dvc_version", "mlbuild_version"),
    ("no-op `dvc status` / `mlbuild status`", "dvc_status", "mlbuild_status"),
    ("**no-op `dvc repro` / `mlbuild run`**", "dvc_repro_noop", "mlbuild_run_noop"),
    ("after `touch data/raw.csv` (rehash, nothing reruns)", "dvc_repro_touch", "mlbuild_run_touch"),
    ("after one late param changed (DVC deploy, mlbuild monitor reruns)", "dvc_repro_param", "mlbuild_run_param"),
    ("cold first run (DVC stdlib stages; mlbuild with H2O start + AutoML GLM)", "dvc_repro_cold", "mlbuild_run_cold"),
]
head = "| measure | " + " | ".join("%s DVC | %s mlbuild | DVC ÷ mlbuild" % (s, s) for s in sizes) + " |"
print(head)
print("|---|" + "---:|---:|---:|" * len(sizes))
for label, d, m in rows:
    cells = []
    for s in sizes:
        dv, mv = med(s, d), med(s, m)
        cells += [fmt_t(dv), fmt_t(mv), speedup(dv, mv)]
    print("| %s | %s |" % (label, " | ".join(cells)))
print()

print("First hash of the data file (page cache warm; MB = 10^6 bytes; the rows of one size interleaved, round by round):")
print()
print("| hasher | " + " | ".join("%s median | %s MB/s | %s best run | %s MB/s" % (s, s, s, s) for s in sizes) + " |")
print("|---|" + "---:|---:|---:|---:|" * len(sizes))
hrows = [
    ("`b3sum --num-threads 1`", "b3sum_1t"),
    ("`b3sum` (default: mmap + all cores)", "b3sum"),
    ("`md5sum` (DVC hashes with MD5)", "md5sum"),
    ("`mlbuild status`, stat cache deleted (whole CLI)", "mlbuild_status_hash"),
]
for label, ident in hrows:
    cells = []
    for s in sizes:
        m, lo, b = med(s, ident), best(s, ident), meta(s).get("bytes")
        cells += [fmt_t(m), "%.0f" % (b / 1e6 / m[0]) if m and b else "—",
                  fmt_t(lo), "%.0f" % (b / 1e6 / lo[0]) if lo and b else "—"]
    print("| %s | %s |" % (label, " | ".join(cells)))
cells = []
for s in sizes:
    h, n, b = med(s, "mlbuild_status_hash"), med(s, "mlbuild_status_i") or med(s, "mlbuild_status"), meta(s).get("bytes")
    if h and n and b and h[0] > n[0]:
        net = h[0] - n[0]
        cells += ["%.1f ms" % (net * 1e3), "%.0f" % (b / 1e6 / net), "", ""]
    else:
        cells += ["—", "—", "", ""]
print("| mlbuild hash alone (row above − no-op `mlbuild status` of the same rounds) | %s |" % " | ".join(cells))
print()

big = sizes[-1]
print("Goals (on %s):" % big)
print()
print("| goal | measured | met? |")
print("|---|---|---|")
for s in sizes:
    dv, mv = med(s, "dvc_repro_noop"), med(s, "mlbuild_run_noop")
    if dv and mv:
        r = mv[0] / dv[0]
        print("| no-op `mlbuild run` ≤ 1/20 of no-op `dvc repro` (%s) | %.1f ms vs %.0f ms: 1/%.1f (ratio %.3f) | %s |"
              % (s, mv[0] * 1e3, dv[0] * 1e3, dv[0] / mv[0], r, "yes" if r <= 0.05 else "**no**"))
mv = med(big, "mlbuild_run_noop")
if mv:
    print("| no-op `mlbuild run` median ≤ 30 ms (%s) | %.1f ms | %s |"
          % (big, mv[0] * 1e3, "yes" if mv[0] <= 0.030 else "**no**"))
b3, h, b = med(big, "b3sum"), med(big, "mlbuild_status_hash"), meta(big).get("bytes")
n = med(big, "mlbuild_status_i") or med(big, "mlbuild_status")
if b3 and h and b:
    r_raw = b3[0] / h[0]
    line = "whole CLI %.0f MB/s = %.2f × b3sum's %.0f MB/s" % (b / 1e6 / h[0], r_raw, b / 1e6 / b3[0])
    ok = r_raw >= 0.8
    if n and h[0] > n[0]:
        r_net = b3[0] / (h[0] - n[0])
        line += "; hash alone %.0f MB/s = %.2f ×" % (b / 1e6 / (h[0] - n[0]), r_net)
    b3lo, hlo = best(big, "b3sum"), best(big, "mlbuild_status_hash")
    if b3lo and hlo:
        line += "; best runs %.0f vs %.0f MB/s = %.2f ×" % (b / 1e6 / hlo[0], b / 1e6 / b3lo[0], b3lo[0] / hlo[0])
    print("| first hash ≥ 0.8 × `b3sum` throughput (%s, medians) | %s | %s |" % (big, line, "yes" if ok else "**no**"))
print()
for s in sizes:
    m = meta(s)
    if m:
        print("- %s: %s" % (s, "; ".join("%s: %s" % (k, v) for k, v in m.items())))
