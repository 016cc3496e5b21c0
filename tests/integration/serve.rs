//! `predict` and `serve` on trained projects (issue #7 points 3 and 4): native scores agree with
//! H2O's holdout predictions, the prepare transform is replayed, and a served tag that moves is
//! swapped in with no failed request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The blob of output `name` of `step`, from the project's `ml.lock`.
fn artifact(p: &Project, step: &str, name: &str) -> Vec<u8> {
    let lock: Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    let entry = lock["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["step"] == step)
        .unwrap();
    let digest = entry["outputs"][name].as_str().unwrap();
    std::fs::read(p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2]))).unwrap()
}

fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_reader(bytes);
    let header = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Labels equal, probabilities within 1e-12 (H2O's in-cluster scores vs the native MOJO).
fn assert_agree(ours: &[Vec<String>], h2o: &[Vec<String>]) {
    assert_eq!(ours.len(), h2o.len());
    for (i, (a, b)) in ours.iter().zip(h2o).enumerate() {
        assert_eq!(a[0], b[0], "row {i}: label");
        for (x, y) in a[1..].iter().zip(&b[1..]) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "row {i}: {x} vs H2O {y}"
            );
        }
    }
}

#[test]
fn predict_by_tag_version_and_file_agrees_with_h2o() {
    let p = trained().clone_trained();
    std::fs::write(p.file("holdout.csv"), artifact(&p, "prepare", "holdout")).unwrap();
    let (_, h2o) = csv_rows(&artifact(&p, "execute", "predictions"));
    let versions: Value =
        serde_json::from_str(&p.mlbuild_offline(&["versions", "--json"]).ok().stdout).unwrap();
    let version = versions[0]["id"].as_str().unwrap().to_string();
    let mut outputs = Vec::new();
    for model in ["staging", version.as_str(), "models/staging.zip"] {
        let run = p
            .mlbuild_offline(&["predict", "--model", model, "holdout.csv", "-o", "out.csv"])
            .ok();
        assert!(run.stderr.contains("Predicted"), "{}", run.stderr);
        let text = p.read("out.csv");
        let (header, rows) = csv_rows(text.as_bytes());
        assert_eq!(header, ["predict", "p0", "p1"], "PredictCsv's header");
        assert_agree(&rows, &h2o);
        outputs.push(text);
    }
    assert!(
        outputs.iter().all(|o| *o == outputs[0]),
        "same model, same bytes"
    );
    // Round trip: stdout too, and every number reads back to itself.
    let run = p
        .mlbuild_offline(&["predict", "--model", "staging", "holdout.csv"])
        .ok();
    assert_eq!(run.stdout, outputs[0]);

    // `predict … | head -1`: the reader goes away; mlbuild stops quietly with success.
    let holdout = p.read("holdout.csv");
    let (head, body) = holdout.split_once('\n').unwrap();
    p.write(
        "many.csv",
        &format!(
            "{head}\n{}",
            body.repeat(200_000 / body.lines().count().max(1))
        ),
    );
    let mut child = p
        .command(&["predict", "--model", "staging", "many.csv"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first.trim_end(), "predict,p0,p1");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("error"),
        "a closed pipe is not an error: {:?} {stderr}",
        out.status
    );

    // A missing column is refused before any row, naming the model's needs.
    p.write("bad.csv", "AGE,RACE,DPROS\n65,1,2\n");
    let run = p.mlbuild_offline(&["predict", "--model", "staging", "bad.csv"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no column `DCAPS`")
            && run.stderr.contains("the model needs:")
            && run.stderr.contains("`RACE` (categorical"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "nothing scored: {}", run.stdout);
    let run = p.mlbuild_offline(&["predict", "--model", "nope", "holdout.csv"]);
    assert!(
        run.code == 1
            && run
                .stderr
                .contains("`nope` is not a tag, a version or a file"),
        "{}",
        run.stderr
    );
}

#[test]
fn predict_replays_the_text_transform() {
    let p = text_project();
    p.mlbuild(&["run"]).ok();
    // Score the raw data (the data's columns: text, a column with gaps); compare the holdout
    // rows with H2O's predictions on the prepared holdout.
    let run = p
        .mlbuild_offline(&["predict", "--model", "staging", "data/reviews.csv"])
        .ok();
    let (_, ours) = csv_rows(run.stdout.as_bytes());
    let (_, raw) = csv_rows(p.read("data/reviews.csv").as_bytes());
    let (hh, holdout) = csv_rows(&artifact(&p, "prepare", "holdout"));
    let id = hh.iter().position(|h| h == "id").unwrap();
    let (_, h2o) = csv_rows(&artifact(&p, "execute", "predictions"));
    let picked: Vec<Vec<String>> = holdout
        .iter()
        .map(|r| {
            let i = raw.iter().position(|x| x[0] == r[id]).unwrap();
            ours[i].clone()
        })
        .collect();
    assert_agree(&picked, &h2o);

    // Issue 17: `--explain` explains the model's inputs after prepare (the Word2Vec columns,
    // not the text), on the raw rows; each row's contributions add up to the GLM's eta.
    let run = p
        .mlbuild_offline(&[
            "predict",
            "--model",
            "staging",
            "data/reviews.csv",
            "--explain",
        ])
        .ok();
    let (header, explained) = csv_rows(run.stdout.as_bytes());
    let (raw_header, _) = csv_rows(p.read("data/reviews.csv").as_bytes());
    let width = 3; // predict, then the two classes' probabilities
    let names = &header[width..];
    assert_eq!(
        names.last().map(String::as_str),
        Some("BiasTerm"),
        "{header:?}"
    );
    assert!(!names.iter().any(|n| n == "review"), "{header:?}");
    let derived: Vec<&String> = names[..names.len() - 1]
        .iter()
        .filter(|n| !raw_header.contains(n))
        .collect();
    assert!(derived.len() >= 8, "the Word2Vec columns: {header:?}");
    for (row, plain) in explained.iter().zip(&ours) {
        assert_eq!(row[..width], plain[..], "the predictions changed");
        let p: Vec<f64> = row[1..].iter().map(|c| c.parse().unwrap()).collect();
        let sum: f64 = p[width - 1..].iter().sum();
        let eta = (p[1] / p[0]).ln();
        assert!((sum - eta).abs() < 1e-8, "{sum} vs eta {eta}: {row:?}");
    }
    // monitor explained the same inputs natively.
    let report: Value = serde_json::from_slice(&artifact(&p, "monitor", "report")).unwrap();
    let shap = &report["shap"];
    assert_eq!(shap["method"], "exact linear (native)", "{shap}");
    let ranked: Vec<&str> = shap["importance"]
        .as_array()
        .unwrap_or_else(|| panic!("{shap}"))
        .iter()
        .map(|f| f[0].as_str().unwrap())
        .collect();
    assert!(
        derived.iter().all(|d| ranked.contains(&d.as_str())),
        "{ranked:?}"
    );
}

/// `mlbuild serve` in a project; killed on drop.
type Server = Listening;

fn start(p: &Project, extra: &[&str]) -> Server {
    start_with_env(p, extra, &[])
}

fn start_with_env(p: &Project, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut args = vec!["serve", "--model", "staging", "--port", "0"];
    args.extend_from_slice(extra);
    let mut cmd = p.command(&args);
    cmd.envs(env.iter().copied());
    listen(cmd)
}

const ROW: &str =
    r#"{"ID":1,"AGE":65,"RACE":"1","DPROS":2,"DCAPS":1,"PSA":1.4,"VOL":0,"GLEASON":6}"#;

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: answers, a tag moves under load, bad input is refused, in order"
)]
fn serve_answers_swaps_a_moved_tag_without_failing_and_refuses_bad_input() {
    let p = trained().clone_trained();
    let versions: Value =
        serde_json::from_str(&p.mlbuild_offline(&["versions", "--json"]).ok().stdout).unwrap();
    let v1 = versions[0]["id"].as_str().unwrap().to_string();
    // A second version: retrain on changed data (staging moves to it).
    let text = p.read("data/prostate.csv");
    let lines: Vec<&str> = text.lines().collect();
    p.write(
        "data/prostate.csv",
        &(lines[..lines.len() - 40].join("\n") + "\n"),
    );
    p.mlbuild(&["run"]).ok();
    let tags: Value =
        serde_json::from_str(&p.mlbuild_offline(&["tags", "--json"]).ok().stdout).unwrap();
    let v2 = tags["staging"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);

    let server = start(&p, &["--max-rows", "5", "--max-body", "4096"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let url = server.url.clone();
    let post = |body: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(format!("{url}/predict"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    rt.block_on(async {
        let health: Value = client
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["version"], v2.as_str());
        let model: Value = client
            .get(format!("{url}/model"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(model["version"], v2.as_str());
        assert_eq!(model["tag"], "staging");
        assert!(
            model["algo"].is_string() && model["signature"].as_array().unwrap().len() >= 7,
            "{model}"
        );

        let (status, body) = post(format!(r#"{{"rows":[{ROW},{ROW}]}}"#)).await;
        assert_eq!(status, 200, "{body}");
        let preds = body["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 2);
        assert!(
            preds[0]["label"].is_string() && preds[0]["probabilities"]["1"].is_number(),
            "{body}"
        );
        assert_eq!(preds[0]["version"], v2.as_str());
        let (status, single) = post(ROW.to_string()).await;
        assert_eq!((status, &single["predictions"][0]), (200, &preds[0]));

        // 4xx, each with a JSON message.
        for (body, want, says) in [
            ("{".to_string(), 400, "not valid JSON"),
            (r#"{"AGE":65}"#.to_string(), 400, "no column `RACE`"),
            (
                ROW.replace("\"AGE\":65", "\"AGE\":true"),
                400,
                "is a boolean",
            ),
            (
                ROW.replace("\"AGE\":65", "\"AGE\":\"old\""),
                400,
                "is not a number",
            ),
            (
                format!(r#"{{"rows":[{}]}}"#, [ROW; 6].join(",")),
                413,
                "the limit is 5",
            ),
            (format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000)), 413, "body"),
        ] {
            let (status, body) = post(body).await;
            assert_eq!(status, want, "{body}");
            assert!(body["error"].as_str().unwrap().contains(says), "{body}");
        }
    });

    // A client hammers /predict while the tag moves: no request fails, answers switch.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let hammer = {
        let (stop, ok, failed, seen, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            seen.clone(),
            url.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let client = reqwest::Client::new();
            rt.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    let r = client.post(format!("{url}/predict")).body(ROW).send().await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.unwrap();
                            let version = v["version"].as_str().unwrap().to_string();
                            let mut seen = seen.lock().unwrap();
                            if seen.last() != Some(&version) {
                                seen.push(version);
                            }
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    p.mlbuild_offline(&["promote", "staging", &v1]).ok();
    let switched = wait_until(20, || seen.lock().unwrap().last() == Some(&v1));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    let log = server.log.lock().unwrap().clone();
    assert!(
        switched,
        "answers switch to {v1}: {:?}\n{log}",
        seen.lock().unwrap()
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no failed request\n{log}"
    );
    assert!(ok.load(Ordering::Relaxed) > 10);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![v2.clone(), v1.clone()],
        "v2, then v1 for good"
    );
    let health: Value = rt.block_on(async {
        client
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(health["version"], v1.as_str());
}

#[test]
fn serve_with_a_token_refuses_requests_without_it() {
    let p = trained().clone_trained();
    let server = start_with_env(&p, &[], &[("MLBUILD_SERVE_TOKEN", "s3cret-token")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let url = server.url.clone();
    rt.block_on(async {
        let predict = |auth: Option<&'static str>| {
            let mut r = client
                .post(format!("{url}/predict"))
                .header("content-type", "application/json")
                .body(ROW);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send()
        };
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("s3cret-token"),
            Some("Basic s3cret-token"),
            Some("Bearers3cret-token"),
        ] {
            let r = predict(auth).await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("bearer token"),
                "{body}"
            );
        }
        // The scheme is case-insensitive (RFC 9110).
        for auth in [
            "Bearer s3cret-token",
            "bearer s3cret-token",
            "BEARER  s3cret-token",
        ] {
            let r = predict(Some(auth)).await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{auth}");
        }
        let model = client.get(format!("{url}/model")).send().await.unwrap();
        assert_eq!(model.status().as_u16(), 401, "/model is guarded too");
        // Health stays open for probes.
        let health = client.get(format!("{url}/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
    });
    drop(server);
}

/// Issue 11 point 9: a wrong method gets a JSON error with `Allow`, like every other error; a
/// `Content-Length` over `--max-body` is refused from the header (413) without waiting for a
/// body that never comes.
#[test]
fn serve_refuses_wrong_methods_and_oversize_bodies_from_the_headers() {
    use std::io::{Read, Write};
    let p = trained().clone_trained();
    let server = start(&p, &["--max-body", "4096"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let exchange = |request: &str| -> (String, Duration) {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the server closes or the reply is complete.
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if text.contains("\r\n\r\n{") && text.trim_end().ends_with('}') {
                break;
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    };

    let (answer, _) = exchange("GET /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: post"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("POST"), "{answer}");

    let (answer, took) = exchange(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 50000000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-body"), "{answer}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The server is fine afterwards.
    let (answer, _) = exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
