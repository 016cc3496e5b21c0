#!/usr/bin/env python3
"""Deterministic binary-classification CSV for the mlbuild vs DVC benchmark (stdlib only).

    python3 benches/gen_data.py --bytes 1000000000 --seed 1 --out raw.csv

Columns: num_0 … num_9 (floats, ~1 % missing), cat_0 … cat_3 (string levels), label (0/1,
from a noisy logistic model of some of the features, so a model reaches AUC ≈ 0.8).
The file is the header plus whole rows, stopping at the first row boundary at or past
--bytes. Rows are generated in fixed chunks, each from its own seeded RNG, so the bytes depend
only on --seed and --bytes (not on --jobs). Writes OUT.tmp, then renames.
"""
import argparse
import math
import multiprocessing
import os
import random
import sys

N_NUM = 10
CATS = [
    ["red", "green", "blue"],
    ["north", "south", "east", "west"],
    ["a", "b", "c", "d", "e", "f", "g", "h"],
    ["basic", "plus", "premium", "enterprise", "trial"],
]
CAT_EFFECT = [[0.0, 0.4, -0.4], [0.3, -0.3, 0.0, 0.1], [0.1 * i - 0.35 for i in range(8)],
              [-0.5, 0.0, 0.3, 0.8, -1.0]]
WEIGHTS = [1.2, -0.8, 0.6, 0.0, 0.4, -0.3, 0.0, 0.2, 0.0, 0.9]
CHUNK_ROWS = 20000
HEADER = ",".join(["num_%d" % i for i in range(N_NUM)] + ["cat_%d" % i for i in range(len(CATS))]
                  + ["label"]) + "\n"


def chunk(args):
    seed, index = args
    rnd = random.Random(seed * 1_000_003 + index)
    gauss, rand, choice = rnd.gauss, rnd.random, rnd.randrange
    out = []
    for _ in range(CHUNK_ROWS):
        xs = [gauss(0.0, 1.0) for _ in range(N_NUM)]
        cs = [choice(len(levels)) for levels in CATS]
        z = -0.2 + sum(w * x for w, x in zip(WEIGHTS, xs)) + sum(
            CAT_EFFECT[j][c] for j, c in enumerate(cs)) + gauss(0.0, 1.0)
        y = 1 if rand() < 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))) else 0
        nums = ["" if rand() < 0.01 else "%.5f" % (x * (1 + j) + j) for j, x in enumerate(xs)]
        out.append(",".join(nums + [CATS[j][c] for j, c in enumerate(cs)]) + ",%d\n" % y)
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bytes", type=int, required=True, help="target size in bytes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    tmp = a.out + ".tmp"
    total, rows = 0, 0
    with open(tmp, "w", newline="") as f, multiprocessing.Pool(a.jobs) as pool:
        f.write(HEADER)
        total = len(HEADER)
        def indices():
            i = 0
            while True:
                yield (a.seed, i)
                i += 1
        for text in pool.imap(chunk, indices(), chunksize=1):
            if total + len(text) < a.bytes:
                f.write(text)
                total += len(text)
                rows += CHUNK_ROWS
                continue
            for line in text.splitlines(keepends=True):
                f.write(line)
                total += len(line)
                rows += 1
                if total >= a.bytes:
                    break
            break
        pool.terminate()
    os.replace(tmp, a.out)
    print("%s: %d rows, %d bytes" % (a.out, rows, total), file=sys.stderr)


if __name__ == "__main__":
    main()
