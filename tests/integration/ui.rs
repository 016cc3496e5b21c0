//! `mlbuild ui` (issue 13, first part): every page and API answer on a trained project and on
//! an empty one, the API in the CLI's `--json` shapes, nothing written, H2O never started, and
//! the token rules off loopback.

use serde_json::Value;

use crate::support::*;

fn start_ui(p: &Project, extra: &[&str], env: &[(&str, &str)]) -> Listening {
    let mut args = vec!["ui", "--port", "0"];
    args.extend_from_slice(extra);
    let mut cmd = p.command(&args);
    // Reading never starts H2O: any attempt would fail against this address.
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    cmd.envs(env.iter().copied());
    listen(cmd)
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    runtime().block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

fn page(server: &Listening, path: &str) -> String {
    let (status, body) = get(&format!("{}{path}", server.url), None);
    assert_eq!(
        status,
        200,
        "{path}: {body}\n{}",
        server.log.lock().unwrap()
    );
    body
}

fn cli_json(p: &Project, args: &[&str]) -> Value {
    serde_json::from_str(&p.mlbuild_offline(args).ok().stdout).unwrap()
}

#[test]
fn every_page_reads_a_trained_project_and_the_api_matches_the_cli() {
    let p = trained().clone_trained();
    // The run that trained the project left all it wrote in `state.db` (its WAL checkpointed
    // on close), so no reader below changes a byte of it.
    let state = std::fs::read(p.file("cache/state.db")).unwrap();
    let tags = cli_json(&p, &["tags", "--json"]);
    let unchanged = |when: &str| {
        assert!(
            std::fs::read(p.file("cache/state.db")).unwrap() == state,
            "the registry changed: {when}"
        );
    };
    let version = tags["staging"].as_str().unwrap().to_string();
    let server = start_ui(&p, &[], &[]);

    let pipeline = page(&server, "/");
    for step in [
        "define", "locate", "prepare", "confirm", "execute", "monitor", "modify", "conclude",
    ] {
        assert!(pipeline.contains(&format!("id=\"step-{step}\"")), "{step}");
    }
    assert!(pipeline.contains("<svg class=\"graph\""), "{pipeline}");
    assert!(pipeline.contains("up to date"), "{pipeline}");
    unchanged("the pipeline page");
    assert!(page(&server, "/runs").contains("id=\"run-1\""));
    assert!(page(&server, "/models").contains(&format!("/models/{version}")));
    let version_page = page(&server, &format!("/models/{version}"));
    assert!(version_page.contains("Provenance"));
    // The model card is rendered with its plots inline, each served from the store.
    let src = format!("<img src=\"/models/{version}/plots/");
    let at = version_page.find(&src).expect("an inline plot") + 10;
    let url = &version_page[at..at + version_page[at..].find('"').unwrap()];
    let svg = page(&server, url);
    assert!(
        svg.contains("<svg"),
        "{url}: {}",
        &svg[..svg.len().min(200)]
    );
    let (status, _) = get(
        &format!("{}/models/{version}/plots/x.svg", server.url),
        None,
    );
    assert_eq!(status, 404);
    assert!(page(&server, "/tags").contains("id=\"tag-staging\""));
    assert!(page(&server, "/assets/ui.css").contains("prefers-color-scheme: dark"));
    let (status, _) = get(&format!("{}/models/v0-nope", server.url), None);
    assert_eq!(status, 404);

    unchanged("the pages");
    // The API serves what the CLI prints with --json.
    let api = |path: &str| -> Value { serde_json::from_str(&page(&server, path)).unwrap() };
    assert_eq!(api("/api/status"), cli_json(&p, &["status", "--json"]));
    assert_eq!(api("/api/versions"), cli_json(&p, &["versions", "--json"]));
    assert_eq!(api("/api/tags"), tags);
    assert_eq!(api("/api/runs"), cli_json(&p, &["runs", "--json"]));
    let runs = api("/api/runs");
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["steps"]["ran"], 8, "{runs}");

    unchanged("the API and the CLI");
    // After a config edit the pipeline page explains the staleness as `explain` does.
    p.edit("threshold = 0.70", "threshold = 0.75");
    let pipeline = page(&server, "/");
    assert!(
        pipeline.contains("config changed: threshold: 0.7 → 0.75"),
        "{pipeline}"
    );
    drop(server);
    unchanged("the end");
}

/// A failed run keeps its error as the CLI printed it, hint included, and who started it: the
/// run page and `runs --json` show them.
#[test]
fn a_failed_run_shows_its_error_and_hint() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["run", "-q"]);
    cmd.env("MLBUILD_H2O_JAR", "jars/h2o.jar");
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let runs = cli_json(&p, &["runs", "--json"]);
    let error = runs[0]["error"].as_str().unwrap();
    assert_eq!(
        error.trim_end(),
        run.stderr.trim_end(),
        "the error as printed"
    );
    assert!(error.contains("hint: fix `MLBUILD_H2O_JAR`"), "{error}");
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["user"].is_string(), "{runs}");
    let server = start_ui(&p, &[], &[]);
    let page_text = page(&server, "/runs/1");
    assert!(
        page_text.contains("hint: fix `MLBUILD_H2O_JAR`"),
        "{page_text}"
    );
    let api: Value = serde_json::from_str(&page(&server, "/api/runs/1")).unwrap();
    assert_eq!(api["run"]["error"].as_str(), Some(error));
    assert_eq!(api["steps"][3]["step"], "confirm");
    let (status, _) = get(&format!("{}/runs/99", server.url), None);
    assert_eq!(status, 404);
}

#[test]
fn a_project_without_runs_or_ml_toml_says_what_to_do_next() {
    let p = Project::from_fixture("prostate");
    let server = start_ui(&p, &[], &[]);
    assert!(page(&server, "/").contains("No run yet"));
    assert!(page(&server, "/runs").contains("No runs yet"));
    assert!(page(&server, "/models").contains("No version registered yet"));
    assert!(page(&server, "/tags").contains("No tags yet"));
    assert!(
        !p.file("cache/state.db").exists(),
        "reading created a registry"
    );
    // A run made while the UI is open (here one that fails at execute) shows up: the
    // registry it creates is opened at the next request.
    let mut cmd = p.command(&["run", "-q"]);
    cmd.env("MLBUILD_H2O_JAR", "jars/h2o.jar");
    assert_eq!(Run::from(cmd.output().unwrap()).code, 1);
    assert!(page(&server, "/runs").contains("id=\"run-1\""));
    std::fs::remove_file(p.file("ml.toml")).unwrap();
    assert!(page(&server, "/").contains("mlbuild init"));
}

#[test]
fn off_loopback_the_ui_needs_a_token_and_every_request_carries_it() {
    let p = Project::from_fixture("prostate");
    let run = Run::from(
        p.command(&["ui", "--host", "0.0.0.0", "--port", "0"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("without a token") && run.stderr.contains("MLBUILD_UI_TOKEN"),
        "{}",
        run.stderr
    );

    let server = start_ui(&p, &[], &[("MLBUILD_UI_TOKEN", "s3cret")]);
    let (status, body) = get(&format!("{}/api/tags", server.url), None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = get(&format!("{}/api/tags", server.url), Some("wrong"));
    assert_eq!(status, 401);
    let (status, _) = get(&format!("{}/api/tags", server.url), Some("s3cret"));
    assert_eq!(status, 200);
    // A browser logs in once; the cookie carries the token after.
    let cookie = runtime().block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client
            .get(format!("{}/login?token=s3cret", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        resp.headers()["set-cookie"].to_str().unwrap().to_string()
    });
    assert!(cookie.starts_with("mlbuild_ui=s3cret;") && cookie.contains("HttpOnly"));
    let (status, _) = runtime().block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}/", server.url))
            .header("cookie", "mlbuild_ui=s3cret")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(status, 200);
}

/// The form token of a confirmation page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..at + 64].to_string()
}

fn post(server: &Listening, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client
            .post(format!("{}{path}", server.url))
            .form(form)
            .send()
            .await
            .unwrap();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        (status, if status == 303 { location } else { body })
    })
}

/// Promote and rollback from the pages move the tag through the CLI's code: its history
/// records the reason, `models/TAG.zip` holds the version's MOJO; a form without the page's
/// token moves nothing.
#[test]
fn promote_and_rollback_from_the_page_move_the_tag_as_the_cli_does() {
    let (p, staging, other) = crate::integrity::two_versions();
    let (staging, other) = (
        staging["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    );
    let model_of = |id: &str| -> String {
        cli_json(&p, &["show", id, "--json"])["model"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let server = start_ui(&p, &[], &[]);
    assert!(page(&server, &format!("/models/{other}")).contains("action=\"/promote\""));
    let confirm = page(
        &server,
        &format!("/promote?tag=production&version={other}&reason=better%20recall"),
    );
    assert!(
        confirm.contains("points at <code>nothing yet</code>"),
        "{confirm}"
    );
    let csrf = csrf_of(&confirm);

    let form = |token: &str, version: &str, reason: &str| {
        vec![
            ("tag", "production".to_string()),
            ("version", version.to_string()),
            ("reason", reason.to_string()),
            ("csrf", token.to_string()),
        ]
    };
    let send = |fields: Vec<(&str, String)>, path: &str| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&server, path, &fields)
    };
    let (status, _) = send(
        form("0".repeat(64).as_str(), &other, "better recall"),
        "/promote",
    );
    assert_eq!(status, 403, "a forged form is refused");
    assert!(cli_json(&p, &["tags", "--json"])
        .get("production")
        .is_none());

    let (status, location) = send(form(&csrf, &other, "better recall"), "/promote");
    assert_eq!((status, location.as_str()), (303, "/tags#tag-production"));
    assert_eq!(
        cli_json(&p, &["tags", "--json"])["production"],
        other.as_str()
    );
    let history = cli_json(&p, &["history", "production", "--json"]);
    assert_eq!(history[0]["reason"], "better recall", "{history}");
    let zip = std::fs::read(p.file("models/production.zip")).unwrap();
    assert_eq!(blake3::hash(&zip).to_hex().to_string(), model_of(&other));

    // Promote the other version too, then roll back: production returns to the first.
    let (status, _) = send(form(&csrf, &staging, "try the trained one"), "/promote");
    assert_eq!(status, 303);
    let confirm = page(&server, "/rollback?tag=production");
    assert!(confirm.contains("action=\"/rollback\""), "{confirm}");
    let (status, _) = post(
        &server,
        "/rollback",
        &[("tag", "production"), ("csrf", csrf_of(&confirm).as_str())],
    );
    assert_eq!(status, 303);
    assert_eq!(
        cli_json(&p, &["tags", "--json"])["production"],
        other.as_str()
    );
    let zip = std::fs::read(p.file("models/production.zip")).unwrap();
    assert_eq!(blake3::hash(&zip).to_hex().to_string(), model_of(&other));
    let history = cli_json(&p, &["history", "production", "--json"]);
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");

    // A promotion needs a reason; an unknown version is refused with the CLI's error.
    let (status, body) = send(form(&csrf, &other, " "), "/promote");
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(form(&csrf, "v0-nope", "why"), "/promote");
    assert_eq!(status, 422);
    assert!(body.contains("v0-nope"), "{body}");
}

/// After a retrain with one `--set` (a column ignored), compare shows that param and what
/// changed with it, and
/// everything on request; `/api/compare` is `diff --json`.
#[test]
fn compare_shows_only_what_differs_after_a_set_retrain() {
    let p = trained().clone_trained();
    let staging = |p: &Project| -> String {
        cli_json(p, &["tags", "--json"])["staging"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = staging(&p);
    let run = p
        .mlbuild(&["run", "--set", "define.ignore=[\"ID\", \"AGE\"]"])
        .ok();
    let after = staging(&p);
    assert_ne!(before, after, "a new version: {}", run.stderr);

    let server = start_ui(&p, &[], &[]);
    let path = format!("/compare?a={before}&b={after}");
    let diff = page(&server, &path);
    assert!(diff.contains("id=\"param-define.ignore\""), "{diff}");
    assert_eq!(diff.matches("id=\"param-").count(), 1, "{diff}");
    assert!(!diff.contains("data snapshot"), "the data did not change");
    let everything = page(&server, &format!("{path}&all=1"));
    assert!(everything.matches("<tr class=").count() > 5, "{everything}");
    assert!(everything.contains("data snapshot"));
    let api: Value = serde_json::from_str(&page(
        &server,
        &format!("/api/compare?a={before}&b={after}"),
    ))
    .unwrap();
    assert_eq!(api, cli_json(&p, &["diff", &before, &after, "--json"]));
    assert!(page(&server, "/compare").contains("Pick two versions"));
}

/// The data page shows confirm's last report and the snapshot's profile, found through
/// `ml.lock`; `/api/data` serves the stored report itself.
#[test]
fn the_data_page_shows_the_gate_and_the_profile() {
    let p = trained().clone_trained();
    let server = start_ui(&p, &[], &[]);
    let data = page(&server, "/data");
    assert!(data.contains("state-fresh\">passed"), "{data}");
    for rule in ["min_rows", "max_null_fraction"] {
        assert!(
            data.contains(&format!("<code>{rule}</code>")),
            "{rule}: {data}"
        );
    }
    assert!(data.contains("id=\"column-PSA\""), "{data}");
    assert!(data.contains("the fraction of missing values per column"));
    let lock: Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    let report = lock["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "confirm")
        .unwrap()["outputs"]["report"]
        .as_str()
        .unwrap()
        .to_string();
    let stored: Value = serde_json::from_slice(
        &std::fs::read(p.file(&format!("cache/v1/cas/{}/{report}", &report[..2]))).unwrap(),
    )
    .unwrap();
    let api: Value = serde_json::from_str(&page(&server, "/api/data")).unwrap();
    assert_eq!(api["confirm"], stored);
    assert_eq!(api["profile"]["rows"], 380);

    let empty = Project::from_fixture("prostate");
    let server = start_ui(&empty, &[], &[]);
    assert!(page(&server, "/data").contains("No data-quality report yet"));
}

/// The Run button's form needs the page's token, and a run is refused (409, saying why) while
/// another process holds the project's run lock; nothing is started then.
#[test]
fn the_run_button_needs_the_token_and_respects_the_run_lock() {
    let p = trained().clone_trained();
    let server = start_ui(&p, &[], &[]);
    let pipeline = page(&server, "/");
    assert!(pipeline.contains("action=\"/run\""), "{pipeline}");
    let csrf = csrf_of(&pipeline);
    let (status, _) = post(&server, "/run", &[("csrf", "forged")]);
    assert_eq!(status, 403);
    // Another process holds the lock (flock(2), as a terminal run does).
    let lock = p.file("cache/v1/run.lock");
    std::fs::write(&lock, "pid 4242").unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body) = post(&server, "/run", &[("csrf", csrf.as_str())]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("holds this project&#39;s run lock")
            || body.contains("holds this project's run lock"),
        "{body}"
    );
    let job: Value = serde_json::from_str(&page(&server, "/api/job")).unwrap();
    assert_eq!(job["state"], "idle", "{job}");
    assert_eq!(
        cli_json(&p, &["runs", "--json"]).as_array().unwrap().len(),
        1
    );
}
