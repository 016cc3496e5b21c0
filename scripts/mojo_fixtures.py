#!/usr/bin/env python3
"""Train the MOJO fixture models on a running H2O 3.46.0.11 node and score them with genmodel.

Driven by `scripts/mojo_fixtures.sh`, which starts and stops the node. Standard library only.

For every fixture model NAME this writes into OUT (tests/fixtures/mojo/):
  NAME.zip            the MOJO, with `experimental/` removed (genmodel scored the full download)
and for every data set DATA:
  DATA.in.csv         the rows to score: the data plus rows with missing cells and unseen levels
  NAME.out.csv        genmodel PredictCsv's output on DATA.in.csv, hex floats (its default)
`manifest.tsv` lists `NAME<TAB>DATA<TAB>algo<TAB>problem`.
"""

import io
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile

H2O = sys.argv[1]  # http://127.0.0.1:PORT
ROOT = sys.argv[2]  # the repository
OUT = sys.argv[3]  # tests/fixtures/mojo
WORK = sys.argv[4]  # scratch directory
SEED = 42


def call(method, path, form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(H2O + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path} -> {e.code}: {e.read()[:2000]!r}")


def jcall(method, path, form=None):
    return json.loads(call(method, path, form))


def wait(job_key):
    while True:
        job = jcall("GET", "/3/Jobs/" + urllib.parse.quote(job_key, safe=""))["jobs"][0]
        if job["status"] == "DONE":
            return
        if job["status"] in ("FAILED", "CANCELLED"):
            raise SystemExit(f"job {job_key} {job['status']}: {job.get('exception')}")
        time.sleep(0.2)


def load(path, frame, enums):
    src = jcall("POST", "/3/ImportFiles", {"path": path})["destination_frames"]
    setup = jcall("POST", "/3/ParseSetup", {"source_frames": json.dumps(src), "check_header": 1})
    types = [
        "Enum" if n in enums else t
        for n, t in zip(setup["column_names"], setup["column_types"])
    ]
    res = jcall(
        "POST",
        "/3/Parse",
        {
            "source_frames": json.dumps(src),
            "destination_frame": frame,
            "parse_type": setup["parse_type"],
            "separator": setup["separator"],
            "check_header": 1,
            "number_columns": setup["number_columns"],
            "chunk_size": setup["chunk_size"],
            "column_names": json.dumps(setup["column_names"]),
            "column_types": json.dumps(types),
            "delete_on_done": "true",
        },
    )
    wait(res["job"]["key"]["name"])


def train(algo, model_id, params):
    form = {"model_id": model_id, "seed": SEED}
    form.update(params)
    version = 99 if algo == "stackedensemble" else 3
    res = jcall("POST", f"/{version}/ModelBuilders/{algo}", form)
    wait(res["job"]["key"]["name"])
    print(f"trained {model_id}", flush=True)


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")


def read_csv(path):
    with open(path) as f:
        lines = [line.rstrip("\n").split(",") for line in f if line.strip()]
    return lines[0], lines[1:]


def edge_rows(header, rows, unseen):
    """Rows that exercise genmodel's input conversion: every cell missing in turn (written as
    "", "NA" and "-"), an all-missing row, and an unseen level in each categorical column."""
    base = rows[0]
    out = []
    missing = ["", "NA", "-"]
    for i in range(len(header)):
        row = list(base)
        row[i] = missing[i % 3]
        out.append(row)
    out.append([""] * len(header))
    for col, level in unseen.items():
        row = list(rows[1])
        row[header.index(col)] = level
        out.append(row)
    return out


def syn_rows(n, rng, unseen_share):
    rows = []
    for _ in range(n):
        x1 = rng.gauss(0, 1)
        x2 = rng.uniform(-5, 5)
        c1 = rng.randrange(40)
        c2 = rng.randrange(5)
        z = 0.8 * x1 - 0.3 * x2 + (1.5 if c1 % 3 == 0 else -0.5) + 0.4 * c2 + rng.gauss(0, 0.7)
        cells = [f"{x1:.6f}", f"{x2:.4f}", f"L{c1:02d}", "abcde"[c2]]
        if rng.random() < unseen_share:
            cells[2] = f"U{rng.randrange(5)}"
        cells = ["" if rng.random() < 0.1 else c for c in cells]
        rows.append(cells + ["yes" if z > 0.5 else "no"])
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    rng = random.Random(SEED)

    # Data sets: (name, training csv, enum columns, scoring rows).
    pros_path = os.path.join(ROOT, "data/prostate.csv")
    iris_path = os.path.join(ROOT, "examples/iris/data/iris.csv")
    syn_header = ["x1", "x2", "c1", "c2", "y"]
    syn_train = os.path.join(WORK, "syn_train.csv")
    write_csv(syn_train, syn_header, syn_rows(1000, rng, 0.0))

    load(pros_path, "pros_bin", {"CAPSULE", "RACE", "DPROS", "DCAPS"})
    load(pros_path, "pros_reg", {"RACE", "DPROS", "DCAPS"})
    load(iris_path, "iris", {"Species"})
    load(syn_train, "syn", {"c1", "c2", "y"})

    ph, prows = read_csv(pros_path)
    ih, irows = read_csv(iris_path)
    inputs = {
        "prostate": (ph, prows + edge_rows(ph, prows, {"RACE": "7", "DPROS": "9", "DCAPS": "x"})),
        "iris": (ih, irows + edge_rows(ih, irows, {})),
        "syn": (syn_header, syn_rows(300, rng, 0.05) + edge_rows(syn_header, syn_rows(2, rng, 0), {"c1": "L99", "c2": "z"})),
    }
    for data, (header, rows) in inputs.items():
        write_csv(os.path.join(OUT, f"{data}.in.csv"), header, rows)

    cv = {"nfolds": 3, "fold_assignment": "Modulo", "keep_cross_validation_predictions": "true"}
    tasks = {
        # task: (frame, data, response, ignored)
        "bin": ("pros_bin", "prostate", "CAPSULE", ["ID"]),
        "multi": ("iris", "iris", "Species", []),
        "reg": ("pros_reg", "prostate", "AGE", ["ID"]),
        "syn": ("syn", "syn", "y", []),
    }
    glm_family = {"bin": "binomial", "multi": "multinomial", "reg": "gaussian", "syn": "binomial"}
    models = []  # (name, data, algo, problem)
    problem = {"bin": "binomial", "multi": "multinomial", "reg": "regression", "syn": "binomial"}
    for task, (frame, data, response, ignored) in tasks.items():
        common = {"training_frame": frame, "response_column": response}
        if ignored:
            common["ignored_columns"] = json.dumps(ignored)
        common.update(cv)
        specs = [
            ("gbm", "gbm", {"ntrees": 8, "max_depth": 4}),
            ("drf", "drf", {"ntrees": 6, "max_depth": 6}),
            ("xrt", "drf", {"ntrees": 6, "max_depth": 6, "histogram_type": "Random"}),
            ("glm", "glm", {"family": glm_family[task]}),
            ("xgb", "xgboost", {"ntrees": 8, "max_depth": 4, "backend": "cpu"}),
            ("dl", "deeplearning", {"hidden": "[8,8]", "epochs": 3, "reproducible": "true"}),
        ]
        if task == "syn":
            specs = [s for s in specs if s[0] in ("gbm", "drf", "glm", "xgb")]
        built = []
        for short, algo, params in specs:
            name = f"{short}_{task}"
            train(algo, name, {**common, **params})
            built.append(name)
            models.append((name, data, short, problem[task]))
        if task != "syn":
            name = f"se_{task}"
            se = {
                "training_frame": frame,
                "response_column": response,
                "base_models": json.dumps(built),
            }
            if task == "bin":
                se["metalearner_transform"] = "Logit"
            train("stackedensemble", name, se)
            models.append((name, data, "se", problem[task]))
    # Variants that reach other code paths.
    pros_bin = {"training_frame": "pros_bin", "response_column": "CAPSULE", "ignored_columns": '["ID"]'}
    pros_reg = {"training_frame": "pros_reg", "response_column": "AGE", "ignored_columns": '["ID"]'}
    extra = [
        # DRF's binomial_double_trees encoding.
        ("drf_bin_double", "drf", "prostate", "binomial",
         {**pros_bin, "ntrees": 4, "max_depth": 5, "binomial_double_trees": "true"}),
        # balance_classes: correctProbabilities.
        ("gbm_bin_balanced", "gbm", "prostate", "binomial",
         {**pros_bin, "ntrees": 5, "max_depth": 3, "balance_classes": "true"}),
        # Log links.
        ("gbm_poisson", "gbm", "prostate", "regression",
         {**pros_reg, "ntrees": 5, "max_depth": 3, "distribution": "poisson"}),
        ("glm_poisson", "glm", "prostate", "regression", {**pros_reg, "family": "poisson"}),
    ]
    for name, algo, data, prob, params in extra:
        train(algo, name, params)
        models.append((name, data, name.split("_")[0], prob))

    jar = os.path.join(WORK, "h2o-genmodel.jar")
    with open(jar, "wb") as f:
        f.write(call("GET", "/3/h2o-genmodel.jar"))

    for name, data, algo, prob in models:
        full = os.path.join(WORK, f"{name}.zip")
        with open(full, "wb") as f:
            f.write(call("GET", f"/3/Models/{name}/mojo"))
        out_csv = os.path.join(OUT, f"{name}.out.csv")
        subprocess.run(
            ["java", "-Xmx512m", "-cp", jar, "hex.genmodel.tools.PredictCsv",
             "--mojo", full, "--input", os.path.join(OUT, f"{data}.in.csv"), "--output", out_csv],
            check=True,
        )
        strip_experimental(full, os.path.join(OUT, f"{name}.zip"))
        print(f"scored {name}", flush=True)

    with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
        for row in models:
            f.write("\t".join(row) + "\n")


def strip_experimental(src, dst):
    """Rewrite a MOJO without `experimental/` (model details JSON, most of the bytes; no scorer
    needs it) and with fixed entry times, so the fixture is small and stable."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename.startswith("experimental/") or "/experimental/" in info.filename:
                continue
            out = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            out.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(out, zin.read(info.filename))


def model_ini(zip_path):
    """The `[info]` and `[columns]`/`[domains]` sections of a MOJO's model.ini, as a dict of
    key -> raw value (plus `columns`: the column names)."""
    with zipfile.ZipFile(zip_path) as z:
        text = z.read("model.ini").decode()
    ini, section, columns = {}, None, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[info]" and " = " in line:
            key, value = line.split(" = ", 1)
            ini[key] = value
        elif section == "[columns]" and line:
            columns.append(line)
    ini["columns"] = columns
    return ini


def domain_levels(zip_path, index):
    """The levels of the `index`-th domain file of a MOJO (domains/dNNN.txt)."""
    with zipfile.ZipFile(zip_path) as z:
        return z.read(f"domains/d{index:03d}.txt").decode().splitlines()


def server_contributions():
    """Issue 17 point 2: what the H2O server itself answers to `predict_contributions` for the
    models genmodel cannot explain, recorded beside the MOJO of the same model (trained here,
    like the fixtures' drf_bin and glm_bin): OUT/server/NAME.zip (full MOJO), NAME.h2o.csv (the
    server's contributions on data/prostate.csv, in its row order) and NAME.json (what the test
    needs to read them: the DRF's used variables and trees, the GLM's background row)."""
    out = os.path.join(OUT, "server")
    os.makedirs(out, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    pros_path = os.path.join(ROOT, "data/prostate.csv")
    load(pros_path, "pros_bin", {"CAPSULE", "RACE", "DPROS", "DCAPS"})
    common = {"training_frame": "pros_bin", "response_column": "CAPSULE", "ignored_columns": '["ID"]'}
    specs = [
        ("drf_bin", "drf", {"ntrees": 6, "max_depth": 6}),
        ("glm_bin", "glm", {"family": "binomial"}),
    ]
    for name, algo, params in specs:
        train(algo, name, {**common, **params})
        mojo = os.path.join(out, f"{name}.zip")
        with open(mojo, "wb") as f:
            f.write(call("GET", f"/3/Models/{name}/mojo"))
        form = {"predict_contributions": "true", "predictions_frame": f"{name}_contrib"}
        meta = {"algo": algo}
        if algo == "drf":
            model = jcall("GET", f"/3/Models/{name}")["models"][0]["output"]
            varimp = model["variable_importances"]["data"]
            # hex.VarImp.numberOfUsedVariables: the variables whose importance is not 0.
            meta["used_variables"] = sum(1 for v in varimp[1] if v != 0)
            meta["ntrees"] = params["ntrees"]
        else:
            # One background row: the training means and mode levels the MOJO stores, so the
            # server's baseline SHAP is contribution = beta (x - mean), beta[level] - beta[mode].
            ini = model_ini(mojo)
            means = json.loads(ini["num_means"])
            modes = json.loads(ini["cat_modes"])
            cats = int(ini["cats"])
            names = ini["columns"][:-1]
            row, header = [], []
            with open(pros_path) as f:
                header = f.readline().strip().split(",")
            values = {}
            for i, col in enumerate(names):
                if i < cats:
                    values[col] = domain_levels(mojo, i)[modes[i]]
                else:
                    values[col] = repr(means[i - cats])
            for col in header:
                row.append(values.get(col, "0" if col != "CAPSULE" else "0"))
            bg = os.path.join(WORK, "background.csv")
            write_csv(bg, header, [row])
            load(bg, "background", {"CAPSULE", "RACE", "DPROS", "DCAPS"})
            form["background_frame"] = "background"
            form["predict_contributions_output_format"] = "Compact"
            meta["background"] = dict(zip(header, row))
        # /4/ (a job): the synchronous /3/ route takes no background frame.
        res = jcall("POST", f"/4/Predictions/models/{name}/frames/pros_bin", form)
        wait((res.get("job") or res)["key"]["name"])
        csv = call("GET", "/3/DownloadDataset?frame_id=" + urllib.parse.quote(f"{name}_contrib"))
        with open(os.path.join(out, f"{name}.h2o.csv"), "wb") as f:
            f.write(csv)
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"recorded the server's contributions of {name}", flush=True)


if __name__ == "__main__":
    if os.environ.get("SERVER_CONTRIBUTIONS") == "1":
        server_contributions()
    else:
        main()
