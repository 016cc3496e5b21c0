//! SIGKILL of `promote` and `rollback`: at the fail point between the database commit and the
//! file of `models/`, and at seeded instants.

use super::*;

#[test]
fn promote_and_rollback_killed_anywhere_lose_nothing() {
    let (base, staging, other) = crate::integrity::two_versions();
    let (staging, other) = (
        staging["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    );
    let mut rng = Rng::new("registry kills");
    let mut tally = Tally::new("promote/rollback kills");
    for i in 0..trials(4, 30) {
        let rollback = rng.below(2) == 0;
        let at_point = i % 2 == 0;
        let delay = Duration::from_millis(rng.below(120));
        let what = format!(
            "{}, killed {}",
            if rollback {
                "rollback staging"
            } else {
                "promote staging OTHER"
            },
            if at_point {
                "at tags.after-commit".to_string()
            } else {
                format!("after {} ms", delay.as_millis())
            }
        );
        tally.trial(&what, || {
            let p = base.clone_trained();
            let args: Vec<&str> = if rollback {
                // Something to roll back: staging moved to the other version and back.
                p.mlbuild_offline(&["promote", "staging", &other]).ok();
                p.mlbuild_offline(&["promote", "staging", &staging]).ok();
                vec!["rollback", "staging"]
            } else {
                vec!["promote", "staging", &other]
            };
            let env: &[(&str, &str)] = if at_point {
                &[("MLBUILD_FAULTPOINT", "tags.after-commit")]
            } else {
                &[]
            };
            let child = spawn(&p, &args, env);
            let ended = if at_point {
                wait(child)
            } else {
                kill_after(child, delay)
            };
            if at_point {
                assert_eq!(ended, Ended::Killed, "the fail point was not reached");
                // The commit happened; the file lags behind, and readers say so.
                assert_eq!(json(&p, &["tags", "--json"])["staging"], other.as_str());
            }
            check_now(&p);
            // `promote` of what the tag already names is a writer too: it repairs the file.
            let now = json(&p, &["tags", "--json"])["staging"]
                .as_str()
                .unwrap()
                .to_string();
            p.mlbuild_offline(&["promote", "staging", &now]).ok();
            recovers(&p);
        });
    }
}
