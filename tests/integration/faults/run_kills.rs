//! SIGKILL of `run` at seeded instants in every step and at every fail point; and the kill
//! between conclude's registration and its tag moves, which once lost the moves for good.

use super::*;

#[test]
fn a_run_killed_anywhere_loses_nothing() {
    let mut rng = Rng::new("run kills");
    let mut tally = Tally::new("run kills");
    for i in 0..trials(4, 56) {
        let step = *rng.pick(&ALL_STEPS);
        // Even trials stop at a fail point of the step (or the run's end), odd ones at a random
        // instant of the run (execute trains for seconds, the other steps take milliseconds).
        let point = (i % 2 == 0).then(|| match rng.below(3) {
            0 => format!("pipeline.before-action-entry.{step}"),
            1 => format!("pipeline.after-action-entry.{step}"),
            _ => "run.before-finish".to_string(),
        });
        let delay = Duration::from_millis(rng.below(if step == "execute" { 6000 } else { 700 }));
        let what = match &point {
            Some(point) => format!("run --force {step}, killed at {point}"),
            None => format!("run --force {step}, killed after {} ms", delay.as_millis()),
        };
        tally.trial(&what, || {
            let p = trained().clone_trained();
            let args = ["run", "--json", "--force", step];
            match &point {
                Some(point) => {
                    let child = spawn(&p, &args, &[("MLBUILD_FAULTPOINT", point)]);
                    assert_eq!(wait(child), Ended::Killed, "the fail point was not reached");
                }
                None => {
                    let ended = kill_after(spawn(&p, &args, &[]), delay);
                    assert!(
                        matches!(ended, Ended::Killed | Ended::Exited(0)),
                        "{ended:?}"
                    );
                }
            }
            check_now(&p);
            recovers(&p);
        });
    }
}

/// A run killed after conclude registered the version and before it moved the tags (or after
/// the first of two): the next run moves the tags that were not moved, once. Before the fix the
/// version stayed untagged for good.
#[test]
fn a_conclude_killed_between_registering_and_moving_tags_is_finished_by_the_next_run() {
    let mut tally = Tally::new("conclude kills");
    for point in ["conclude.after-register", "conclude.after-tag-move"] {
        tally.trial(point, || {
            let p = trained().clone_trained();
            // Two tags, so that a kill after the first move leaves the second to do.
            p.edit(
                "promote = [\"staging\"]",
                "promote = [\"staging\", \"canary\"]",
            );
            ci_layout(&p);
            let child = spawn(&p, &["run", "--json"], &[("MLBUILD_FAULTPOINT", point)]);
            assert_eq!(wait(child), Ended::Killed, "the fail point was not reached");
            let tags = json(&p, &["tags", "--json"]);
            let moved_before = tags.as_object().unwrap().len();
            assert_eq!(
                moved_before,
                usize::from(point == "conclude.after-tag-move")
            );

            let run = p.mlbuild_offline(&["run", "--json"]).ok();
            let version = run.done()["version"].as_str().unwrap().to_string();
            assert!(
                run.stderr.contains("Finished the tag moves of run"),
                "{}",
                run.stderr
            );
            let tags = json(&p, &["tags", "--json"]);
            for tag in ["staging", "canary"] {
                assert_eq!(tags[tag], version.as_str(), "{tag}: {tags}");
                let history = json(&p, &["history", tag, "--json"]);
                assert_eq!(history.as_array().unwrap().len(), 1, "{tag}: {history}");
            }
            check_now(&p);

            // Finished once: a tag moved by hand since is never moved back by a later run.
            std::fs::copy(
                repo_root().join("tests/fixtures/mojo/gbm_bin.zip"),
                p.file("gbm_bin.zip"),
            )
            .unwrap();
            p.mlbuild_offline(&["deploy", "--mojo", "gbm_bin.zip", "--tag", "canary"])
                .ok();
            let moved_by_hand = json(&p, &["tags", "--json"])["canary"].clone();
            assert_ne!(moved_by_hand, version.as_str());
            p.mlbuild_offline(&["run", "--json"]).ok();
            assert_eq!(json(&p, &["tags", "--json"])["canary"], moved_by_hand);
            let history = json(&p, &["history", "canary", "--json"]);
            assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
            recovers(&p);
        });
    }
}
