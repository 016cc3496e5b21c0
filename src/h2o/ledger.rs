//! What a run started and created on the cluster, so that nothing of it outlives the run.
//!
//! Every [`Client`] (and its clones, so one engine) keeps a [`Ledger`]: the jobs it started and
//! has not yet seen end, the job-starting requests whose answer (the job key) has not arrived,
//! the keys it created or is creating (frames, models, AutoML projects) and its Rapids sessions.
//! A key is entered *before* the request that creates it and leaves when a delete succeeds; a
//! job leaves when a poll sees it DONE, FAILED or CANCELLED. So a future dropped by Ctrl-C
//! leaves its work in the ledger, and [`Client::teardown`] can undo it:
//!
//! 1. a job-starting request cut off before its answer: `GET /3/Jobs`, and the RUNNING jobs whose
//!    destination is one of those keys join the known jobs (checked twice, 300 ms apart, since
//!    H2O may still be handling the request);
//! 2. `POST /3/Jobs/{key}/cancel` for every known job, then `GET /3/Jobs/{key}` until each has
//!    ended (an AutoML job ends once its running model builds have stopped);
//! 3. `DELETE /4/sessions/{id}` for the Rapids sessions (their `tmp=` frames go with them);
//! 4. the AutoML projects ([`Client::delete_automl`]: with `cascade`, which removes the models,
//!    leaderboard and H2O's training split, then the validation/blending splits, which a cascade
//!    leaves behind on 3.46.0.11), then the other keys, newest first.
//!
//! Measured on 3.46.0.11: a cancelled AutoML is CANCELLED within 1 s, its running model build
//! too; everything built so far stays (models, the AutoML object, the uploaded frames and
//! AutoML's `AutoML_<n>_<ts>_{training,validation}_<frame>` splits) until deleted.
//!
//! Teardown has no deadline of its own; the caller bounds it ([`super::Engine::release`]), and
//! what is left in the ledger afterwards ([`Client::leftovers`]) is what could not be removed.
//! On a managed local node none of this is needed: stopping the JVM removes everything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::client::{enc, Client, Job};
use super::H2oError;

/// Each request of a teardown: short, so one that hangs does not eat the caller's budget.
const TEARDOWN_REQUEST: Duration = Duration::from_secs(5);
const TEARDOWN_POLL: Duration = Duration::from_millis(200);

/// What a key names, for messages and for the order of deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyKind {
    /// `project@@response`: deleted first, with cascade (models, leaderboard, splits).
    AutoMl,
    Frame,
    Model,
}

impl KeyKind {
    fn noun(self) -> &'static str {
        match self {
            KeyKind::AutoMl => "AutoML project",
            KeyKind::Frame => "frame",
            KeyKind::Model => "model",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Started and not yet seen to end: job key → description.
    jobs: BTreeMap<String, String>,
    /// Destinations of job-starting requests sent whose answer has not arrived.
    pending: BTreeSet<String>,
    /// Created, or being created, and not yet deleted; in creation order.
    keys: Vec<(String, KeyKind)>,
    /// Rapids sessions begun and not yet ended.
    sessions: BTreeSet<String>,
}

/// What a client's ledger still holds: what the run started or created and has not undone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// `(key, description)` of jobs not seen to end.
    pub jobs: Vec<(String, String)>,
    /// Destinations of job-starting requests whose job was never found.
    pub pending: Vec<String>,
    pub keys: Vec<(String, KeyKind)>,
    pub sessions: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.pending.is_empty()
            && self.keys.is_empty()
            && self.sessions.is_empty()
    }

    /// One phrase naming each item (at most 12, then a count).
    pub fn describe(&self) -> String {
        let mut items: Vec<String> = Vec::new();
        for (key, what) in &self.jobs {
            items.push(format!("{what} job `{key}` (may still be running)"));
        }
        for dest in &self.pending {
            items.push(format!("the job making `{dest}` (may still be running)"));
        }
        for (key, kind) in self.keys.iter().rev() {
            items.push(format!("{} `{key}`", kind.noun()));
        }
        for s in &self.sessions {
            items.push(format!("Rapids session `{s}`"));
        }
        const SHOWN: usize = 12;
        let more = items.len().saturating_sub(SHOWN);
        items.truncate(SHOWN);
        let mut text = items.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    }
}

impl Client {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding this lock leaves plain data behind: keep using it.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters `key` before the request that creates it.
    pub(crate) fn track_key(&self, key: &str, kind: KeyKind) {
        let mut l = self.ledger();
        if !l.keys.iter().any(|(k, _)| k == key) {
            l.keys.push((key.to_string(), kind));
        }
    }

    /// `key` is gone from the cluster (deleted, or removed by H2O itself).
    pub(crate) fn forget_key(&self, key: &str) {
        self.ledger().keys.retain(|(k, _)| k != key);
    }

    pub(crate) fn track_session(&self, session: &str) {
        self.ledger().sessions.insert(session.to_string());
    }

    pub(crate) fn forget_session(&self, session: &str) {
        self.ledger().sessions.remove(session);
    }

    /// Sends a request that starts a job writing to `dest`. While its answer is out, `dest` is
    /// pending: if this future is dropped then, [`Client::teardown`] finds the job by `dest`.
    /// Once the server has answered, no job is hidden; when it refused (an H2O error), `dest`
    /// was not made either and leaves the ledger.
    pub(crate) async fn starting_job<T>(
        &self,
        dest: &str,
        send: impl std::future::Future<Output = Result<T, H2oError>>,
    ) -> Result<T, H2oError> {
        self.ledger().pending.insert(dest.to_string());
        let answer = send.await;
        match &answer {
            // A transport error may come after the server started the job: keep looking.
            Err(H2oError::Http { .. }) => {}
            // H2O refused the request: no job, and nothing was made.
            Err(_) => {
                self.ledger().pending.remove(dest);
                self.forget_key(dest);
            }
            Ok(_) => {
                self.ledger().pending.remove(dest);
            }
        }
        answer
    }

    pub(crate) fn track_job(&self, job: &Job) {
        let what = job.description.clone().unwrap_or_else(|| "H2O".into());
        self.ledger().jobs.insert(job.key.name.clone(), what);
    }

    pub(crate) fn job_ended(&self, key: &str) {
        self.ledger().jobs.remove(key);
    }

    /// Keys of the jobs this client started and has not seen end.
    pub fn running_jobs(&self) -> Vec<String> {
        self.ledger().jobs.keys().cloned().collect()
    }

    /// What this client started or created and has not undone (empty after a clean run).
    pub fn leftovers(&self) -> Leftovers {
        let l = self.ledger();
        Leftovers {
            jobs: l.jobs.iter().map(|(k, d)| (k.clone(), d.clone())).collect(),
            pending: l.pending.iter().cloned().collect(),
            keys: l.keys.clone(),
            sessions: l.sessions.iter().cloned().collect(),
        }
    }

    /// Cancels every job in the ledger and removes every key, as the module doc describes.
    /// Best effort: returns the errors met; what could not be undone stays in the ledger.
    pub async fn teardown(&self) -> Vec<H2oError> {
        let mut errors = Vec::new();
        self.find_pending_jobs(&mut errors).await;
        let jobs = self.running_jobs();
        for key in &jobs {
            if let Err(e) = self.cancel_job(key).await {
                errors.push(e);
            }
        }
        for key in &jobs {
            if let Err(e) = self.wait_ended(key).await {
                errors.push(e);
            }
        }
        let sessions: Vec<String> = self.ledger().sessions.iter().cloned().collect();
        for s in sessions {
            if let Err(e) = self.end_session(&s).await {
                errors.push(e);
            }
        }
        let mut keys = self.ledger().keys.clone();
        keys.reverse();
        // AutoML projects first: their models read the frames.
        keys.sort_by_key(|(_, kind)| *kind != KeyKind::AutoMl);
        for (key, kind) in keys {
            let done = match kind {
                KeyKind::AutoMl => self.delete_automl_within(&key, TEARDOWN_REQUEST).await,
                _ => self.delete_within(&key, false, TEARDOWN_REQUEST).await,
            };
            if let Err(e) = done {
                errors.push(e);
            }
        }
        errors
    }

    /// Looks for the jobs of requests that were cut off before their answer (module doc, 1).
    async fn find_pending_jobs(&self, errors: &mut Vec<H2oError>) {
        for attempt in 0..2 {
            let pending: BTreeSet<String> = self.ledger().pending.clone();
            if pending.is_empty() {
                return;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            match self.list_jobs().await {
                Ok(all) => {
                    for job in all {
                        let dest = job.dest.as_ref().map(|d| d.name.as_str());
                        if job.status == "RUNNING" && dest.is_some_and(|d| pending.contains(d)) {
                            let dest = dest.unwrap_or_default().to_string();
                            self.ledger().pending.remove(&dest);
                            self.track_job(&job);
                        }
                    }
                }
                Err(e) => {
                    errors.push(e);
                    return;
                }
            }
        }
        // Not started, or already ended: nothing runs for them.
        self.ledger().pending.clear();
    }

    /// `GET /3/Jobs`: every job the cluster remembers (large on a long-lived cluster).
    async fn list_jobs(&self) -> Result<Vec<Job>, H2oError> {
        let path = "/3/Jobs";
        let v = self.get_json_within(path, &[], TEARDOWN_REQUEST).await?;
        Ok(v["jobs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|j| serde_json::from_value(j.clone()).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST /3/Jobs/{key}/cancel`. A job H2O no longer knows is forgotten.
    pub async fn cancel_job(&self, key: &str) -> Result<(), H2oError> {
        let path = format!("/3/Jobs/{}/cancel", enc(key));
        let req = self.req(Method::POST, &path, TEARDOWN_REQUEST);
        match self.send(Method::POST, &path, req).await {
            Ok(_) => Ok(()),
            Err(H2oError::Api {
                status: 400 | 404, ..
            }) => {
                self.job_ended(key);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Polls `GET /3/Jobs/{key}` until the job is no longer RUNNING (no deadline: the caller's).
    async fn wait_ended(&self, key: &str) -> Result<(), H2oError> {
        let path = format!("/3/Jobs/{}", enc(key));
        loop {
            let v = match self.get_json_within(&path, &[], TEARDOWN_REQUEST).await {
                Ok(v) => v,
                Err(H2oError::Api {
                    status: 400 | 404, ..
                }) => {
                    self.job_ended(key);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let status = v["jobs"][0]["status"].as_str().unwrap_or("");
            if !matches!(status, "RUNNING" | "CREATED" | "") {
                self.job_ended(key);
                return Ok(());
            }
            tokio::time::sleep(TEARDOWN_POLL).await;
        }
    }

    /// Deletes an AutoML project (`project@@response`) and everything it made: a cascade
    /// `DELETE /3/DKV` removes its models, leaderboard and training split, but leaves the
    /// validation split (`AutoML_<n>_<ts>_validation_<frame>`, made when `nfolds` is 0) on
    /// 3.46.0.11, so the split frames named in `GET /99/AutoML/{key}` are deleted too.
    /// Idempotent.
    pub async fn delete_automl(&self, key: &str) -> Result<(), H2oError> {
        self.delete_automl_within(key, super::client::SHORT).await
    }

    async fn delete_automl_within(&self, key: &str, timeout: Duration) -> Result<(), H2oError> {
        let path = format!("/99/AutoML/{}", enc(key));
        // An unknown project answers 200 with null fields (G17).
        let v = self.get_json_within(&path, &[], timeout).await?;
        let splits = automl_splits(&v);
        for frame in &splits {
            self.track_key(frame, KeyKind::Frame);
        }
        self.delete_within(key, true, timeout).await?;
        for frame in &splits {
            self.delete_within(frame, false, timeout).await?;
        }
        Ok(())
    }
}

/// The frames an AutoML object names that H2O made (its splits and copies are named
/// `AutoML_<n>_<ts>_<role>_<frame>`); the frames mlbuild uploaded are left to their owner.
fn automl_splits(automl: &Value) -> Vec<String> {
    [
        "training_frame",
        "validation_frame",
        "blending_frame",
        "leaderboard_frame",
    ]
    .iter()
    .filter_map(|f| automl[f]["name"].as_str())
    .filter(|name| name.starts_with("AutoML_"))
    .map(str::to_string)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_h2o_made_splits_are_taken_from_an_automl() {
        let v = json!({
            "training_frame": {"name": "mlb1_1_ab_train"},
            "validation_frame": {"name": "AutoML_3_20261203_81158_validation_mlb1_1_ab_train"},
            "blending_frame": null,
            "leaderboard_frame": {"name": "mlb1_1_ab_holdout"},
        });
        assert_eq!(
            automl_splits(&v),
            vec!["AutoML_3_20261203_81158_validation_mlb1_1_ab_train"]
        );
        assert!(automl_splits(&json!({"project_name": null})).is_empty());
    }

    #[test]
    fn leftovers_name_each_item_and_cap_the_list() {
        let c = Client::new("http://127.0.0.1:9").unwrap();
        assert!(c.leftovers().is_empty());
        c.track_key("pr@@CAPSULE", KeyKind::AutoMl);
        c.track_key("pr_train", KeyKind::Frame);
        c.track_key("pr_train", KeyKind::Frame);
        c.track_session("pr");
        let left = c.leftovers();
        assert_eq!(left.keys.len(), 2, "a key is entered once");
        assert_eq!(
            left.describe(),
            "frame `pr_train`, AutoML project `pr@@CAPSULE`, Rapids session `pr`"
        );
        c.forget_key("pr_train");
        c.forget_key("pr@@CAPSULE");
        c.forget_session("pr");
        assert!(c.leftovers().is_empty());
        for i in 0..20 {
            c.track_key(&format!("f{i}"), KeyKind::Frame);
        }
        assert!(c.leftovers().describe().ends_with(" and 8 more"));
    }

    /// A cluster that accepts connections and never answers: teardown stays bounded by its
    /// caller, and the ledger still names what was not removed.
    #[tokio::test]
    async fn an_unresponsive_cluster_leaves_the_ledger_for_the_warning() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let c = Client::new(&url).unwrap();
        c.track_key("pr@@CAPSULE", KeyKind::AutoMl);
        c.track_key("pr_train", KeyKind::Frame);
        c.ledger().jobs.insert("$03$_a".into(), "AutoML".into());
        let t = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_millis(500), c.teardown()).await;
        assert!(r.is_err(), "the hung request holds the teardown");
        assert!(t.elapsed() < Duration::from_secs(2));
        let left = c.leftovers();
        assert_eq!(left.jobs.len(), 1);
        assert_eq!(left.keys.len(), 2);
        drop(listener);
    }
}
