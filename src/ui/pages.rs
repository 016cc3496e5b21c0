//! The pages of `mlbuild ui`, as maud markup: one function per page over data the handlers
//! read. Times are shown as recorded (UTC, RFC 3339) in `<time datetime>`.

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use super::job::{JobState, JobView};
use super::live::Live;
use crate::fingerprint::Reason;
use crate::pipeline::PlanEntry;
use crate::project::{Paths, Step};
use crate::registry::{Run, RunSummary, StepRecord, StepStart, TagEvent, Version};
use crate::status::{Freshness, RunStatus, StepStatus};

/// The pages in the navigation bar: (path, label).
const NAV: [(&str, &str); 6] = [
    ("/", "Pipeline"),
    ("/runs", "Runs"),
    ("/models", "Models"),
    ("/compare", "Compare"),
    ("/tags", "Tags"),
    ("/data", "Data"),
];

pub(super) fn layout(title: &str, current: &str, body: Markup) -> Markup {
    page(title, current, None, body)
}

/// A page; `live` (the [`super::live::Live`] document it was rendered from) makes the script
/// fetch it again whenever the latest run changes.
fn page(title: &str, current: &str, live: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · mlbuild" }
                link rel="stylesheet" href="/assets/ui.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/ui.js" defer {}
            }
            body {
                header {
                    strong { "mlbuild" }
                    nav aria-label="pages" {
                        @for (path, label) in NAV {
                            @if path == current {
                                a href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                }
                main data-live=[live] { (body) }
            }
        }
    }
}

/// A recorded time: UTC as recorded, which the script shows in the reader's local time.
fn time(at: &str) -> Markup {
    html! { time datetime=(at) { (at) } }
}

/// A state-changing button: a POST form carrying this process's token.
fn post_button(action: &str, csrf: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}

fn short(digest: &str) -> &str {
    crate::store::short_digest(digest)
}

/// How one step stands on the pipeline page.
struct StepView {
    step: String,
    class: &'static str,
    label: &'static str,
    reason: String,
    duration_ms: Option<u64>,
    /// When the step under way started.
    since: Option<String>,
    /// The key of its last execution in the last run (cached or ran).
    key: Option<String>,
}

fn step_views(
    plan: &[PlanEntry],
    steps: &[StepRecord],
    under_way: Option<&StepStart>,
) -> Vec<StepView> {
    // The plan names every step in walk order, the project's `[[steps]]` among the eight.
    let mut names: Vec<&str> = Vec::new();
    for e in plan.iter().filter(|e| e.attempt == 1) {
        if !names.contains(&e.step.as_str()) {
            names.push(&e.step);
        }
    }
    if names.is_empty() {
        names = Step::ALL.iter().map(|s| s.as_str()).collect();
    }
    names
        .into_iter()
        .map(|name| {
            let entry = plan.iter().find(|e| e.step == name && e.attempt == 1);
            if let Some(start) = under_way.filter(|u| u.step == name) {
                let why = entry.map(|e| e.reason.as_str()).unwrap_or_default();
                return StepView {
                    step: name.to_string(),
                    class: "running",
                    label: "running",
                    reason: match start.attempt {
                        1 => why.to_string(),
                        n => format!("attempt {n}: {why}"),
                    },
                    duration_ms: None,
                    since: Some(start.since.clone()),
                    key: None,
                };
            }
            let last = steps.iter().rev().find(|s| s.step == name);
            let failed = last.is_some_and(|s| s.status == StepStatus::Failed);
            let (class, label) = match entry.map(|e| (&e.state, &e.detail)) {
                Some((Freshness::Fresh, _)) => ("fresh", "fresh"),
                Some((Freshness::Stale, _)) if failed => ("failed", "failed"),
                Some((Freshness::Stale, Reason::NeverRun)) => ("never", "never run"),
                Some((Freshness::Stale, _)) => ("stale", "stale"),
                None => ("never", "unknown"),
            };
            StepView {
                step: name.to_string(),
                class,
                label,
                reason: entry.map(|e| e.reason.clone()).unwrap_or_default(),
                duration_ms: last
                    .filter(|s| s.status == StepStatus::Ran)
                    .map(|s| s.duration_ms),
                since: None,
                key: last.map(|s| s.key.clone()),
            }
        })
        .collect()
}

/// The eight steps as boxes in a row, joined by arrows, outlined by state.
fn graph(views: &[StepView]) -> Markup {
    let (w, h, gap) = (104, 46, 18);
    let width = views.len() as i32 * (w + gap) - gap + 2;
    html! {
        svg class="graph" viewBox=(format!("0 0 {width} {}", h + 4)) role="group"
            aria-label="the pipeline's eight steps and their states; each links to its page" {
            @for (i, v) in views.iter().enumerate() {
                @let x = 1 + i as i32 * (w + gap);
                @if i > 0 {
                    line x1=(x - gap) y1=(h / 2 + 1) x2=(x) y2=(h / 2 + 1) {}
                }
                a href=(format!("/steps/{}", v.step)) {
                    title { (v.step) ": " (v.label) ". " (v.reason) }
                    rect class=(format!("box {}", v.class)) x=(x) y="1" width=(w) height=(h) rx="6" {}
                    text x=(x + w / 2) y="20" text-anchor="middle" { (v.step) }
                    text x=(x + w / 2) y="37" text-anchor="middle" class=(format!("state-{}", v.class)) { (v.label) }
                }
            }
        }
    }
}

/// The pipeline page: the plan as `status` makes it (or why there is none), with the last
/// run's durations.
pub fn pipeline(
    paths: &Paths,
    plan: anyhow::Result<Vec<PlanEntry>>,
    last: Option<&Run>,
    steps: &[StepRecord],
    live: &Live,
    job: &JobView,
    csrf: &str,
) -> Markup {
    let under_way = last.and_then(|run| run.under_way(steps));
    let body = match plan {
        Err(e) if !paths.project.join(crate::config::FILE_NAME).is_file() => html! {
            h1 { "Pipeline" }
            p class="empty" {
                "This directory has no " code { "ml.toml" } " yet. Create one from a data file with "
                code { "mlbuild init data/train.csv" } ", then run " code { "mlbuild run" } "."
            }
            p class="muted" { (format!("{e:#}")) }
        },
        Err(e) => html! {
            h1 { "Pipeline" }
            p class="empty" {
                "The pipeline cannot be planned: " (format!("{e:#}"))
            }
            p class="muted" { "Fix " code { "ml.toml" } " and reload; " code { "mlbuild status" } " shows the same." }
        },
        Ok(plan) => {
            let views = step_views(&plan, steps, under_way);
            html! {
                h1 { "Pipeline" }
                (job_panel(job, csrf))
                (graph(&views))
                @match last {
                    Some(run) => p class="muted" {
                        "Last run " a href=(format!("/runs/{}", run.id)) { "#" (run.id) } ": "
                        span class=(status_class(run.status)) { (run.status.as_str()) }
                        ", started " (time(&run.started_at)) "."
                    },
                    None => p class="empty" {
                        "No run yet: " code { "mlbuild run" } " trains, evaluates and registers a model."
                    },
                }
                table {
                    thead { tr { th { "step" } th { "state" } th { "why" } th class="num" { "last duration" } th { "key" } } }
                    tbody {
                        @for v in &views {
                            tr id=(format!("step-{}", v.step)) {
                                td { a href=(format!("/steps/{}", v.step)) { code { (v.step) } } }
                                td class=(format!("state-{}", v.class)) { (v.label) }
                                td { (v.reason) }
                                td class="num" {
                                    @if let Some(since) = &v.since { "since " (time(since)) }
                                    @else if let Some(ms) = v.duration_ms { (crate::report::human_ms(ms)) }
                                    @else { "–" }
                                }
                                td { @if let Some(k) = &v.key { code title=(k) { (short(k)) } } @else { "–" } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Pipeline", "/", Some(&live.stamp()), body)
}

/// The Run button, or the run started from the page with its cancel button and output.
fn job_panel(job: &JobView, csrf: &str) -> Markup {
    let started = job.started_at.as_deref().unwrap_or_default();
    let under_way = matches!(job.state, JobState::Running | JobState::Cancelling);
    let ended = match job.state {
        JobState::Finished { exit_code } => Some(exit_code),
        _ => None,
    };
    html! {
        section class="job" aria-label="run from this page" {
            @if under_way {
                    p {
                        strong class="state-running" {
                            @if job.state == JobState::Cancelling { "Cancelling" } @else { "Running" }
                        }
                        " — started from this page " (time(started)) " (pid " (job.pid.unwrap_or(0)) ")."
                    }
                    @if job.state == JobState::Running {
                        (post_button("/run/cancel", csrf, "Cancel run", "danger"))
                    }
            } @else {
                    (post_button("/run", csrf, "Run pipeline", "primary"))
                    span class="muted" { " runs " code { "mlbuild run" } " here in the background; only stale steps run." }
                    @if let Some(exit_code) = ended {
                        p {
                            "The run started from this page " (time(started)) " "
                            @match exit_code {
                                Some(0) => span class="state-fresh" { "ended ok" },
                                Some(130) => span class="state-never" { "was cancelled" },
                                Some(code) => span class="state-failed" { "ended with exit code " (code) },
                                None => span class="state-failed" { "was killed" },
                            }
                            "."
                        }
                    }
            }
            @if !job.output.is_empty() {
                details {
                    summary { "output" }
                    pre { (job.output) }
                }
            }
        }
    }
}

/// A request that cannot be done now, and what to do.
pub fn refused(message: &str, hint: &str) -> Markup {
    layout(
        "Refused",
        "",
        html! {
            h1 { "Cannot do that now" }
            p class="empty" { (message) }
            p class="muted" { "hint: " (hint) }
            p { a href="/" { "Back to the pipeline" } }
        },
    )
}

/// The runs page: newest first, paginated.
pub fn runs(rows: &[RunSummary], page: u32, total: u64, live: &Live) -> Markup {
    let pages = total.div_ceil(u64::from(super::RUNS_PER_PAGE)).max(1);
    let body = html! {
        h1 { "Runs" }
        @if rows.is_empty() && page == 1 {
            p class="empty" { "No runs yet: " code { "mlbuild run" } " records one." }
        } @else {
            table {
                thead { tr {
                    th class="num" { "run" } th { "started" } th class="num" { "duration" } th { "command" } th { "status" }
                    th class="num" { "ran" } th class="num" { "cached" } th class="num" { "restored" } th class="num" { "failed" }
                    th { "commit" } th { "by" }
                } }
                tbody {
                    @for r in rows {
                        tr id=(format!("run-{}", r.run.id)) {
                            td class="num" { a href=(format!("/runs/{}", r.run.id)) { (r.run.id) } }
                            td { (time(&r.run.started_at)) }
                            td class="num" { (run_duration(&r.run)) }
                            td { code { (r.run.command) } }
                            td class=(status_class(r.run.status)) { (r.run.status.as_str()) }
                            @for s in StepStatus::ALL {
                                td class="num" { (r.steps.get(s.as_str()).copied().unwrap_or(0)) }
                            }
                            td { @if let Some(c) = &r.run.git_commit { code title=(c) { (&c[..8.min(c.len())]) } } @else { "–" } }
                            td { (r.run.user.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
            p class="pager" {
                @if page > 1 { a href=(format!("/runs?page={}", page - 1)) { "← newer" } }
                span class="muted" { "page " (page) " of " (pages) " (" (total) " runs)" }
                @if u64::from(page) < pages { a href=(format!("/runs?page={}", page + 1)) { "older →" } }
            }
        }
    };
    self::page("Runs", "/runs", Some(&live.stamp()), body)
}

/// One run: who started it where, how it ended (its error as the CLI printed it, hint
/// included), and each step execution in the order it was recorded.
pub fn run(run: &Run, steps: &[StepRecord], live: &Live) -> Markup {
    let under_way = run.under_way(steps);
    let body = html! {
        h1 { "Run " (run.id) }
        table {
            tbody {
                tr { th { "command" } td { code { "mlbuild " (run.command) } } }
                tr { th { "status" } td class=(status_class(run.status)) { (run.status.as_str()) } }
                tr { th { "started" } td { (time(&run.started_at)) } }
                tr { th { "finished" } td { @if let Some(f) = &run.finished_at { (time(f)) } @else { "–" } } }
                tr { th { "by" } td { (run.user.as_deref().unwrap_or("–")) } }
                tr { th { "commit" } td { @if let Some(c) = &run.git_commit { code title=(c) { (short(c)) } } @else { "–" } } }
            }
        }
        @if let Some(error) = &run.error {
            h2 { "Error" }
            pre class="empty" { (error) }
        } @else if let Some(report) = &run.report {
            h2 { "Report" }
            pre class="empty" { (report) }
        }
        h2 { "Steps" }
        @if let Some(start) = under_way {
            p { span class="state-running" { "running " } code { (start.step) } " (attempt " (start.attempt) "), started " (time(&start.since)) }
        }
        @if steps.is_empty() && under_way.is_none() {
            p class="empty" { "No step was recorded." }
        } @else {
            table {
                thead { tr { th { "step" } th class="num" { "attempt" } th { "status" } th class="num" { "duration" } th { "why" } th { "key" } } }
                tbody {
                    @for s in steps {
                        tr {
                            td { code { (s.step) } }
                            td class="num" { (s.attempt) }
                            td { (s.status.as_str()) }
                            td class="num" { (crate::report::human_ms(s.duration_ms)) }
                            td { (s.reason) }
                            td { code title=(s.key) { (short(&s.key)) } }
                        }
                    }
                }
            }
        }
    };
    // Followed live while it runs.
    let stamp = (run.status == RunStatus::Running).then(|| live.stamp());
    page(&format!("Run {}", run.id), "/runs", stamp.as_deref(), body)
}

/// How long a run took (`running` while it runs; `–` when a time does not parse).
fn run_duration(run: &Run) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (
        parse(&run.started_at),
        run.finished_at.as_deref().map(parse),
    ) {
        (Some(start), Some(Some(end))) => {
            let ms = (end - start).num_milliseconds().max(0);
            crate::report::human_ms(u64::try_from(ms).unwrap_or(0))
        }
        (_, None) if run.status == RunStatus::Running => "running".into(),
        _ => "–".into(),
    }
}

fn status_class(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Ok => "state-fresh",
        RunStatus::Running => "state-stale",
        RunStatus::Interrupted => "state-never",
        RunStatus::Escalated | RunStatus::Failed | RunStatus::GateFailed => "state-failed",
    }
}

fn tags_of<'a>(tags: &'a BTreeMap<String, String>, version: &str) -> Vec<&'a str> {
    tags.iter()
        .filter(|(_, v)| *v == version)
        .map(|(t, _)| t.as_str())
        .collect()
}

fn metric_cell(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| v.to_string(), |x| format!("{x:.4}"))
}

/// How the models page is sorted: by a metric (`?sort=auc`, best first as the metric's
/// direction says, `&order=asc|desc` to choose), else newest first.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ModelSort {
    pub sort: Option<String>,
    pub order: Option<String>,
}

impl ModelSort {
    fn descending(&self, metric: &str) -> bool {
        match self.order.as_deref() {
            Some("asc") => false,
            Some("desc") => true,
            _ => crate::config::metric_is_higher_better(metric),
        }
    }

    /// The link of a metric's header: best first, or the other way when sorted by it already.
    fn link(&self, metric: &str) -> String {
        let order = if self.sort.as_deref() == Some(metric) {
            if self.descending(metric) {
                "asc"
            } else {
                "desc"
            }
        } else if crate::config::metric_is_higher_better(metric) {
            "desc"
        } else {
            "asc"
        };
        format!("/models?sort={metric}&order={order}")
    }
}

/// The versions in the page's order: (index in creation order, version).
fn sorted<'a>(versions: &'a [Version], by: &ModelSort) -> Vec<(usize, &'a Version)> {
    let mut rows: Vec<(usize, &Version)> = versions.iter().enumerate().rev().collect();
    if let Some(metric) = by.sort.as_deref() {
        let desc = by.descending(metric);
        let value = |v: &Version| v.metrics.get(metric).and_then(Value::as_f64);
        // Stable: equal values keep newest first; versions without the metric go last.
        rows.sort_by(|(_, a), (_, b)| match (value(a), value(b)) {
            (Some(x), Some(y)) if desc => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    rows
}

/// The models page: every version, newest first or sorted by a metric, with its metrics.
pub fn models(versions: &[Version], tags: &BTreeMap<String, String>, by: &ModelSort) -> Markup {
    let metrics: Vec<String> = versions
        .iter()
        .flat_map(|v| {
            v.metrics
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let body = html! {
        h1 { "Models" }
        @if versions.is_empty() {
            p class="empty" { "No version registered yet: a successful " code { "mlbuild run" } " registers one, "
                code { "mlbuild deploy --mojo FILE.zip --tag TAG" } " adds a MOJO made elsewhere." }
        } @else {
            table {
                thead { tr {
                    th { "version" } th { "created" } th { "algo" } th { "tags" }
                    @for m in &metrics {
                        @let sorted_here = by.sort.as_deref() == Some(m.as_str());
                        th class="num" aria-sort=[sorted_here.then(|| if by.descending(m) { "descending" } else { "ascending" })] {
                            a href=(by.link(m)) title=(format!("sort by {m}")) {
                                (m)
                                @if sorted_here { @if by.descending(m) { " ↓" } @else { " ↑" } }
                            }
                        }
                    }
                    th {}
                } }
                tbody {
                    @for (i, v) in sorted(versions, by) {
                        tr {
                            td { a href=(format!("/models/{}", v.id)) { code { (v.id) } } }
                            td { (time(&v.created_at)) }
                            td { (v.algo) }
                            td { (tags_of(tags, &v.id).join(", ")) }
                            @for m in &metrics {
                                td class="num" { (v.metrics.get(m).map(metric_cell).unwrap_or_default()) }
                            }
                            td {
                                @if i > 0 {
                                    a href=(format!("/compare?a={}&b={}", versions[i - 1].id, v.id)) { "vs previous" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Models", "/models", body)
}

/// One version: metrics, tags and provenance.
pub fn version(
    v: &Version,
    tags: &BTreeMap<String, String>,
    card: Result<String, String>,
) -> Markup {
    let body = html! {
        h1 { "Version " code { (v.id) } }
        table {
            tbody {
                tr { th { "created" } td { (time(&v.created_at)) } }
                tr { th { "algo" } td { (v.algo) } }
                tr { th { "tags" } td { (tags_of(tags, &v.id).join(", ")) } }
                tr { th { "model" } td { code title=(v.model) { (short(&v.model)) } } }
                tr { th { "canonical" } td { code title=(v.canonical) { (short(&v.canonical)) } } }
                tr { th { "run" } td { @if let Some(r) = v.run { (r) } @else { "– (deployed)" } } }
            }
        }
        h2 { "Promote" }
        form method="get" action="/promote" {
            input type="hidden" name="version" value=(v.id);
            label { "tag " input name="tag" list="tags" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*" placeholder="production"; }
            " "
            label { "reason " input name="reason" required placeholder="why"; }
            " "
            button type="submit" { "Review…" }
            datalist id="tags" { @for t in tags.keys() { option value=(t) {} } }
        }
        h2 { "Metrics" }
        table {
            tbody {
                @for (k, m) in v.metrics.as_object().into_iter().flatten() {
                    tr { th { (k) } td class="num" { (metric_cell(m)) } }
                }
            }
        }
        h2 { "Model card" }
        @match card {
            Ok(html) => div class="card" { (PreEscaped(html)) },
            Err(why) => p class="empty" { "The card cannot be shown: " (why) },
        }
        h2 { "Provenance" }
        table {
            tbody {
                @for (k, p) in v.provenance.as_object().into_iter().flatten() {
                    @if k != "config" && k != "plots" {
                        tr { th { (k) } td { code { (match p { Value::String(s) => s.clone(), other => other.to_string() }) } } }
                    }
                }
            }
        }
    };
    layout(&format!("Version {}", v.id), "/models", body)
}

/// The tags page: each tag's version and history, newest move first.
pub fn tags(tags: &BTreeMap<String, String>, history: &[(String, Vec<TagEvent>)]) -> Markup {
    let body = html! {
        h1 { "Tags" }
        @if tags.is_empty() {
            p class="empty" { "No tags yet: " code { "[conclude] promote" } " tags a run's version, "
                code { "mlbuild promote TAG VERSION" } " moves one." }
        } @else {
            @for (tag, version) in tags {
                h2 id=(format!("tag-{tag}")) { code { (tag) } " → " a href=(format!("/models/{version}")) { code { (version) } } }
                p { a href=(format!("/rollback?tag={tag}")) { "Roll back…" } }
                @if let Some((_, events)) = history.iter().find(|(t, _)| t == tag) {
                    (history_table(events))
                }
            }
        }
    };
    layout("Tags", "/tags", body)
}

fn history_table(history: &[TagEvent]) -> Markup {
    html! {
        table {
            thead { tr { th { "at" } th { "from" } th { "to" } th { "by" } th { "reason" } } }
            tbody {
                @for e in history.iter().rev() {
                    tr {
                        td { (time(&e.at)) }
                        td { code { (e.from.as_deref().unwrap_or("–")) } }
                        td { code { (e.to) } }
                        td { (e.by) }
                        td { (e.reason) }
                    }
                }
            }
        }
    }
}

/// Promote, reviewed: the tag's version now and after, the reason, and the button that moves
/// it (a POST carrying this process's form token).
pub fn confirm_promote(
    tag: &str,
    current: Option<&str>,
    version: &str,
    reason: &str,
    history: &[TagEvent],
    csrf: &str,
) -> Markup {
    let body = html! {
        h1 { "Promote " code { (version) } " to " code { (tag) } "?" }
        p { code { (tag) } " points at " code { (current.unwrap_or("nothing yet")) } "; it will point at "
            code { (version) } ", and " code { "models/" (tag) ".zip" } " will hold its MOJO." }
        form method="post" action="/promote" {
            input type="hidden" name="tag" value=(tag);
            input type="hidden" name="version" value=(version);
            input type="hidden" name="csrf" value=(csrf);
            label { "reason " input name="reason" value=(reason) required; }
            " "
            button type="submit" { "Promote" }
            " "
            a href="/tags" { "Cancel" }
        }
        h2 { "History of " code { (tag) } }
        (history_table(history))
    };
    layout("Promote", "/tags", body)
}

/// Rollback, reviewed: the tag's state and history, and the button that moves it back.
pub fn confirm_rollback(
    tag: &str,
    current: Option<&str>,
    to: &str,
    history: &[TagEvent],
    csrf: &str,
) -> Markup {
    let body = html! {
        h1 { "Roll back " code { (tag) } "?" }
        p { code { (tag) } " points at " code { (current.unwrap_or("nothing")) } ". Rolling back moves it to the version before its last move (or to the version given), as "
            code { "mlbuild rollback" } " does, and writes " code { "models/" (tag) ".zip" } "." }
        form method="post" action="/rollback" {
            input type="hidden" name="tag" value=(tag);
            input type="hidden" name="csrf" value=(csrf);
            label { "to version (optional) " input name="to" value=(to) placeholder="the previous one"; }
            " "
            button type="submit" { "Roll back" }
            " "
            a href="/tags" { "Cancel" }
        }
        h2 { "History of " code { (tag) } }
        (history_table(history))
    };
    layout("Roll back", "/tags", body)
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".to_string(),
        Value::Number(_) => metric_cell(v),
        other => other.to_string(),
    }
}

/// One side's leaderboard, as the diff document holds it.
fn board(doc: &Value) -> Markup {
    html! {
        @if let Some(why) = doc["missing"].as_str() {
            p class="muted" { "leaderboard " (why) }
        } @else {
            @let metric = doc["sort_metric"].as_str().unwrap_or("");
            table {
                thead { tr { th { "model" } th { "algo" } th class="num" { (metric) } } }
                tbody {
                    @for r in doc["rows"].as_array().into_iter().flatten() {
                        tr {
                            td { code { (r["model_id"].as_str().unwrap_or("?")) } }
                            td { (r["algo"].as_str().unwrap_or("?")) }
                            td class="num" { (shown(&r["metrics"][metric])) }
                        }
                    }
                }
            }
        }
    }
}

/// Horizontal bars, one per `(label, value)`, scaled to the largest value (and to `mark`, a
/// threshold line, when given).
fn bars(rows: &[(String, f64)], mark: Option<f64>, label: &str) -> Markup {
    let top = rows
        .iter()
        .map(|(_, v)| *v)
        .chain(mark)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (name_w, bar_w, row_h) = (140.0, 360.0, 20.0);
    let height = rows.len() as f64 * row_h + 4.0;
    html! {
        svg class="graph" viewBox=(format!("0 0 {} {height}", name_w + bar_w + 70.0)) role="img" aria-label=(label) {
            @for (i, (name, v)) in rows.iter().enumerate() {
                @let y = i as f64 * row_h + 2.0;
                text x=(name_w - 6.0) y=(y + 14.0) text-anchor="end" { (name) }
                rect class="box stale" x=(name_w) y=(y + 3.0) width=(format!("{:.1}", bar_w * v / top)) height=(row_h - 6.0) {}
                text x=(name_w + bar_w * v / top + 6.0) y=(y + 14.0) { (format!("{v:.4}")) }
            }
            @if let Some(m) = mark {
                line x1=(format!("{:.1}", name_w + bar_w * m / top)) y1="0" x2=(format!("{:.1}", name_w + bar_w * m / top)) y2=(height) {}
            }
        }
    }
}

/// The data page: confirm's last report (verdict, rules, null fractions, drift) and the
/// snapshot's profile.
pub fn data(report: Option<&Value>, profile: Option<&crate::table::Profile>) -> Markup {
    let body = html! {
        h1 { "Data" }
        @match report {
            None => p class="empty" { "No data-quality report yet: " code { "mlbuild run" } " checks the prepared data in its confirm step (and records it in " code { "ml.lock" } ")." },
            Some(r) => {
                p { "The gate " strong class=(if r["verdict"] == "pass" { "state-fresh" } else { "state-failed" }) { (if r["verdict"] == "pass" { "passed" } else { "failed" }) }
                    " on " (shown(&r["rows"])) " rows (" (shown(&r["train_rows"])) " train, " (shown(&r["holdout_rows"])) " holdout)." }
                h2 { "Rules" }
                table {
                    thead { tr { th { "rule" } th { "column" } th { "value" } th { "limit" } th {} } }
                    tbody {
                        @for c in r["checks"].as_array().into_iter().flatten() {
                            tr {
                                td { code { (shown(&c["rule"])) } }
                                td { (shown(&c["column"])) }
                                td { (shown(&c["value"])) }
                                td { (shown(&c["limit"])) }
                                td class=(if c["pass"] == true { "state-fresh" } else { "state-failed" }) { (if c["pass"] == true { "pass" } else { "fail" }) }
                            }
                        }
                    }
                }
                h2 { "Missing values" }
                @let nulls: Vec<(String, f64)> = r["null_fraction"].as_object().into_iter().flatten()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect();
                (bars(&nulls, None, "the fraction of missing values per column"))
                h2 { "Drift" }
                @match r["drift"]["columns"].as_array() {
                    Some(columns) => {
                        @let psi: Vec<(String, f64)> = columns.iter()
                            .filter_map(|c| Some((c["column"].as_str()?.to_string(), c["psi"].as_f64()?))).collect();
                        p class="muted" { "PSI per column against production's training rows; the line is the limit." }
                        (bars(&psi, r["drift"]["limit"].as_f64(), "the population stability index per column"))
                    },
                    None => p class="muted" { (r["drift"]["reason"].as_str().unwrap_or("not checked")) },
                }
            }
        }
        h2 { "Snapshot profile" }
        @match profile {
            None => p class="empty" { "No profile yet: it is made when " code { "mlbuild run" } " locates the data." },
            Some(p) => {
                p class="muted" { (p.rows) " rows" }
                table {
                    thead { tr { th { "column" } th { "kind" } th class="num" { "missing" } th class="num" { "distinct" } } }
                    tbody {
                        @for c in &p.columns {
                            tr id=(format!("column-{}", c.name)) {
                                td { code { (c.name) } }
                                td { (format!("{:?}", c.kind).to_lowercase()) }
                                td class="num" { (c.missing) }
                                td class="num" { (c.distinct.len()) @if c.distinct_capped { "+" } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Data", "/data", body)
}

/// A `diff --json` document and every param of the two configs (`key`, old, new).
pub type Compared = (Value, Vec<(String, Value, Value)>);

/// The params of a comparison: the changed ones, or all with `all` (changed rows marked).
fn params_section(doc: &Value, params: &[(String, Value, Value)], all: bool) -> Markup {
    let changed: Vec<(&String, &Value)> = doc["params"].as_object().into_iter().flatten().collect();
    html! {
        h2 { "Params" }
        @if doc["params_compared"] == false {
            p class="muted" { "Not compared: a version added with " code { "deploy --mojo" } " records no config." }
        } @else if all {
            table {
                thead { tr { th { "param" } th { "old" } th { "new" } } }
                tbody {
                    @for (k, x, y) in params {
                        tr class=(if x != y { "changed" } else { "" }) {
                            td { code { (k) } } td { (shown(x)) } td { (shown(y)) }
                        }
                    }
                }
            }
        } @else if changed.is_empty() {
            p class="muted" { "No param differs." }
        } @else {
            table {
                thead { tr { th { "param" } th { "old" } th { "new" } } }
                tbody {
                    @for (k, p) in &changed {
                        tr id=(format!("param-{k}")) { td { code { (k) } } td { (shown(&p["old"])) } td { (shown(&p["new"])) } }
                    }
                }
            }
        }
    }
}

/// Two versions compared: by default only what differs — metrics that changed, params that
/// changed, the algorithm and the data snapshot when they differ, both leaderboards; `all`
/// shows every metric and param.
pub fn compare(a: &str, b: &str, all: bool, diff: Option<&Compared>, ids: &[String]) -> Markup {
    let picker = html! {
        form method="get" action="/compare" {
            label { "old " input name="a" list="versions" value=(a) required; }
            " "
            label { "new " input name="b" list="versions" value=(b) required; }
            " "
            label { input type="checkbox" name="all" value="1" checked[all]; " everything" }
            " "
            button type="submit" { "Compare" }
            datalist id="versions" { @for id in ids.iter().rev() { option value=(id) {} } }
        }
    };
    let body = match diff {
        None => html! {
            h1 { "Compare" }
            (picker)
            @if ids.len() < 2 {
                p class="empty" { "Two versions are needed to compare; " (ids.len()) " is registered." }
            } @else {
                p class="empty" { "Pick two versions." }
            }
        },
        Some((doc, params)) => {
            let differs = |k: &str| doc[k]["old"] != doc[k]["new"];
            let metrics: Vec<(&String, &Value)> = doc["metrics"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, m)| all || m["old"] != m["new"])
                .collect();
            html! {
                h1 { "Compare " code { (a) } " → " code { (b) } }
                (picker)
                table {
                    thead { tr { th {} th { code { (a) } } th { code { (b) } } } }
                    tbody {
                        @if all || differs("algo") {
                            tr { th { "algo" } td { (shown(&doc["algo"]["old"])) } td { (shown(&doc["algo"]["new"])) } }
                        }
                        @if all || differs("data_snapshot") {
                            tr { th { "data snapshot" } td { code { (short(&shown(&doc["data_snapshot"]["old"]))) } } td { code { (short(&shown(&doc["data_snapshot"]["new"]))) } } }
                        }
                    }
                }
                h2 { "Metrics" }
                @if metrics.is_empty() {
                    p class="muted" { "No metric differs." }
                } @else {
                    table {
                        thead { tr { th { "metric" } th class="num" { "old" } th class="num" { "new" } th class="num" { "change" } } }
                        tbody {
                            @for (name, m) in &metrics {
                                tr id=(format!("metric-{name}")) {
                                    td { (name) }
                                    td class="num" { (shown(&m["old"])) }
                                    td class="num" { (shown(&m["new"])) }
                                    td class="num" { (m["change"].as_f64().map(|c| format!("{c:+.4}")).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
                (params_section(doc, params, all))
                h2 { "Leaderboards" }
                table {
                    tbody { tr {
                        td { h2 { code { (a) } } (board(&doc["leaderboard"]["old"])) }
                        td { h2 { code { (b) } } (board(&doc["leaderboard"]["new"])) }
                    } }
                }
            }
        }
    };
    layout("Compare", "/compare", body)
}

/// A failed page: the error chain, as the CLI would print it.
pub fn error_page(e: &anyhow::Error) -> Markup {
    let body = html! {
        h1 { "Something failed" }
        pre class="empty" { (format!("{e:#}")) }
    };
    layout("Error", "", body)
}

pub fn not_found(what: &str) -> Markup {
    layout(
        "Not found",
        "",
        html! { h1 { "Not found" } p class="empty" { (what) } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, metrics: Value) -> Version {
        Version {
            id: id.into(),
            created_at: String::new(),
            model: String::new(),
            canonical: String::new(),
            algo: "GBM".into(),
            metrics,
            card: String::new(),
            provenance: Value::Null,
            run: None,
        }
    }

    fn order(versions: &[Version], sort: Option<&str>, order: Option<&str>) -> Vec<String> {
        let by = ModelSort {
            sort: sort.map(str::to_string),
            order: order.map(str::to_string),
        };
        sorted(versions, &by)
            .into_iter()
            .map(|(_, v)| v.id.clone())
            .collect()
    }

    /// Newest first by default; by a metric best first in its direction (AUC up, RMSE down),
    /// either way on request, ties newest first, versions without the metric last.
    #[test]
    fn models_sort_by_a_metric_in_its_direction() {
        let versions = [
            version("v1", serde_json::json!({ "auc": 0.8, "rmse": 0.3 })),
            version("v2", serde_json::json!({ "auc": 0.9, "rmse": 0.4 })),
            version("v3", serde_json::json!({})),
            version("v4", serde_json::json!({ "auc": 0.8, "rmse": 0.2 })),
        ];
        assert_eq!(order(&versions, None, None), ["v4", "v3", "v2", "v1"]);
        assert_eq!(
            order(&versions, Some("auc"), None),
            ["v2", "v4", "v1", "v3"]
        );
        assert_eq!(
            order(&versions, Some("auc"), Some("asc")),
            ["v4", "v1", "v2", "v3"]
        );
        assert_eq!(
            order(&versions, Some("rmse"), None),
            ["v4", "v1", "v2", "v3"]
        );
        let by = ModelSort {
            sort: Some("auc".into()),
            order: None,
        };
        assert_eq!(by.link("auc"), "/models?sort=auc&order=asc");
        assert_eq!(by.link("rmse"), "/models?sort=rmse&order=asc");
        assert_eq!(
            ModelSort::default().link("auc"),
            "/models?sort=auc&order=desc"
        );
    }
}
