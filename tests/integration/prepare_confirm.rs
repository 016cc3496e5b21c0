//! prepare's declarative transforms and confirm's gate (issue #4 points 4, 5 and 7): imputation,
//! derived columns, Word2Vec text features, the stratified split, the confirm rules and drift.

use serde_json::Value;

use crate::support::*;

/// A stored blob of project `p`.
fn blob(p: &Project, digest: &str) -> Vec<u8> {
    std::fs::read(p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2])))
        .unwrap_or_else(|e| panic!("blob {digest}: {e}"))
}

fn json_blob(p: &Project, digest: &str) -> Value {
    serde_json::from_slice(&blob(p, digest)).unwrap()
}

fn locked_outputs(p: &Project, step: &str) -> Value {
    locked_entry(p, step)["outputs"].clone()
}

/// Rewrites `data/prostate.csv` field by field: `f(row_index, column, value) -> value`.
fn edit_prostate(p: &Project, f: impl Fn(usize, &str, &str) -> String) {
    let text = p.read("data/prostate.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = vec![header.join(",")];
    for (i, line) in lines.enumerate() {
        let fields: Vec<String> = line
            .split(',')
            .zip(&header)
            .map(|(v, c)| f(i, c, v))
            .collect();
        out.push(fields.join(","));
    }
    p.write("data/prostate.csv", &(out.join("\n") + "\n"));
}

/// The prostate fixture with some missing AGE and RACE values.
fn prostate_with_gaps() -> Project {
    let p = Project::from_fixture("prostate");
    edit_prostate(&p, |i, c, v| match c {
        "AGE" if i % 9 == 0 => String::new(),
        "RACE" if i % 11 == 0 => String::new(),
        _ => v.to_string(),
    });
    p
}

#[test]
fn impute_and_derive_run_end_to_end_with_their_artifacts_in_the_lock() {
    let p = prostate_with_gaps();
    p.edit(
        "types = { RACE = \"enum\" }",
        "types = { RACE = \"enum\" }\nrename = { DPROS = \"dpros\" }\n\
         impute = { AGE = \"mean\", RACE = \"mode\", VOL = { constant = 0 } }\n\
         derive = { ratio = \"PSA / VOL\", log_psa = \"log(PSA)\", big = \"max(`AGE`, 70)\" }",
    );
    // Zero VOLs (44 % of the rows) give a missing ratio: allow it.
    p.edit("max_null_fraction = 0.3", "max_null_fraction = 0.5");
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert!(run.ran().contains(&"execute".to_string()));
    let out = locked_outputs(&p, "prepare");
    for name in ["train", "holdout", "schema", "transform", "impute"] {
        assert_eq!(
            out[name].as_str().map(str::len),
            Some(64),
            "{name} in {out}"
        );
    }
    let transform = json_blob(&p, out["transform"].as_str().unwrap());
    let ops: Vec<&str> = transform["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["rename", "impute", "derive"]);
    assert_eq!(transform["split"]["method"], "stratified");
    assert_eq!(transform["steps"][1]["artifact"], out["impute"]);
    let impute = json_blob(&p, out["impute"].as_str().unwrap());
    let columns = impute["columns"].as_array().unwrap();
    assert_eq!(impute["fitted_on"], "train");
    assert_eq!(columns[0]["column"], "AGE");
    assert_eq!(columns[0]["strategy"], "mean");
    let age_mean: f64 = columns[0]["value"].as_str().unwrap().parse().unwrap();
    assert!((60.0..70.0).contains(&age_mean), "{impute}");
    assert_eq!(columns[1]["value"], "1", "RACE's mode");
    // The prepared rows: renamed, imputed, derived; a zero VOL gives a missing ratio.
    let train = String::from_utf8(blob(&p, out["train"].as_str().unwrap())).unwrap();
    let header: Vec<&str> = train.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "ID", "CAPSULE", "AGE", "RACE", "dpros", "DCAPS", "PSA", "VOL", "GLEASON", "big",
            "log_psa", "ratio"
        ]
    );
    let rows: Vec<Vec<&str>> = train
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(rows.iter().all(|r| !r[2].is_empty() && !r[3].is_empty()));
    assert!(
        rows.iter().any(|r| r[2] == columns[0]["value"]),
        "imputed AGE appears"
    );
    for r in &rows {
        let (psa, vol): (f64, f64) = (r[6].parse().unwrap(), r[7].parse().unwrap());
        if vol == 0.0 {
            assert_eq!(r[11], "", "division by zero is missing");
        } else {
            let ratio: f64 = r[11].parse().unwrap();
            assert!((ratio - psa / vol).abs() < 1e-9);
        }
    }
    let schema = json_blob(&p, out["schema"].as_str().unwrap());
    assert_eq!(
        schema["columns"][11],
        serde_json::json!(["ratio", "numeric"])
    );
    // The same inputs replay without H2O.
    let again = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&again, &[]);
}

#[test]
fn text_project_trains_on_word2vec_features_and_replays_without_h2o() {
    let p = text_project();
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.done()["status"], "ok");
    assert!(run.stderr.contains("Word2Vec"), "{}", run.stderr);
    let out = locked_outputs(&p, "prepare");
    let vectors_digest = out["word2vec.review"].as_str().unwrap().to_string();
    let vectors = String::from_utf8(blob(&p, &vectors_digest)).unwrap();
    assert_eq!(
        vectors.lines().next().unwrap(),
        "word,v1,v2,v3,v4,v5,v6,v7,v8"
    );
    assert!(
        vectors.lines().any(|l| l.starts_with("great,")),
        "{vectors}"
    );
    let schema = json_blob(&p, out["schema"].as_str().unwrap());
    let names: Vec<&str> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert_eq!(&names[..3], ["id", "review_w2v_1", "review_w2v_2"]);
    assert!(!names.contains(&"review"));
    let transform = json_blob(&p, out["transform"].as_str().unwrap());
    assert_eq!(transform["steps"][1]["op"], "word2vec");
    assert_eq!(transform["steps"][1]["vectors"], vectors_digest.as_str());
    // Replays from the cache without an engine.
    let again = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&again, &[]);
    assert_eq!(again.done()["h2o_started"], false);
    // Another edit of [prepare] reruns prepare without H2O: the vectors come from the stored
    // fit of the same training documents, so the text features do not change.
    p.edit(
        "impute = { stars_shown = \"median\" }",
        "impute = { stars_shown = \"median\" }\nderive = { stars2 = \"stars_shown * 2\" }",
    );
    let edited = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(edited.step("prepare")["status"], "ran");
    assert_eq!(edited.done()["h2o_started"], false);
    let ac_dir = p.file("cache/v1/ac");
    let entries: Vec<Value> = walk(&ac_dir)
        .into_iter()
        .filter_map(|f| serde_json::from_slice(&std::fs::read(f).ok()?).ok())
        .collect();
    let prepares: Vec<&Value> = entries.iter().filter(|e| e["step"] == "prepare").collect();
    assert_eq!(prepares.len(), 2, "two prepare keys now");
    for e in prepares {
        assert_eq!(e["outputs"]["word2vec.review"], vectors_digest.as_str());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn each_confirm_rule_fails_the_gate_with_the_column_value_and_limit() {
    let p = prostate_with_gaps();
    let cases: [(&str, &[&str]); 5] = [
        (
            "confirm.max_null_fraction_overall=0.001",
            &["% of all cells are missing, above `confirm.max_null_fraction_overall` = 0.001"],
        ),
        (
            "confirm.required.AGE=enum",
            &["required column `AGE` is numeric, `confirm.required` wants enum"],
        ),
        (
            "confirm.required.GLEASN=numeric",
            &["required column `GLEASN` is not in the prepared data (did you mean `GLEASON`?)"],
        ),
        (
            "confirm.min_class_fraction=0.45",
            &[
                "class `1` of target `CAPSULE` is 40.",
                "below `confirm.min_class_fraction` = 0.45",
            ],
        ),
        (
            "confirm.unique=[\"GLEASON\"]",
            &[
                "column `GLEASON` has ",
                "duplicate values",
                "`confirm.unique` allows none",
            ],
        ),
    ];
    for (set, wanted) in cases {
        let run = p.mlbuild_offline(&["run", "confirm", "--set", set]);
        assert_eq!(run.code, 4, "{set}: {}", run.stderr);
        assert!(
            run.stderr.contains("data-quality gate failed (1 rule)"),
            "{set}: {}",
            run.stderr
        );
        for w in wanted {
            assert!(
                run.stderr.contains(w),
                "{set}: want {w:?} in\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("ran execute"), "trains nothing");
    }
    // The reports: JSON and markdown, both naming the failing column and its limit.
    let run = p.mlbuild_offline(&[
        "run",
        "confirm",
        "--json",
        "--set",
        "confirm.required.AGE=enum",
    ]);
    assert_eq!(run.code, 4);
    // The message names the reports by paths a user can open (relative to the project).
    let md = run.stderr.split("(markdown: ").nth(1).unwrap();
    let md = &md[..md.find(')').unwrap()];
    assert!(md.starts_with("cache/v1/cas/"), "{md}");
    let md = std::fs::read_to_string(p.file(md)).unwrap();
    assert!(md.contains("# Data-quality gate: FAILED"), "{md}");
    assert!(md.contains("| required | AGE | numeric | enum |"), "{md}");
    assert!(
        md.contains("drift skipped: no model tagged `production`"),
        "{md}"
    );
    // Rules that hold pass: ID is unique, every class is above 30 %.
    p.mlbuild_offline(&[
        "run",
        "confirm",
        "--set",
        "confirm.unique=[\"ID\"]",
        "--set",
        "confirm.min_class_fraction=0.3",
        "--set",
        "confirm.required.RACE=enum",
    ])
    .ok();
}

#[test]
fn drift_against_production_fails_the_gate_with_the_psi_and_the_limit() {
    let p = trained().clone_trained();
    // No production yet: drift is skipped, and the report says so.
    let report = json_blob(
        &p,
        locked_outputs(&p, "confirm")["report"].as_str().unwrap(),
    );
    assert_eq!(report["drift"]["status"], "skipped");
    assert!(report["drift"]["reason"]
        .as_str()
        .unwrap()
        .contains("drift skipped"));
    let versions: Value =
        serde_json::from_str(&p.mlbuild_offline(&["versions", "--json"]).ok().stdout).unwrap();
    let v = versions[0]["id"].as_str().unwrap().to_string();
    p.mlbuild_offline(&["promote", "production", &v]).ok();
    // Production's training rows are the reference now: confirm reruns and passes (PSI 0).
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // (monitor's baseline is `production` too, so it and modify rerun; nothing retrains)
    assert_ran(&run, &["confirm", "monitor", "modify"]);
    assert!(
        run.step("confirm")["reason"]
            .as_str()
            .unwrap()
            .starts_with("baseline changed"),
        "{}",
        run.stdout
    );
    let report = json_blob(
        &p,
        locked_outputs(&p, "confirm")["report"].as_str().unwrap(),
    );
    assert_eq!(report["drift"]["status"], "checked");
    assert_eq!(report["drift"]["reference"]["version"], v.as_str());
    let psa = report["drift"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "PSA")
        .unwrap()
        .clone();
    assert_eq!(psa["psi"], 0.0);
    assert_eq!(psa["bins"], 11);
    // Older patients: AGE drifts, the gate fails and trains nothing.
    edit_prostate(&p, |_, c, v| match c {
        "AGE" => (v.parse::<i64>().unwrap() + 12).to_string(),
        _ => v.to_string(),
    });
    let run = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "column `AGE` drifted from production version {v}: PSI "
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("above `confirm.drift.psi` = 0.2"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("`PSA` drifted"), "{}", run.stderr);
    assert!(!run.statuses().contains_key("execute"), "trains nothing");
    // A looser limit (or disabling drift) lets it through.
    p.mlbuild_offline(&["run", "confirm", "--set", "confirm.drift.psi=50"])
        .ok();
    p.mlbuild_offline(&["run", "confirm", "--set", "confirm.drift.enabled=false"])
        .ok();
}

#[test]
fn bad_prepare_input_gets_clear_errors() {
    let cases: [(&str, &[&str]); 5] = [
        (
            "derive = { ratio = \"PSA / (VOL\" }",
            &[
                "ml.toml:",
                "`prepare.derive.ratio` is not a valid expression: expected `)`",
            ],
        ),
        (
            "derive = { ratio = \"PSA / VOLL\" }",
            &[
                "uses column `VOLL` (character 7 of the expression)",
                "did you mean `VOL`?",
            ],
        ),
        (
            "impute = { RACE = \"mean\" }",
            &["`prepare.impute.RACE` = \"mean\" needs a numeric column, but `RACE` is enum"],
        ),
        (
            "rename = { AGEE = \"age\" }",
            &[
                "`prepare.rename.AGEE` names column `AGEE`",
                "did you mean `AGE`?",
            ],
        ),
        (
            "text = { REVIEW = { vec_size = 4 } }",
            &["`prepare.text.REVIEW` names column `REVIEW`, which is not in the data"],
        ),
    ];
    for (line, wanted) in cases {
        let q = Project::from_fixture("prostate");
        q.edit("seed = 42\n", &format!("seed = 42\n{line}\n"));
        let run = q.mlbuild_offline(&["run", "confirm"]);
        assert_eq!(run.code, 1, "{line}: {}", run.stderr);
        for w in wanted {
            assert!(
                run.stderr.contains(w),
                "{line}: want {w:?} in\n{}",
                run.stderr
            );
        }
    }
}
