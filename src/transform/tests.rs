use std::path::Path;

use super::fit::median;
use super::*;
use crate::config::Prepare;

fn spec(problem: Problem) -> ProblemSpec {
    ProblemSpec {
        target: "y".into(),
        problem,
        metric: "auc".into(),
        ignore: vec![],
        classes: vec!["0".into(), "1".into()],
    }
}

fn fixture(text: &str) -> (tempfile::TempDir, std::path::PathBuf, Profile) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, text).unwrap();
    let profile = table::profile_csv(&p).unwrap();
    (dir, p, profile)
}

fn prepare(toml_prepare: &str) -> Prepare {
    let text = format!(
        "[define]\ntarget = \"y\"\n[locate]\npath = \"d.csv\"\n[prepare]\n{toml_prepare}\n"
    );
    crate::config::parse(Path::new("ml.toml"), &text, &[])
        .unwrap()
        .prepare
}

#[test]
fn the_median_is_the_middle_of_the_sorted_values() {
    let values = [
        3.0,
        -0.0,
        1e300,
        f64::NAN,
        2.5,
        0.0,
        -1.0,
        2.5,
        f64::INFINITY,
        7.0,
    ];
    for n in 1..=values.len() {
        let mut sorted = values[..n].to_vec();
        sorted.sort_by(f64::total_cmp);
        let expected = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mut v = values[..n].to_vec();
        assert_eq!(median(&mut v).to_bits(), expected.to_bits(), "{n} values");
    }
}

/// Rows whose imputed columns' fits depend on the order of the additions (a mean of values
/// far apart), with missing values, a `NaN`, and a three-valued text column, some of whose
/// fields need trimming.
fn order_sensitive_csv() -> String {
    let mut csv = String::from("a,b,c,y\n");
    for i in 0..20_000u64 {
        let r = table::splitmix64(i);
        let a = if r.is_multiple_of(11) {
            "NA".to_string()
        } else {
            format!(
                "{}",
                (r % 100_000) as f64 / 7.0 + 1e12 * ((r >> 20) % 3) as f64
            )
        };
        let b = if r.is_multiple_of(13) {
            String::new()
        } else if r.is_multiple_of(997) {
            // A number whose bits a held value must keep apart from "no number".
            "NaN".to_string()
        } else {
            format!("{}.{}", (r >> 8) % 50, (r >> 16) % 1000)
        };
        let c = if r.is_multiple_of(17) {
            ""
        } else if r.is_multiple_of(19) {
            // Written trimmed: not as the line was read.
            " q "
        } else {
            ["p", "q", "r"][(r >> 30) as usize % 3]
        };
        csv.push_str(&format!("{a},{b},{c},{}\n", (r >> 40) % 2));
    }
    csv
}

#[test]
fn chunked_fit_and_apply_equal_the_sequential_pass() {
    let csv = order_sensitive_csv();
    let (dir, path, profile) = fixture(&csv);
    let prep =
        prepare("holdout = 0.3\nseed = 5\nimpute = { a = \"mean\", b = \"median\", c = \"mode\" }");
    let spec = spec(Problem::Binary);
    let plan = Plan::new(&prep, &profile, &spec).unwrap();
    let gone = dir.path().join("gone.csv");
    let run = |min_bytes: u64, tag: &str| {
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(min_bytes));
        let (split, fitted) = if tag == "held" {
            // As a cold run does: the profile pass collects the classes and holds the imputed
            // columns, and the split and the fit read nothing (not even a file not there).
            let (_, c) =
                table::profile_collecting(&path, Some("y"), |header| held_columns(&prep, header))
                    .unwrap();
            let held = c.held.expect("the block pass holds the imputed columns");
            assert_eq!(held.rows(), 20_000);
            let split =
                Split::stratified(&gone, plan.target_source, 5, 0.3, Some(0.9), c.strata).unwrap();
            (
                split.clone(),
                plan.fit(&gone, &split, &[], Some(&held)).unwrap(),
            )
        } else {
            let split =
                Split::stratified(&path, plan.target_source, 5, 0.3, Some(0.9), None).unwrap();
            (split.clone(), plan.fit(&path, &split, &[], None).unwrap())
        };
        let (t, h) = (
            dir.path().join(format!("t-{tag}.csv")),
            dir.path().join(format!("h-{tag}.csv")),
        );
        let applied = plan.apply(&path, &split, &fitted, &[], [&t, &h]).unwrap();
        let bytes = [std::fs::read(&t).unwrap(), std::fs::read(&h).unwrap()];
        for (b, d) in bytes.iter().zip(&applied.digests) {
            assert_eq!(&blake3::hash(b).to_hex().to_string(), d);
        }
        // The profiles kept while writing (numeric columns not parsed again) are those of
        // the written files.
        for (file, p) in [&t, &h].iter().zip(&applied.profiles) {
            assert_eq!(&table::profile_csv(file).unwrap(), p);
        }
        (
            fitted.impute,
            fitted.train_rows,
            applied.rows,
            applied.profiles,
            bytes,
        )
    };
    let sequential = run(u64::MAX, "seq");
    let chunked = run(0, "par");
    let held = run(0, "held");
    table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(0));
    assert!(
        table::indexed_blocks(&path, 4, |_| (), |_, _, _| (), |(), _| ()),
        "the chunked path was taken"
    );
    table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(u64::MAX));
    assert_eq!(chunked, sequential);
    assert_eq!(held, sequential);
    // No part files are left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn imputation_is_fitted_on_training_rows_only() {
    // Holdout rows carry huge values: a fit that saw them would move far from train's.
    let mut csv = String::from("a,c,y\n");
    for i in 0..200u64 {
        let held = table::in_holdout(42, i, 0.25);
        let a = if i % 10 == 0 {
            String::new()
        } else if held {
            "1000".into()
        } else {
            (i % 7).to_string()
        };
        let c = if i % 10 == 5 {
            ""
        } else if held {
            "zzz"
        } else if i % 3 == 0 {
            "p"
        } else {
            "q"
        };
        csv.push_str(&format!("{a},{c},{}\n", i % 2));
    }
    let (dir, path, profile) = fixture(&csv);
    let prep = prepare("holdout = 0.25\nimpute = { a = \"mean\", c = \"mode\" }");
    let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
    let split = Split::random(42, 0.25, None);
    let fitted = plan.fit(&path, &split, &[], None).unwrap();
    let (mut sum, mut n) = (0.0, 0u64);
    for i in 0..200u64 {
        if !table::in_holdout(42, i, 0.25) && i % 10 != 0 {
            sum += (i % 7) as f64;
            n += 1;
        }
    }
    assert_eq!(fitted.impute[0].value, format_number(sum / n as f64));
    assert!(sum / (n as f64) < 7.0);
    assert_eq!(fitted.impute[0].fitted_on_rows, n);
    assert_eq!(
        fitted.impute[1].value, "q",
        "the holdout's `zzz` never counts"
    );
    // Applied to both sides: no missing `a` or `c` remains, holdout filled with train's value.
    let (t, h) = (dir.path().join("t.csv"), dir.path().join("h.csv"));
    plan.apply(&path, &split, &fitted, &[], [&t, &h]).unwrap();
    let held = std::fs::read_to_string(&h).unwrap();
    assert!(
        held.lines()
            .skip(1)
            .all(|l| !l.starts_with(',') && !l.contains(",,")),
        "{held}"
    );
    assert!(
        held.contains(&format!("{},", fitted.impute[0].value)),
        "{held}"
    );
}

#[test]
fn median_mode_ties_and_constants() {
    let (_d, path, profile) = fixture("a,b,y\n1,x,0\n3,y,1\n2,y,0\n10,x,1\n,,0\n");
    let prep = prepare("holdout = 0.01\nimpute = { a = \"median\", b = \"mode\" }");
    let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
    let split = Split::random(1, 1e-9, None);
    let f = plan.fit(&path, &split, &[], None).unwrap();
    assert_eq!(f.impute[0].value, "2.5");
    assert_eq!(f.impute[1].value, "x", "a tie goes to the smallest value");
    let prep = prepare("impute = { a = { constant = 0 }, b = { constant = \"none\" } }");
    let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
    let f = plan.fit(&path, &split, &[], None).unwrap();
    assert_eq!(
        (f.impute[0].value.as_str(), f.impute[1].value.as_str()),
        ("0", "none")
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let (_d, _p, profile) = fixture("AGE,RACE,y\n1,x,0\n2,y,1\n");
    let err = |p: &str| {
        let e = Plan::new(&prepare(p), &profile, &spec(Problem::Binary)).unwrap_err();
        let d = e.downcast_ref::<Diagnostic>().unwrap();
        format!("{} | {}", d.message, d.hint.clone().unwrap_or_default())
    };
    let e = err("impute = { AGEE = \"mean\" }");
    assert!(
        e.contains("`prepare.impute.AGEE` names column `AGEE`")
            && e.contains("did you mean `AGE`?"),
        "{e}"
    );
    let e = err("impute = { RACE = \"mean\" }");
    assert!(
        e.contains("needs a numeric column, but `RACE` is enum"),
        "{e}"
    );
    let e = err("rename = { AGX = \"age\" }");
    assert!(
        e.contains("`prepare.rename.AGX`") && e.contains("did you mean `AGE`"),
        "{e}"
    );
    let e = err("derive = { r = \"AGE / AGEE\" }");
    assert!(
        e.contains("uses column `AGEE` (character 7")
            && e.contains("^^^^")
            && e.contains("did you mean `AGE`"),
        "{e}"
    );
    let e = err("derive = { r = \"AGE * RACE\" }");
    assert!(e.contains("`RACE`") && e.contains("is not numeric"), "{e}");
    let e = err("derive = { r = \"y + 1\" }");
    assert!(e.contains("is the target"), "{e}");
    let e = err("text = { REVIEW = {} }");
    assert!(
        e.contains("`prepare.text.REVIEW`")
            && e.contains("the columns at this point are: AGE, RACE, y"),
        "{e}"
    );
    // After a rename, later keys use the new name.
    let e = err("rename = { AGE = \"age\" }\nimpute = { AGE = \"mean\" }");
    assert!(e.contains("did you mean `age`?"), "{e}");
    let ok = Plan::new(
        &prepare("rename = { AGE = \"age\" }\nderive = { twice = \"age * 2\" }"),
        &profile,
        &spec(Problem::Binary),
    )
    .unwrap();
    let names: Vec<String> = ok.schema().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["age", "RACE", "y", "twice"]);
}

#[test]
fn the_profiles_kept_while_writing_are_the_written_files_profiles() {
    // Columns whose kept profile skips work (numeric, few values), imputed with a value of
    // the column, with another one, with a number and with text; one column over the cap.
    let mut csv = String::from("n,c,d,e,wide,y\n");
    for i in 0..3000u64 {
        let r = table::splitmix64(i);
        let miss = r.is_multiple_of(9);
        let n = if miss {
            String::new()
        } else {
            (r % 50).to_string()
        };
        let c = if miss {
            "NA"
        } else {
            ["p", "q", " r "][(r >> 8) as usize % 3]
        };
        let d = if r.is_multiple_of(7) {
            ""
        } else {
            ["1", "2"][(r >> 9) as usize % 2]
        };
        let e = if r.is_multiple_of(5) {
            ""
        } else {
            ["u", "v"][(r >> 10) as usize % 2]
        };
        csv.push_str(&format!(
            "{n},{c},{d},{e},w{},{}\n",
            r % 1000,
            (r >> 40) % 2
        ));
    }
    let (dir, path, profile) = fixture(&csv);
    for rules in [
        "impute = { n = \"median\", c = \"mode\", d = { constant = 2 }, e = { constant = \"u\" } }",
        "impute = { n = { constant = 7.5 }, c = { constant = \"new\" }, d = \"mean\" }",
        "",
    ] {
        let prep = prepare(&format!("holdout = 0.3\nseed = 2\n{rules}"));
        let plan = Plan::new(&prep, &profile, &spec(Problem::Binary)).unwrap();
        let split = Split::random(2, 0.3, None);
        let fitted = plan.fit(&path, &split, &[], None).unwrap();
        let (t, h) = (dir.path().join("t.csv"), dir.path().join("h.csv"));
        let applied = plan.apply(&path, &split, &fitted, &[], [&t, &h]).unwrap();
        for (file, p) in [&t, &h].iter().zip(&applied.profiles) {
            assert_eq!(&table::profile_csv(file).unwrap(), p, "{rules}");
        }
    }
}
