#!/usr/bin/env python3
"""Times H2O's own import + parse of CSV files on a running node (stdlib only).

    python3 benches/h2o_parse.py --url http://127.0.0.1:54700 --runs 3 --out times.json A.csv B.csv

For each file and round: POST /3/ImportFiles, /3/ParseSetup, /3/Parse (ParseSetup's fields
echoed back, `label` forced to Enum as mlbuild would), then poll /3/Jobs every 50 ms until the
job is DONE. The wall time from the import request to the DONE answer is recorded; the frame is
deleted before the next round (the raw `nfs:` key is deleted by the parse itself). Writes
{"FILE": {"seconds": [...], "rows": N, "columns": N}} to --out.
"""
import argparse
import json
import sys
import time
import urllib.parse
import urllib.request


def call(url, method="GET", **form):
    data = urllib.parse.urlencode(form).encode() if form else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def parse_once(base, path, dest):
    t0 = time.perf_counter()
    imp = call(base + "/3/ImportFiles", "POST", path=path)
    if imp.get("fails"):
        sys.exit("import failed: %s" % imp["fails"])
    src = json.dumps(imp["destination_frames"])
    setup = call(base + "/3/ParseSetup", "POST", source_frames=src)
    types = [("Enum" if n == "label" else t)
             for n, t in zip(setup["column_names"], setup["column_types"])]
    job = call(base + "/3/Parse", "POST", source_frames=src, destination_frame=dest,
               parse_type=setup["parse_type"], separator=setup["separator"],
               check_header=setup["check_header"], number_columns=setup["number_columns"],
               chunk_size=setup["chunk_size"], column_names=json.dumps(setup["column_names"]),
               column_types=json.dumps(types), delete_on_done="true", blocking="false")
    key = urllib.parse.quote(job["job"]["key"]["name"], safe="")
    deadline = time.monotonic() + 1800
    while True:
        j = call(base + "/3/Jobs/" + key)["jobs"][0]
        if j["status"] == "DONE":
            break
        if j["status"] in ("FAILED", "CANCELLED"):
            sys.exit("parse %s: %s" % (j["status"], j.get("exception")))
        if time.monotonic() > deadline:
            sys.exit("parse of %s did not finish in 30 min" % path)
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    frame = call(base + "/3/Frames/%s?row_count=0&column_count=0" % dest)["frames"][0]
    rows, cols = frame["rows"], frame.get("total_column_count") or len(setup["column_names"])
    call(base + "/3/Frames/" + dest, "DELETE")
    return seconds, rows, cols


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured parses of each file first (the issue measures a warm JVM)")
    ap.add_argument("--out", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    out = {}
    for f in a.files:
        for r in range(a.warmup):
            s, _, _ = parse_once(a.url, f, "warmup_%d.hex" % r)
            print("h2o parse %s: warm-up %d: %.3f s (not counted)" % (f, r + 1, s), file=sys.stderr)
        times = []
        for r in range(a.runs):
            s, rows, cols = parse_once(a.url, f, "bench_%d.hex" % r)
            times.append(s)
            print("h2o parse %s: round %d: %.3f s (%d rows)" % (f, r + 1, s, rows),
                  file=sys.stderr)
        out[f] = {"seconds": times, "rows": rows, "columns": cols}
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
