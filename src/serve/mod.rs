//! `mlbuild serve`: an HTTP scoring server for a tagged model (axum on tokio).
//!
//! | route | what |
//! |---|---|
//! | `POST /predict` | `{"rows": [{…}, …]}` or one row object → one prediction per row, and the version that answered |
//! | `GET /model` | version, tag, algo, category, input signature, output names |
//! | `GET /health` | `{"status": "ok", "version": …}` |
//!
//! Rows are given in the data's columns (a registered version's prepare transform is replayed,
//! see [`crate::predict`]); values are JSON numbers, strings or `null` (missing). A missing
//! required column, another JSON type, a malformed body, a body over `--max-body` or more than
//! `--max-rows` rows is a 4xx with `{"error": "…"}` (a `Content-Length` over `--max-body` is
//! refused from the header, unread; a wrong method is 405 with `Allow`); nothing a client sends
//! stops the server.
//!
//! **Access.** With `MLBUILD_SERVE_TOKEN` set (an environment variable, so the secret is not in
//! `ps`), `POST /predict` and `GET /model` need `Authorization: Bearer <token>` (compared in
//! constant time); anything else is 401 with `WWW-Authenticate: Bearer`. `GET /health` stays
//! open for load-balancer probes and says only which version answers. Binding to a
//! non-loopback address without a token prints a warning. TLS is left to a reverse proxy.
//!
//! **Reloading.** With `--model TAG`, a task reads the tag every `poll` (1 s) from the state
//! database; when it points at another version (`promote`, `rollback`, a run's conclude), the
//! new model is loaded on a blocking thread while the old one keeps answering, then swapped in
//! with one pointer store under a `RwLock<Arc<…>>`. A request holds the `Arc` it started with,
//! so every request is answered whole by exactly one version and none fails during a swap. A
//! version that fails to load is reported (once per distinct error) and the old model stays;
//! the load is tried again every [`RETRY_POLLS`] polls (its MOJO may come back: `cache pull`,
//! a run's repair), and until it succeeds `/health` says `"status": "stale"` with the version
//! the tag names and why it is not served.

#[cfg(test)]
mod properties;
mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::RawQuery;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value as JsonValue};

use crate::mojo::{Category, ColumnKind, ContributionLayout, Prediction};
use crate::predict::{self, Scorer};
use crate::project::Paths;
use crate::registry::Registry;

/// `mlbuild serve`'s settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// The bearer token `/predict` and `/model` require (`MLBUILD_SERVE_TOKEN`), if any.
    pub token: Option<String>,
    pub model: String,
    pub host: String,
    pub port: u16,
    pub max_body: usize,
    pub max_rows: usize,
    pub poll: Duration,
}

/// The model answering now.
#[derive(Debug)]
pub struct Loaded {
    pub scorer: Scorer,
    /// The version id, or `file:NAME` for an unregistered MOJO file.
    pub version: String,
}

struct AppState {
    current: RwLock<Arc<Loaded>>,
    tag: Option<String>,
    max_rows: usize,
    /// The version the tag names that could not be loaded, and why (`None`: serving the tag's
    /// version).
    unloaded: RwLock<Option<Unloaded>>,
}

/// A version the followed tag names that failed to load.
#[derive(Debug, Clone, PartialEq)]
struct Unloaded {
    version: String,
    error: String,
}

/// How many polls pass before a version that failed to load is tried again.
pub const RETRY_POLLS: u32 = 5;

impl AppState {
    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .expect("never poisoned: no panics under the lock")
            .clone()
    }
}

/// Loads the model, binds, prints `Listening on http://ADDR` to stderr, and serves until
/// `shutdown` resolves (the command passes [`crate::signal::interrupted`]: Ctrl-C or SIGTERM),
/// then finishes the requests in flight.
#[allow(
    clippy::too_many_lines,
    reason = "loads the model, builds the routes, binds and serves, in order"
)]
pub async fn serve(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let scorer = Scorer::open(&options.dir, &options.model).await?;
    let version = scorer.version.clone().unwrap_or_else(|| {
        let name = std::path::Path::new(&options.model)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        format!("file:{}", name.unwrap_or_default())
    });
    // Only a tag moves; a version id or a file is fixed.
    let registry = if scorer.version.is_some() {
        let paths = Paths::resolve(&options.dir);
        let reg = Registry::open_read(&paths.state_url).await?;
        let is_tag = reg.tags().await?.contains_key(&options.model);
        if is_tag {
            // `models/<TAG>.zip` is not what serve reads, but a stale one misleads whoever
            // ships it: say so once.
            for link in crate::registry::links::check(&reg, &paths).await? {
                if let Some(w) = link.warning().filter(|_| link.tag == options.model) {
                    log(format_args!("warning: {w}"));
                }
            }
        }
        is_tag.then_some(reg)
    } else {
        None
    };
    let tag = registry.as_ref().map(|_| options.model.clone());
    let state = Arc::new(AppState {
        current: RwLock::new(Arc::new(Loaded { scorer, version })),
        tag,
        max_rows: options.max_rows,
        unloaded: RwLock::new(None),
    });
    if let (Some(reg), Some(tag)) = (registry, state.tag.clone()) {
        tokio::spawn(follow(
            state.clone(),
            reg,
            options.dir.clone(),
            tag,
            options.poll,
        ));
    }
    let guarded = Router::new()
        .route("/predict", post(predict_route))
        .route("/model", get(model_route))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(options.token.clone()),
            require_token,
        ));
    let app = guarded
        .route("/health", get(health_route))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route: use POST /predict, GET /model or GET /health".into(),
            )
        })
        .layer(DefaultBodyLimit::max(options.max_body))
        .layer(axum::middleware::from_fn_with_state(
            options.max_body,
            answer_early,
        ))
        .with_state(state.clone());
    let addr = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on `{addr}`"))?;
    let local: SocketAddr = listener.local_addr().context("reading the bound address")?;
    if options.token.is_none() && !local.ip().is_loopback() {
        log(format_args!(
            "warning: serving on {local} without a token: anyone who can reach it can score; set {TOKEN_VAR}"
        ));
    }
    let current = state.current();
    log(format_args!(
        "Serving {} ({}){} on http://{local}",
        current.version,
        current.scorer.mojo.algo(),
        state
            .tag
            .as_ref()
            .map(|t| format!(", following tag `{t}`"))
            .unwrap_or_default()
    ));
    log(format_args!("Listening on http://{local}"));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
    Ok(())
}

/// Follows `tag`: loads and swaps in each new version it points at.
async fn follow(state: Arc<AppState>, reg: Registry, dir: PathBuf, tag: String, poll: Duration) {
    // Polls left before the version that failed to load (`state.unloaded`) is tried again.
    let mut wait = 0u32;
    loop {
        tokio::time::sleep(poll).await;
        let id = match reg.tags().await {
            Ok(tags) => tags.get(&tag).cloned(),
            Err(e) => {
                log(format_args!("warning: reading tag `{tag}`: {e}"));
                continue;
            }
        };
        let Some(id) = id else { continue };
        let unloaded = state.unloaded.read().expect("never poisoned").clone();
        if id == state.current().version {
            // Moved back to what is served: nothing is missing any more.
            if unloaded.is_some() {
                *state.unloaded.write().expect("never poisoned") = None;
            }
            continue;
        }
        if unloaded.is_some_and(|u| u.version == id) && wait > 0 {
            wait -= 1;
            continue;
        }
        let version = match reg.get(&id).await {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                log(format_args!("warning: reading version {id}: {e}"));
                continue;
            }
        };
        let dir = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<Loaded> {
            let paths = Paths::resolve(&dir);
            let r = predict::load_version(&paths, version)?;
            let mojo = crate::mojo::Mojo::load(&r.bytes).context("loading the MOJO")?;
            let version = r.version.as_ref().map(|v| v.id.clone()).unwrap_or_default();
            let scorer =
                Scorer::new(mojo, r.replay, Some(version.clone()))?.provided_by(r.version.as_ref());
            Ok(Loaded { scorer, version })
        })
        .await;
        let error = match loaded {
            Ok(Ok(loaded)) => {
                log(format_args!("Swapped tag `{tag}` → {}", loaded.version));
                *state.current.write().expect("never poisoned") = Arc::new(loaded);
                *state.unloaded.write().expect("never poisoned") = None;
                continue;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        let unloaded = Unloaded {
            version: id.clone(),
            error,
        };
        let mut slot = state.unloaded.write().expect("never poisoned");
        if slot.as_ref() != Some(&unloaded) {
            log(format_args!(
                "warning: tag `{tag}` moved to {id}, which cannot be loaded (still serving {}; trying again every {} polls): {}",
                state.current().version,
                RETRY_POLLS,
                unloaded.error
            ));
            *slot = Some(unloaded);
        }
        wait = RETRY_POLLS - 1;
    }
}

/// serve's log: its start, warning and swap lines, each written whole to stderr as it happens
/// (a server has no progress bar and no printer; docs/serve.md shows the lines).
#[allow(
    clippy::print_stderr,
    reason = "serve's log is its stderr, line by line, from many tasks"
)]
fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("{line}");
}

/// The environment variable holding the bearer token `serve` requires.
pub const TOKEN_VAR: &str = "MLBUILD_SERVE_TOKEN";

/// Lets a request through when no token is configured or it carries `Bearer <token>`.
async fn require_token(
    State(token): State<Arc<Option<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start_matches(' '));
    if given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token: send `Authorization: Bearer <MLBUILD_SERVE_TOKEN>`".into(),
    );
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Before any route: a `Content-Length` over `--max-body` is refused (413) from the header,
/// without waiting for a byte of the body; after it, a 405 (wrong method on a known route) gets
/// a JSON error body like every other error (axum adds `Allow`).
async fn answer_early(
    State(max_body): State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = announced.filter(|n| *n > max_body as u64) {
        let mut response = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {length} bytes; the limit is {max_body} (`--max-body`)"),
        );
        // The body was not read: the connection cannot carry another request.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    // axum adds the `Allow` header to this response on its way out.
    let allowed = match path.as_str() {
        "/predict" => "POST",
        _ => "GET",
    };
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("`{path}` does not answer {method}; it answers {allowed}"),
    )
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `{"status": "ok", "version": V}`; while the followed tag names a version that could not be
/// loaded, `{"status": "stale", "version": V, "tag_version": W, "error": …}` (still 200: V
/// answers every request).
async fn health_route(State(state): State<Arc<AppState>>) -> Response {
    let version = state.current().version.clone();
    let unloaded = state.unloaded.read().expect("never poisoned").clone();
    Json(match unloaded {
        None => json!({ "status": "ok", "version": version }),
        Some(u) => json!({
            "status": "stale",
            "version": version,
            "tag_version": u.version,
            "error": u.error,
        }),
    })
    .into_response()
}

async fn model_route(State(state): State<Arc<AppState>>) -> Response {
    let current = state.current();
    let mojo = &current.scorer.mojo;
    let signature: Vec<JsonValue> = mojo
        .signature()
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Numeric => json!({ "name": c.name, "type": "numeric" }),
            ColumnKind::Categorical(levels) => {
                json!({ "name": c.name, "type": "categorical", "levels": levels })
            }
        })
        .collect();
    Json(json!({
        "version": current.version,
        "tag": state.tag,
        "algo": mojo.algo(),
        "category": match mojo.category() {
            Category::Binomial => "binomial",
            Category::Multinomial => "multinomial",
            Category::Regression => "regression",
        },
        "response": mojo.response(),
        "classes": mojo.classes(),
        "signature": signature,
        "inputs": current.scorer.inputs(),
        "required": current.scorer.required(),
        "outputs": mojo.output_names(),
    }))
    .into_response()
}

/// `POST /predict`'s query: `explain=true` adds each row's contributions, `top=K` keeps the K
/// largest by magnitude.
#[derive(Debug, Default, PartialEq)]
struct Explain {
    on: bool,
    top: Option<usize>,
}

impl Explain {
    fn parse(query: Option<&str>) -> Result<Explain, String> {
        let mut explain = Explain::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "explain" => {
                    explain.on = match value {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(format!(
                                "`explain={other}`: expected `true` or `false`"
                            ))
                        }
                    }
                }
                "top" => match value.parse::<usize>() {
                    Ok(k) if k > 0 => explain.top = Some(k),
                    _ => return Err(format!("`top={value}`: expected a whole number above 0")),
                },
                other => {
                    return Err(format!(
                        "unknown query parameter `{other}`: `/predict` takes `explain=true` and `top=K`"
                    ))
                }
            }
        }
        if explain.top.is_some() && !explain.on {
            return Err("`top` needs `explain=true`".into());
        }
        Ok(explain)
    }

    /// One row's contributions (laid out as `layout` says) as the answer shows them: per
    /// explained class, `{"bias": …, "features": [{"name", "value"}, …]}`, the features by
    /// magnitude, largest first (`top` of them); a model with several classes explained gives
    /// an object of those by class.
    fn render(&self, layout: &ContributionLayout, values: &[f64]) -> JsonValue {
        let n = layout.names.len() - 1;
        let set = |values: &[f64]| {
            let mut features: Vec<(&String, f64)> = layout.names[..n]
                .iter()
                .zip(values[..n].iter().copied())
                .collect();
            features.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            features.truncate(self.top.unwrap_or(n));
            let features: Vec<JsonValue> = features
                .into_iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            json!({ "bias": values[n], "features": features })
        };
        let mut sets = values.chunks(n + 1).map(set);
        if layout.sets.len() == 1 {
            return sets.next().unwrap_or_default();
        }
        JsonValue::Object(layout.sets.iter().cloned().zip(sets).collect())
    }
}

async fn predict_route(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let explain = match Explain::parse(query.as_deref()) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                e.status(),
                format!("cannot read the request body: {}", e.body_text()),
            )
        }
    };
    let rows = match rows::parse(&body) {
        Ok(rows) => rows,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if rows.len() > state.max_rows {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} rows in one request; the limit is {} (`--max-rows`)",
                rows.len(),
                state.max_rows
            ),
        );
    }
    // One model for the whole request, even if a swap happens meanwhile.
    let current = state.current();
    let scorer = &current.scorer;
    let classes = scorer.mojo.classes().unwrap_or(&[]);
    let layout = match (explain.on, scorer.mojo.contribution_layout()) {
        (false, _) => None,
        (true, Ok(layout)) => Some(layout),
        (true, Err(algo)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`explain=true`: a {algo} model cannot be explained natively (GBM, DRF, XRT, XGBoost and GLM can)"),
            )
        }
    };
    let mut scratch = predict::Scratch::default();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let cells = match rows::cells(row, scorer) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("row {i}: {e}")),
        };
        let p = match scorer.score(&cells, &mut scratch) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("row {i}: {e}")),
        };
        let mut answer = match p {
            Prediction::Class {
                label,
                probabilities,
            } => {
                let probs: serde_json::Map<String, JsonValue> = classes
                    .iter()
                    .zip(&probabilities)
                    .map(|(c, p)| (c.clone(), json!(p)))
                    .collect();
                json!({ "label": classes.get(label), "probabilities": probs, "version": current.version })
            }
            Prediction::Value(v) => json!({ "value": v, "version": current.version }),
        };
        if let Some(layout) = &layout {
            let values = scorer.contributions(&mut scratch);
            answer["contributions"] = explain.render(layout, values);
        }
        out.push(answer);
    }
    Json(json!({ "version": current.version, "predictions": out })).into_response()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn same_secret_compares_whole_secrets() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(
            !same_secret(b"s3cre", b"s3cret"),
            "a prefix is not the secret"
        );
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
