//! The H2O REST client: the handful of calls mlbuild makes, with H2O's quirks handled.
//!
//! Every call is short; long work (parse, AutoML, predictions) starts a job that is polled via
//! `GET /3/Jobs/{key}`, so no HTTP request has to stay open for minutes. Every job started and
//! every key created is entered in the client's ledger ([`super::ledger`]) before the request
//! that makes it, so that an interrupted run can cancel and remove it ([`Client::teardown`]).
//! Non-2xx answers become [`H2oError::Api`] (decoded from `H2OErrorV3`), and 412
//! "SECURE REQUIRED" on a MOJO download becomes [`H2oError::MojoExportBlocked`].
//!
//! Quirks handled here (numbers refer to reference/h2o-rest.md): PostFile needs an octet-stream
//! body and may answer `total_bytes: -1` (G9); Parse needs ParseSetup's fields echoed (G10);
//! AutoML's `sort_metric` is in `input_spec` (G13); tables are column-major with "NaN" strings
//! (G7, G8); `/4/Predictions` answers a bare JobV3 and reports missing columns as warnings (G14).
//! Path segments are percent-encoded, except `$` and `@`, which H2O keys contain and H2O takes
//! raw (G18).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{api_error, is_secure_required};
use super::leaderboard::{decode_leaderboard, Leaderboard};
use super::ledger::{KeyKind, Ledger};
use super::H2oError;
use crate::redact::safe_url;

pub(crate) const SHORT: Duration = Duration::from_secs(120);
const LONG: Duration = Duration::from_secs(3600);
/// The first wait before polling a job again; it doubles up to the job's interval.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_SHORT: Duration = Duration::from_millis(150);
const POLL_AUTOML: Duration = Duration::from_millis(250);
/// How often a job's wait also asks `/3/Cloud` whether every node is still healthy.
const CLOUD_CHECK: Duration = Duration::from_secs(5);

/// Fields of `GET /3/Models/{id}` that are large and unused (h2o-rest.md §6; not
/// `models/parameters`, see G15).
const MODEL_EXCLUDE_FIELDS: &str =
    "models/output/cv_scoring_history,models/output/scoring_history,\
models/output/training_metrics/thresholds_and_metric_scores,\
models/output/cross_validation_metrics/thresholds_and_metric_scores,\
models/output/training_metrics/gains_lift_table,\
models/output/cross_validation_metrics/gains_lift_table,\
models/output/cross_validation_metrics_summary,\
models/output/reproducibility_information_table,\
models/output/cross_validation_predictions";

/// A connection to one H2O cluster (local or remote). Cheap to clone; clones share the ledger
/// of what was started and created ([`super::ledger`]).
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    hand_over: HandOver,
    /// Where files are lent to the cluster ([`HandOver::Exchange`]).
    exchange: Option<super::exchange::Exchange>,
    /// The cluster's size when it was checked (0: not checked): a job's wait fails when the
    /// cluster stops being healthy or shrinks below it.
    nodes: u32,
}

/// How a data file reaches the cluster ([`Client::load_csv`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandOver {
    /// `POST /3/PostFile`: the bytes go through this process and the leader; works with any
    /// cluster (H2O calls it "not scalable": one node receives everything).
    Upload,
    /// `ImportFiles` of the file where it lies, read by H2O's parallel reader: the cluster runs
    /// on this machine (a managed or warm node), so it can read the store.
    LocalPath,
    /// `ImportFiles` of a content-addressed copy in `[h2o] exchange_dir`, a directory this
    /// process and every node read at the same path ([`super::exchange`]).
    Exchange,
}

/// A file handed to the cluster, not yet parsed ([`Client::stage_csv`]).
#[derive(Debug)]
pub struct Staged {
    /// The raw (unparsed) frame's key.
    pub raw_key: String,
    /// The exchange's copy, kept until the parse has read it.
    pub lease: Option<super::exchange::Lease>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.display_url())
            .finish_non_exhaustive()
    }
}

/// What `/3/Cloud` says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInfo {
    pub version: String,
    pub cloud_size: u32,
    pub healthy: bool,
    pub consensus: bool,
    pub cloud_name: String,
}

/// How a column is parsed; forced at upload, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    Numeric,
    Enum,
    String,
}

impl ColumnKind {
    /// H2O's spelling in `column_types`.
    pub fn h2o_name(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "Numeric",
            ColumnKind::Enum => "Enum",
            ColumnKind::String => "String",
        }
    }
}

/// A parsed frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameInfo {
    pub id: String,
    pub rows: u64,
    pub columns: Vec<String>,
}

/// An AutoML run to start. `sort_metric` uses H2O's spelling ("AUC", "logloss", "RMSE", …);
/// empty vectors mean "all" (include) or "none" (exclude).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoMlSpec {
    pub project_name: String,
    pub training_frame: String,
    pub leaderboard_frame: Option<String>,
    pub response_column: String,
    pub ignored_columns: Vec<String>,
    pub seed: u64,
    pub max_models: u32,
    pub nfolds: u32,
    pub include_algos: Vec<String>,
    pub exclude_algos: Vec<String>,
    pub sort_metric: String,
}

/// H2O's accepted `sort_metric` values (G13: a wrong one is accepted, then the job fails late).
pub const SORT_METRICS: &[&str] = &[
    "AUTO",
    "deviance",
    "logloss",
    "MSE",
    "RMSE",
    "MAE",
    "RMSLE",
    "AUC",
    "AUCPR",
    "lift_top_group",
    "misclassification",
    "mean_per_class_error",
];

/// A finished AutoML run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoMlRun {
    /// `project@@response`, the key to fetch or delete the run by (G5).
    pub key: String,
    pub leaderboard: Leaderboard,
}

/// The fields of a JobV3 that mlbuild reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Job {
    pub key: KeyRef,
    #[serde(default)]
    pub description: Option<String>,
    pub status: String,
    #[serde(default)]
    progress: Option<f64>,
    #[serde(default)]
    progress_msg: Option<String>,
    #[serde(default)]
    pub dest: Option<KeyRef>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    #[serde(default)]
    exception: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KeyRef {
    pub name: String,
}

/// Percent-encodes one path segment; `$` and `@` stay raw (H2O keys; G18).
pub(crate) fn enc(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'$' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `["a","b"]`, H2O's array syntax in form fields.
/// Whether H2O's default `-file_deny_glob` (`{/bin/*,/etc/*,/var/*,/usr/*,/proc/*,**/.**}`,
/// read from the 3.46.0.11 jar) refuses to import `path`: any hidden component (a store under
/// `~/.cache`, a temp dir `/tmp/.tmpXYZ`), or a file directly in one of those system dirs.
fn import_denied_by_default(path: &Path) -> bool {
    let Ok(path) = std::path::absolute(path) else {
        return true;
    };
    let hidden = path
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    let system = ["/bin", "/etc", "/var", "/usr", "/proc"]
        .iter()
        .any(|d| path.parent() == Some(Path::new(d)));
    hidden || system
}

/// An import from the exchange that the cluster refused or could not read, said as such.
fn exchange_refused(e: H2oError, path: &Path) -> H2oError {
    match e {
        H2oError::Api { msg, .. } => H2oError::ExchangeUnreadable {
            path: path.to_path_buf(),
            detail: msg,
        },
        H2oError::Unexpected { detail, .. } => H2oError::ExchangeUnreadable {
            path: path.to_path_buf(),
            detail,
        },
        other => other,
    }
}

/// How a file's header differs from the declared columns (names, in order), if it does.
fn header_mismatch(found: &[String], columns: &[(String, ColumnKind)]) -> Option<String> {
    if found.len() != columns.len() {
        return Some(format!(
            "the header has {} columns, {} were declared",
            found.len(),
            columns.len()
        ));
    }
    found
        .iter()
        .zip(columns)
        .enumerate()
        .find(|(_, (f, (d, _)))| f.as_str() != d.as_str())
        .map(|(i, (f, (d, _)))| {
            format!("column {} is `{f}` in the file, `{d}` was declared", i + 1)
        })
}

fn json_list(items: &[impl AsRef<str>]) -> String {
    serde_json::to_string(&items.iter().map(|s| s.as_ref()).collect::<Vec<_>>()).unwrap()
}

impl Client {
    /// A client for `url` (e.g. `http://127.0.0.1:54321`); does not contact the server.
    pub fn new(url: &str) -> Result<Client, H2oError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| H2oError::Http {
                url: safe_url(url),
                source: e.without_url(),
            })?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            http,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            hand_over: HandOver::Upload,
            exchange: None,
            nodes: 0,
        })
    }

    /// This client, handing data over as `how` says.
    #[must_use]
    pub fn with_hand_over(mut self, how: HandOver) -> Client {
        self.hand_over = how;
        self
    }

    /// This client, lending data to the cluster through `dir` ([`HandOver::Exchange`]).
    #[must_use]
    pub fn with_exchange(mut self, dir: &Path) -> Client {
        self.hand_over = HandOver::Exchange;
        self.exchange = Some(super::exchange::Exchange::new(dir));
        self
    }

    /// How this client hands data over.
    pub fn hand_over(&self) -> HandOver {
        self.hand_over
    }

    /// The base URL, credentials removed (for messages).
    pub fn display_url(&self) -> String {
        safe_url(&self.base)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends, and turns transport failures and non-2xx answers into errors.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        req: RequestBuilder,
    ) -> Result<Response, H2oError> {
        let url = self.url(path);
        let resp = req.send().await.map_err(|e| H2oError::Http {
            url: safe_url(&url),
            source: e.without_url(),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(api_error(method.as_str(), &url, status, &body))
    }

    pub(super) fn req(&self, method: Method, path: &str, timeout: Duration) -> RequestBuilder {
        self.http.request(method, self.url(path)).timeout(timeout)
    }

    async fn json(&self, path: &str, resp: Response) -> Result<Value, H2oError> {
        let bytes = resp.bytes().await.map_err(|e| H2oError::Http {
            url: safe_url(&self.url(path)),
            source: e.without_url(),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.unexpected(path, format!("invalid JSON: {e}")))
    }

    fn unexpected(&self, path: &str, detail: impl Into<String>) -> H2oError {
        H2oError::Unexpected {
            url: safe_url(&self.url(path)),
            detail: detail.into(),
        }
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, H2oError> {
        self.get_json_within(path, query, SHORT).await
    }

    pub(super) async fn get_json_within(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Value, H2oError> {
        let req = self.req(Method::GET, path, timeout).query(query);
        let resp = self.send(Method::GET, path, req).await?;
        self.json(path, resp).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, String)]) -> Result<Value, H2oError> {
        let req = self.req(Method::POST, path, SHORT).form(form);
        let resp = self.send(Method::POST, path, req).await?;
        self.json(path, resp).await
    }

    /// `GET /3/Cloud`.
    pub async fn cloud(&self) -> Result<CloudInfo, H2oError> {
        self.cloud_with_timeout(SHORT).await
    }

    pub(crate) async fn cloud_with_timeout(
        &self,
        timeout: Duration,
    ) -> Result<CloudInfo, H2oError> {
        let path = "/3/Cloud";
        let req = self.req(Method::GET, path, timeout);
        let resp = self.send(Method::GET, path, req).await?;
        let v = self.json(path, resp).await?;
        Ok(CloudInfo {
            version: v["version"].as_str().unwrap_or("").to_string(),
            cloud_size: v["cloud_size"].as_u64().unwrap_or(0) as u32,
            healthy: v["cloud_healthy"].as_bool().unwrap_or(false),
            consensus: v["consensus"].as_bool().unwrap_or(false),
            cloud_name: v["cloud_name"].as_str().unwrap_or("").to_string(),
        })
    }

    /// Checks the cluster against what `ml.toml` declares — version, node count, health and
    /// consensus, and (declared for more than one node) threads per node — and returns the
    /// client to use from then on: one pointed at the leader (`nodes[0]` of `/3/Cloud`), so
    /// that every request of a run goes to one node, when the leader answers at its own
    /// address; else this one (a cluster behind a proxy that only forwards to some node).
    pub async fn check_fingerprint(&self, declared: &super::Declared) -> Result<Client, H2oError> {
        let path = "/3/Cloud";
        let req = self.req(Method::GET, path, SHORT);
        let resp = self.send(Method::GET, path, req).await?;
        let v = self.json(path, resp).await?;
        let found = v["version"].as_str().unwrap_or_default();
        if found != declared.version {
            return Err(H2oError::VersionMismatch {
                url: self.display_url(),
                declared: declared.version.clone(),
                found: found.to_string(),
            });
        }
        let size = v["cloud_size"].as_u64().unwrap_or(0) as u32;
        if size != declared.nodes {
            return Err(H2oError::ClusterSizeMismatch {
                url: self.display_url(),
                declared: declared.nodes,
                found: size,
            });
        }
        let (healthy, consensus) = (
            v["cloud_healthy"].as_bool().unwrap_or(false),
            v["consensus"].as_bool().unwrap_or(false),
        );
        if !(healthy && consensus) {
            return Err(H2oError::ClusterUnhealthy {
                url: self.display_url(),
                healthy,
                consensus,
            });
        }
        let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        if let Some(threads) = declared.threads {
            for node in &nodes {
                let n = node["nthreads"].as_u64().unwrap_or(0) as u32;
                if n != threads {
                    return Err(H2oError::ThreadsMismatch {
                        url: self.display_url(),
                        declared: threads,
                        found: n,
                        node: node["ip_port"].as_str().unwrap_or("?").to_string(),
                    });
                }
            }
        }
        let leader = nodes
            .first()
            .and_then(|n| n["ip_port"].as_str())
            .map(str::to_string);
        let mut client = match leader {
            Some(leader) => self.at_leader(&leader, &v["cloud_name"]).await,
            None => self.clone(),
        };
        client.nodes = size;
        Ok(client)
    }

    /// This client, or one at the leader's `ip_port` when that is another address that
    /// answers for the same cloud.
    async fn at_leader(&self, ip_port: &str, cloud_name: &Value) -> Client {
        let Some((scheme, rest)) = self.base.split_once("://") else {
            return self.clone();
        };
        // `user:password@host:port/prefix`: keep the credentials and the prefix.
        let (auth, host_and_path) = match rest.rsplit_once('@') {
            Some((auth, hp)) => (format!("{auth}@"), hp),
            None => (String::new(), rest),
        };
        let (host, prefix) = match host_and_path.split_once('/') {
            Some((h, p)) => (h, format!("/{p}")),
            None => (host_and_path, String::new()),
        };
        if host == ip_port {
            return self.clone();
        }
        let Ok(leader) = Client::new(&format!("{scheme}://{auth}{ip_port}{prefix}")) else {
            return self.clone();
        };
        let path = "/3/Cloud";
        let req = leader.req(Method::GET, path, Duration::from_secs(5));
        match leader.send(Method::GET, path, req).await {
            Ok(resp) => match leader.json(path, resp).await {
                Ok(v) if &v["cloud_name"] == cloud_name => leader,
                _ => self.clone(),
            },
            Err(_) => self.clone(),
        }
    }

    /// Hands a CSV with a header row to the cluster ([`HandOver`]: uploaded, or imported where
    /// it lies) and parses it into `frame_id`, with the given column names and types (in file
    /// order) forced.
    pub async fn load_csv(
        &self,
        path: &Path,
        frame_id: &str,
        columns: &[(String, ColumnKind)],
    ) -> Result<FrameInfo, H2oError> {
        self.track_key(frame_id, KeyKind::Frame);
        match self.stage_csv(path, frame_id).await {
            // The lease (if any) is dropped after the parse: H2O holds the data by then.
            Ok(staged) => {
                self.parse_raw(path, &staged.raw_key, frame_id, columns)
                    .await
            }
            Err(e) => {
                self.forget_key(frame_id);
                Err(e)
            }
        }
    }

    /// The hand-over alone: the file reaches the cluster as an unparsed frame, whose key is
    /// returned ([`Client::load_csv`] parses it; the benchmark times this part apart).
    pub async fn stage_csv(&self, path: &Path, frame_id: &str) -> Result<Staged, H2oError> {
        let unleased = |raw_key| Staged {
            raw_key,
            lease: None,
        };
        if let (HandOver::Exchange, Some(exchange)) = (self.hand_over, &self.exchange) {
            let lease = exchange.lend(path)?;
            let raw_key = self
                .import_file(lease.path())
                .await
                .map_err(|e| exchange_refused(e, lease.path()))?;
            return Ok(Staged {
                raw_key,
                lease: Some(lease),
            });
        }
        if self.hand_over == HandOver::Upload || import_denied_by_default(path) {
            return self.post_file(path, frame_id).await.map(unleased);
        }
        match self.import_file(path).await {
            // A node started with a stricter `-file_deny_glob` than the default: upload instead.
            Err(H2oError::Api {
                exception_type: Some(t),
                ..
            }) if t.ends_with("H2OFileAccessDeniedException") => {
                self.post_file(path, frame_id).await.map(unleased)
            }
            other => other.map(unleased),
        }
    }

    /// `ImportFiles` of one file by its absolute path: returns the raw (unparsed) key.
    async fn import_file(&self, path: &Path) -> Result<String, H2oError> {
        let absolute =
            std::path::absolute(path).map_err(|e| H2oError::io("could not resolve", path, e))?;
        let p = "/3/ImportFiles";
        let shown = absolute.to_string_lossy().into_owned();
        let v = self
            .get_json_within(p, &[("path", shown.as_str())], LONG)
            .await?;
        if let Some(fail) = v["fails"].as_array().and_then(|f| f.first()) {
            return Err(self.unexpected(p, format!("H2O could not import `{shown}`: {fail}")));
        }
        let raw_key = v["destination_frames"][0]
            .as_str()
            .ok_or_else(|| self.unexpected(p, format!("no frame for `{shown}`: {v}")))?
            .to_string();
        self.track_key(&raw_key, KeyKind::Frame);
        Ok(raw_key)
    }

    /// `POST /3/PostFile` of the file's bytes: returns the raw (unparsed) key.
    async fn post_file(&self, path: &Path, frame_id: &str) -> Result<String, H2oError> {
        // Read whole: reqwest is built without its `stream` feature. Files here are training
        // sets that H2O will hold in memory anyway.
        let bytes = std::fs::read(path).map_err(|e| H2oError::io("could not read", path, e))?;
        let raw_key = format!("{frame_id}_upload");
        self.track_key(&raw_key, KeyKind::Frame);
        let p = "/3/PostFile";
        let req = self
            .req(Method::POST, p, LONG)
            .query(&[("destination_frame", raw_key.as_str())])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let resp = self.send(Method::POST, p, req).await?;
        let v = self.json(p, resp).await?;
        if v["total_bytes"].as_i64().unwrap_or(-1) <= 0 {
            return Err(self.unexpected(
                p,
                format!("the upload of `{}` arrived empty: {v}", path.display()),
            ));
        }
        let raw_key = match v["destination_frame"].as_str() {
            Some(named) if named != raw_key => {
                self.track_key(named, KeyKind::Frame);
                self.forget_key(&raw_key);
                named.to_string()
            }
            _ => raw_key,
        };
        Ok(raw_key)
    }

    /// Parses the raw key into `frame_id` with the declared columns forced; the raw key is
    /// removed either way.
    async fn parse_raw(
        &self,
        path: &Path,
        raw_key: &str,
        frame_id: &str,
        columns: &[(String, ColumnKind)],
    ) -> Result<FrameInfo, H2oError> {
        let source = json_list(&[raw_key]);

        let setup = self
            .post_form(
                "/3/ParseSetup",
                &[
                    ("source_frames", source.clone()),
                    ("check_header", "1".into()),
                ],
            )
            .await;
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                let _ = self.delete(raw_key, false).await;
                self.forget_key(frame_id);
                return Err(e);
            }
        };
        let found: Vec<String> = setup["column_names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mismatch = header_mismatch(&found, columns);
        if let Some(detail) = mismatch {
            let _ = self.delete(raw_key, false).await;
            self.forget_key(frame_id);
            return Err(H2oError::ColumnMismatch {
                path: path.to_path_buf(),
                detail,
            });
        }

        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let types: Vec<&str> = columns.iter().map(|(_, k)| k.h2o_name()).collect();
        let mut form: Vec<(&str, String)> = vec![
            ("source_frames", source),
            ("destination_frame", frame_id.to_string()),
            ("column_names", json_list(&names)),
            ("column_types", json_list(&types)),
            ("check_header", "1".into()),
            ("delete_on_done", "true".into()),
            ("blocking", "false".into()),
        ];
        for field in [
            "parse_type",
            "separator",
            "single_quotes",
            "number_columns",
            "chunk_size",
        ] {
            match &setup[field] {
                Value::Null => {}
                Value::String(s) => form.push((field, s.clone())),
                other => form.push((field, other.to_string())),
            }
        }
        if let Some(na) = setup.get("na_strings").filter(|v| !v.is_null()) {
            form.push(("na_strings", na.to_string()));
        }
        let v = self
            .starting_job(frame_id, self.post_form("/3/Parse", &form))
            .await?;
        let job: Job = serde_json::from_value(v["job"].clone())
            .map_err(|e| self.unexpected("/3/Parse", format!("no job in the answer: {e}")))?;
        self.track_job(&job);
        let parsed = self.wait_job(&job.key.name, POLL_SHORT, &|_, _| {}).await;
        // Parse removes its source, done or failed (`delete_on_done`; G10).
        self.forget_key(raw_key);
        parsed?;
        self.frame_info(frame_id).await
    }

    /// Row count and column names of a frame.
    pub async fn frame_info(&self, frame_id: &str) -> Result<FrameInfo, H2oError> {
        let path = format!("/3/Frames/{}", enc(frame_id));
        let v = self
            .get_json(
                &path,
                &[
                    ("row_count", "0"),
                    ("column_count", "-1"),
                    (
                        "_exclude_fields",
                        "frames/columns/data,frames/columns/domain,frames/columns/string_data",
                    ),
                ],
            )
            .await?;
        let f = &v["frames"][0];
        let columns = f["columns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["label"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(FrameInfo {
            id: f["frame_id"]["name"]
                .as_str()
                .unwrap_or(frame_id)
                .to_string(),
            rows: f["rows"]
                .as_u64()
                .ok_or_else(|| self.unexpected(&path, "no `rows`"))?,
            columns,
        })
    }

    /// Runs AutoML to completion, reporting `(progress 0..1, message)`, and reads the leaderboard.
    pub async fn automl(
        &self,
        spec: &AutoMlSpec,
        progress: &(dyn Fn(f64, &str) + Sync),
    ) -> Result<AutoMlRun, H2oError> {
        let path = "/99/AutoMLBuilder";
        if !SORT_METRICS.contains(&spec.sort_metric.as_str()) {
            return Err(H2oError::InvalidSortMetric {
                metric: spec.sort_metric.clone(),
                allowed: SORT_METRICS.join(", "),
            });
        }
        let algos = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
        let body = json!({
            "build_control": {
                "project_name": spec.project_name,
                "nfolds": spec.nfolds,
                "balance_classes": false,
                "keep_cross_validation_predictions": false,
                "keep_cross_validation_models": false,
                "keep_cross_validation_fold_assignment": false,
                "stopping_criteria": {
                    "max_models": spec.max_models,
                    "seed": spec.seed,
                    "max_runtime_secs": 0,
                    "max_runtime_secs_per_model": 0,
                    "stopping_rounds": 3,
                    "stopping_metric": "AUTO",
                    "stopping_tolerance": -1
                }
            },
            "input_spec": {
                "training_frame": spec.training_frame,
                "response_column": spec.response_column,
                "ignored_columns": spec.ignored_columns,
                "leaderboard_frame": spec.leaderboard_frame,
                "validation_frame": null,
                "fold_column": null,
                "weights_column": null,
                "sort_metric": spec.sort_metric
            },
            "build_models": {
                "include_algos": algos(&spec.include_algos),
                "exclude_algos": algos(&spec.exclude_algos)
            }
        });
        // The project's key (G5), entered before the request that creates it.
        let planned = format!("{}@@{}", spec.project_name, spec.response_column);
        self.track_key(&planned, KeyKind::AutoMl);
        let v = self
            .starting_job(
                &planned,
                self.guarded(&planned, async {
                    let req = self.req(Method::POST, path, SHORT).json(&body);
                    let resp = self.send(Method::POST, path, req).await?;
                    self.json(path, resp).await
                }),
            )
            .await?;
        let job: Job = serde_json::from_value(v["job"].clone())
            .map_err(|e| self.unexpected(path, format!("no job in the answer: {e}")))?;
        self.track_job(&job);
        let done = self.wait_job(&job.key.name, POLL_AUTOML, progress).await?;
        let key = done.dest.or(job.dest).map(|d| d.name).unwrap_or(planned);
        self.track_key(&key, KeyKind::AutoMl);
        let leaderboard = self.leaderboard(&key).await?;
        Ok(AutoMlRun { key, leaderboard })
    }

    /// `GET /99/Leaderboards/{project@@response}?extensions=ALL`.
    pub async fn leaderboard(&self, automl_key: &str) -> Result<Leaderboard, H2oError> {
        let path = format!("/99/Leaderboards/{}", enc(automl_key));
        let v = self.get_json(&path, &[("extensions", "ALL")]).await?;
        decode_leaderboard(&v).map_err(|d| self.unexpected(&path, format!("bad leaderboard: {d}")))
    }

    /// Polls a job until it ends; DONE returns the job, FAILED/CANCELLED are errors. The job
    /// leaves the ledger only when it is seen to end: a poll that is dropped (Ctrl-C) or fails
    /// leaves it there for [`Client::teardown`].
    async fn wait_job(
        &self,
        key: &str,
        every: Duration,
        progress: &(dyn Fn(f64, &str) + Sync),
    ) -> Result<Job, H2oError> {
        let path = format!("/3/Jobs/{}", enc(key));
        let mut checked = std::time::Instant::now();
        // Short jobs (a parse of a small file, a prediction) end within milliseconds: the first
        // polls come soon and the interval doubles up to `every`.
        let mut next = POLL_FIRST.min(every);
        loop {
            // As in `guarded`: a single node has no member to lose.
            if self.nodes > 1 && checked.elapsed() >= CLOUD_CHECK {
                self.still_whole(key).await?;
                checked = std::time::Instant::now();
            }
            // A poll that hangs (the job's key lives on a node that died) is guarded too.
            let v = self.guarded(key, self.get_json(&path, &[])).await?;
            let job: Job = serde_json::from_value(v["jobs"][0].clone())
                .map_err(|e| self.unexpected(&path, format!("no job in the answer: {e}")))?;
            let p = job.progress.unwrap_or(0.0).clamp(0.0, 1.0);
            progress(p, job.progress_msg.as_deref().unwrap_or(""));
            let description = || job.description.clone().unwrap_or_else(|| "job".into());
            if matches!(job.status.as_str(), "DONE" | "FAILED" | "CANCELLED") {
                self.job_ended(key);
            }
            match job.status.as_str() {
                "DONE" => return Ok(job),
                "FAILED" => {
                    return Err(H2oError::JobFailed {
                        description: description(),
                        key: key.to_string(),
                        exception: job
                            .exception
                            .clone()
                            .unwrap_or_else(|| "(no exception given)".into()),
                    })
                }
                "CANCELLED" => {
                    return Err(H2oError::JobCancelled {
                        description: description(),
                        key: key.to_string(),
                    })
                }
                _ => {
                    tokio::time::sleep(next).await;
                    next = (next * 2).min(every);
                }
            }
        }
    }

    /// Runs `work` (a request about job `key`), failing it with [`H2oError::NodeLost`] as soon
    /// as a multi-node cluster stops being whole (checked every [`CLOUD_CHECK`] while it is
    /// pending): a request that needs a dead node hangs until its timeout otherwise. On one
    /// node there is nothing to watch: a dead node refuses connections at once.
    pub(crate) async fn guarded<T>(
        &self,
        key: &str,
        work: impl std::future::Future<Output = Result<T, H2oError>>,
    ) -> Result<T, H2oError> {
        if self.nodes <= 1 {
            return work.await;
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                answer = &mut work => return answer,
                () = tokio::time::sleep(CLOUD_CHECK) => self.still_whole(key).await?,
            }
        }
    }

    /// Fails when the cluster lost a node (unhealthy, or smaller than when it was checked):
    /// H2O may keep a job running forever on a cloud that lost a member.
    async fn still_whole(&self, key: &str) -> Result<(), H2oError> {
        let c = self.cloud_with_timeout(Duration::from_secs(20)).await?;
        if c.healthy && c.cloud_size >= self.nodes {
            return Ok(());
        }
        Err(H2oError::NodeLost {
            url: self.display_url(),
            job: key.to_string(),
            expected: self.nodes,
            found: c.cloud_size,
        })
    }

    /// The model's MOJO zip, as H2O gives it.
    pub async fn download_mojo(&self, model_id: &str) -> Result<Vec<u8>, H2oError> {
        let path = format!("/3/Models/{}/mojo", enc(model_id));
        let url = self.url(&path);
        let resp = self
            .req(Method::GET, &path, LONG)
            .send()
            .await
            .map_err(|e| H2oError::Http {
                url: safe_url(&url),
                source: e.without_url(),
            })?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let header_version = resp
                .headers()
                .get("X-h2o-build-project-version")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string);
            let body = resp.text().await.unwrap_or_default();
            if is_secure_required(status, &body) {
                let version = match header_version {
                    Some(v) => v,
                    None => self
                        .cloud()
                        .await
                        .map(|c| c.version)
                        .unwrap_or_else(|_| "unknown".into()),
                };
                return Err(H2oError::MojoExportBlocked { version });
            }
            return Err(api_error("GET", &url, status, &body));
        }
        let bytes = resp.bytes().await.map_err(|e| H2oError::Http {
            url: safe_url(&url),
            source: e.without_url(),
        })?;
        if !bytes.starts_with(b"PK") {
            return Err(self.unexpected(&path, "the MOJO is not a zip file"));
        }
        Ok(bytes.to_vec())
    }

    /// Scores `frame_id` with `model_id` into `dest_frame` (`/4/Predictions`, a polled job).
    /// A missing feature column, which H2O only warns about (it scores NaN), is an error.
    pub async fn predict(
        &self,
        model_id: &str,
        frame_id: &str,
        dest_frame: &str,
    ) -> Result<(), H2oError> {
        let path = format!(
            "/4/Predictions/models/{}/frames/{}",
            enc(model_id),
            enc(frame_id)
        );
        self.track_key(dest_frame, KeyKind::Frame);
        let v = self
            .starting_job(
                dest_frame,
                self.post_form(&path, &[("predictions_frame", dest_frame.to_string())]),
            )
            .await?;
        let job: Job = serde_json::from_value(v)
            .map_err(|e| self.unexpected(&path, format!("the answer is not a job: {e}")))?;
        self.track_job(&job);
        let done = self.wait_job(&job.key.name, POLL_SHORT, &|_, _| {}).await?;
        let warnings: Vec<String> = job
            .warnings
            .into_iter()
            .chain(done.warnings)
            .flatten()
            .filter(|w| w.contains("missing column"))
            .collect();
        if !warnings.is_empty() {
            let _ = self.delete(dest_frame, false).await;
            return Err(H2oError::PredictionWarnings {
                model: model_id.to_string(),
                frame: frame_id.to_string(),
                warnings,
            });
        }
        Ok(())
    }

    /// SHAP contributions of `model_id` on `frame_id` into `dest_frame` (`/4/Predictions` with
    /// `predict_contributions=true`, an async job; h2o-rest.md G12, §7): one column per feature
    /// plus `BiasTerm`, one row per input row. Tree models (GBM, DRF/XRT, XGBoost) need no
    /// `background`; GLM, DeepLearning and StackedEnsemble do, and StackedEnsemble also needs
    /// `compact` (`predict_contributions_output_format=Compact`). A job that fails (an algorithm
    /// H2O cannot explain this way) is `H2oError::JobFailed` with H2O's message.
    pub async fn predict_contributions(
        &self,
        model_id: &str,
        frame_id: &str,
        dest_frame: &str,
        background: Option<&str>,
        compact: bool,
    ) -> Result<(), H2oError> {
        let path = format!(
            "/4/Predictions/models/{}/frames/{}",
            enc(model_id),
            enc(frame_id)
        );
        let mut form = vec![
            ("predictions_frame", dest_frame.to_string()),
            ("predict_contributions", "true".to_string()),
        ];
        if let Some(b) = background {
            form.push(("background_frame", b.to_string()));
        }
        if compact {
            form.push(("predict_contributions_output_format", "Compact".to_string()));
        }
        self.track_key(dest_frame, KeyKind::Frame);
        let v = self
            .starting_job(dest_frame, self.post_form(&path, &form))
            .await?;
        let job: Job = serde_json::from_value(v)
            .map_err(|e| self.unexpected(&path, format!("the answer is not a job: {e}")))?;
        self.track_job(&job);
        self.wait_job(&job.key.name, POLL_SHORT, &|_, _| {}).await?;
        Ok(())
    }

    /// The frame as CSV (`/3/DownloadDataset`): a quoted header row, then the rows; enum values
    /// quoted, numbers plain.
    pub async fn download_frame_csv(&self, frame_id: &str) -> Result<Vec<u8>, H2oError> {
        let path = "/3/DownloadDataset";
        let req = self
            .req(Method::GET, path, LONG)
            .query(&[("frame_id", frame_id), ("hex_string", "false")]);
        let resp = self.send(Method::GET, path, req).await?;
        let bytes = resp.bytes().await.map_err(|e| H2oError::Http {
            url: safe_url(&self.url(path)),
            source: e.without_url(),
        })?;
        Ok(bytes.to_vec())
    }

    /// `models[0]` of `GET /3/Models/{id}`, without the bulky fields: algo, parameters, output
    /// (metrics, variable importances, …).
    pub async fn model_summary(&self, model_id: &str) -> Result<Value, H2oError> {
        let path = format!("/3/Models/{}", enc(model_id));
        let mut v = self
            .get_json(&path, &[("_exclude_fields", MODEL_EXCLUDE_FIELDS)])
            .await?;
        match v.get_mut("models").and_then(|m| m.get_mut(0)) {
            Some(m) => Ok(m.take()),
            None => Err(self.unexpected(&path, "no model in the answer")),
        }
    }

    /// `POST /99/Rapids`: evaluates a Rapids expression (h2o-rest.md §11) in `session`.
    ///
    /// Always pass a session of your own and end it with [`Client::end_session`] *before*
    /// deleting what it made: `tmp=` frames are counted in the session, and a session whose
    /// frame was deleted behind its back fails every later call ("REFCNTs contains an extra
    /// vec"), which for the default session means every caller on the cluster.
    pub async fn rapids(&self, ast: &str, session: &str) -> Result<Value, H2oError> {
        self.track_session(session);
        self.post_form(
            "/99/Rapids",
            &[
                ("ast", ast.to_string()),
                ("session_id", session.to_string()),
            ],
        )
        .await
    }

    /// `DELETE /4/sessions/{id}`: ends a Rapids session, removing its `tmp=` frames.
    pub async fn end_session(&self, session: &str) -> Result<(), H2oError> {
        let path = format!("/4/sessions/{}", enc(session));
        let req = self.req(Method::DELETE, &path, SHORT);
        match self.send(Method::DELETE, &path, req).await {
            Ok(_) | Err(H2oError::Api { status: 404, .. }) => {
                self.forget_session(session);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Trains a Word2Vec model `model_id` on `training_frame` (one word per row, NA between
    /// documents) and waits for it. `params` are H2O's (`vec_size`, `epochs`, …).
    pub async fn word2vec(
        &self,
        training_frame: &str,
        model_id: &str,
        params: &[(&str, String)],
    ) -> Result<(), H2oError> {
        let path = "/3/ModelBuilders/word2vec";
        let mut form: Vec<(&str, String)> = vec![
            ("training_frame", training_frame.to_string()),
            ("model_id", model_id.to_string()),
        ];
        form.extend(params.iter().cloned());
        self.track_key(model_id, KeyKind::Model);
        let v = self
            .starting_job(model_id, self.post_form(path, &form))
            .await?;
        let job: Job = serde_json::from_value(v["job"].clone())
            .map_err(|e| self.unexpected(path, format!("no job in the answer: {e}")))?;
        self.track_job(&job);
        self.wait_job(&job.key.name, POLL_SHORT, &|_, _| {}).await?;
        Ok(())
    }

    /// A Word2Vec model's vocabulary and vectors as CSV (`"Word","V1",…`), through the Rapids
    /// primitive `word2vec.to.frame` into the temporary `dest_frame` of `session`.
    pub async fn word2vec_vectors(
        &self,
        model_id: &str,
        dest_frame: &str,
        session: &str,
    ) -> Result<Vec<u8>, H2oError> {
        self.track_key(dest_frame, KeyKind::Frame);
        self.rapids(
            &format!("(tmp= {dest_frame} (word2vec.to.frame {model_id}))"),
            session,
        )
        .await?;
        self.download_frame_csv(dest_frame).await
    }

    /// `DELETE /3/DKV/{key}`; idempotent (an unknown key is fine), and the key leaves the
    /// ledger. `cascade` also removes what the object owns; for an AutoML project use
    /// [`Client::delete_automl`], which also removes the split frames a cascade leaves.
    pub async fn delete(&self, key: &str, cascade: bool) -> Result<(), H2oError> {
        self.delete_within(key, cascade, SHORT).await
    }

    pub(super) async fn delete_within(
        &self,
        key: &str,
        cascade: bool,
        timeout: Duration,
    ) -> Result<(), H2oError> {
        let path = format!("/3/DKV/{}", enc(key));
        let req = self
            .req(Method::DELETE, &path, timeout)
            .query(&[("cascade", if cascade { "true" } else { "false" })]);
        match self.send(Method::DELETE, &path, req).await {
            Ok(_) | Err(H2oError::Api { status: 404, .. }) => {
                self.forget_key(key);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("pr@@CAPSULE"), "pr@@CAPSULE");
        assert_eq!(enc("$03017f$_87"), "$03017f$_87");
        assert_eq!(enc("my frame/x?#"), "my%20frame%2Fx%3F%23");
        assert_eq!(enc("é"), "%C3%A9");
    }

    #[test]
    fn job_json_decodes() {
        let v = json!({"key":{"name":"$03$_a"},"description":"transformation","status":"DONE","progress":1,
            "progress_msg":"Done.","dest":{"name":"p4"},
            "warnings":["Test/Validation dataset is missing column 'PSA': substituting in a column of NaN"],
            "exception":null});
        let j: Job = serde_json::from_value(v).unwrap();
        assert_eq!(j.dest.unwrap().name, "p4");
        assert!(j.warnings.unwrap()[0].contains("missing column"));
    }

    #[test]
    fn lists_in_form_syntax() {
        assert_eq!(json_list(&["a", "b\"c"]), r#"["a","b\"c"]"#);
    }

    #[test]
    fn invalid_sort_metric_is_refused_client_side() {
        let c = Client::new("http://127.0.0.1:1").unwrap();
        let spec = AutoMlSpec {
            project_name: "p".into(),
            training_frame: "t".into(),
            leaderboard_frame: None,
            response_column: "y".into(),
            ignored_columns: vec![],
            seed: 1,
            max_models: 1,
            nfolds: 0,
            include_algos: vec![],
            exclude_algos: vec![],
            sort_metric: "auc".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(c.automl(&spec, &|_, _| {})).unwrap_err();
        assert!(
            e.to_string().contains("not an H2O AutoML sort_metric"),
            "{e}"
        );
    }

    #[test]
    fn connection_errors_do_not_show_credentials() {
        let c = Client::new("http://user:hunter2@127.0.0.1:1").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(c.cloud()).unwrap_err();
        let text = format!("{e} {:?}", std::error::Error::source(&e));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(matches!(e, H2oError::Http { .. }));
    }
}

#[cfg(test)]
mod hand_over_tests {
    use super::*;

    /// H2O's default deny list refuses hidden components and files directly in system dirs;
    /// those are uploaded instead of imported.
    #[test]
    fn paths_h2o_refuses_to_import_are_uploaded() {
        for denied in [
            "/tmp/.tmpAbc/shap_rows.csv",
            "/home/someone/.cache/mlbuild/v1/cas/ab/abcdef",
            "/etc/passwd",
            "/var/data.csv",
        ] {
            assert!(import_denied_by_default(Path::new(denied)), "{denied}");
        }
        for allowed in [
            "/tmp/mlbuild-tests-x/p/cache/v1/cas/ab/abcdef",
            "/var/lib/project/data.csv",
            "/home/me/project/cache/x",
        ] {
            assert!(!import_denied_by_default(Path::new(allowed)), "{allowed}");
        }
    }
}
