//! The bench scripts anyone can rerun: they share `benches/lib.sh`, which finds the binary
//! under `CARGO_TARGET_DIR`, creates the work folder, and bounds every wait, failing with a
//! message when the process waited for dies (issue 16 point 6: `mojo_bench.sh` failed on a
//! missing `WORK`, ran `target/release/mlbuild` whatever `CARGO_TARGET_DIR` said, and waited
//! forever for a `serve` that never started).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::repo_root;

/// `bash -c '. benches/lib.sh; SCRIPT'` in the repository: (exit code, stdout, stderr, time).
fn lib(script: &str, env: &[(&str, &str)]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". benches/lib.sh; {script}"))
        .current_dir(repo_root())
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_wait_fails_at_once_when_its_process_dies() {
    // The child exits (and stays a zombie: nothing reaps it) long before the 20 s bound.
    let (code, _, err, took) = lib(
        "echo 'bind failed' > \"$TMPDIR_LOG\"; sleep 0.2 & bench_wait 'mlbuild serve' 20 $! \"$TMPDIR_LOG\" false",
        &[("TMPDIR_LOG", &std::env::temp_dir().join(format!("bench-lib-{}.log", std::process::id())).to_string_lossy())],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: mlbuild serve: the process it waits for (pid ")
            && err.contains("exited before it was ready")
            && err.contains("bind failed"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_wait_is_bounded() {
    let (code, _, err, took) = lib(
        // (The sleeper's output goes elsewhere, or it would hold this test's pipes open.)
        "sleep 30 >/dev/null 2>&1 & s=$!; trap 'kill $s' EXIT; bench_wait 'H2O' 1 $s '' false",
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("error: H2O: not ready after 1 s"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (code, _, err, _) = lib("bench_wait 'ready' 5 $$ '' true && echo ok", &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_binary_follows_cargo_target_dir_and_the_work_folder_is_made() {
    let root = repo_root();
    let (_, out, _, _) = lib("bench_bin \"$PWD\"", &[]);
    assert_eq!(
        out.trim(),
        root.join("target/release/mlbuild").to_string_lossy()
    );
    let (_, out, _, _) = lib(
        "bench_bin \"$PWD\"",
        &[("CARGO_TARGET_DIR", "/elsewhere/t")],
    );
    assert_eq!(out.trim(), "/elsewhere/t/release/mlbuild");
    let (_, out, _, _) = lib("bench_bin \"$PWD\"", &[("CARGO_TARGET_DIR", "rel/t")]);
    assert_eq!(
        out.trim(),
        root.join("rel/t/release/mlbuild").to_string_lossy()
    );
    let dir = tempfile::tempdir().unwrap();
    let wanted = dir.path().join("a/b/work");
    let (code, out, err, _) = lib(&format!("bench_workdir '{}'", wanted.display()), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(wanted.is_dir());
    assert_eq!(out.trim(), wanted.to_string_lossy());
}

/// `interleave.py` creates the folder it writes its results into, as the scripts' work folders
/// are (it failed with "No such file or directory" after all its runs).
#[test]
fn interleave_makes_its_json_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b");
    let run = std::process::Command::new("python3")
        .current_dir(repo_root())
        .arg("benches/interleave.py")
        .args(["--runs", "1", "--warmup", "0", "--json-dir"])
        .arg(&out)
        .args(["--cmd", "t", "", "true"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.join("t.json").is_file());
}

/// `bench_page_reporting` reads feature bit 5 (free page reporting) of the virtio balloon, as
/// the bench reports record it.
#[test]
fn page_reporting_is_the_balloons_feature_bit_5() {
    let mut expected = "no balloon";
    if let Ok(dirs) = std::fs::read_dir("/sys/bus/virtio/drivers/virtio_balloon") {
        for dir in dirs.flatten() {
            if let Ok(bits) = std::fs::read_to_string(dir.path().join("features")) {
                expected = if bits.as_bytes().get(5) == Some(&b'1') {
                    "yes"
                } else {
                    "no"
                };
            }
        }
    }
    let (code, out, err, _) = lib("bench_page_reporting", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), expected);
}

/// Every bench script uses the library, and none names `target/release` itself.
#[test]
fn every_bench_script_uses_the_library() {
    for entry in std::fs::read_dir(repo_root().join("benches")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".sh") || name == "lib.sh" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("benches/lib.sh\""),
            "{name} does not source benches/lib.sh"
        );
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !code.contains("target/release"),
            "{name} names target/release instead of `bench_bin`"
        );
    }
}
