//! `[[steps]]`: a user's own steps, keyed, cached, confined and explained like the built-ins
//! (docs/steps.md). The trained fixture is reused, so the built-in steps replay and only the
//! user steps run — offline: no H2O is reachable, which proves none was needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{locked_entry, trained, Project, Run};

/// Writes `featurize.py`: the prepared training rows with one derived column, and what the
/// step could see (its environment's names, the files in its directory) in `seen.txt`.
const FEATURIZE: &str = r#"import csv, json, os, sys
src, out, params = sys.argv[1], sys.argv[2], sys.argv[3]
k = json.load(open(params))["scale"]
with open(src) as f, open(out, "w", newline="") as g:
    r, w = csv.reader(f), csv.writer(g)
    head = next(r)
    w.writerow(head + ["AGE_SCALED"])
    i = head.index("AGE")
    for row in r:
        w.writerow(row + [str(float(row[i]) * k) if row[i] else ""])
files = sorted(os.path.relpath(os.path.join(d, n)) for d, _, ns in os.walk(".") for n in ns
               if not d.startswith("./.mlbuild"))
with open("seen.txt", "w") as s:
    s.write(json.dumps({"env": sorted(os.environ), "path": os.environ["PATH"], "files": files}))
"#;

const STEPS: &str = r#"
[[steps]]
name = "featurize"
after = "prepare"
run = ["python3", "featurize.py", "{use.prepare.train}", "{out.features}", "{params}"]
inputs = ["featurize.py"]
uses = ["prepare.train"]
params = { scale = 2 }
env = ["MLBUILD_TEST_VISIBLE"]
tools = ["python3"]
outputs = { features = "features.csv", seen = "seen.txt" }

[[steps]]
name = "count"
after = "conclude"
run = ["sh", "-c", "wc -l < {use.featurize.features} > n.txt"]
uses = ["featurize.features"]
outputs = { n = "n.txt" }

[[steps]]
name = "stamp"
after = "conclude"
run = ["sh", "-c", "echo stamp > s.txt"]
outputs = { s = "s.txt" }
cache = false
"#;

fn with_steps(steps: &str) -> Project {
    let p = trained().clone_trained();
    p.write("featurize.py", FEATURIZE);
    p.write("secret.txt", "not declared");
    let toml = p.read("ml.toml");
    p.write("ml.toml", &format!("{toml}{steps}"));
    p
}

/// `mlbuild ARGS` with no engine reachable and the two test variables set.
fn offline(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_TEST_VISIBLE", "yes")
        .env("MLBUILD_TEST_HIDDEN", "no");
    Run::from(cmd.output().unwrap())
}

fn blob(p: &Project, digest: &str) -> PathBuf {
    p.file("cache/v1/cas").join(&digest[..2]).join(digest)
}

fn output_digest(p: &Project, step: &str, output: &str) -> String {
    locked_entry(p, step)["outputs"][output]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: a first run, what the step saw, the lock, hits, a lost output, explained reruns"
)]
fn user_steps_run_hermetically_and_cache_like_built_in_steps() {
    let p = with_steps(STEPS);
    let run = offline(&p, &["run", "--json"]).ok();
    let statuses = run.statuses();
    assert_eq!(statuses["featurize"], "ran", "{statuses:?}");
    assert_eq!(statuses["count"], "ran");
    assert_eq!(statuses["stamp"], "ran");
    for builtin in ["define", "prepare", "execute", "conclude"] {
        assert_eq!(statuses[builtin], "cached", "{statuses:?}");
    }
    assert_eq!(run.done()["status"], "ok");
    assert_eq!(run.done()["h2o_started"], false);
    let order: Vec<String> = run
        .events()
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    let at = |s: &str| order.iter().position(|x| x == s).unwrap();
    assert!(at("prepare") < at("featurize") && at("featurize") < at("confirm"));
    assert!(at("conclude") < at("count") && at("count") < at("stamp"));

    // What the command saw: its declared input only, and a cleared environment.
    let seen: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(&p, &output_digest(&p, "featurize", "seen"))).unwrap(),
    )
    .unwrap();
    // (`features.csv` is its own output, written before it looked.)
    assert_eq!(
        seen["files"],
        serde_json::json!(["features.csv", "featurize.py"])
    );
    assert_eq!(seen["path"], "/usr/local/bin:/usr/bin:/bin");
    let env: Vec<&str> = seen["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"MLBUILD_TEST_VISIBLE"), "{env:?}");
    assert!(!env.contains(&"MLBUILD_TEST_HIDDEN"), "{env:?}");
    assert!(!env.iter().any(|v| v.starts_with("CARGO")), "{env:?}");

    // In ml.lock: the key's inputs, placeholders unexpanded, and the outputs.
    let locked = locked_entry(&p, "featurize");
    assert_eq!(locked["inputs"]["run"][2], "{use.prepare.train}");
    assert_eq!(locked["inputs"]["env"]["MLBUILD_TEST_VISIBLE"], "yes");
    assert!(locked["inputs"]["tools"]["python3"]
        .as_str()
        .unwrap()
        .starts_with("Python 3"));
    let features = output_digest(&p, "featurize", "features");
    let bytes = std::fs::read(blob(&p, &features)).unwrap();
    assert!(String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap()
        .ends_with(",AGE_SCALED"));

    // A second run: hits, but `cache = false` runs every time.
    let again = offline(&p, &["run", "--json"]).ok();
    assert_eq!(again.statuses()["featurize"], "cached");
    assert_eq!(again.statuses()["count"], "cached");
    assert_eq!(again.step("stamp")["status"], "ran");
    assert_eq!(
        again.step("stamp")["reason"],
        "runs every time (`cache = false`)"
    );

    // An output gone from the store is rebuilt, byte for byte.
    std::fs::remove_file(blob(&p, &features)).unwrap();
    let rebuilt = offline(&p, &["run", "--json"]).ok();
    assert_eq!(rebuilt.statuses()["featurize"], "ran");
    assert_eq!(std::fs::read(blob(&p, &features)).unwrap(), bytes);
    assert_eq!(rebuilt.statuses()["count"], "cached", "early cutoff");

    // `--frozen` holds user steps to `ml.lock` like the built-in ones.
    offline(&p, &["run", "--frozen"]).ok();

    // Explained: a param, an input file, an env value; the users of a stale step follow it.
    p.edit("scale = 2", "scale = 3");
    let frozen = offline(&p, &["run", "--frozen"]);
    assert_eq!(frozen.code, 1);
    assert!(
        frozen.stderr.contains(
            "`ml.lock` is out of date: the key of step `featurize` changed (params.scale: 2 → 3)"
        ),
        "{}",
        frozen.stderr
    );
    let explained = offline(&p, &["explain", "featurize"]).ok();
    assert_eq!(
        explained.stdout.trim(),
        "featurize is stale: config changed: params.scale: 2 → 3"
    );
    let status = offline(&p, &["status"]).ok();
    assert!(
        status.stdout.contains("confirm  fresh"),
        "built-in steps do not read user steps' outputs: {}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("count  stale upstream step `featurize` is stale"),
        "{}",
        status.stdout
    );
    p.edit("scale = 3", "scale = 2");
    p.write("featurize.py", &format!("{FEATURIZE}# edited\n"));
    let explained = offline(&p, &["explain", "featurize"]).ok();
    assert!(
        explained
            .stdout
            .starts_with("featurize is stale: input changed: inputs.featurize.py: "),
        "{}",
        explained.stdout
    );
    p.write("featurize.py", FEATURIZE);
    let mut cmd = p.command(&["explain", "featurize"]);
    cmd.env("MLBUILD_TEST_VISIBLE", "changed");
    let explained = Run::from(cmd.output().unwrap()).ok();
    assert_eq!(
        explained.stdout.trim(),
        "featurize is stale: environment changed: env.MLBUILD_TEST_VISIBLE: yes → changed"
    );

    // `run STEP` and `--force STEP` take a user step's name; an unknown one is named.
    let forced = offline(&p, &["run", "featurize", "--force", "featurize", "--json"]).ok();
    assert_eq!(forced.statuses()["featurize"], "ran");
    assert!(!forced.statuses().contains_key("confirm"));
    let unknown = offline(&p, &["run", "featurise"]);
    assert_eq!(unknown.code, 2, "a usage error");
    assert!(
        unknown.stderr.contains("there is no step `featurise`")
            && unknown.stderr.contains("did you mean `featurize`?"),
        "{}",
        unknown.stderr
    );
}

/// A command that fails, or exits 0 without writing an output, fails the step with its
/// stderr's last lines, and nothing is cached: the next run runs it again.
#[test]
fn a_failing_user_step_caches_nothing_and_shows_its_stderr() {
    let p = Project::from_fixture("prostate");
    let toml = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!(
            "{toml}\n[[steps]]\nname = \"broken\"\nafter = \"prepare\"\nrun = [\"sh\", \"-c\", \"echo first >&2; echo 'bad column AGE' >&2; exit 3\"]\noutputs = {{ o = \"o.txt\" }}\n"
        ),
    );
    for _ in 0..2 {
        let run = p.mlbuild_offline(&["run", "broken"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("exited with 3; its stderr ends:\n  | first\n  | bad column AGE"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("failed broken"), "{}", run.stderr);
    }
    p.edit("exit 3", "exit 0");
    let run = p.mlbuild_offline(&["run", "broken"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("exited 0 but did not write `o` (o.txt) as a regular file; its stderr ends:"),
        "{}",
        run.stderr
    );
    // A symlink is not an output (it could name a device, or a file outside the directory).
    p.edit("exit 0", "ln -s /dev/zero o.txt");
    let run = p.mlbuild_offline(&["run", "broken"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("did not write `o` (o.txt) as a regular file"),
        "{}",
        run.stderr
    );
    p.edit("ln -s /dev/zero o.txt", "exit 0");
    p.edit("exit 0", "echo ok > o.txt");
    let run = p.mlbuild_offline(&["run", "broken", "--json"]).ok();
    assert_eq!(run.statuses()["broken"], "ran");
}

/// A step that writes outside its directory fails: under bwrap the write itself fails; in the
/// checked mode the write is found in the project and named.
#[test]
fn writes_outside_a_steps_directory_fail() {
    let p = Project::from_fixture("prostate");
    let toml = p.read("ml.toml");
    // The step's directory is `cache/v1/tmp/step-*`: four levels under the project.
    p.write(
        "ml.toml",
        &format!(
            "{toml}\n[[steps]]\nname = \"escape\"\nafter = \"locate\"\nrun = [\"sh\", \"-c\", \"set -e; echo x > ../../../../escaped.txt; echo ok > o.txt\"]\noutputs = {{ o = \"o.txt\" }}\n"
        ),
    );
    let bwrap = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if bwrap {
        let run = p.mlbuild_offline(&["run", "escape"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("Read-only file system"),
            "{}",
            run.stderr
        );
        assert!(!p.file("escaped.txt").exists());
    } else {
        eprintln!("note: bwrap cannot make a sandbox here; testing the checked mode only");
    }
    let mut cmd = p.command(&["run", "escape"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_STEP_SANDBOX", "checked");
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("step `escape` wrote into the project: escaped.txt"),
        "{}",
        run.stderr
    );
}

/// `status` and `explain` never run a user's command, tools included: a tool's version is
/// asked by `run`, once per program file (its path, size and mtime).
#[test]
fn planning_never_runs_a_tool_and_runs_ask_it_once() {
    let p = trained().clone_trained();
    let log = p.file("tool.log");
    p.write(
        "tool.sh",
        &format!(
            "#!/bin/sh\necho asked >> {}\necho tool 1.0\n",
            log.display()
        ),
    );
    let mut perms = std::fs::metadata(p.file("tool.sh")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(p.file("tool.sh"), perms).unwrap();
    let toml = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!(
            "{toml}\n[[steps]]\nname = \"t\"\nafter = \"locate\"\nrun = [\"sh\", \"-c\", \"echo ok > o.txt\"]\ntools = [\"./tool.sh\"]\noutputs = {{ o = \"o.txt\" }}\n"
        ),
    );
    let asked = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    p.mlbuild_offline(&["status"]).ok();
    p.mlbuild_offline(&["explain", "t"]).ok();
    assert_eq!(asked(&log), 0, "planning asked the tool");
    p.mlbuild_offline(&["run"]).ok();
    p.mlbuild_offline(&["run"]).ok();
    assert_eq!(asked(&log), 1, "asked once");
    assert_eq!(
        locked_entry(&p, "t")["inputs"]["tools"]["./tool.sh"],
        "tool 1.0"
    );
    // A new program file is asked again, and a new version reruns the step.
    p.write(
        "tool.sh",
        &format!(
            "#!/bin/sh\necho asked >> {}\necho tool 2.0\n",
            log.display()
        ),
    );
    let explained = p.mlbuild_offline(&["explain", "t"]).ok();
    assert_eq!(
        explained.stdout.trim(),
        "t is stale: tool changed: tools../tool.sh: tool 1.0 → (not probed yet: `mlbuild run` asks it)"
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_eq!(asked(&log), 2);
    assert_eq!(
        run.step("t")["reason"],
        "tool changed: tools../tool.sh: tool 1.0 → tool 2.0"
    );
}

/// A user step's outputs go to the remote cache; a clone without them restores them from it
/// without running the command.
#[test]
fn user_steps_are_pushed_and_restored_by_the_remote_cache() {
    let Some(nginx) = crate::remote::Nginx::start() else {
        return;
    };
    let p = with_steps(STEPS);
    let remote = |p: &Project, args: &[&str]| {
        let mut cmd = p.command(args);
        cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
            .env("MLBUILD_TEST_VISIBLE", "yes")
            .env("MLBUILD_REMOTE_CACHE", nginx.url());
        Run::from(cmd.output().unwrap())
    };
    remote(&p, &["run", "--json"]).ok();
    let features = output_digest(&p, "featurize", "features");
    let bytes = std::fs::read(blob(&p, &features)).unwrap();
    std::fs::remove_file(blob(&p, &features)).unwrap();
    let run = remote(&p, &["run", "--json"]).ok();
    assert_eq!(run.statuses()["featurize"], "restored", "{}", run.stdout);
    assert_eq!(std::fs::read(blob(&p, &features)).unwrap(), bytes);
}

/// Adds `PSA_PER_AGE` to prepare's train and holdout rows.
const PROVIDE: &str = r#"import csv, sys
for src, out in ((sys.argv[1], sys.argv[3]), (sys.argv[2], sys.argv[4])):
    with open(src) as f, open(out, "w", newline="") as g:
        r, w = csv.reader(f), csv.writer(g)
        head = next(r)
        w.writerow(head + ["PSA_PER_AGE"])
        psa, age = head.index("PSA"), head.index("AGE")
        for row in r:
            ok = row[psa] and row[age] and float(row[age]) > 0
            w.writerow(row + [f"{float(row[psa]) / float(row[age]):.6g}" if ok else ""])
"#;

/// A step that provides the training data: confirm, execute and monitor see its rows, the
/// model is trained on its columns, and predict refuses raw rows, saying why.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: the run, predict and serve on raw and provided rows, a broken step"
)]
fn a_step_that_provides_the_training_data_feeds_the_model() {
    let p = Project::from_fixture("prostate");
    p.write("provide.py", PROVIDE);
    let toml = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!(
            "{toml}\n[[steps]]\nname = \"features\"\nafter = \"prepare\"\nrun = [\"python3\", \"provide.py\", \"{{use.prepare.train}}\", \"{{use.prepare.holdout}}\", \"{{out.train}}\", \"{{out.holdout}}\"]\ninputs = [\"provide.py\"]\nuses = [\"prepare.train\", \"prepare.holdout\"]\noutputs = {{ train = \"train.csv\", holdout = \"holdout.csv\" }}\nprovides = [\"train\", \"holdout\"]\n"
        ),
    );
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.done()["status"], "ok");
    let ran = run.ran();
    assert_eq!(
        &ran[..5],
        ["define", "locate", "prepare", "features", "confirm"],
        "{ran:?}"
    );
    assert!(ran.contains(&"execute".to_string()));
    let again = p.mlbuild_offline(&["run", "--json"]).ok();
    assert!(
        again.statuses().values().all(|s| s == "cached"),
        "{:?}",
        again.statuses()
    );

    // Raw rows are refused with the reason; the provided rows score.
    let raw = p.mlbuild_offline(&["predict", "--model", "staging", "data/prostate.csv"]);
    assert_eq!(raw.code, 1, "{}", raw.stderr);
    assert!(
        raw.stderr.contains("the input has no column `PSA_PER_AGE`")
            && raw.stderr.contains("rows that step `features` provides"),
        "{}",
        raw.stderr
    );
    let holdout = output_digest(&p, "features", "holdout");
    std::fs::copy(blob(&p, &holdout), p.file("provided.csv")).unwrap();
    let scored = p
        .mlbuild_offline(&["predict", "--model", "staging", "provided.csv"])
        .ok();
    let rows = std::fs::read_to_string(p.file("provided.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        scored.stdout.lines().count(),
        rows,
        "a header and one line per row"
    );

    // serve says the same of a raw row (400), and scores a provided one.
    let mut cmd = p.command(&["serve", "--model", "staging", "--port", "0"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    let server = crate::support::listen(cmd);
    let raw_row =
        r#"{"ID":1,"AGE":65,"RACE":"1","DPROS":2,"DCAPS":1,"PSA":1.4,"VOL":0,"GLEASON":6}"#;
    let provided_row = raw_row.replace("\"GLEASON\":6", "\"GLEASON\":6,\"PSA_PER_AGE\":0.0215");
    let post = |body: String| {
        crate::support::runtime().block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/predict", server.url))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (status, body) = post(raw_row.to_string());
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("rows that step `features` provides"),
        "{body}"
    );
    let (status, body) = post(provided_row);
    assert_eq!(status, 200, "{body}");

    // A provided file without the target is an error of the step.
    p.write(
        "provide.py",
        "import csv, sys\nfor src, out in ((sys.argv[1], sys.argv[3]), (sys.argv[2], sys.argv[4])):\n    rows = list(csv.reader(open(src)))\n    i = rows[0].index(\"CAPSULE\")\n    csv.writer(open(out, \"w\", newline=\"\")).writerows([r[:i] + r[i + 1:] for r in rows])\n",
    );
    let broken = p.mlbuild_offline(&["run", "confirm"]);
    assert_eq!(broken.code, 1);
    assert!(
        broken
            .stderr
            .contains("step `features` provides training rows without the target column `CAPSULE`"),
        "{}",
        broken.stderr
    );
}

/// The UI lists user steps in walk order on the pipeline page, and each has a step page with
/// its recorded key inputs, classed by the user steps' key table.
#[test]
fn the_ui_shows_user_steps_in_walk_order() {
    let p = with_steps(STEPS);
    offline(&p, &["run"]).ok();
    let mut cmd = p.command(&["ui", "--port", "0"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_TEST_VISIBLE", "yes");
    let server = crate::support::listen(cmd);
    let get = |path: &str| {
        crate::support::runtime().block_on(async {
            let resp = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    let (status, pipeline) = get("/");
    assert_eq!(status, 200);
    let at = |s: &str| {
        pipeline
            .find(&format!("/steps/{s}\""))
            .unwrap_or_else(|| panic!("`{s}` on the pipeline page"))
    };
    assert!(at("prepare") < at("featurize") && at("featurize") < at("confirm"));
    assert!(at("conclude") < at("count"));
    let (status, doc) = get("/api/steps/featurize");
    assert_eq!(status, 200, "{doc}");
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let classes: std::collections::BTreeMap<String, String> = doc["recorded"][0]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["field"].as_str().unwrap().to_string(),
                i["class"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(classes["run"], "command");
    assert_eq!(classes["uses"], "upstream");
    assert_eq!(classes["inputs"], "input");
    let (status, _) = get("/steps/nosuchstep");
    assert_eq!(status, 404);
}

/// An interrupted run stops a step's command and everything it started (its process group).
#[test]
fn an_interrupted_run_leaves_no_process_of_a_step_behind() {
    let p = Project::from_fixture("prostate");
    let toml = p.read("ml.toml");
    // The marker makes this test's sleeper findable; the step never finishes on its own.
    p.write(
        "ml.toml",
        &format!(
            "{toml}\n[[steps]]\nname = \"slow\"\nafter = \"locate\"\nrun = [\"sh\", \"-c\", \"sleep 301.25 & wait\"]\noutputs = {{ o = \"o.txt\" }}\n"
        ),
    );
    let sleepers = || {
        let out = Command::new("pgrep")
            .args(["-f", "sleep 301.25"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let mut child = p
        .command(&["run", "slow"])
        .env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        crate::support::wait_until(30, || sleepers() > 0),
        "the step's command started"
    );
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        crate::support::wait_until(10, || sleepers() == 0),
        "a process the step started outlived the run"
    );
}
