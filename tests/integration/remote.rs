//! The remote cache against a real server: Debian's nginx with its WebDAV module (`dav_methods
//! PUT`), started by each test on a loopback port and killed at its end. Tests skip, with a
//! note, when nginx is not installed (`.ci/run` installs it).
//!
//! The CI scenario: a trained project pushes to the remote; a fresh copy (config, data and
//! `ml.lock` only: empty cache, empty state DB) restores every step with `run --frozen`.

use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{trained, Project, Run, ALL_STEPS};

const TOKEN: &str = "s3cret-token";

pub(crate) struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Nginx {
    /// Starts nginx on a free loopback port, or returns `None` (with a note) without nginx.
    pub(crate) fn start() -> Option<Nginx> {
        Nginx::start_with(false)
    }

    /// With `tls`, nginx serves HTTPS with a certificate for 127.0.0.1 issued by a test CA
    /// made here with `openssl` (its PEM: [`Nginx::ca`]).
    #[allow(
        clippy::too_many_lines,
        reason = "writes nginx's whole config (plain and TLS) and starts it; the config reads top to bottom"
    )]
    fn start_with(tls: bool) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let Some(bin) = bin else {
            eprintln!(
                "note: nginx is not installed; skipping a remote-cache test (.ci/run installs it)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("mlbuild-nginx-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("root/open")).unwrap();
        std::fs::create_dir_all(d.join("root/secure")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = if tls {
            make_certificates(d);
            format!(
                "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {d}/server.pem;\n        ssl_certificate_key {d}/server.key;",
                d = d.display()
            )
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        // One process (no master, no user switch), so killing the child stops the server.
        let conf = format!(
            r#"master_process off;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 0;
    server {{
        {listen}
        root {d}/root;
        location /open/ {{
            dav_methods PUT;
            create_full_put_path on;
        }}
        location /secure/ {{
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"#,
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child,
            port,
            dir,
            tls,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx.dir.path().join("error.log"));
                panic!("nginx exited ({status}): {log:?}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    fn scheme(&self) -> &str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/open", self.scheme(), self.port)
    }

    fn secure_url(&self) -> String {
        format!("{}://127.0.0.1:{}/secure", self.scheme(), self.port)
    }

    /// The test CA's certificate (PEM), with `start_with(true)`.
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The file behind `{url()}/{rel}`.
    pub(crate) fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root/open").join(rel)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test CA and a server certificate it signs, for `127.0.0.1` (in `d`).
fn make_certificates(d: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl (to make a test certificate)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mlbuild test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

/// `mlbuild ARGS` with a remote cache and no reachable H2O (a run must need no engine).
pub(crate) fn offline(p: &Project, url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_REMOTE_CACHE", url);
    if let Some(t) = token {
        cmd.env("MLBUILD_REMOTE_TOKEN", t);
    }
    Run::from(cmd.output().unwrap())
}

/// A fresh checkout of `trained`: its config, data and `ml.lock`, and nothing else.
pub(crate) fn fresh_checkout(trained: &Project) -> Project {
    let p = Project::from_fixture("prostate");
    p.write("ml.lock", &trained.read("ml.lock"));
    assert!(!p.file("cache").exists());
    p
}

pub(crate) fn lock_key(p: &Project, step: &str) -> String {
    let lock: Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    lock["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step && s["attempt"] == 1)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn entry(p: &Project, key: &str) -> Value {
    serde_json::from_str(&p.read(&format!("cache/v1/ac/{key}.json"))).unwrap()
}

fn versions(p: &Project) -> Value {
    let run = p.mlbuild_offline(&["versions", "--json"]).ok();
    serde_json::from_str(&run.stdout).unwrap()
}

fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect()
}

/// The CI scenario, timed: every step restored, no engine, the same version and model link.
#[test]
fn a_fresh_checkout_restores_every_step_from_the_remote() {
    let Some(nginx) = Nginx::start() else { return };
    let a = trained().clone_trained();
    offline(&a, &nginx.url(), None, &["cache", "push"]).ok();
    assert!(nginx
        .file(&format!("ac/{}", lock_key(&a, "conclude")))
        .is_file());

    let b = fresh_checkout(&a);
    let t = Instant::now();
    let run = offline(&b, &nginx.url(), None, &["run", "--frozen", "--json"]).ok();
    let ms = t.elapsed().as_millis();
    eprintln!("[remote] restore of the demo from nginx: {ms} ms (goal ≤ 2000 ms)");
    let statuses = run.statuses();
    for step in ALL_STEPS {
        assert_eq!(
            statuses.get(step).map(String::as_str),
            Some("restored"),
            "{step}: {statuses:?}\n{}",
            run.stderr
        );
    }
    assert_eq!(
        run.step("execute")["reason"],
        "restored from the remote cache"
    );
    let done = run.done();
    assert_eq!(done["h2o_started"], false);
    assert_eq!(done["status"], "ok");
    assert!(warnings(&run).is_empty(), "{}", run.stderr);

    let (va, vb) = (versions(&a), versions(&b));
    let last = |v: &Value| v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last(&vb)["model"], last(&va)["model"]);
    assert_eq!(last(&vb)["canonical"], last(&va)["canonical"]);
    assert_eq!(done["model"], last(&va)["model"]);
    assert_eq!(
        std::fs::read(b.file("models/staging.zip")).unwrap(),
        std::fs::read(a.file("models/staging.zip")).unwrap()
    );
    assert_eq!(
        b.read("ml.lock"),
        a.read("ml.lock"),
        "--frozen leaves the lock"
    );

    // The restored store is whole and verified; a second run is all local.
    offline(&b, &nginx.url(), None, &["cache", "verify"]).ok();
    let again = offline(&b, &nginx.url(), None, &["run", "--frozen", "--json"]).ok();
    assert!(again.statuses().values().all(|s| s == "cached"));
    assert!(ms < 20_000, "restore took {ms} ms");
}

/// A blob whose bytes do not match its digest is never used: the step reruns instead.
#[test]
fn a_tampered_blob_on_the_server_is_rejected() {
    let Some(nginx) = Nginx::start() else { return };
    let a = trained().clone_trained();
    offline(&a, &nginx.url(), None, &["cache", "push"]).ok();
    let snapshot = entry(&a, &lock_key(&a, "locate"))["outputs"]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(nginx.file(&format!("cas/{snapshot}")), "a,b\n6,6\n").unwrap();

    let b = fresh_checkout(&a);
    let run = offline(&b, &nginx.url(), None, &["run", "--frozen", "--json"]).ok();
    let statuses = run.statuses();
    assert_eq!(statuses["locate"], "ran", "{statuses:?}");
    for step in ALL_STEPS.iter().filter(|s| **s != "locate") {
        assert_eq!(statuses[*step], "restored", "{step}: {statuses:?}");
    }
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stderr);
    assert!(
        w[0].contains(&snapshot) && w[0].contains("wrong bytes"),
        "{w:?}"
    );
    // The local copy is the real snapshot, made from the data.
    let local =
        std::fs::read(b.file(&format!("cache/v1/cas/{}/{snapshot}", &snapshot[..2]))).unwrap();
    assert_eq!(blake3::hash(&local).to_hex().to_string(), snapshot);
    offline(&b, &nginx.url(), None, &["cache", "verify"]).ok();
}

/// A remote that is gone is a miss: the run succeeds, with one warning, and the breaker stops
/// calling it after a few faults.
#[test]
fn a_server_gone_away_means_misses_and_one_warning() {
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let url = nginx.url();
    nginx.stop();
    let a = trained().clone_trained();
    // Local misses for three cheap steps (no engine), so the run asks the remote (and uploads).
    for step in ["locate", "monitor", "conclude"] {
        std::fs::remove_file(a.file(&format!("cache/v1/ac/{}.json", lock_key(&a, step)))).unwrap();
    }
    let t = Instant::now();
    let run = offline(&a, &url, None, &["run", "--json"]).ok();
    let statuses = run.statuses();
    for step in ["locate", "monitor", "conclude"] {
        assert_eq!(statuses[step], "ran", "{statuses:?}");
    }
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stderr);
    assert!(
        w[0].contains("cannot connect") && w[0].contains(&url),
        "{w:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "faults are fast");
}

/// A wrong token: a clear warning naming the status and the variable; the token never shows.
#[test]
fn a_wrong_token_is_named_in_a_warning() {
    let Some(nginx) = Nginx::start() else { return };
    let a = trained().clone_trained();
    offline(&a, &nginx.secure_url(), Some(TOKEN), &["cache", "push"]).ok();

    let b = fresh_checkout(&a);
    let bad = offline(
        &b,
        &nginx.secure_url(),
        Some("wrong-token"),
        &["cache", "pull"],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let w = warnings(&bad);
    assert_eq!(w.len(), 1, "{}", bad.stderr);
    assert!(
        w[0].contains("HTTP 401") && w[0].contains("MLBUILD_REMOTE_TOKEN"),
        "{w:?}"
    );
    assert!(!bad.stderr.contains("wrong-token"));

    offline(&b, &nginx.secure_url(), Some(TOKEN), &["cache", "pull"]).ok();
    let run = offline(
        &b,
        &nginx.secure_url(),
        Some(TOKEN),
        &["run", "--frozen", "--json"],
    )
    .ok();
    assert!(
        run.statuses().values().all(|s| s == "cached"),
        "{}",
        run.stderr
    );
}

/// `verify` finds and removes a corrupt blob; `gc` keeps what tags, ml.lock and recent runs
/// reach, deletes the rest and old tmp files, and leaves young tmp files alone.
#[test]
fn verify_and_gc_keep_the_store_whole() {
    let a = trained().clone_trained();
    a.mlbuild_offline(&["cache", "verify"]).ok();

    let cas = a.file("cache/v1/cas");
    let stray = blake3::hash(b"unreachable").to_hex().to_string();
    std::fs::create_dir_all(cas.join(&stray[..2])).unwrap();
    std::fs::write(cas.join(&stray[..2]).join(&stray), "unreachable").unwrap();
    let tmp = a.file("cache/v1/tmp");
    std::fs::write(tmp.join("old"), "x").unwrap();
    std::fs::write(tmp.join("young"), "y").unwrap();
    let status = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(tmp.join("old"))
        .status()
        .unwrap();
    assert!(status.success());

    let dry = a.mlbuild_offline(&["cache", "gc", "--dry-run"]).ok();
    assert!(
        dry.stdout
            .contains(&format!("would delete blob {stray} (11 B)")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("would delete tmp old"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("young"));
    assert!(
        cas.join(&stray[..2]).join(&stray).exists(),
        "a dry run deletes nothing"
    );

    a.mlbuild_offline(&["cache", "gc"]).ok();
    assert!(!cas.join(&stray[..2]).join(&stray).exists());
    assert!(!tmp.join("old").exists() && tmp.join("young").exists());
    let run = a.mlbuild_offline(&["run", "--json"]).ok();
    assert!(
        run.statuses().values().all(|s| s == "cached"),
        "{}",
        run.stderr
    );

    // A corrupt blob: reported, removed, exit 1.
    let snapshot = entry(&a, &lock_key(&a, "locate"))["outputs"]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let path = cas.join(&snapshot[..2]).join(&snapshot);
    std::fs::write(&path, "tampered").unwrap();
    let v = a.mlbuild_offline(&["cache", "verify"]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert!(
        v.stdout.contains(&format!("blob {snapshot} is corrupt")),
        "{}",
        v.stdout
    );
    assert!(!path.exists());
}

/// An HTTPS remote: trusted through `MLBUILD_REMOTE_CA`, a push and a full restore work; without
/// the CA the certificate is refused, which is a fault like any other (a miss, one warning).
#[test]
fn an_https_remote_with_a_private_ca_restores_every_step() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("note: openssl is not installed; skipping the HTTPS remote-cache test");
        return;
    }
    let Some(nginx) = Nginx::start_with(true) else {
        return;
    };
    let url = nginx.url();
    assert!(url.starts_with("https://"));
    let ca = nginx.ca();
    let with_ca = |p: &Project, args: &[&str]| {
        let mut cmd = p.command(args);
        cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
            .env("MLBUILD_REMOTE_CACHE", &url)
            .env("MLBUILD_REMOTE_CA", &ca);
        Run::from(cmd.output().unwrap())
    };
    let a = trained().clone_trained();
    with_ca(&a, &["cache", "push"]).ok();
    assert!(nginx
        .file(&format!("ac/{}", lock_key(&a, "conclude")))
        .is_file());

    // Without the CA: the built-in roots do not know it; a miss with one warning.
    let b = fresh_checkout(&a);
    let untrusted = offline(&b, &url, None, &["cache", "pull"]);
    let w = warnings(&untrusted);
    assert_eq!(w.len(), 1, "{}", untrusted.stderr);
    assert!(w[0].contains(&url), "{w:?}");
    assert!(
        !b.file("cache/v1/ac").exists()
            || std::fs::read_dir(b.file("cache/v1/ac"))
                .unwrap()
                .next()
                .is_none()
    );

    let run = with_ca(&b, &["run", "--frozen", "--json"]).ok();
    let statuses = run.statuses();
    for step in ALL_STEPS {
        assert_eq!(
            statuses.get(step).map(String::as_str),
            Some("restored"),
            "{step}: {statuses:?}\n{}",
            run.stderr
        );
    }
    assert!(warnings(&run).is_empty(), "{}", run.stderr);

    // The system trust store is read too: the CA as the system's bundle (`SSL_CERT_FILE`, which
    // the native-roots loader honours as OpenSSL does), no `MLBUILD_REMOTE_CA`.
    let c = fresh_checkout(&a);
    let mut cmd = c.command(&["cache", "pull"]);
    cmd.env("MLBUILD_REMOTE_CACHE", &url)
        .env("SSL_CERT_FILE", &ca);
    let pulled = Run::from(cmd.output().unwrap()).ok();
    assert!(warnings(&pulled).is_empty(), "{}", pulled.stderr);
    assert!(c
        .file(&format!("cache/v1/ac/{}.json", lock_key(&a, "conclude")))
        .is_file());

    // A CA file that is not one is an error, with a hint.
    b.write("not-a-ca.pem", "hello");
    let mut cmd = b.command(&["cache", "pull"]);
    cmd.env("MLBUILD_REMOTE_CACHE", &url)
        .env("MLBUILD_REMOTE_CA", b.file("not-a-ca.pem"));
    let bad = Run::from(cmd.output().unwrap());
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("MLBUILD_REMOTE_CA"), "{}", bad.stderr);
}

/// The server dies while a run is in progress: the run still succeeds, later lookups and
/// uploads are misses with one warning, and the breaker stops calling after a few faults.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one fault scenario: the server dies mid-run, then every consequence is checked"
)]
fn a_server_killed_mid_run_means_misses_one_warning_and_a_breaker() {
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let url = nginx.url();
    let port = nginx.port;
    let a = trained().clone_trained();
    // Local misses for the steps that need no engine: each asks the remote, then uploads.
    let cheap = [
        "define", "locate", "prepare", "confirm", "monitor", "conclude",
    ];
    for step in cheap {
        std::fs::remove_file(a.file(&format!("cache/v1/ac/{}.json", lock_key(&a, step)))).unwrap();
    }
    let mut cmd = a.command(&["run", "--json"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_REMOTE_CACHE", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    // Read events until `locate` has run; it then uploads to the live server.
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the run ended before `locate` ran:\n{out}\n{}",
            stderr.join().unwrap()
        );
        out.push_str(&line);
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["event"] == "step" && event["step"] == "locate" {
            assert_eq!(event["status"], "ran", "{out}");
            break;
        }
    }
    // Hold the run still while the server goes, so the later steps surely meet a dead server.
    let pid = child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    nginx.stop();
    // Count every connection made after the kill: a listener on the same port that accepts
    // and hangs up (each call it sees is a fault).
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind(("127.0.0.1", port)).ok();
    if let Some(listener) = listener {
        let calls = calls.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                calls.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
    }
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let t = Instant::now();
    stdout.read_to_string_lossy(&mut out);
    let status = child.wait().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out,
        stderr: stderr.join().unwrap(),
    }
    .ok();
    let statuses = run.statuses();
    for step in cheap {
        assert_eq!(statuses[step], "ran", "{statuses:?}\n{}", run.stderr);
    }
    assert_eq!(run.done()["status"], "ok");
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stderr);
    assert!(
        w[0].contains(&url) && w[0].contains("treated as a miss"),
        "{w:?}"
    );
    // The steps after `locate` each ask the remote and upload (8+ calls without a breaker); at
    // most BREAKER calls are made after the server died.
    let calls = calls.load(Ordering::SeqCst);
    eprintln!(
        "[remote] killed mid-run: {calls} call(s) after the kill; warning: {}",
        w[0]
    );
    assert!(
        calls <= mlbuild::store::remote::BREAKER as usize,
        "{calls} calls after the server died\n{}",
        run.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(15), "faults are fast");
    // What ran after the kill never reached the server.
    assert!(!nginx
        .file(&format!("ac/{}", lock_key(&a, "conclude")))
        .exists());
}

trait ReadRest {
    fn read_to_string_lossy(&mut self, out: &mut String);
}

impl<R: BufRead> ReadRest for R {
    fn read_to_string_lossy(&mut self, out: &mut String) {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(self, &mut rest).unwrap();
        out.push_str(&String::from_utf8_lossy(&rest));
    }
}

/// Rewrites the entry of `key` on the server (a lying cache: same key and inputs).
pub(crate) fn forge(nginx: &Nginx, key: &str, edit: impl FnOnce(&mut Value)) {
    let path = nginx.file(&format!("ac/{key}"));
    let mut e: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut e);
    std::fs::write(&path, serde_json::to_vec_pretty(&e).unwrap()).unwrap();
}

/// A locate entry whose snapshot is another real blob on the server (prepare's holdout, so
/// every digest checks out) is refused with one warning: locate runs on the local source and
/// everything downstream is restored as before.
#[test]
fn a_locate_entry_pointing_at_another_real_blob_is_refused() {
    let Some(nginx) = Nginx::start() else { return };
    let a = trained().clone_trained();
    offline(&a, &nginx.url(), None, &["cache", "push"]).ok();
    let locate = lock_key(&a, "locate");
    let real = entry(&a, &locate)["outputs"]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let other = entry(&a, &lock_key(&a, "prepare"))["outputs"]["holdout"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(nginx.file(&format!("cas/{other}")).is_file());
    let size = std::fs::metadata(nginx.file(&format!("cas/{other}")))
        .unwrap()
        .len();
    forge(&nginx, &locate, |e| {
        e["outputs"]["snapshot"] = other.clone().into();
        e["output_digests"]["snapshot"] = other.clone().into();
        e["output_sizes"]["snapshot"] = size.into();
    });

    let b = fresh_checkout(&a);
    let run = offline(&b, &nginx.url(), None, &["run", "--frozen", "--json"]).ok();
    let statuses = run.statuses();
    assert_eq!(statuses["locate"], "ran", "{statuses:?}\n{}", run.stderr);
    for step in ALL_STEPS.iter().filter(|s| **s != "locate") {
        assert_eq!(statuses[*step], "restored", "{step}: {statuses:?}");
    }
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stderr);
    assert!(
        w[0].contains("`locate` entry") && w[0].contains("not the local source"),
        "{w:?}"
    );
    // The refused entry never reached the local cache: it holds the real snapshot.
    assert_eq!(entry(&b, &locate)["outputs"]["snapshot"], real.as_str());
    let last = |v: &Value| v.as_array().unwrap().last().unwrap()["canonical"].clone();
    assert_eq!(last(&versions(&b)), last(&versions(&a)));
}

/// Forged summaries: monitor's entry claims a better holdout metric, conclude's entry other
/// metrics for the version. Both are refused (one warning for the run); what is shown and
/// registered comes from the blobs.
#[test]
fn forged_summaries_are_refused_and_never_shown() {
    let Some(nginx) = Nginx::start() else { return };
    let a = trained().clone_trained();
    offline(&a, &nginx.url(), None, &["cache", "push"]).ok();
    let monitor = lock_key(&a, "monitor");
    let conclude = lock_key(&a, "conclude");
    let true_value = entry(&a, &monitor)["result"]["value"].as_f64().unwrap();
    forge(&nginx, &monitor, |e| {
        e["result"]["value"] = 0.999.into();
        e["result"]["metrics"]["auc"] = 0.999.into();
    });
    forge(&nginx, &conclude, |e| {
        e["result"]["metrics"]["auc"] = 0.999.into();
        e["result"]["algo"] = "DeepLearning".into();
    });

    let b = fresh_checkout(&a);
    let run = offline(&b, &nginx.url(), None, &["run", "--frozen", "--json"]).ok();
    let statuses = run.statuses();
    assert_eq!(statuses["monitor"], "ran", "{statuses:?}\n{}", run.stderr);
    assert_eq!(statuses["conclude"], "ran", "{statuses:?}\n{}", run.stderr);
    for step in [
        "define", "locate", "prepare", "confirm", "execute", "modify",
    ] {
        assert_eq!(statuses[step], "restored", "{step}: {statuses:?}");
    }
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stderr);
    assert!(
        w[0].contains("`monitor` entry") && w[0].contains("0.999 there"),
        "{w:?}"
    );
    assert_eq!(entry(&b, &monitor)["result"]["value"], true_value);
    // What a human sees: the true metric, never the forged one.
    let c = fresh_checkout(&a);
    let human = offline(&c, &nginx.url(), None, &["run", "--frozen"]).ok();
    assert!(!human.stderr.contains("0.999"), "{}", human.stderr);
    assert!(
        human.stderr.contains(&format!("{true_value:.4}")),
        "{}",
        human.stderr
    );

    let (va, vb) = (versions(&a), versions(&b));
    let last = |v: &Value| v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last(&vb)["metrics"], last(&va)["metrics"]);
    assert_eq!(last(&vb)["algo"], last(&va)["algo"]);
    assert_eq!(last(&vb)["canonical"], last(&va)["canonical"]);
}
