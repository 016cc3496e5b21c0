//! When H2O starts (issue 14 point 5): in the background while the data steps work only when
//! execute will certainly run, never for a run that stops before execute or is all cached;
//! `h2o_started` says whether it came up.

use crate::support::*;

const EARLY: &str = "starting H2O in the background: execute will run";

#[test]
fn h2o_starts_early_only_when_execute_will_certainly_run() {
    // `run confirm` never needs the engine, even in a fresh cache.
    let p = Project::from_fixture("prostate");
    let run = p.mlbuild(&["run", "confirm", "--json"]).ok();
    assert!(!run.stderr.contains(EARLY), "{}", run.stderr);
    assert_eq!(run.done()["h2o_started"], false);

    // A fresh cache whose gate fails: execute was certain to be needed, the engine came up
    // (and was released); the run stops at confirm.
    let gated = Project::from_fixture("prostate");
    let text = gated.read("ml.toml");
    gated.write(
        "ml.toml",
        &text.replace("min_rows = 100", "min_rows = 100000"),
    );
    let run = gated.mlbuild(&["run", "--json"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains(EARLY), "{}", run.stderr);
    assert_eq!(run.done()["h2o_started"], true, "it did come up");
    assert!(!run.stderr.contains("ran execute"), "{}", run.stderr);
    // Before the data steps, which it runs beside.
    let run = gated.mlbuild(&["run"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let early = run.stderr.find(EARLY).expect(&run.stderr);
    assert!(early < run.stderr.find("define").unwrap(), "{}", run.stderr);

    // The same with an engine that cannot come up: the run's failure is the gate's, and
    // `h2o_started` stays false.
    let mut cmd = gated.command(&["run", "--json"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.done()["h2o_started"], false);

    // A trained project: execute is cached, so nothing starts early, and a run that only
    // replays never reaches H2O.
    let trained = trained().clone_trained();
    let run = trained.mlbuild_offline(&["run", "--json"]).ok();
    assert!(!run.stderr.contains(EARLY), "{}", run.stderr);
    assert_eq!(run.done()["h2o_started"], false);
    // `--force` reaching execute makes it certain (not run here: `--dry-run` never starts it).
    let run = trained
        .mlbuild_offline(&["run", "--force", "prepare", "--dry-run"])
        .ok();
    assert!(!run.stderr.contains(EARLY), "{}", run.stderr);
}
