//! Notification hooks (`[modify.escalate]`, `[conclude.deploy]`): a webhook gets the payload as
//! a JSON POST, retried with backoff; a command (run by `sh -c` in the project directory) gets
//! it on stdin and in `MLBUILD_HOOK_JSON`. A hook that fails is reported as a warning: it never
//! fails the run. Formats: `docs/monitor.md` (escalation) and `docs/registry.md` (deploy).

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Hooks;
use crate::report::Printer;

/// Waits between webhook tries: three tries in all.
pub const BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1000)];
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the configured hooks; returns what happened to each (`{"webhook": {...}, "command":
/// {...}}`, with `ok` and, on failure, `error`) and prints a warning per failure.
pub async fn notify(
    printer: &Printer,
    what: &str,
    hooks: &Hooks,
    payload: &Value,
    dir: &std::path::Path,
) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(url) = &hooks.webhook {
        let r = post_json(url, payload, &BACKOFF).await;
        if let Err(e) = &r {
            printer.warn(&format!("{what} webhook failed: {e}"));
        }
        out.insert("webhook".into(), outcome(r));
    }
    if let Some(cmd) = &hooks.command {
        let r = run_command(cmd, payload, dir).await;
        if let Err(e) = &r {
            printer.warn(&format!("{what} command failed: {e}"));
        }
        out.insert("command".into(), outcome(r));
    }
    Value::Object(out)
}

fn outcome(r: Result<u32, String>) -> Value {
    match r {
        Ok(tries) => json!({ "ok": true, "tries": tries }),
        Err(e) => json!({ "ok": false, "error": e }),
    }
}

/// POSTs `payload` to `url`; a 2xx answer is success. Retries after each `backoff` delay on a
/// connection error or a non-2xx status. Returns the number of tries.
pub async fn post_json(url: &str, payload: &Value, backoff: &[Duration]) -> Result<u32, String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..=backoff.len() {
        if attempt > 0 {
            tokio::time::sleep(backoff[attempt - 1]).await;
        }
        match client.post(url).json(payload).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(attempt as u32 + 1),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = e.without_url().to_string(),
        }
    }
    Err(format!(
        "{} (after {} tries to {})",
        last,
        backoff.len() + 1,
        crate::redact::safe_url(url)
    ))
}

/// Runs `sh -c command` with the payload on stdin and in `MLBUILD_HOOK_JSON`.
pub async fn run_command(
    command: &str,
    payload: &Value,
    dir: &std::path::Path,
) -> Result<u32, String> {
    use tokio::io::AsyncWriteExt;
    let text = payload.to_string();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("MLBUILD_HOOK_JSON", &text)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{command}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is fine.
        let _ = stdin.write_all(text.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("`{command}`: {e}"))?;
    if out.status.success() {
        Ok(1)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`{command}` exited with {}{}",
            out.status,
            match stderr.trim() {
                "" => String::new(),
                s => format!(": {}", s.lines().last().unwrap_or(s)),
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A tiny HTTP receiver: answers `statuses[i]` to the i-th request (the last one after
    /// that) and keeps each request's body.
    async fn receiver(
        statuses: Vec<u16>,
    ) -> (String, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (b, c) = (bodies.clone(), count.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let i = c.fetch_add(1, Ordering::SeqCst);
                let status = *statuses.get(i).or(statuses.last()).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                let body = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break String::new();
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break text[end + 4..end + 4 + len].to_string();
                        }
                    }
                };
                b.lock().unwrap().push(body);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (url, bodies, count)
    }

    const FAST: [Duration; 2] = [Duration::from_millis(10), Duration::from_millis(20)];

    #[tokio::test]
    async fn webhook_posts_the_json() {
        let (url, bodies, count) = receiver(vec![200]).await;
        let payload = json!({"event": "escalated", "attempts": 2});
        assert_eq!(post_json(&url, &payload, &FAST).await, Ok(1));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let got: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
        assert_eq!(got, payload);
    }

    #[tokio::test]
    async fn webhook_retries_then_succeeds() {
        let (url, _, count) = receiver(vec![503, 500, 200]).await;
        assert_eq!(post_json(&url, &json!({}), &FAST).await, Ok(3));
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failing_receiver_is_reported_not_fatal() {
        let (url, _, count) = receiver(vec![500]).await;
        let err = post_json(&url, &json!({}), &FAST).await.unwrap_err();
        assert!(err.contains("500") && err.contains("3 tries"), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 3);
        // Nobody listening at all.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        assert!(post_json(&dead, &json!({}), &FAST).await.is_err());
        // Through `notify`: a warning and an outcome, never an error.
        let printer = Printer::new(false, true, 0, crate::report::ColorChoice::Never);
        let hooks = Hooks {
            webhook: Some(dead),
            command: Some("exit 7".into()),
        };
        let out = notify(
            &printer,
            "escalation",
            &hooks,
            &json!({}),
            std::path::Path::new("."),
        )
        .await;
        assert_eq!(out["webhook"]["ok"], false);
        assert_eq!(out["command"]["ok"], false);
        assert!(out["command"]["error"].as_str().unwrap().contains("exit"));
    }

    #[tokio::test]
    async fn command_gets_the_json_on_stdin_and_in_env() {
        let dir = tempfile::tempdir().unwrap();
        let payload = json!({"version": "v1", "tag": "staging"});
        let r = run_command(
            "cat > stdin.json; printf '%s' \"$MLBUILD_HOOK_JSON\" > env.json",
            &payload,
            dir.path(),
        )
        .await;
        assert_eq!(r, Ok(1));
        for f in ["stdin.json", "env.json"] {
            let got: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join(f)).unwrap()).unwrap();
            assert_eq!(got, payload);
        }
    }
}
