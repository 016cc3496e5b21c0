//! `mlbuild ui` in a real browser (issue 13): Debian's `chromium`, headless, driven through
//! `chromedriver` with fantoccini, against projects with real runs on the shared H2O node.
//!
//! Every page is checked for console errors, read from chromedriver's browser log (a page
//! with a deliberate error proves the check sees one), and photographed: the screenshots are
//! written under `$MLBUILD_TEST_ARTIFACTS/ui` (default: `target/test-artifacts/ui` in the repo).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::*;

/// chromedriver's browser log (`POST /session/{id}/se/log`, type `browser`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// A headless Chromium behind its own chromedriver; both stop when dropped.
struct Browser {
    driver: Child,
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    shots: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's `chromium-driver`; .ci/run installs it)");
        let rt = runtime();
        let url = format!("http://127.0.0.1:{port}");
        let ready = wait_until(30, || {
            rt.block_on(async {
                reqwest::get(format!("{url}/status"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
        });
        assert!(ready, "chromedriver did not start on port {port}");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--window-size=1280,1000",
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let client = rt
            .block_on(
                // chromedriver is on loopback: plain HTTP, no TLS stack.
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url),
            )
            .expect("a Chromium session");
        let shots = std::env::var_os("MLBUILD_TEST_ARTIFACTS")
            .map_or_else(|| repo_root().join("target/test-artifacts"), PathBuf::from)
            .join("ui");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client: Some(client),
            rt,
            shots,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap();
    }

    fn url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// Waits (up to 20 s) for the page's URL to satisfy `f` (a form's answer to load).
    fn wait_url(&self, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.url();
            if f(&url) || Instant::now() > end {
                return url;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the first element matching `css` ("" if none).
    fn text(&self, css: &str) -> String {
        self.rt.block_on(async {
            match self.client().find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
    }

    fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.unwrap();
            e.click().await.unwrap();
        });
    }

    fn fill(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(value).await.unwrap();
        });
    }

    fn js(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap()
    }

    /// Waits (up to `secs`) until `main`'s text satisfies `f`; returns whether it did.
    fn wait_text(&self, secs: u64, f: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f(&self.text("main")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits (up to `secs`) until `script` returns true.
    fn wait_js(&self, secs: u64, script: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if self.js(script) == Value::Bool(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        false
    }

    /// The console errors (and failed loads) since the last call.
    fn console_errors(&self) -> Vec<String> {
        let log = self
            .rt
            .block_on(self.client().issue_cmd(BrowserLog))
            .unwrap();
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn screenshot(&self, name: &str) {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Loads `path`, checks it has no console error, and photographs it as `name`.
    fn visit(&self, base: &str, path: &str, name: &str) {
        self.goto(&format!("{base}{path}"));
        // Scripts run after load; give the live stream a moment to connect.
        std::thread::sleep(Duration::from_millis(300));
        let errors = self.console_errors();
        assert!(errors.is_empty(), "{path}: console errors: {errors:#?}");
        self.screenshot(name);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Some step of the pipeline page shows `running`.
const RUNNING_STEP: &str = "return document.querySelector('td.state-running') !== null;";

fn cli_json(p: &Project, args: &[&str]) -> Value {
    serde_json::from_str(&p.mlbuild_offline(args).ok().stdout).unwrap()
}

/// The UI, with the shared node for the runs its Run button starts.
fn start_ui(p: &Project) -> Listening {
    let mut cmd = p.command(&["ui", "--port", "0"]);
    cmd.env("MLBUILD_H2O_URL", shared_node());
    listen(cmd)
}

/// Every page of a project with two versions loads without a console error, and the check
/// sees an error when a page has one. Times are shown in local time with UTC kept.
#[test]
fn every_page_loads_in_chromium_without_console_errors() {
    let (p, staging, other) = crate::integrity::two_versions();
    let (staging, other) = (
        staging["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    );
    let server = start_ui(&p);
    let browser = Browser::start();

    // The check can fail: a page with an error logs it.
    browser.goto(
        "data:text/html,<title>x</title><script>throw new Error('deliberate failure')</script>",
    );
    let errors = browser.console_errors();
    assert!(
        errors.iter().any(|e| e.contains("deliberate failure")),
        "the deliberate error is seen: {errors:?}"
    );

    let pages = [
        ("/", "pipeline"),
        ("/runs", "runs"),
        ("/runs/1", "run"),
        ("/models", "models"),
        ("/models?sort=auc", "models-by-auc"),
        (&format!("/models/{staging}") as &str, "version"),
        (&format!("/compare?a={staging}&b={other}"), "compare"),
        ("/tags", "tags"),
        ("/data", "data"),
        ("/steps/prepare", "step-prepare"),
        ("/steps/execute", "step-execute"),
        (
            &format!("/promote?tag=production&version={other}&reason=why"),
            "promote",
        ),
        ("/rollback?tag=staging", "rollback"),
    ];
    for (path, name) in pages {
        browser.visit(&server.url, path, name);
    }

    // Recorded UTC, shown local: the script rewrote the text and kept UTC in the title.
    browser.goto(&format!("{}/runs", server.url));
    let time = browser.js(
        "const t = document.querySelector('time'); return [t.getAttribute('datetime'), t.textContent, t.title];",
    );
    assert_ne!(time[0], time[1], "{time}");
    assert!(time[2].as_str().unwrap().ends_with("(UTC)"), "{time}");

    // Keyboard: Tab from the top reaches the navigation links in order.
    browser.goto(&format!("{}/", server.url));
    browser.rt.block_on(async {
        let body = browser.client().find(Locator::Css("body")).await.unwrap();
        body.send_keys("\u{E004}").await.unwrap();
    });
    let first = browser.js("return document.activeElement.getAttribute('href');");
    assert_eq!(first, "/", "Tab reaches the first page link");
    assert!(server.log.lock().unwrap().find("error").is_none());
}

/// Promote in the page (form, confirmation) moves the tag as the CLI would, and a `serve`
/// following that tag swaps to the promoted model.
#[test]
fn promote_in_the_page_moves_the_tag_and_serve_follows_it() {
    let (p, staging, other) = crate::integrity::two_versions();
    let (staging, other) = (
        staging["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    );
    let serve = listen(p.command(&["serve", "--model", "staging", "--port", "0"]));
    let model = || -> Value {
        runtime().block_on(async {
            reqwest::get(format!("{}/model", serve.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    assert_eq!(model()["version"], staging.as_str());

    let server = start_ui(&p);
    let browser = Browser::start();
    browser.goto(&format!("{}/models/{other}", server.url));
    browser.fill("input[name=tag]", "staging");
    browser.fill("input[name=reason]", "the deployed one scores better");
    browser.click("form[action='/promote'] button");
    let url = browser.wait_url(|u| u.contains("/promote?"));
    assert!(
        url.contains("/promote?"),
        "{url}: {:?}",
        browser.console_errors()
    );
    assert!(browser.text("main").contains("it will point at"));
    browser.screenshot("promote-confirm");
    browser.click("form[action='/promote'] button");
    let url = browser.wait_url(|u| u.ends_with("/tags#tag-staging"));
    assert!(url.ends_with("/tags#tag-staging"), "{url}");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "{errors:#?}");

    assert_eq!(cli_json(&p, &["tags", "--json"])["staging"], other.as_str());
    let history = cli_json(&p, &["history", "staging", "--json"]);
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["reason"], "the deployed one scores better",
        "{history}"
    );
    assert_eq!(last["to"], other.as_str(), "{history}");
    let swapped = wait_until(20, || model()["version"] == other.as_str());
    assert!(swapped, "serve follows staging to {other}: {}", model());
}

/// A run started from a terminal shows live on the open pipeline page and ends `ok` there
/// without a reload; compare then shows only the changed param. The Run button runs the
/// pipeline in the background and Cancel stops it (recorded `interrupted`).
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario in order: live terminal run, compare, Run and Cancel from the page"
)]
fn runs_show_live_and_the_run_button_runs_and_cancels() {
    let p = trained().clone_trained();
    let before = cli_json(&p, &["tags", "--json"])["staging"]
        .as_str()
        .unwrap()
        .to_string();
    let server = start_ui(&p);
    let browser = Browser::start();
    browser.goto(&format!("{}/", server.url));
    std::thread::sleep(Duration::from_millis(500));
    // A reload would lose this.
    browser.js("window.mlbuildNoReload = true; return null;");

    let terminal = p
        .command_on_node(&["run", "--set", "define.ignore=[\"ID\", \"AGE\"]"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let saw_running = browser.wait_js(120, RUNNING_STEP);
    browser.screenshot("pipeline-live");
    let ended = browser.wait_text(300, |t| t.contains("Last run #2: ok"));
    let out = terminal.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(saw_running, "a step showed running");
    assert!(
        ended,
        "the run ended ok on the page: {}",
        browser.text("main")
    );
    assert_eq!(
        browser.js("return window.mlbuildNoReload === true;"),
        true,
        "no reload"
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "{errors:#?}");

    // Compare: only the param that changed.
    let after = cli_json(&p, &["tags", "--json"])["staging"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(before, after);
    browser.visit(
        &server.url,
        &format!("/compare?a={before}&b={after}"),
        "compare-set",
    );
    let rows = browser
        .js("return Array.from(document.querySelectorAll('tr[id^=param-]')).map(r => r.id);");
    assert_eq!(rows, json!(["param-define.ignore"]));

    // Run from the page, with execute stale; cancel it while it trains.
    p.edit("seed = 7", "seed = 8");
    browser.goto(&format!("{}/", server.url));
    browser.click("form[action='/run'] button");
    assert!(browser.wait_text(30, |t| t.contains("Running — started from this page")));
    let training = browser.wait_js(
        180,
        "return document.querySelector('#step-execute td.state-running') !== null;",
    );
    browser.screenshot("pipeline-run-button");
    assert!(training, "execute runs: {}", browser.text("main"));
    browser.click("form[action='/run/cancel'] button");
    let cancelled = browser.wait_text(120, |t| t.contains("was cancelled"));
    assert!(cancelled, "{}", browser.text("main"));
    let runs = cli_json(&p, &["runs", "--json"]);
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    browser.screenshot("pipeline-cancelled");

    // Back to the recorded config: everything is cached, the page's run ends ok.
    p.edit("seed = 8", "seed = 7");
    browser.goto(&format!("{}/", server.url));
    browser.click("form[action='/run'] button");
    assert!(
        browser.wait_text(120, |t| t.contains("ended ok")),
        "{}",
        browser.text("main")
    );
    assert_eq!(cli_json(&p, &["runs", "--json"])[0]["status"], "ok");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "{errors:#?}");
}
