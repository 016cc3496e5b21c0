"""Feature table from prepare's training rows: PSA density and an age band per row.

Arguments: the prepared training CSV, the step's params (JSON), the output CSV.
"""
import bisect
import csv
import json
import sys

train, params_path, out = sys.argv[1:4]
bands = json.load(open(params_path))["age_bands"]

with open(train, newline="") as src, open(out, "w", newline="") as dst:
    rows = csv.DictReader(src)
    writer = csv.writer(dst)
    writer.writerow(["ID", "PSA_DENSITY", "AGE_BAND"])
    for row in rows:
        psa, vol = row.get("PSA", ""), row.get("VOL", "")
        density = ""
        if psa and vol and float(vol) > 0:
            density = f"{float(psa) / float(vol):.6g}"
        age = row.get("AGE", "")
        band = bisect.bisect_right(bands, float(age)) if age else ""
        writer.writerow([row.get("ID", ""), density, band])
