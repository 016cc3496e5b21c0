//! `mlbuild ui`: the project in a browser — its pipeline with every step's state and reason,
//! each step's inputs and outputs, its runs, its models and its tags — rendered on the server
//! (maud), with one embedded stylesheet and one small script, so every page reads without
//! JavaScript; with it, live pages follow the runs ([`live`]) and times show in local time.
//!
//! | route | page or data |
//! |---|---|
//! | `GET /` | the pipeline: the eight steps as an SVG graph and a table, each fresh / stale / failed / never run with the planner's reason (the same code as `status`) |
//! | `GET /runs?page=N` | runs, newest first, 50 a page: started, duration, status, steps ran/cached/restored/failed, commit, who |
//! | `GET /runs/{id}` | one run: command, status, who, commit, its error (hint included) or report, every step record |
//! | `GET /models` | registered versions with their metrics |
//! | `GET /models/{version}` | one version: its model card rendered with its plots inline, metrics, provenance, tags, a promote form |
//! | `GET /models/{version}/plots/{file}` | a plot the card links (SVG), found through the version's provenance |
//! | `GET /compare?a=V&b=V[&all=1]` | two versions: what differs (metrics, params, algorithm, data snapshot, leaderboards), everything with `all` |
//! | `GET /data` | the data as the last complete run saw it: confirm's report (rules, null fractions, PSI per column as bars) and the snapshot's profile |
//! | `GET /tags` | each tag's version and history |
//! | `GET /promote?tag&version&reason`, `GET /rollback?tag` | what would move, behind a confirmation button |
//! | `POST /promote`, `POST /rollback` | moves the tag as `mlbuild promote`/`rollback` do (same code: history, `models/TAG.zip` under the lock); the form must carry this process's token |
//! | `GET /api/status`, `/api/runs?page=N`, `/api/runs/{id}`, `/api/versions`, `/api/tags`, `/api/compare?a&b`, `/api/data` | the same data as JSON, in the shapes of `status --json`, `runs --json`, `versions --json`, `tags --json` |
//! | `GET /steps/{step}`, `/steps/{step}/outputs/{name}`, `/api/steps/{step}` | a step: state, recorded key inputs and outputs, downloads ([`step`]) |
//! | `POST /run`, `POST /run/cancel`, `GET /api/job` | the Run button's background run ([`job`]) |
//! | `GET /api/events` | server-sent events: the latest run as it progresses ([`live`]) |
//! | `GET /assets/ui.css`, `/assets/ui.js`, `/assets/icon.svg` | the stylesheet, the script, the icon |
//!
//! **Reading.** Every page plans as `status` does ([`crate::pipeline::plan`],
//! [`Mode::Plan`](crate::steps::Mode::Plan)): the registry is opened read-only, nothing is
//! written, H2O is never started. A project without `ml.toml` or without runs gets pages that
//! say what to do next.
//!
//! **Access.** The UI binds to loopback by default. Bound to any other address it refuses to
//! start without a token (`MLBUILD_UI_TOKEN`); with a token, every request needs
//! `Authorization: Bearer <token>` or the `mlbuild_ui` cookie that `GET /login?token=<token>`
//! sets (HttpOnly, SameSite=Strict), compared in constant time.

mod card;
mod job;
mod live;
mod pages;
mod step;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::Diagnostic;
use crate::project::Paths;
use crate::registry::Registry;
use crate::report::{ColorChoice, Printer};

/// The environment variable holding the token the UI requires off loopback.
pub const TOKEN_VAR: &str = "MLBUILD_UI_TOKEN";

/// Runs a page of `/runs` shows.
pub const RUNS_PER_PAGE: u32 = 50;

const STYLESHEET: &str = include_str!("../../assets/ui.css");
const SCRIPT: &str = include_str!("../../assets/ui.js");
const ICON: &str = include_str!("../../assets/icon.svg");

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// The token requests must carry (`MLBUILD_UI_TOKEN`), if any.
    pub token: Option<String>,
    /// Open the UI in the default browser (`xdg-open`) once it listens.
    pub open: bool,
}

struct App {
    paths: Paths,
    token: Option<String>,
    /// The read-only registry, opened once (its pool serves every request; each query sees
    /// what was committed before it), or not yet: a project without a state database reads as
    /// empty until a run makes one, and is opened again then.
    registry: tokio::sync::Mutex<Option<Registry>>,
    /// The token every state-changing form carries (fresh per process).
    csrf: String,
    /// The run started from the page, if any.
    jobs: Arc<job::Jobs>,
    /// Turns true when the server stops, ending the live streams (graceful shutdown waits for
    /// every open connection).
    stopping: tokio::sync::watch::Sender<bool>,
}

/// 32 bytes from the kernel's generator, as hex.
fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the form token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Binds, prints `Listening on http://ADDR` to stderr, and serves until `shutdown` resolves.
pub async fn serve(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on `{addr}`"))?;
    let local: SocketAddr = listener.local_addr().context("reading the bound address")?;
    if options.token.is_none() && !local.ip().is_loopback() {
        return Err(Diagnostic::new(format!(
            "refusing to serve the UI on {local} without a token: anyone who can reach it could read the project"
        ))
        .hint(format!(
            "set `{TOKEN_VAR}` to a secret, or bind to loopback (the default, `--host 127.0.0.1`)"
        ))
        .into());
    }
    let app = Arc::new(App {
        paths: Paths::resolve(&options.dir),
        token: options.token.clone(),
        registry: tokio::sync::Mutex::new(None),
        csrf: random_token()?,
        jobs: Arc::default(),
        stopping: tokio::sync::watch::channel(false).0,
    });
    let router = Router::new()
        .route("/", get(pipeline_page))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/models", get(models_page))
        .route("/models/{version}", get(version_page))
        .route("/models/{version}/plots/{file}", get(plot))
        .route("/data", get(data_page))
        .route("/api/data", get(api_data))
        .route("/compare", get(compare_page))
        .route("/api/compare", get(api_compare))
        .route("/tags", get(tags_page))
        .route("/promote", get(confirm_promote).post(promote))
        .route("/rollback", get(confirm_rollback).post(rollback))
        .route("/api/status", get(api_status))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/versions", get(api_versions))
        .route("/api/tags", get(api_tags))
        .route("/steps/{step}", get(step::page))
        .route("/steps/{step}/outputs/{name}", get(step::download))
        .route("/api/steps/{step}", get(step::api))
        .route("/api/events", get(live::events))
        .route("/api/job", get(api_job))
        .route("/run", axum::routing::post(start_run))
        .route("/run/cancel", axum::routing::post(cancel_run))
        .route("/assets/ui.css", get(stylesheet))
        .route("/assets/ui.js", get(script))
        .route("/assets/icon.svg", get(icon))
        .route("/login", get(login))
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .layer(middleware::from_fn(content_policy))
        .with_state(app.clone());
    log(format_args!("Listening on http://{local}"));
    if options.open {
        let url = format!("http://{local}/");
        if let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn() {
            log(format_args!(
                "warning: cannot open a browser ({e}): open {url} yourself"
            ));
        }
    }
    let stopping = app.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.stopping.send_replace(true);
        })
        .await
        .context("serving the UI");
    // A run started from the page is cancelled with the UI, its engine released.
    app.jobs.shutdown().await;
    served
}

/// The UI's log on stderr: where it listens and the requests that failed.
#[allow(
    clippy::print_stderr,
    reason = "the UI server's log is its stderr, line by line, from many tasks"
)]
fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("{line}");
}

/// Every answer forbids inline scripts, frames and anything from elsewhere: the pages need
/// only the UI's own stylesheet and script.
async fn content_policy(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    response
}

/// Lets a request through when no token is configured, or it carries the token (bearer or
/// cookie); `/login` and the stylesheet are always reachable.
async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(token) = app.token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = cookie(headers, "mlbuild_ui");
    let given = bearer.map(str::to_string).or(cookie);
    if given.is_some_and(|g| crate::serve::same_secret(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        format!("missing or wrong token: open /login?token=<{TOKEN_VAR}> or send `Authorization: Bearer <{TOKEN_VAR}>`\n"),
    )
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[derive(Deserialize)]
struct LoginQuery {
    token: String,
}

/// Sets the token cookie when the token is right, then shows the pipeline.
async fn login(State(app): State<Arc<App>>, Query(q): Query<LoginQuery>) -> Response {
    let right = app
        .token
        .as_deref()
        .is_some_and(|t| crate::serve::same_secret(q.token.as_bytes(), t.as_bytes()));
    if !right {
        return (StatusCode::UNAUTHORIZED, "wrong token\n").into_response();
    }
    (
        [(
            header::SET_COOKIE,
            format!("mlbuild_ui={}; HttpOnly; SameSite=Strict; Path=/", q.token),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// A page or an API answer that failed: the error's lines, as `main` would print them.
fn failure(e: anyhow::Error) -> Response {
    log(format_args!("error: {e:#}"));
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::error_page(&e).into_string()),
    )
        .into_response()
}

/// The registry, read-only, shared by every request (a project without one reads as empty).
async fn registry(app: &App) -> Result<Registry> {
    let mut cached = app.registry.lock().await;
    if let Some(reg) = cached.as_ref() {
        return Ok(reg.clone());
    }
    let reg = Registry::open_read(&app.paths.state_url).await?;
    if !reg.is_stand_in() {
        *cached = Some(reg.clone());
    }
    Ok(reg)
}

/// The plan as `status` makes it, or why there is none (no `ml.toml`, a broken one). The walk
/// holds the planner's database, which is not `Send`, so it runs on a blocking thread of its
/// own, driven by the runtime's handle.
async fn plan(app: &Arc<App>) -> Result<Vec<crate::pipeline::PlanEntry>> {
    let app = app.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let registry = crate::registry::Opening::ready(registry(&app).await?);
            // Warnings of the walk (a stale `models/` file) belong to the CLI's readers.
            let printer = Printer::new(true, true, 0, ColorChoice::Never);
            let entries = crate::pipeline::plan(
                &app.paths,
                &registry,
                &printer,
                crate::pipeline::RunOptions::default(),
            )
            .await;
            entries
        })
    })
    .await
    .context("planning")?
}

async fn pipeline_page(State(app): State<Arc<App>>) -> Response {
    let result = async {
        // Read first: a change after it makes the page's stamp old, and the script fetches again.
        let live = live::read(&app).await?;
        let job = app.jobs.view().await;
        let plan = plan(&app).await;
        let reg = registry(&app).await?;
        let last = reg.recent_runs(1).await?.into_iter().next();
        let steps = match &last {
            Some(run) => reg.steps(run.id).await?,
            None => Vec::new(),
        };
        Ok::<_, anyhow::Error>(pages::pipeline(
            &app.paths,
            plan,
            last.as_ref(),
            &steps,
            &live,
            &job,
            &app.csrf,
        ))
    }
    .await;
    match result {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u32>,
}

async fn runs_of(app: &App, page: u32) -> Result<(Vec<crate::registry::RunSummary>, u64)> {
    let reg = registry(app).await?;
    let rows = reg
        .run_summaries(page.saturating_sub(1) * RUNS_PER_PAGE, RUNS_PER_PAGE)
        .await;
    let total = reg.run_count().await;
    Ok((rows?, total?))
}

async fn runs_page(State(app): State<Arc<App>>, Query(q): Query<PageQuery>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let result = async {
        let live = live::read(&app).await?;
        let (rows, total) = runs_of(&app, page).await?;
        Ok::<_, anyhow::Error>(pages::runs(&rows, page, total, &live))
    }
    .await;
    match result {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => failure(e),
    }
}

/// A run and its step records, or `None` when the registry has no such run.
async fn run_of(
    app: &App,
    id: i64,
) -> Result<Option<(crate::registry::Run, Vec<crate::registry::StepRecord>)>> {
    let reg = registry(app).await?;
    let run = reg.run(id).await;
    let steps = reg.steps(id).await;
    Ok(run?.map(|run| (run, steps.unwrap_or_default())))
}

async fn run_page(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> Response {
    let result = async {
        let live = live::read(&app).await?;
        Ok::<_, anyhow::Error>(
            run_of(&app, id)
                .await?
                .map(|(run, steps)| pages::run(&run, &steps, &live)),
        )
    }
    .await;
    match result {
        Ok(Some(markup)) => Html(markup.into_string()).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(pages::not_found(&format!("no run {id}")).into_string()),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

async fn api_run(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> Response {
    match run_of(&app, id).await {
        Ok(Some((run, steps))) => Json(json!({ "run": run, "steps": steps })).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no run {id}") })),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

async fn models_page(State(app): State<Arc<App>>, Query(by): Query<pages::ModelSort>) -> Response {
    let result = async {
        let reg = registry(&app).await?;
        let versions = reg.versions().await?;
        let tags = reg.tags().await?;
        Ok::<_, anyhow::Error>(pages::models(&versions, &tags, &by))
    }
    .await;
    match result {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => failure(e),
    }
}

async fn version_page(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let result = async {
        let reg = registry(&app).await?;
        let version = reg.get(&id).await?;
        let tags = reg.tags().await?;
        let store = crate::store::Store::existing(&app.paths.cache);
        Ok::<_, anyhow::Error>(version.map(|v| {
            // Verified like every use of stored bytes; a card that is gone is said to be.
            let card = store
                .read_verified(&v.card)
                .map(|bytes| card::to_html(&String::from_utf8_lossy(&bytes), &v.id))
                .map_err(|e| e.to_string());
            pages::version(&v, &tags, card)
        }))
    }
    .await;
    match result {
        Ok(Some(markup)) => Html(markup.into_string()).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(pages::not_found(&format!("no version `{id}`")).into_string()),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

/// `GET /models/VERSION/plots/FILE`: a plot of the version's card, found by the name and digest
/// its provenance records (never a path from the request), its bytes verified.
async fn plot(
    State(app): State<Arc<App>>,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Response {
    let result = async {
        let reg = registry(&app).await?;
        let version = reg.get(&id).await;
        let Some(v) = version? else {
            return Ok(None);
        };
        let wanted = format!("plots/{file}");
        let digest = v.provenance["plots"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, d)| d.as_str().map(|d| (name, d)))
            .find(|(name, d)| crate::report::card::plot_file(name, d) == wanted)
            .map(|(_, d)| d.to_string());
        let Some(digest) = digest else {
            return Ok(None);
        };
        let store = crate::store::Store::existing(&app.paths.cache);
        Ok::<_, anyhow::Error>(Some(store.read_verified(&digest)?))
    }
    .await;
    match result {
        Ok(Some(svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such plot\n").into_response(),
        Err(e) => failure(e),
    }
}

/// The data as the last complete run saw it: confirm's report and the snapshot's profile,
/// found through `ml.lock` (`None` each when there is no lock, or the store lacks them).
async fn data_of(app: &App) -> Result<(Option<Value>, Option<crate::table::Profile>)> {
    let Some(lock) = crate::store::lockfile::Lockfile::load(&app.paths.lockfile)? else {
        return Ok((None, None));
    };
    let store = crate::store::Store::existing(&app.paths.cache);
    let report = lock
        .entry("confirm", 1)
        .and_then(|e| e.outputs.get("report"))
        .and_then(|d| store.read_verified(d).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let profile = lock
        .entry("locate", 1)
        .and_then(|e| e.outputs.get("snapshot"))
        .and_then(|d| crate::steps::locate::remembered_profile(&store, d));
    Ok((report, profile))
}

async fn data_page(State(app): State<Arc<App>>) -> Response {
    match data_of(&app).await {
        Ok((report, profile)) => {
            Html(pages::data(report.as_ref(), profile.as_ref()).into_string()).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn api_data(State(app): State<Arc<App>>) -> Response {
    api(data_of(&app)
        .await
        .map(|(report, profile)| json!({ "confirm": report, "profile": profile })))
}

#[derive(Deserialize)]
struct CompareQuery {
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
    /// Show everything, not only what differs.
    #[serde(default)]
    all: Option<String>,
}

/// The `diff --json` document of two versions, every param of their configs, and the list of
/// versions to pick from.
async fn compare_of(app: &App, q: &CompareQuery) -> Result<(Option<pages::Compared>, Vec<String>)> {
    let reg = registry(app).await?;
    let result = async {
        let ids: Vec<String> = reg.versions().await?.into_iter().map(|v| v.id).collect();
        if q.a.is_empty() || q.b.is_empty() {
            return Ok((None, ids));
        }
        let (doc, _) = crate::registry::views::diff(&reg, &app.paths.project, &q.a, &q.b).await?;
        let (a, b) = (reg.get(&q.a).await?, reg.get(&q.b).await?);
        let params = match (a, b) {
            (Some(a), Some(b)) => crate::registry::views::all_params(&a, &b),
            _ => Vec::new(),
        };
        Ok::<_, anyhow::Error>((Some((doc, params)), ids))
    }
    .await;
    result
}

async fn compare_page(State(app): State<Arc<App>>, Query(q): Query<CompareQuery>) -> Response {
    match compare_of(&app, &q).await {
        Ok((diff, ids)) => {
            let all = q.all.is_some();
            Html(pages::compare(&q.a, &q.b, all, diff.as_ref(), &ids).into_string()).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn api_compare(State(app): State<Arc<App>>, Query(q): Query<CompareQuery>) -> Response {
    api(compare_of(&app, &q).await.and_then(|(diff, _)| {
        diff.map(|(doc, _)| doc)
            .context("`/api/compare` needs `?a=VERSION&b=VERSION`")
    }))
}

async fn tags_page(State(app): State<Arc<App>>) -> Response {
    let result = async {
        let reg = registry(&app).await?;
        let tags = reg.tags().await?;
        let mut history = Vec::new();
        for tag in tags.keys() {
            history.push((tag.clone(), reg.history(tag).await?));
        }
        Ok::<_, anyhow::Error>(pages::tags(&tags, &history))
    }
    .await;
    match result {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct PromoteForm {
    tag: String,
    version: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct RollbackForm {
    tag: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    csrf: String,
}

/// What a tag points at now, and its history (the confirmation pages show both).
async fn tag_state(
    app: &App,
    tag: &str,
) -> Result<(Option<String>, Vec<crate::registry::TagEvent>)> {
    let reg = registry(app).await?;
    let current = reg.tags().await.map(|t| t.get(tag).cloned());
    let history = reg.history(tag).await;
    Ok((current?, history.unwrap_or_default()))
}

/// `GET /promote?tag=T&version=V&reason=R`: what would move, and a button that moves it.
async fn confirm_promote(State(app): State<Arc<App>>, Query(f): Query<PromoteForm>) -> Response {
    match tag_state(&app, &f.tag).await {
        Ok((current, history)) => Html(
            pages::confirm_promote(
                &f.tag,
                current.as_deref(),
                &f.version,
                &f.reason,
                &history,
                &app.csrf,
            )
            .into_string(),
        )
        .into_response(),
        Err(e) => failure(e),
    }
}

/// `GET /rollback?tag=T`: the tag's state and history, and a button that rolls it back.
async fn confirm_rollback(State(app): State<Arc<App>>, Query(f): Query<RollbackForm>) -> Response {
    match tag_state(&app, &f.tag).await {
        Ok((current, history)) => Html(
            pages::confirm_rollback(&f.tag, current.as_deref(), &f.to, &history, &app.csrf)
                .into_string(),
        )
        .into_response(),
        Err(e) => failure(e),
    }
}

/// A form without this process's token is refused: it did not come from a page of this UI.
fn forged(app: &App, given: &str) -> Option<Response> {
    if crate::serve::same_secret(given.as_bytes(), app.csrf.as_bytes()) {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            Html(pages::not_found("this form did not come from this UI (its token is missing or stale): reload the page and try again").into_string()),
        )
            .into_response(),
    )
}

/// Moves a tag through the same code as `mlbuild promote`/`rollback`
/// ([`crate::registry::links::move_tag`]: history entry, `models/TAG.zip` under the lock).
async fn move_tag(app: &App, tag: &str, how: crate::registry::links::Move) -> Response {
    let result = async {
        let store = crate::store::Store::open(&app.paths.cache)?;
        let reg = Registry::open(&app.paths.state_url).await?;
        let printer = Printer::new(true, true, 0, ColorChoice::Never);
        let by = crate::registry::current_user();
        let moved = crate::registry::links::move_tag(
            &reg,
            &store,
            &app.paths.models,
            &printer,
            tag,
            how,
            &by,
        )
        .await;
        // Closing checkpoints SQLite's WAL: what moved is in `state.db` itself.
        reg.close().await;
        moved
    }
    .await;
    match result {
        Ok((moved, _)) => {
            log(format_args!(
                "Tagged {} → {} (was {})",
                moved.tag,
                moved.to,
                moved.from.as_deref().unwrap_or("unset")
            ));
            Redirect::to(&format!("/tags#tag-{tag}")).into_response()
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(pages::error_page(&e).into_string()),
        )
            .into_response(),
    }
}

async fn promote(State(app): State<Arc<App>>, Form(f): Form<PromoteForm>) -> Response {
    if let Some(refused) = forged(&app, &f.csrf) {
        return refused;
    }
    if f.reason.trim().is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(
                pages::not_found("a promotion needs a reason (it is kept in the tag's history)")
                    .into_string(),
            ),
        )
            .into_response();
    }
    let how = crate::registry::links::Move::Promote {
        version: f.version,
        reason: f.reason,
    };
    move_tag(&app, &f.tag, how).await
}

async fn rollback(State(app): State<Arc<App>>, Form(f): Form<RollbackForm>) -> Response {
    if let Some(refused) = forged(&app, &f.csrf) {
        return refused;
    }
    let to = Some(f.to).filter(|t| !t.trim().is_empty());
    move_tag(&app, &f.tag, crate::registry::links::Move::Rollback { to }).await
}

fn api<T: serde::Serialize>(result: Result<T>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            log(format_args!("error: {e:#}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": format!("{e:#}") })),
            )
                .into_response()
        }
    }
}

async fn api_status(State(app): State<Arc<App>>) -> Response {
    api(plan(&app)
        .await
        .map(|plan| plan.iter().map(|e| e.row()).collect::<Vec<Value>>()))
}

async fn api_runs(State(app): State<Arc<App>>, Query(q): Query<PageQuery>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    api(runs_of(&app, page).await.map(|(rows, _)| rows))
}

async fn api_versions(State(app): State<Arc<App>>) -> Response {
    api(async {
        let reg = registry(&app).await?;
        let versions = reg.versions().await;
        Ok::<_, anyhow::Error>(versions?)
    }
    .await)
}

async fn api_tags(State(app): State<Arc<App>>) -> Response {
    api(async {
        let reg = registry(&app).await?;
        let tags = reg.tags().await;
        Ok::<_, anyhow::Error>(tags?)
    }
    .await)
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}

async fn api_job(State(app): State<Arc<App>>) -> Response {
    Json(app.jobs.view().await).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /run`: starts `mlbuild run` in the background (one at a time, the run lock respected)
/// and shows the pipeline, where it runs live.
async fn start_run(State(app): State<Arc<App>>, Form(f): Form<TokenForm>) -> Response {
    if let Some(refused) = forged(&app, &f.csrf) {
        return refused;
    }
    let lock = crate::store::layout::run_lock(&app.paths.cache);
    match app.jobs.start(&app.paths.project, &lock).await {
        Ok(pid) => {
            log(format_args!("started `mlbuild run` (pid {pid})"));
            Redirect::to("/").into_response()
        }
        Err(e @ (job::StartError::Busy(_) | job::StartError::Locked(_))) => (
            StatusCode::CONFLICT,
            Html(pages::refused(&e.to_string(), "wait for it to end, or cancel it").into_string()),
        )
            .into_response(),
        Err(job::StartError::Spawn(e)) => failure(e),
    }
}

/// `POST /run/cancel`: stops the run started from the page as Ctrl-C would.
async fn cancel_run(State(app): State<Arc<App>>, Form(f): Form<TokenForm>) -> Response {
    if let Some(refused) = forged(&app, &f.csrf) {
        return refused;
    }
    if app.jobs.cancel().await {
        log(format_args!("cancelling the run started from the page"));
    }
    Redirect::to("/").into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}
