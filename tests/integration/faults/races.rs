//! Concurrent promotes of one tag, and concurrent runs of one project.

use super::*;

#[test]
fn racing_promotes_leave_the_file_with_the_tag() {
    let (base, staging, other) = crate::integrity::two_versions();
    let ids = [
        staging["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    ];
    let models: Vec<String> = [&staging, &other]
        .iter()
        .map(|v| v["model"].as_str().unwrap().to_string())
        .collect();
    let mut tally = Tally::new("promote races");
    let p = base.clone_trained();
    for pair in 0..trials(5, 40) {
        tally.trial(
            &format!("pair {pair}: promote staging A || promote staging B"),
            || {
                let a = spawn(&p, &["promote", "staging", &ids[0]], &[]);
                let b = spawn(&p, &["promote", "staging", &ids[1]], &[]);
                assert_eq!(wait(a), Ended::Exited(0));
                assert_eq!(wait(b), Ended::Exited(0));
                let tag = json(&p, &["tags", "--json"])["staging"].clone();
                let want = &models[usize::from(tag == ids[1].as_str())];
                let file = std::fs::read(p.file("models/staging.zip")).unwrap();
                assert_eq!(
                    blake3::hash(&file).to_hex().as_str(),
                    want,
                    "models/staging.zip holds the other version"
                );
                chain_unbroken(&p, "staging");
            },
        );
    }
    check_now(&p);
}

#[test]
fn racing_runs_of_one_project_both_succeed() {
    let mut rng = Rng::new("run races");
    let mut tally = Tally::new("run races");
    for _ in 0..trials(1, 10) {
        let step = *rng.pick(&["monitor", "conclude", "prepare", "confirm"]);
        tally.trial(&format!("run --force {step} || run --force {step}"), || {
            let p = trained().clone_trained();
            let args = ["run", "--json", "--force", step];
            let a = spawn(&p, &args, &[]);
            let b = spawn(&p, &args, &[]);
            assert_eq!(wait(a), Ended::Exited(0));
            assert_eq!(wait(b), Ended::Exited(0));
            check_now(&p);
            recovers(&p);
        });
    }
}
