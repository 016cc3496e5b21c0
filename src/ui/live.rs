//! Live pages: `GET /api/events` streams (server-sent events) what the latest run records — its
//! status, the step it started, the steps it finished — and how a run started from the page
//! stands. A run started from a terminal shows up too: the stream reads the registry, where
//! every run records a step's start ([`crate::registry::Registry::start_step`]) and end.
//!
//! Each event (`event: live`) carries the whole [`Live`] document; one is sent on connecting and
//! then whenever it changes (the registry is read every [`POLL`]). Pages that follow it carry
//! the document they were rendered from in `<main data-live>`, so the script can tell at once
//! that the page is behind and fetch it again.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;

use super::job::JobState;
use super::App;
use crate::registry::{RunId, StepStart};
use crate::status::RunStatus;

/// How often the stream reads the registry.
pub const POLL: Duration = Duration::from_millis(300);

/// What the live pages follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    pub run: Option<LiveRun>,
    pub job: JobState,
}

/// The latest run, as far as the live view needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveRun {
    pub id: RunId,
    pub status: RunStatus,
    /// How many step executions it recorded so far.
    pub recorded: usize,
    /// The step it is executing now, if any.
    pub under_way: Option<StepStart>,
}

impl Live {
    /// The document as one line (what `data-live` holds and each event carries).
    pub fn stamp(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads the latest run and the page's own job.
pub async fn read(app: &App) -> anyhow::Result<Live> {
    let reg = super::registry(app).await?;
    let run = match reg.recent_runs(1).await?.into_iter().next() {
        Some(run) => {
            let steps = reg.steps(run.id).await?;
            Some(LiveRun {
                id: run.id,
                status: run.status,
                recorded: steps.len(),
                under_way: run.under_way(&steps).cloned(),
            })
        }
        None => None,
    };
    Ok(Live {
        run,
        job: app.jobs.view().await.state,
    })
}

/// `GET /api/events`: the [`Live`] document now and on every change.
pub async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stop = app.stopping.subscribe();
    let stream = futures_util::stream::unfold(
        (app, stop, None::<String>),
        |(app, mut stop, last)| async move {
            loop {
                if *stop.borrow() {
                    return None;
                }
                // A registry that cannot be read now (locked, being migrated) is read again.
                if let Ok(live) = read(&app).await {
                    let stamp = live.stamp();
                    if last.as_deref() != Some(stamp.as_str()) {
                        let event = Event::default().event("live").data(stamp.clone());
                        return Some((Ok(event), (app, stop, Some(stamp))));
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
