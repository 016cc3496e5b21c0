//! A step's page (`GET /steps/{step}`, `/api/steps/{step}`): where it stands now and why (the
//! planner's reason), the key inputs the last complete run recorded for it in `ml.lock` —
//! its slice of `ml.toml`, the data, the engine, the tagged versions it compares against and
//! upstream outputs, each marked by [`crate::fingerprint::InputClass`] — and its outputs with
//! digests, sizes and download links (`GET /steps/{step}/outputs/{name}?attempt=N`).
//!
//! A download is found by the step, attempt and output name in `ml.lock` and the action-cache
//! entry of the recorded key, never by a path from the request; its bytes are verified before
//! they are sent, and streamed.

use std::sync::Arc;

use anyhow::Result;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{pages, App};
use crate::fingerprint::{class_of, InputClass};
use crate::project::Step;
use crate::store::lockfile::Lockfile;
use crate::store::{AcLookup, Store};

/// One key input as recorded.
#[derive(Debug, Serialize)]
pub struct Input {
    pub field: String,
    /// `config`, `engine`, `data`, `baseline` or `upstream:STEP`.
    pub class: String,
    pub value: Value,
}

/// One output of a recorded execution.
#[derive(Debug, Serialize)]
pub struct Output {
    pub name: String,
    /// The digest that stands for it downstream (for a MOJO, its canonical digest).
    pub digest: String,
    /// The stored blob's digest and size, when the action cache still has the entry.
    pub blob: Option<String>,
    pub size: Option<u64>,
}

/// One attempt of the step as the last complete run recorded it.
#[derive(Debug, Serialize)]
pub struct Recorded {
    pub attempt: u32,
    pub key: String,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    /// The step's result (verdict, metrics, …) from the action-cache entry, if still there.
    pub result: Option<Value>,
}

/// The step page's data; JSON: `/api/steps/{step}`.
#[derive(Debug, Serialize)]
pub struct StepDoc {
    pub step: String,
    /// The plan's rows for this step (`status --json` shape), or the error that stops planning.
    pub plan: Result<Vec<Value>, String>,
    pub recorded: Vec<Recorded>,
}

fn class_name(class: Option<InputClass>) -> String {
    match class {
        Some(InputClass::Config) => "config".into(),
        Some(InputClass::Engine) => "engine".into(),
        Some(InputClass::Data) => "data".into(),
        Some(InputClass::Baseline) => "baseline".into(),
        Some(InputClass::Upstream(s)) => format!("upstream:{s}"),
        None => "other".into(),
    }
}

/// A step of this project: one of the eight, or a `[[steps]]` one (`builtin` is `None`).
#[derive(Debug, Clone)]
struct StepRef {
    name: String,
    builtin: Option<Step>,
}

impl StepRef {
    /// What a change in the recorded input `field` means, as the page names it.
    fn class(&self, field: &str) -> String {
        match self.builtin {
            Some(step) => class_name(class_of(step, field)),
            // A user step's key table (docs/steps.md).
            None => crate::fingerprint::user_class_of(field).into(),
        }
    }
}

/// The step `name` names in this project, if any (a user step is looked up in `ml.toml`).
fn parse_step(app: &App, name: &str) -> Option<StepRef> {
    if let Some(step) = Step::ALL.into_iter().find(|s| s.as_str() == name) {
        return Some(StepRef {
            name: name.to_string(),
            builtin: Some(step),
        });
    }
    let loaded = crate::config::load(&app.paths.project, &[]).ok()?;
    loaded
        .config
        .steps
        .iter()
        .any(|s| s.name == name)
        .then(|| StepRef {
            name: name.to_string(),
            builtin: None,
        })
}

/// What `ml.lock` and the action cache hold for `step`.
fn recorded(app: &App, step: &StepRef) -> Result<Vec<Recorded>> {
    let Some(lock) = Lockfile::load(&app.paths.lockfile)? else {
        return Ok(Vec::new());
    };
    let store = Store::existing(&app.paths.cache);
    Ok(lock
        .steps
        .iter()
        .filter(|l| l.step == step.name)
        .map(|l| {
            let entry = match store.ac_get(&l.key) {
                AcLookup::Hit(e) => Some(e),
                _ => None,
            };
            let inputs = l
                .inputs
                .as_object()
                .into_iter()
                .flatten()
                .map(|(field, value)| Input {
                    field: field.clone(),
                    class: step.class(field),
                    value: value.clone(),
                })
                .collect();
            let outputs = l
                .outputs
                .iter()
                .map(|(name, digest)| {
                    let blob = entry.as_ref().and_then(|e| e.outputs.get(name)).cloned();
                    let size = blob
                        .as_ref()
                        .and_then(|b| std::fs::metadata(store.blob_path(b)).ok())
                        .map(|m| m.len());
                    Output {
                        name: name.clone(),
                        digest: digest.clone(),
                        blob,
                        size,
                    }
                })
                .collect();
            Recorded {
                attempt: l.attempt,
                key: l.key.clone(),
                inputs,
                outputs,
                result: entry.map(|e| e.result.clone()),
            }
        })
        .collect())
}

async fn doc(app: &Arc<App>, step: &StepRef) -> Result<StepDoc> {
    let plan = super::plan(app).await.map_err(|e| format!("{e:#}"));
    Ok(StepDoc {
        step: step.name.clone(),
        plan: plan.map(|entries| {
            entries
                .iter()
                .filter(|e| e.step == step.name)
                .map(crate::pipeline::PlanEntry::row)
                .collect()
        }),
        recorded: recorded(app, step)?,
    })
}

fn no_step(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::not_found(&format!("no step `{name}`: the steps are define, locate, prepare, confirm, execute, monitor, modify, conclude and the project's `[[steps]]`")).into_string()),
    )
        .into_response()
}

/// `GET /steps/{step}`.
pub async fn page(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(step) = parse_step(&app, &name) else {
        return no_step(&name);
    };
    match doc(&app, &step).await {
        Ok(doc) => Html(render(&doc).into_string()).into_response(),
        Err(e) => super::failure(e),
    }
}

/// `GET /api/steps/{step}`.
pub async fn api(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(step) = parse_step(&app, &name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no step `{name}`") })),
        )
            .into_response();
    };
    super::api(doc(&app, &step).await)
}

#[derive(Deserialize)]
pub struct AttemptQuery {
    attempt: Option<u32>,
}

/// `GET /steps/{step}/outputs/{name}?attempt=N`: the stored output, verified, as a download.
pub async fn download(
    State(app): State<Arc<App>>,
    UrlPath((name, output)): UrlPath<(String, String)>,
    Query(q): Query<AttemptQuery>,
) -> Response {
    let Some(step) = parse_step(&app, &name) else {
        return no_step(&name);
    };
    let attempt = q.attempt.unwrap_or(1);
    let found = recorded(&app, &step).map(|rs| {
        rs.into_iter()
            .find(|r| r.attempt == attempt)
            .and_then(|r| r.outputs.into_iter().find(|o| o.name == output))
            .and_then(|o| o.blob)
    });
    let blob = match found {
        Ok(Some(blob)) => blob,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Html(pages::not_found(&format!("step `{name}` attempt {attempt} has no stored output `{output}`: run the pipeline to make it")).into_string()),
            )
                .into_response()
        }
        Err(e) => return super::failure(e),
    };
    let store = Store::existing(&app.paths.cache);
    // Verifying hashes the whole blob: off the async threads.
    let verified = tokio::task::spawn_blocking(move || store.verified_path(&blob)).await;
    let path = match verified {
        Ok(Ok(path)) => path,
        Ok(Err(e)) => return super::failure(e.into()),
        Err(e) => return super::failure(e.into()),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return super::failure(e.into()),
    };
    let stream = tokio_util::io::ReaderStream::new(file);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{attempt}-{output}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "–".into(),
        Some(b) if b < 1024 => format!("{b} B"),
        Some(b) if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn render(doc: &StepDoc) -> Markup {
    let name = &doc.step;
    let body = html! {
        h1 { "Step " code { (name) } }
        @match &doc.plan {
            Ok(rows) => table {
                thead { tr { th class="num" { "attempt" } th { "state" } th { "why" } } }
                tbody {
                    @for row in rows {
                        @let state = row["state"].as_str().unwrap_or_default();
                        tr {
                            td class="num" { (row["attempt"]) }
                            td class=(format!("state-{state}")) { (state) }
                            td { (row["reason"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            },
            Err(e) => p class="empty" { "The pipeline cannot be planned: " (e) },
        }
        @if doc.recorded.is_empty() {
            p class="empty" {
                "No complete run recorded this step in " code { "ml.lock" } " yet: "
                code { "mlbuild run" } " records its key inputs and outputs."
            }
        }
        @for r in &doc.recorded {
            h2 { "Attempt " (r.attempt) " as " code { "ml.lock" } " records it" }
            p class="muted" { "key " code { (r.key) } }
            h3 { "Outputs" }
            @if r.outputs.is_empty() {
                p class="muted" { "This step stores no output; its result is below." }
            } @else {
                table {
                    thead { tr { th { "output" } th { "digest" } th class="num" { "size" } th {} } }
                    tbody {
                        @for o in &r.outputs {
                            tr {
                                td { code { (o.name) } }
                                td { code title=(o.digest) { (crate::store::short_digest(&o.digest)) } }
                                td class="num" { (size(o.size)) }
                                td {
                                    @if o.blob.is_some() {
                                        a href=(format!("/steps/{name}/outputs/{}?attempt={}", o.name, r.attempt)) download { "download" }
                                    } @else {
                                        span class="muted" { "not in the local store" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Key inputs" }
            table {
                thead { tr { th { "input" } th { "kind" } th { "value" } } }
                tbody {
                    @for i in &r.inputs {
                        tr {
                            td { code { (i.field) } }
                            td { (i.class) }
                            td { pre class="value" { (pretty(&i.value)) } }
                        }
                    }
                }
            }
            @if let Some(result) = &r.result {
                details {
                    summary { "Result" }
                    pre { (pretty(result)) }
                }
            }
        }
    };
    pages::layout(&format!("Step {name}"), "/", body)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
