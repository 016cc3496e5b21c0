//! Hostile inputs found by the property tests (docs/testing.md), through the real binary: the
//! user sees mlbuild's own located error, never a panic message or a crash.

use crate::support::{repo_root, Project};

/// No trace of a panic or an abort in what the user sees.
fn no_crash(stderr: &str) {
    for sign in [
        "panicked",
        "RUST_BACKTRACE",
        "overflowed its stack",
        "fatal runtime error",
    ] {
        assert!(!stderr.contains(sign), "`{sign}` in:\n{stderr}");
    }
}

/// The `parquet` crate panics on this damaged file (found by the Parquet property test); the
/// panic is caught where mlbuild calls it, and the default panic hook prints nothing.
#[test]
fn a_parquet_decoder_panic_is_an_error_naming_the_file() {
    let p = Project::from_fixture("prostate");
    p.edit(
        "path = \"data/prostate.csv\"",
        "path = \"data/damaged.parquet\"",
    );
    std::fs::copy(
        repo_root().join("tests/fixtures/parquet/decoder-panic.parquet"),
        p.file("data/damaged.parquet"),
    )
    .unwrap();
    let run = p.mlbuild_offline(&["run", "locate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    no_crash(&run.stderr);
    assert!(
        run.stderr.contains(
            "`data/damaged.parquet` is not a readable Parquet file: the Parquet decoder failed while reading row 1"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: the file is probably damaged"),
        "{}",
        run.stderr
    );
}

/// A derive expression nested 100,000 deep overflowed the stack (an abort) while `ml.toml`
/// was checked; it is now refused with its place.
#[test]
fn a_deeply_nested_expression_is_refused_with_its_place() {
    let p = Project::from_fixture("prostate");
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let text = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!("{text}\n[prepare.derive]\nx = \"{deep}\"\n"),
    );
    let run = p.mlbuild_offline(&["status"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    no_crash(&run.stderr);
    assert!(run.stderr.contains("nested too deeply"), "{}", run.stderr);
    assert!(run.stderr.contains("ml.toml:"), "{}", run.stderr);
}
