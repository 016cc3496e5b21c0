//! What can go wrong with the engine, as values callers can branch on.
//!
//! Every variant renders as one lowercase sentence naming what failed and where; `hint()` says
//! what to do about it. URLs are always passed through [`crate::redact::safe_url`] first, so credentials in
//! `http://user:pass@host` never reach the terminal.

use std::path::PathBuf;

use serde::Deserialize;

use super::PINNED_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum H2oError {
    #[error("java was not found ({searched})")]
    JavaMissing { searched: String },

    #[error("`{java}` is Java {major}, but H2O {PINNED_VERSION} runs only on Java 8 to 17")]
    JavaTooNew { java: PathBuf, major: u32 },

    #[error("`{java}` is Java {major}, but H2O {PINNED_VERSION} needs at least Java 8")]
    JavaTooOld { java: PathBuf, major: u32 },

    #[error("could not tell the version of `{java}` from `java -version`: {output}")]
    JavaVersionUnknown { java: PathBuf, output: String },

    #[error("the H2O jar `{path}` does not exist")]
    JarNotFound { path: PathBuf },

    #[error("could not provision the H2O {PINNED_VERSION} jar: {message}{}", tail_suffix(.stderr_tail))]
    Provision {
        message: String,
        /// The end of pip's stderr, when pip failed.
        stderr_tail: Option<String>,
    },

    #[error("the H2O jar `{path}` has sha256 {found}, expected {expected}")]
    JarChecksum {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the H2O node failed to start: {reason} (log: `{log_path}`){}", tail_suffix(.log_tail))]
    NodeStart {
        reason: String,
        log_path: PathBuf,
        log_tail: Option<String>,
    },

    #[error("the H2O node at {url} was not healthy after {secs} s (log: `{log_path}`){}", tail_suffix(.log_tail))]
    HealthTimeout {
        url: String,
        secs: u64,
        log_path: PathBuf,
        log_tail: Option<String>,
    },

    #[error("the warm H2O node recorded in `{state}` (pid {pid}, {url}) does not answer as healthy: {reason}")]
    WarmNodeUnhealthy {
        state: PathBuf,
        pid: u32,
        url: String,
        reason: String,
    },

    #[error("the warm H2O node (pid {pid}) was still running 5 s after SIGKILL")]
    WarmNodeUnkillable { pid: u32 },

    /// Connection refused, timeout, broken body… The URL is redacted and the inner error carries
    /// no URL.
    #[error("HTTP request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("H2O answered HTTP {status} to {method} {url}: {msg}{}", exception_suffix(.exception_type))]
    Api {
        method: String,
        url: String,
        status: u16,
        msg: String,
        exception_type: Option<String>,
    },

    #[error("the cluster could not import `{path}` from the exchange directory: {detail}")]
    ExchangeUnreadable { path: PathBuf, detail: String },

    #[error("unexpected answer from H2O to {url}: {detail}")]
    Unexpected { url: String, detail: String },

    #[error("H2O job `{description}` ({key}) failed: {exception}")]
    JobFailed {
        description: String,
        key: String,
        exception: String,
    },

    #[error("the H2O cluster at {url} lost a node while job {job} ran (cloud of {found}, {expected} expected, not healthy)")]
    NodeLost {
        url: String,
        job: String,
        expected: u32,
        found: u32,
    },

    #[error("H2O job `{description}` ({key}) was cancelled")]
    JobCancelled { description: String, key: String },

    #[error("the H2O cluster at {url} runs version {found}, but version {declared} is declared")]
    VersionMismatch {
        url: String,
        declared: String,
        found: String,
    },

    #[error("the H2O cluster at {url} has {found} node(s), but {declared} are declared")]
    ClusterSizeMismatch {
        url: String,
        declared: u32,
        found: u32,
    },

    #[error("the H2O cluster at {url} runs {found} thread(s) per node, but `[h2o] threads = {declared}` is declared (node {node})")]
    ThreadsMismatch {
        url: String,
        declared: u32,
        found: u32,
        node: String,
    },

    #[error(
        "the H2O cluster at {url} is not healthy (healthy: {healthy}, consensus: {consensus})"
    )]
    ClusterUnhealthy {
        url: String,
        healthy: bool,
        consensus: bool,
    },

    #[error("the H2O cluster runs version {version}, and H2O-3 >= 3.46.0.12 blocks MOJO export (HTTP 412 \"H2O-3 SECURE REQUIRED\")")]
    MojoExportBlocked { version: String },

    #[error("scoring model `{model}` on frame `{frame}` reported: {}", .warnings.join("; "))]
    PredictionWarnings {
        model: String,
        frame: String,
        warnings: Vec<String>,
    },

    #[error("`{metric}` is not an H2O AutoML sort_metric (one of: {allowed})")]
    InvalidSortMetric { metric: String, allowed: String },

    #[error("the file `{path}` does not match the declared columns: {detail}")]
    ColumnMismatch { path: PathBuf, detail: String },
}

fn tail_suffix(tail: &Option<String>) -> String {
    match tail {
        Some(t) if !t.trim().is_empty() => format!("\n--- last lines ---\n{}", t.trim_end()),
        _ => String::new(),
    }
}

fn exception_suffix(exception_type: &Option<String>) -> String {
    match exception_type {
        Some(t) if !t.is_empty() => format!(" ({t})"),
        _ => String::new(),
    }
}

impl H2oError {
    /// What the user can do about it, when there is something to say.
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per kind of error, each a sentence; a table split in two would hide which kinds have none"
    )]
    pub fn hint(&self) -> Option<String> {
        use H2oError::*;
        match self {
            JavaMissing { .. } => Some(
                "install a JDK or JRE 8–17 (e.g. `apt-get install openjdk-17-jre-headless`) and put \
                 it on PATH or point `JAVA_HOME` at it, or set `MLBUILD_H2O_URL` to use an \
                 existing H2O cluster"
                    .into(),
            ),
            JavaTooNew { major, .. } => Some(format!(
                "H2O 3.46 accepts Java 8–17: install one (e.g. `apt-get install \
                 openjdk-17-jre-headless`) and point `JAVA_HOME` at it; H2O's own escape hatch \
                 `-Dsys.ai.h2o.debug.allowJavaVersions={major}` exists but is unsupported; or set \
                 `MLBUILD_H2O_URL` to use an existing cluster"
            )),
            JavaTooOld { .. } => Some(
                "H2O 3.46 accepts Java 8–17: install one (e.g. `apt-get install \
                 openjdk-17-jre-headless`) and point `JAVA_HOME` at it"
                    .into(),
            ),
            JavaVersionUnknown { .. } => {
                Some("point `JAVA_HOME` at a working Java 8–17 installation".into())
            }
            JarNotFound { .. } => Some(
                "fix `MLBUILD_H2O_JAR` or `[h2o] jar`, or unset both to let mlbuild provision \
                 the pinned H2O jar"
                    .into(),
            ),
            Provision { .. } => Some(format!(
                "mlbuild downloads the jar with `python3 -m pip download h2o=={PINNED_VERSION}`; \
                 check python3, pip and network access, or download the jar yourself and set \
                 `MLBUILD_H2O_JAR`"
            )),
            ExchangeUnreadable { .. } => Some(
                "`[h2o] exchange_dir` must be readable by every node at the same path as here \
                 (mount it there on each node); H2O's default `-file_deny_glob` refuses paths \
                 under /bin, /etc, /var, /usr, /proc and any with a hidden (`.`) component; unset \
                 `exchange_dir` to upload instead"
                    .into(),
            ),
            JarChecksum { .. } => Some(
                "the file is corrupt or not the pinned H2O release; delete it and run again, or \
                 set `MLBUILD_H2O_JAR` to a jar you trust"
                    .into(),
            ),
            NodeStart { .. } | HealthTimeout { .. } => Some(
                "read the node's log above; a smaller `[h2o] memory` helps when the machine is \
                 short of RAM"
                    .into(),
            ),
            WarmNodeUnhealthy { .. } => Some(
                "`mlbuild h2o stop` stops it (SIGKILL when it does not answer); then `mlbuild h2o \
                 start` launches a new one"
                    .into(),
            ),
            Http { .. } => Some("check that the H2O cluster is running and reachable".into()),
            VersionMismatch { found, .. } => Some(format!(
                "set `[h2o] version = \"{found}\"` if this cluster is what you want (models and \
                 cache keys depend on it), or point `MLBUILD_H2O_URL` at a cluster of the \
                 declared version"
            )),
            ClusterSizeMismatch { found, .. } => Some(format!(
                "set `[h2o] nodes = {found}` if this cluster is what you want (XGBoost results \
                 change with the node count), or wait for the cluster to form"
            )),
            ThreadsMismatch { found, .. } => Some(format!(
                "set `[h2o] threads = {found}` if this cluster is what you want (results of a \
                 multi-node cluster depend on its shape), or start its nodes with `-nthreads` as \
                 declared"
            )),
            NodeLost { .. } => Some(
                "a node of the cluster died or stopped answering (out of memory? killed?): check \
                 its log, restart the cluster and run again; nothing of this step was cached"
                    .into(),
            ),
            ClusterUnhealthy { .. } => Some(
                "wait for the cluster to form (every node up, `/3/Cloud` in consensus), or \
                 restart the node that is down; nothing was uploaded"
                    .into(),
            ),
            MojoExportBlocked { .. } => Some(format!(
                "use H2O {PINNED_VERSION}: unset `MLBUILD_H2O_URL` and `[h2o] url` to let mlbuild \
                 launch the pinned {PINNED_VERSION}, or point it at a {PINNED_VERSION} cluster"
            )),
            PredictionWarnings { .. } => Some(
                "the frame lacks a column the model was trained on; score data with the \
                 training columns"
                    .into(),
            ),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        H2oError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The body of every H2O error answer (`H2OErrorV3`), the fields mlbuild shows.
#[derive(Debug, Deserialize)]
pub(crate) struct H2oErrorBody {
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub exception_msg: Option<String>,
    #[serde(default)]
    pub exception_type: Option<String>,
}

/// Turns a non-2xx answer into [`H2oError::Api`]: H2OErrorV3 when the body is one (its `msg`
/// comes wrapped in `\n\nERROR MESSAGE:\n\n…`), else the start of the plain body.
pub(crate) fn api_error(method: &str, url: &str, status: u16, body: &str) -> H2oError {
    let (msg, exception_type) = match serde_json::from_str::<H2oErrorBody>(body) {
        Ok(e) if e.msg.is_some() || e.exception_msg.is_some() => {
            let raw = e.msg.or(e.exception_msg).unwrap_or_default();
            (clean_msg(&raw), e.exception_type)
        }
        _ => {
            let mut text: String = body.trim().chars().take(500).collect();
            if text.is_empty() {
                text = "(empty body)".into();
            }
            (text, None)
        }
    };
    H2oError::Api {
        method: method.to_string(),
        url: crate::redact::safe_url(url),
        status,
        msg,
        exception_type,
    }
}

fn clean_msg(raw: &str) -> String {
    let t = raw.trim();
    let t = t.strip_prefix("ERROR MESSAGE:").unwrap_or(t).trim();
    t.to_string()
}

/// H2O >= 3.46.0.12 answers 412 with this text on every MOJO/POJO export.
pub(crate) fn is_secure_required(status: u16, body: &str) -> bool {
    status == 412 && body.contains("SECURE REQUIRED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_h2o_error_v3() {
        let body = r#"{"__meta":{"schema_name":"H2OErrorV3"},"timestamp":1,"error_url":"/99/AutoMLBuilder",
            "msg":"\n\nERROR MESSAGE:\n\nResponse column 'NOPE' is not in the training frame.\n\n",
            "dev_msg":"x","http_status":412,"values":{},
            "exception_type":"water.exceptions.H2OIllegalArgumentException","exception_msg":"y","stacktrace":[]}"#;
        let e = api_error(
            "POST",
            "http://u:secret@h:54321/99/AutoMLBuilder",
            412,
            body,
        );
        let s = e.to_string();
        assert_eq!(
            s,
            "H2O answered HTTP 412 to POST http://u:***@h:54321/99/AutoMLBuilder: Response column 'NOPE' \
             is not in the training frame. (water.exceptions.H2OIllegalArgumentException)"
        );
        assert!(!s.contains("secret"));
    }

    #[test]
    fn plain_text_error_body() {
        let e = api_error(
            "POST",
            "http://h/3/PostFile",
            400,
            "Content type must be multipart/form-data\n",
        );
        assert!(e
            .to_string()
            .ends_with(": Content type must be multipart/form-data"));
    }

    #[test]
    fn detects_secure_required() {
        let body = r#"{"msg":"\n\nERROR MESSAGE:\n\nH2O-3 SECURE REQUIRED - MOJO export is blocked. ...","http_status":412}"#;
        assert!(is_secure_required(412, body));
        assert!(!is_secure_required(404, body));
        assert!(!is_secure_required(412, "File x already exists!"));
        let e = H2oError::MojoExportBlocked {
            version: "3.46.0.12".into(),
        };
        assert!(e.to_string().contains("3.46.0.12"));
        assert!(e.to_string().contains(">= 3.46.0.12 blocks MOJO export"));
        let hint = e.hint().unwrap();
        assert!(hint.contains("MLBUILD_H2O_URL") && hint.contains("3.46.0.11"));
    }
}
