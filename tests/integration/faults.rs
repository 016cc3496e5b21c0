//! Fault injection (issue 11, point 10): kill, race, damage and lie to mlbuild, then check that
//! nothing was lost. See docs/testing.md "Fault injection" and docs/reliability.md.
//!
//! Every trial ends with one checker ([`check`]): no JVM of the trial's project is left, `cache
//! verify` passes, the history of every tag is one unbroken chain, every tag's version scores
//! rows (`predict`), every `models/TAG.zip` holds its tag's version or a reader names it stale,
//! and the next `mlbuild run` succeeds with the canonical model of the undisturbed project —
//! after which every `models/TAG.zip` matches exactly.
//!
//! `MLBUILD_FAULTS=long` runs many more trials (the figures of docs/testing.md); the schedule
//! is seeded (`MLBUILD_FAULTS_SEED`, default 11), and every failure names its trial and seed.

mod h2o_kill;
mod races;
mod registry_kills;
mod remote_lies;
mod run_kills;
mod store_damage;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Whether the long mode was asked for.
pub fn long() -> bool {
    std::env::var("MLBUILD_FAULTS").is_ok_and(|v| v == "long")
}

/// `ci` trials normally, `long` in the long mode.
pub fn trials(ci: usize, long_mode: usize) -> usize {
    if long() {
        long_mode
    } else {
        ci
    }
}

pub fn seed() -> u64 {
    std::env::var("MLBUILD_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11)
}

/// A small seeded generator (splitmix64): the schedule of a family is reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(family: &str) -> Rng {
        let salt = blake3::hash(family.as_bytes());
        let salt = u64::from_le_bytes(salt.as_bytes()[..8].try_into().unwrap());
        Rng(seed() ^ salt)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Counts a family's trials and prints its line of the table (docs/testing.md).
pub struct Tally {
    family: &'static str,
    trials: usize,
    started: Instant,
}

impl Tally {
    pub fn new(family: &'static str) -> Tally {
        Tally {
            family,
            trials: 0,
            started: Instant::now(),
        }
    }

    /// Runs one trial; a failing trial panics with its description and the seed.
    pub fn trial(&mut self, what: &str, f: impl FnOnce()) {
        self.trials += 1;
        eprintln!("[faults] {} #{}: {what}", self.family, self.trials);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if let Err(e) = outcome {
            eprintln!(
                "[faults] FAILED {} #{}: {what} (rerun: MLBUILD_FAULTS_SEED={}{} cargo test --test integration faults::)",
                self.family,
                self.trials,
                seed(),
                if long() { " MLBUILD_FAULTS=long" } else { "" }
            );
            std::panic::resume_unwind(e);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            eprintln!(
                "[faults] | {} | {} | {} passed | {:.0} s |",
                self.family,
                self.trials,
                self.trials,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// What the undisturbed project concluded: the canonical model every recovery must reach.
pub struct Baseline {
    pub canonical: String,
    pub version: String,
}

pub fn baseline() -> &'static Baseline {
    static BASELINE: OnceLock<Baseline> = OnceLock::new();
    BASELINE.get_or_init(|| {
        // Read from a copy: a command on the shared project itself opens its SQLite WAL, and a
        // test cloning the project at that moment would copy a `-wal` file with it.
        let p = trained().clone_trained();
        let tags = json(&p, &["tags", "--json"]);
        let version = tags["staging"].as_str().unwrap().to_string();
        let v = version_of(&p, &version);
        Baseline {
            canonical: v["canonical"].as_str().unwrap().to_string(),
            version,
        }
    })
}

pub fn json(p: &Project, args: &[&str]) -> Value {
    let run = p.mlbuild_offline(args).ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}\nstdout:\n{}", run.stdout))
}

pub fn version_of(p: &Project, id: &str) -> Value {
    json(p, &["versions", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no version {id}"))
        .clone()
}

fn blake3_file(path: &Path) -> Option<String> {
    Some(
        blake3::hash(&std::fs::read(path).ok()?)
            .to_hex()
            .to_string(),
    )
}

/// Starts `mlbuild ARGS` (shared H2O node unless `env` says otherwise), output discarded.
pub fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", shared_node());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// How a killed command ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// Killed by us or by its own fail point (SIGKILL).
    Killed,
    /// It finished first, with this exit code.
    Exited(i32),
}

/// SIGKILLs `child` after `delay`, unless it ended first; waits for it (60 s at most).
pub fn kill_after(mut child: Child, delay: Duration) -> Ended {
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if child.try_wait().unwrap().is_none() {
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    }
    wait(child)
}

/// Waits for `child` (60 s at most, then it is killed and the trial fails).
pub fn wait(mut child: Child) -> Ended {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            return match status.signal() {
                Some(libc::SIGKILL) => Ended::Killed,
                Some(s) => panic!("ended by signal {s}"),
                None => Ended::Exited(status.code().unwrap()),
            };
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mlbuild did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The invariants, right after a trial (no writer has run since).
pub fn check_now(p: &Project) {
    assert!(
        wait_until(15, || jvms_mentioning(&p.path.display().to_string())
            .is_empty()),
        "a JVM of this project outlived the trial"
    );
    let verify = p.mlbuild_offline(&["cache", "verify"]);
    assert_eq!(
        verify.code, 0,
        "cache verify failed:\n{}{}",
        verify.stdout, verify.stderr
    );
    let tags = json(p, &["tags", "--json"]);
    let tags_text = p.mlbuild_offline(&["tags"]).ok();
    for (tag, version) in tags.as_object().unwrap() {
        let version = version.as_str().unwrap();
        chain_unbroken(p, tag);
        servable(p, tag);
        let model = version_of(p, version)["model"]
            .as_str()
            .unwrap()
            .to_string();
        let file = p.file(&format!("models/{tag}.zip"));
        if blake3_file(&file).as_deref() != Some(model.as_str()) {
            assert!(
                tags_text.stderr.contains(&format!("models/{tag}.zip")),
                "`models/{tag}.zip` does not hold version {version} and `tags` does not say so:\n{}",
                tags_text.stderr
            );
        }
    }
}

/// Every event's `from` is the previous event's `to`; the last `to` is the tag's version.
pub fn chain_unbroken(p: &Project, tag: &str) {
    let history = json(p, &["history", tag, "--json"]);
    let events = history.as_array().unwrap();
    let mut previous: Option<&Value> = None;
    for e in events {
        let from = &e["from"];
        match previous {
            None => assert!(from.is_null(), "first event of `{tag}` has a from: {e}"),
            Some(prev) => assert_eq!(from, &prev["to"], "history of `{tag}` is broken at {e}"),
        }
        previous = Some(e);
    }
    let tags = json(p, &["tags", "--json"]);
    assert_eq!(
        previous.map(|e| &e["to"]),
        Some(&tags[tag]),
        "history of `{tag}` ends elsewhere"
    );
}

/// `predict --model TAG` scores the first rows of the data.
pub fn servable(p: &Project, tag: &str) {
    let data = std::fs::read_to_string(p.file("data/prostate.csv")).unwrap();
    let rows: String = data.lines().take(6).map(|l| format!("{l}\n")).collect();
    p.write("rows.csv", &rows);
    let run = p.mlbuild_offline(&["predict", "--model", tag, "rows.csv"]);
    assert_eq!(run.code, 0, "tag `{tag}` is not servable:\n{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 6, "{}", run.stdout);
}

/// The next run succeeds, concludes the baseline's canonical model, and leaves every
/// `models/TAG.zip` holding its tag's version.
pub fn recovers(p: &Project) {
    let run = p.mlbuild(&["run", "--json"]);
    assert_eq!(run.code, 0, "the next run failed:\n{}", run.stderr);
    let done = run.done();
    let version = done["version"].as_str().unwrap();
    assert_eq!(
        version_of(p, version)["canonical"],
        baseline().canonical.as_str(),
        "the next run concluded another model"
    );
    check_now(p);
    let tags = json(p, &["tags", "--json"]);
    for (tag, version) in tags.as_object().unwrap() {
        let model = version_of(p, version.as_str().unwrap())["model"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            blake3_file(&p.file(&format!("models/{tag}.zip"))).as_deref(),
            Some(model.as_str()),
            "after a run, `models/{tag}.zip` still does not hold its version"
        );
    }
}

/// The CI layout of docs/ci.md: the store is kept, the registry and `models/` are not.
pub fn ci_layout(p: &Project) {
    for f in ["cache/state.db", "cache/state.db-wal", "cache/state.db-shm"] {
        let _ = std::fs::remove_file(p.file(f));
    }
    let _ = std::fs::remove_dir_all(p.file("models"));
}

/// A bare `Command` for `mlbuild` in `p` on the shared node (for helpers that need one).
pub fn command(p: &Project, args: &[&str]) -> Command {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", shared_node());
    cmd
}
