//! The remote cache: HTTP or HTTPS on any WebDAV-style server (tested with Debian's nginx `dav`).
//!
//! Layout on the server, under the base URL:
//! ```text
//! {base}/cas/{digest}   a blob, by its blake3 digest
//! {base}/ac/{key}       an action-cache entry (the same JSON as `v1/ac/<key>.json`)
//! ```
//! `GET` reads, `HEAD` asks whether a blob is there, `PUT` writes; a bearer token from
//! `MLBUILD_REMOTE_TOKEN` is sent when set. Nothing else is asked of the server.
//!
//! TLS is rustls (ring) with the Mozilla roots built in (`webpki-roots`) and the system trust
//! store (`rustls-native-certs`, which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`); a private CA is
//! trusted in addition when `MLBUILD_REMOTE_CA` names a PEM file of certificates.
//!
//! Mechanism. The remote is an optimisation behind the local store, never a source of truth:
//! - **Local first.** The pipeline asks the remote only on a local miss. A remote hit fetches
//!   the entry, then each output blob it names; every blob is hashed while it streams into a
//!   temp file and enters the local CAS only under the digest its bytes have. An entry whose
//!   JSON does not parse, whose key is not the one asked for, whose step and inputs do not hash
//!   to that key, or that names anything but 64-hex digests is refused ([`check_entry`]), and
//!   so is one whose output digests are neither its blobs' digests nor a MOJO's canonical
//!   digest ([`check_output_digests`]). `run` then checks the entry against its plan
//!   (`steps::restored`) before [`Remote::accept`] writes the local entry, last, so a half or
//!   refused restore is a miss.
//! - **Bounded replies**: a blob reply is cut off past the size its entry records
//!   (`output_sizes`), or, for entries without sizes, refused when its `Content-Length` exceeds
//!   [`MAX_UNSIZED_BLOB_BYTES`] and cut off there; an entry reply past 16 MiB.
//! - **Upload after a run**: blobs first (`HEAD`, then `PUT` of the verified bytes when absent),
//!   the entry last, so a reader never sees an entry whose blobs are not there yet.
//! - **Faults are misses.** A refused connection, a timeout (2 s to connect, 10 s between body
//!   reads), a 5xx, a refused upload or wrong bytes count as a fault: the first one yields one
//!   warning for the whole run, and after [`BREAKER`] faults no further call is made this run.
//!   A 401/403 yields its own warning naming the status and `MLBUILD_REMOTE_TOKEN`, and turns
//!   the remote off for the run.
//!
//! Limits: no client certificates; blobs are uploaded from memory, one at a
//! time; no cooldown probe (a run is short).
//!
//! Safety: what a remote is trusted with is in docs/store.md ("Safety"): the bytes are always
//! verified; results are checked or recomputed; the outputs of prepare and execute (the work a
//! cache saves) are taken as the remote gives them, which is why write access to the cache must
//! be limited to trusted CI jobs (docs/ci.md).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::is_digest;
use super::{ActionEntry, Store};

/// Faults after which the remote is not called again in this run.
pub const BREAKER: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// An action entry is small; anything bigger is not one.
const MAX_ENTRY_BYTES: usize = 16 << 20;
/// The most a blob reply may hold when its entry records no size (entries written before
/// mlbuild recorded sizes); a `Content-Length` above it is refused before reading.
pub const MAX_UNSIZED_BLOB_BYTES: u64 = 8 << 30;

pub const URL_VAR: &str = "MLBUILD_REMOTE_CACHE";
pub const TOKEN_VAR: &str = "MLBUILD_REMOTE_TOKEN";
pub const READ_ONLY_VAR: &str = "MLBUILD_REMOTE_READ_ONLY";
pub const CA_VAR: &str = "MLBUILD_REMOTE_CA";

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the remote cache URL must start with `http://` or `https://`, found `{url}`")]
    Scheme { url: String },
    #[error("cannot read the CA certificates in `{path}` (`{CA_VAR}`): {why}")]
    Ca { path: String, why: String },
    #[error("cannot set up the HTTP client for the remote cache")]
    Client(#[source] reqwest::Error),
}

impl RemoteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RemoteError::Scheme { .. } => Some(format!(
                "for example `https://cache.example.org/mlbuild`; or unset `{URL_VAR}`"
            )),
            RemoteError::Ca { .. } => Some(format!(
                "`{CA_VAR}` must name a PEM file holding one or more `BEGIN CERTIFICATE` blocks; unset it to trust only the built-in roots"
            )),
            RemoteError::Client(_) => None,
        }
    }
}

/// Where the remote cache is: `MLBUILD_REMOTE_CACHE` wins over `[cache] remote`, which wins
/// over the user config's `[remote] url` (`crate::user_config`); the token and CA come from the
/// environment, else the user config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub base: String,
    pub token: Option<String>,
    pub read_only: bool,
    /// Extra CA certificates (PEM) to trust, from `MLBUILD_REMOTE_CA`.
    pub ca: Option<std::path::PathBuf>,
}

impl Settings {
    /// The remote this project uses, if any (an empty variable means "none").
    pub fn resolve(config: &crate::config::Cache) -> Option<Settings> {
        Settings::resolve_with(config, &crate::user_config::get().remote)
    }

    fn resolve_with(
        config: &crate::config::Cache,
        user: &crate::user_config::Remote,
    ) -> Option<Settings> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let base = match std::env::var(URL_VAR) {
            Ok(v) if v.trim().is_empty() => return None,
            Ok(v) => v,
            Err(_) => config.remote.clone().or_else(|| user.url.clone())?,
        };
        let read_only = config.read_only
            || user.read_only
            || env(READ_ONLY_VAR).is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "no"));
        Some(Settings {
            base: base.trim().trim_end_matches('/').to_string(),
            token: env(TOKEN_VAR).or_else(|| user.token.clone()),
            read_only,
            ca: env(CA_VAR)
                .map(std::path::PathBuf::from)
                .or_else(|| user.ca.clone()),
        })
    }
}

/// What went wrong with one call.
enum Fault {
    /// Down, slow, 5xx, refused upload, unreadable answer: the remote is not usable right now.
    Outage(String),
    /// 401/403: the token is wrong or missing.
    Denied(StatusCode),
    /// Bytes that are not what they claim to be (a tampered or truncated blob, a bad entry).
    Wrong(String),
}

/// An HTTP cache, shared by the steps of one run. Counts faults and keeps warnings for the
/// caller to print ([`Remote::take_warnings`]): library code never prints.
pub struct Remote {
    client: reqwest::Client,
    base: String,
    shown: String,
    token: Option<String>,
    read_only: bool,
    faults: AtomicU32,
    /// Set by a 401/403: no further calls this run.
    off: AtomicBool,
    warned: AtomicBool,
    warnings: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.shown)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// How a restore ended (besides a hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The entry and all its blobs are now in the local store.
    Restored,
    /// The remote does not have it (or could not give it).
    Miss,
}

impl Remote {
    pub fn new(settings: &Settings) -> Result<Remote, RemoteError> {
        let lower = settings.base.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(RemoteError::Scheme {
                url: crate::redact::safe_url(&settings.base),
            });
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("mlbuild/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca {
            for cert in ca_certificates(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(RemoteError::Client)?;
        Ok(Remote {
            client,
            shown: crate::redact::safe_url(&settings.base),
            base: settings.base.clone(),
            token: settings.token.clone(),
            read_only: settings.read_only,
            faults: AtomicU32::new(0),
            off: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The base URL without credentials, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether calls are still made (no 401/403, fewer than [`BREAKER`] faults).
    pub fn active(&self) -> bool {
        !self.off.load(Ordering::Relaxed) && self.faults.load(Ordering::Relaxed) < BREAKER
    }

    /// Faults seen so far in this run.
    pub fn faults(&self) -> u32 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Warnings not yet printed (at most one about faults, one about credentials, per run).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    fn warn(&self, message: String) {
        self.warnings.lock().expect("warnings lock").push(message);
    }

    fn fault(&self, fault: Fault) {
        match fault {
            Fault::Denied(status) => {
                if !self.off.swap(true, Ordering::Relaxed) {
                    let token = if self.token.is_some() {
                        format!("check `{TOKEN_VAR}`")
                    } else {
                        format!("`{TOKEN_VAR}` is not set")
                    };
                    self.warn(format!(
                        "remote cache `{}` refused the credentials (HTTP {status}): {token}; the remote cache is off for this run",
                        self.shown
                    ));
                }
            }
            Fault::Outage(what) | Fault::Wrong(what) => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    self.warn(format!(
                        "remote cache `{}`: {what}; treated as a miss (after {BREAKER} faults the remote cache is skipped for the rest of this run)",
                        self.shown
                    ));
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Sends one request; `Ok(None)` is a 404, any fault is recorded and returns `Err`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Upload>,
    ) -> Result<Option<reqwest::Response>, ()> {
        if !self.active() {
            return Err(());
        }
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        match body {
            Some(Upload::Bytes(bytes)) => req = req.body(bytes),
            Some(Upload::File(file, len)) => {
                // Streamed from disk: the blob is never whole in memory.
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
                req = req
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(stream));
            }
            None => {}
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "cannot connect".to_string()
                } else {
                    e.without_url().to_string()
                };
                self.fault(Fault::Outage(format!("{method} {path}: {why}")));
                return Err(());
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(Some(resp));
        }
        if status == StatusCode::NOT_FOUND && method != Method::PUT {
            return Ok(None);
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            self.fault(Fault::Denied(status));
        } else {
            self.fault(Fault::Outage(format!("{method} {path}: HTTP {status}")));
        }
        Err(())
    }

    /// Restores `key` into the local store: the entry, then every blob it names (verified and
    /// bounded, see [`Remote::fetch`]), the entry last. For `cache pull`, which has no plan to
    /// check the entry against; `run` uses [`Remote::fetch`] and checks more before it accepts.
    pub async fn restore(&self, store: &Store, key: &str) -> Restore {
        let Some(entry) = self.fetch(store, key).await else {
            return Restore::Miss;
        };
        self.accept(store, &entry)
    }

    /// Writes a fetched entry into the local action cache (its blobs are already there).
    pub fn accept(&self, store: &Store, entry: &ActionEntry) -> Restore {
        match store.ac_put(entry) {
            Ok(()) => Restore::Restored,
            Err(e) => {
                self.fault(Fault::Outage(format!(
                    "storing restored entry {}: {e}",
                    entry.key
                )));
                Restore::Miss
            }
        }
    }

    /// Refuses a fetched entry that does not agree with what this machine knows: a fault (one
    /// warning per run), and a miss for the caller.
    pub fn refuse(&self, entry: &ActionEntry, why: &str) {
        self.fault(Fault::Wrong(format!(
            "the `{}` entry {} was refused: {why}",
            entry.step, entry.key
        )));
    }

    /// The entry for `key` with every blob it names in the local store, checked as far as a
    /// cache can without the plan: see [`check_entry`] and [`check_output_digests`]. The
    /// entry itself is not written to the local action cache (see [`Remote::accept`]).
    pub async fn fetch(&self, store: &Store, key: &str) -> Option<ActionEntry> {
        let entry = self.entry(key).await?;
        for (name, digest) in &entry.outputs {
            let size = entry.output_sizes.get(name).copied();
            if !store.contains(digest) && !self.fetch_blob(store, digest, size).await {
                return None;
            }
        }
        if let Err(why) = check_output_digests(store, &entry) {
            self.refuse(&entry, &why);
            return None;
        }
        Some(entry)
    }

    /// The entry for `key`, if the remote has a well-formed one.
    pub async fn entry(&self, key: &str) -> Option<ActionEntry> {
        if !is_digest(key) {
            return None;
        }
        let path = format!("ac/{key}");
        let resp = self.send(Method::GET, &path, None).await.ok()??;
        let bytes = match read_limited(resp, MAX_ENTRY_BYTES).await {
            Ok(b) => b,
            Err(why) => {
                self.fault(Fault::Outage(format!("GET {path}: {why}")));
                return None;
            }
        };
        let entry: ActionEntry = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                self.fault(Fault::Wrong(format!("entry {key} does not parse ({e})")));
                return None;
            }
        };
        if let Err(why) = check_entry(key, &entry) {
            self.fault(Fault::Wrong(format!("entry {key} {why}")));
            return None;
        }
        Some(entry)
    }

    /// Streams a blob into a temp file, hashing as it goes; it enters the CAS only if its
    /// bytes hash to `digest`. The reply is cut off (a fault) past `size`, the size its entry
    /// records; for an entry that records none, past its `Content-Length` (reqwest stops
    /// there) and [`MAX_UNSIZED_BLOB_BYTES`]. So the bytes written never exceed the bound.
    pub async fn fetch_blob(&self, store: &Store, digest: &str, size: Option<u64>) -> bool {
        if !is_digest(digest) {
            return false;
        }
        let path = format!("cas/{digest}");
        let Ok(Some(mut resp)) = self.send(Method::GET, &path, None).await else {
            return false;
        };
        let (limit, what) = match size {
            Some(n) => (n, format!("the {n} bytes its entry records")),
            None => (
                MAX_UNSIZED_BLOB_BYTES,
                format!(
                    "{MAX_UNSIZED_BLOB_BYTES} bytes, the limit for entries that record no size"
                ),
            ),
        };
        if let Some(announced) = resp.content_length().filter(|n| *n > limit) {
            self.fault(Fault::Wrong(format!(
                "blob {digest} is announced as {announced} bytes, more than {what}; it was not read"
            )));
            return false;
        }
        let Ok(mut tmp) = store.temp_file() else {
            return false;
        };
        let mut hasher = blake3::Hasher::new();
        let mut written: u64 = 0;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    written += chunk.len() as u64;
                    if written > limit {
                        self.fault(Fault::Wrong(format!(
                            "blob {digest} is larger than {what}; the reply was cut off there"
                        )));
                        return false;
                    }
                    hasher.update(&chunk);
                    if tmp.write_all(&chunk).is_err() {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let why = if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        e.without_url().to_string()
                    };
                    self.fault(Fault::Outage(format!("GET {path}: {why}")));
                    return false;
                }
            }
        }
        let actual = hasher.finalize().to_hex().to_string();
        if actual != digest {
            self.fault(Fault::Wrong(format!(
                "blob {digest} has the wrong bytes (they hash to {actual}); it was not used"
            )));
            return false;
        }
        store.commit(tmp, digest).is_ok()
    }

    /// Whether the remote has a blob: `None` when it could not say.
    pub async fn has_blob(&self, digest: &str) -> Option<bool> {
        match self
            .send(Method::HEAD, &format!("cas/{digest}"), None)
            .await
        {
            Ok(Some(_)) => Some(true),
            Ok(None) => Some(false),
            Err(()) => None,
        }
    }

    /// Uploads an entry: the blobs the remote lacks (verified before sending), then the entry.
    /// Returns whether the entry is now on the remote. Does nothing in read-only mode.
    pub async fn upload(&self, store: &Store, entry: &ActionEntry) -> bool {
        if self.read_only || !self.active() {
            return false;
        }
        for digest in entry.outputs.values() {
            match self.has_blob(digest).await {
                Some(true) => continue,
                Some(false) => {}
                None => return false,
            }
            // Never upload bytes that are not what their name says: hashed first (streaming),
            // then streamed from the same file.
            let Ok(path) = store.verified_path(digest) else {
                return false;
            };
            let Ok(file) = tokio::fs::File::open(&path).await else {
                return false;
            };
            let Ok(len) = file.metadata().await.map(|m| m.len()) else {
                return false;
            };
            if self
                .send(
                    Method::PUT,
                    &format!("cas/{digest}"),
                    Some(Upload::File(file, len)),
                )
                .await
                .is_err()
            {
                return false;
            }
        }
        let json = serde_json::to_vec_pretty(entry).expect("action entries serialise");
        self.send(
            Method::PUT,
            &format!("ac/{}", entry.key),
            Some(Upload::Bytes(json)),
        )
        .await
        .is_ok()
    }
}

/// A request body: small bytes (an entry), or a blob streamed from its file.
enum Upload {
    Bytes(Vec<u8>),
    File(tokio::fs::File, u64),
}

/// The remote of a project: from `MLBUILD_REMOTE_CACHE` or `[cache] remote`, if any.
pub fn configured(config: &crate::config::Cache) -> anyhow::Result<Option<Arc<Remote>>> {
    let Some(settings) = Settings::resolve(config) else {
        return Ok(None);
    };
    match Remote::new(&settings) {
        Ok(remote) => Ok(Some(Arc::new(remote))),
        // Kept as it is (its HTTP cause included); rendering finds its hint.
        Err(e) => Err(e.into()),
    }
}

/// The certificates in a PEM file (at least one).
fn ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RemoteError> {
    let err = |why: String| RemoteError::Ca {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in it".into()));
    }
    Ok(certs)
}

/// What a cache can check of an entry on its own: it is for `key` (its step and inputs hash to
/// it), and it names only digests, sizes only of its outputs.
pub fn check_entry(key: &str, entry: &ActionEntry) -> Result<(), String> {
    if entry.key != key {
        return Err(format!("is for another key ({})", entry.key));
    }
    let hashed = crate::fingerprint::KeyInputs::new(&entry.step, entry.inputs.clone()).key();
    if hashed != key {
        return Err(format!(
            "does not hash to its key: its step `{}` and inputs give {hashed}",
            entry.step
        ));
    }
    if let Some(bad) = entry
        .outputs
        .values()
        .chain(entry.output_digests.values())
        .find(|d| !is_digest(d))
    {
        return Err(format!("names `{bad}`, which is not a digest"));
    }
    if let Some(name) = entry
        .output_sizes
        .keys()
        .find(|n| !entry.outputs.contains_key(*n))
    {
        return Err(format!(
            "records the size of `{name}`, which is not an output"
        ));
    }
    Ok(())
}

/// Every digest that stands for an output downstream (`output_digests`, which enter keys and
/// ml.lock) is that output's blob digest, or, for a MOJO, the canonical digest recomputed from
/// the blob's bytes (which must be in the store).
pub fn check_output_digests(store: &Store, entry: &ActionEntry) -> Result<(), String> {
    for (name, digest) in &entry.output_digests {
        let Some(blob) = entry.outputs.get(name) else {
            return Err(format!("its output digest `{name}` names no output"));
        };
        if blob == digest {
            continue;
        }
        let bytes = store.read_verified(blob).map_err(|e| e.to_string())?;
        match crate::mojo::canonical_digest(&bytes) {
            Ok(canonical) if canonical == *digest => {}
            Ok(canonical) => {
                return Err(format!(
                    "its output digest `{name}` is {digest}, but the MOJO's canonical digest is {canonical}"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "its output digest `{name}` is {digest}, not the digest of its blob {blob}"
                ))
            }
        }
    }
    Ok(())
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk);
                if out.len() > limit {
                    return Err(format!("answer larger than {limit} bytes"));
                }
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => return Err("timed out".into()),
            Err(e) => return Err(e.without_url().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(base: &str) -> Settings {
        Settings {
            base: base.into(),
            token: Some("secret".into()),
            read_only: false,
            ca: None,
        }
    }

    #[test]
    fn ml_toml_wins_over_the_user_config_which_fills_the_rest() {
        if [URL_VAR, TOKEN_VAR, CA_VAR, READ_ONLY_VAR]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            eprintln!("note: remote variables are set in this environment; skipping");
            return;
        }
        let user = crate::user_config::Remote {
            url: Some("https://user.example/ml/".into()),
            token: Some("user-token".into()),
            read_only: true,
            ca: Some("/etc/user-ca.pem".into()),
        };
        let mut project = crate::config::Cache::default();
        let s = Settings::resolve_with(&project, &user).unwrap();
        assert_eq!(s.base, "https://user.example/ml");
        assert_eq!(s.token.as_deref(), Some("user-token"));
        assert!(s.read_only);
        assert_eq!(
            s.ca.as_deref(),
            Some(std::path::Path::new("/etc/user-ca.pem"))
        );
        project.remote = Some("http://project:8080/c".into());
        let s = Settings::resolve_with(&project, &user).unwrap();
        assert_eq!(s.base, "http://project:8080/c", "ml.toml's URL wins");
        assert_eq!(
            s.token.as_deref(),
            Some("user-token"),
            "the token still comes from the user"
        );
        assert!(Settings::resolve_with(
            &crate::config::Cache::default(),
            &crate::user_config::Remote::default()
        )
        .is_none());
    }

    #[test]
    fn http_and_https_and_no_credentials_in_messages() {
        assert!(Remote::new(&settings("https://cache.example")).is_ok());
        assert!(matches!(
            Remote::new(&settings("ftp://cache.example")),
            Err(RemoteError::Scheme { .. })
        ));
        let mut bad_ca = settings("https://cache.example");
        bad_ca.ca = Some("/nonexistent/ca.pem".into());
        assert!(matches!(Remote::new(&bad_ca), Err(RemoteError::Ca { .. })));
        let r = Remote::new(&settings("http://user:pw@127.0.0.1:9/c")).unwrap();
        assert_eq!(r.shown(), "http://user:***@127.0.0.1:9/c");
        assert!(!format!("{r:?}").contains("pw") && !format!("{r:?}").contains("secret"));
    }

    #[test]
    fn digests_are_64_lowercase_hex() {
        assert!(is_digest(&"a".repeat(64)));
        assert!(!is_digest(&"A".repeat(64)));
        assert!(!is_digest("../../etc/passwd"));
        assert!(!is_digest(&"a".repeat(63)));
    }

    /// A refused connection is a miss, warned about once; the breaker then stops all calls.
    #[tokio::test]
    async fn faults_are_misses_with_one_warning_and_a_breaker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Port 9 (discard) is closed on loopback: connection refused.
        let r = Remote::new(&settings("http://127.0.0.1:9/cache")).unwrap();
        for _ in 0..5 {
            assert_eq!(r.restore(&store, &"a".repeat(64)).await, Restore::Miss);
        }
        assert_eq!(r.faults(), BREAKER, "no call after the breaker opened");
        assert!(!r.active());
        let warnings = r.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("cannot connect"), "{warnings:?}");
        assert!(!warnings[0].contains("secret"));
    }

    /// A lying server on loopback: `GET /c/ac/{key}` answers `entry`; `GET /c/cas/…` answers
    /// `blob_head` (status line and headers) and then streams zeros until the client stops
    /// reading or `give_up` bytes are sent. Returns the base URL and the bytes sent so far.
    fn lying_server(
        entry: Vec<u8>,
        blob_head: &'static str,
        give_up: u64,
    ) -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/c", listener.local_addr().unwrap());
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                if request.contains(" /c/ac/") {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        entry.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&entry);
                    continue;
                }
                let _ = stream.write_all(blob_head.as_bytes());
                let zeros = vec![0u8; 64 << 10];
                while counter.load(Ordering::Relaxed) < give_up {
                    if stream.write_all(&zeros).is_err() {
                        break;
                    }
                    counter.fetch_add(zeros.len() as u64, Ordering::Relaxed);
                }
            }
        });
        (base, sent)
    }

    fn entry_for(sizes: BTreeMap<String, u64>) -> ActionEntry {
        let inputs = serde_json::json!({ "source": "x" });
        ActionEntry {
            step: "locate".into(),
            key: crate::fingerprint::KeyInputs::new("locate", inputs.clone()).key(),
            inputs,
            outputs: BTreeMap::from([("snapshot".to_string(), "a".repeat(64))]),
            output_digests: BTreeMap::from([("snapshot".to_string(), "a".repeat(64))]),
            result: serde_json::json!({}),
            output_sizes: sizes,
        }
    }

    fn tmp_bytes(store: &Store) -> u64 {
        std::fs::read_dir(store.bucket(crate::store::Bucket::Tmp))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    /// An endless reply to a blob of 9 bytes is cut off at 9 bytes: nothing of it stays, and
    /// the server gets to send only what the sockets buffer, not the 256 MiB it tries.
    #[tokio::test]
    async fn an_endless_blob_reply_is_cut_off_at_the_recorded_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = entry_for(BTreeMap::from([("snapshot".to_string(), 9)]));
        let (base, sent) = lying_server(
            serde_json::to_vec(&entry).unwrap(),
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            256 << 20,
        );
        let r = Remote::new(&settings(&base)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(r.restore(&store, &entry.key).await, Restore::Miss);
        assert!(started.elapsed() < Duration::from_secs(10));
        let w = r.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("larger than the 9 bytes its entry records"),
            "{w:?}"
        );
        assert_eq!(tmp_bytes(&store), 0, "no partial blob is left");
        std::thread::sleep(Duration::from_millis(200));
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 32 << 20, "the server sent {sent} bytes");
        assert!(!store.entry_path(&entry.key).exists());
    }

    /// An entry without sizes (written by an older mlbuild): a `Content-Length` over the cap is
    /// refused before a byte of the body is read.
    #[tokio::test]
    async fn an_oversize_content_length_is_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = entry_for(BTreeMap::new());
        let mut json = serde_json::to_value(&entry).unwrap();
        json.as_object_mut().unwrap().remove("output_sizes");
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                MAX_UNSIZED_BLOB_BYTES + 1
            )
            .into_boxed_str(),
        );
        let (base, sent) = lying_server(serde_json::to_vec(&json).unwrap(), head, 256 << 20);
        let r = Remote::new(&settings(&base)).unwrap();
        assert_eq!(r.restore(&store, &entry.key).await, Restore::Miss);
        let w = r.take_warnings();
        assert!(
            w[0].contains("announced as") && w[0].contains("not read"),
            "{w:?}"
        );
        assert_eq!(tmp_bytes(&store), 0);
        std::thread::sleep(Duration::from_millis(200));
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 32 << 20, "the server sent {sent} bytes");
    }

    /// An entry whose inputs do not hash to its key (or of another step) is refused.
    #[test]
    fn entries_must_hash_to_their_key() {
        let entry = entry_for(BTreeMap::new());
        assert!(check_entry(&entry.key, &entry).is_ok());
        let mut other_step = entry.clone();
        other_step.step = "prepare".into();
        assert!(check_entry(&entry.key, &other_step)
            .unwrap_err()
            .contains("does not hash to its key"));
        let mut other_inputs = entry.clone();
        other_inputs.inputs = serde_json::json!({ "source": "y" });
        assert!(check_entry(&entry.key, &other_inputs).is_err());
        let mut stray_size = entry.clone();
        stray_size.output_sizes.insert("other".into(), 1);
        assert!(check_entry(&entry.key, &stray_size).is_err());
    }
}
