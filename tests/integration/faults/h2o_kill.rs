//! The managed H2O node killed (SIGKILL of the JVM) while execute trains.

use super::*;

#[test]
fn h2o_killed_mid_automl_fails_the_run_cleanly() {
    let mut rng = Rng::new("h2o kill");
    let mut tally = Tally::new("H2O kill");
    for _ in 0..trials(1, 5) {
        let delay = Duration::from_millis(rng.below(4000));
        tally.trial(
            &format!("JVM killed {} ms into AutoML", delay.as_millis()),
            || {
                let p = trained().clone_trained();
                // A managed node of the run's own (no MLBUILD_H2O_URL).
                let child = p
                    .command(&["run", "--json", "--force", "execute"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let needle = p.path.display().to_string();
                assert!(
                    wait_until(90, || !jvms_mentioning(&needle).is_empty()),
                    "no JVM started"
                );
                std::thread::sleep(Duration::from_secs(4) + delay);
                for pid in jvms_mentioning(&needle) {
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                let started = Instant::now();
                let output = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                // It fails with an error that names H2O (or had finished before the kill).
                if output.status.code() != Some(0) {
                    assert_eq!(output.status.code(), Some(1), "{stderr}");
                    assert!(stderr.contains("H2O"), "{stderr}");
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "took {:?} to notice",
                    started.elapsed()
                );
                check_now(&p);
                recovers(&p);
            },
        );
    }
}
