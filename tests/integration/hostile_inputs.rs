//! Bad and awkward inputs found by the hostile test of issue 11 (points 5, 6 and 9): each is
//! refused up front with a clear error, or handled as a user would expect.

use crate::support::*;

/// `execute.max_models = 0` means "no limit" to H2O: refused when `ml.toml` is read, with its
/// place, before any engine starts (the run is offline: reaching H2O would fail differently).
#[test]
fn max_models_zero_is_refused_before_any_engine() {
    let p = Project::from_fixture("prostate");
    p.edit("max_models = 2", "max_models = 0");
    let run = p.mlbuild_offline(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ml.toml:24:14: `execute.max_models` must be at least 1, found 0"),
        "{}",
        run.stderr
    );
    assert!(!p.file("cache/h2o").exists(), "no node was prepared");
    let p = Project::from_fixture("prostate");
    let run = p.mlbuild_offline(&["run", "--set", "execute.max_models=0"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("--set execute.max_models=0"),
        "{}",
        run.stderr
    );
}

/// A target with more classes than the profile counts is refused by define, not trained.
#[test]
fn a_target_with_300_classes_is_refused_by_define() {
    let p = Project::from_fixture("prostate");
    let mut csv = String::from("ID,CAPSULE,AGE,RACE,DPROS,DCAPS,PSA,VOL,GLEASON\n");
    for i in 0..600 {
        csv.push_str(&format!("{i},c{},65,1,2,1,1.4,0,6\n", i % 300));
    }
    p.write("data/prostate.csv", &csv);
    let run = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "target `CAPSULE` has more than 256 distinct values: too many classes for a multiclass problem"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.step("define")["status"], "failed");
}

/// confirm's null-fraction rules skip the columns `define.ignore` lists: an ignored ID column
/// that is half missing does not fail the gate; the same column, not ignored, does.
#[test]
fn ignored_columns_are_not_held_to_the_null_fraction() {
    let p = Project::from_fixture("prostate");
    let data = p.read("data/prostate.csv");
    let holey: String = data
        .lines()
        .enumerate()
        .map(|(i, l)| match (i, l.split_once(',')) {
            (0, _) | (_, None) => format!("{l}\n"),
            (i, Some((_, rest))) if i % 2 == 0 => format!(",{rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    p.write("data/prostate.csv", &holey);
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.step("confirm")["verdict"], "pass");
    // Not ignored, the same column fails the gate, naming it.
    p.edit("ignore = [\"ID\"]", "ignore = []");
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("column `ID` is 50.0% missing"),
        "{}",
        run.stderr
    );
}

/// Terminal escape characters from `ml.toml` or arguments are shown escaped, never sent raw.
#[test]
fn escape_characters_are_shown_not_sent_to_the_terminal() {
    let p = Project::from_fixture("prostate");
    p.edit(
        "ignore = [\"ID\"]",
        "ignore = [\"\\u001b[2J\\u001b]0;pwned\\u0007\"]",
    );
    let run = p.mlbuild_offline(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("\\x1b[2J\\x1b]0;pwned\\x07"),
        "{}",
        run.stderr
    );

    // An argument: an invalid tag is a usage error (exit 2) for every command that takes one.
    for args in [
        &["promote", "\u{1b}[31mred", "v1"][..],
        &["rollback", "\u{1b}[31mred"],
        &["history", "\u{1b}[31mred"],
        &["deploy", "--mojo", "x.zip", "--tag", "\u{1b}[31mred"],
        &["promote", "bad tag!", "v1"],
    ] {
        let run = p.mlbuild_offline(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("is not a tag name"), "{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{args:?}: {:?}", run.stderr);
    }
}

/// A CSV that is not UTF-8 is named as such, with a re-encoding hint (it got the hint about
/// field counts before).
#[test]
fn a_csv_that_is_not_utf8_is_named_as_such() {
    let p = Project::from_fixture("prostate");
    let mut bytes = std::fs::read(p.file("data/prostate.csv")).unwrap();
    bytes.extend_from_slice(b"381,1,7\xe92,1,3,2,6.7,0,7\n");
    std::fs::write(p.file("data/prostate.csv"), bytes).unwrap();
    let run = p.mlbuild_offline(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 382: field 3 is not UTF-8 text"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("iconv -f latin1 -t utf-8"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("as many fields"), "{}", run.stderr);
}

/// An error about a 100,000-column file lists at most 20 names and a count (it listed 789 KB).
#[test]
fn errors_about_wide_files_list_twenty_names_and_a_count() {
    let p = Project::from_fixture("prostate");
    let n = 100_000;
    let header: Vec<String> = (0..n).map(|i| format!("feature_{i}")).collect();
    let row: Vec<&str> = vec!["1"; n];
    p.write(
        "data/prostate.csv",
        &format!(
            "{}\n{}\n{}\n",
            header.join(","),
            row.join(","),
            row.join(",")
        ),
    );
    let run = p.mlbuild_offline(&["run", "define"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("feature_19, … and 99980 more (100000 in all)"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        run.stderr.len() < 2_000,
        "{} bytes of error",
        run.stderr.len()
    );
}
