//! The run: walks the eight steps in order, computing each step's key, replaying it from the
//! action cache when the key is known, running it otherwise, and recording what happened.
//!
//! Mechanism. A step's key (see `fingerprint`) is computed from its config slice and the
//! *output digests* of the steps it depends on, so a step that reruns but yields the same
//! digests leaves its dependents cached (early cutoff). Side effects live in `steps::*`; this
//! module decides what runs, emits events, maintains `ml.lock`, and enforces the rules:
//! an action-cache entry is written only after its outputs are stored; errors are never
//! cached; verdicts (confirm's gate, monitor's threshold, modify's escalation) are.
//!
//! Feedback attempts: after monitor, while the verdict is "fail" and attempts remain, execute
//! and monitor run again with widened params (each attempt its own key, see
//! [`steps::modify::attempt_params`]). modify then records the decision over all attempts.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::user_step::{place_of, position, walk_order};
use crate::error::Diagnostic;
use crate::fingerprint::{diff_inputs, KeyInputs, Reason};
use crate::plan::Planner;
use crate::project::{Paths, Step, StepName};
use crate::registry::{Opening, RunRecorder, StepRecord};
use crate::report::{DoneEvent, Printer, StepEvent};
use crate::status::{Freshness, RunStatus, StepStatus};
use crate::steps;
use crate::steps::{Ctx, Mode, StepOutput, StepResult, Verdict};
use crate::store::lockfile::{EngineFingerprint, LockedStep, Lockfile};
use crate::store::{AcLookup, ActionEntry, Store};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run up to and including this step (built-in or `[[steps]]`).
    pub until: Option<StepName>,
    /// Steps forced to rerun (each with everything downstream).
    pub force: Vec<StepName>,
    pub overrides: Vec<String>,
    pub frozen: bool,
    /// Extract an incremental SQL source from scratch (`run --full-refresh`).
    pub full_refresh: bool,
}

/// How the run ended.
#[derive(Debug)]
pub enum Outcome {
    Ok {
        version: Option<String>,
    },
    /// No attempt passed monitor (exit 3).
    Escalated(Diagnostic),
    /// confirm's data-quality gate failed (exit 4).
    GateFailed(Diagnostic),
    /// `--dry-run`/`status`: stopped at the first stale step.
    Planned,
}

impl Outcome {
    /// The status a run with this outcome is recorded with, and the report kept with it (the
    /// escalation or gate error's message).
    pub fn record(&self) -> (RunStatus, Option<String>) {
        match self {
            Outcome::Ok { .. } | Outcome::Planned => (RunStatus::Ok, None),
            Outcome::Escalated(d) => (RunStatus::Escalated, Some(d.message.clone())),
            Outcome::GateFailed(d) => (RunStatus::GateFailed, Some(d.message.clone())),
        }
    }

    /// The status of the `done` event (DESIGN.md §3.2: `ok`, `escalated` or `failed`; a failed
    /// gate is `failed` there, `gate_failed` in the registry).
    pub fn done_status(&self) -> RunStatus {
        match self {
            Outcome::Ok { .. } | Outcome::Planned => RunStatus::Ok,
            Outcome::Escalated(_) => RunStatus::Escalated,
            Outcome::GateFailed(_) => RunStatus::Failed,
        }
    }
}

/// Records in the registry how a run ended. One path for `run` and `watch`, so both keep the
/// same status and report.
pub async fn finish_run(run: &RunRecorder<'_>, outcome: &Outcome) -> Result<()> {
    let (status, report) = outcome.record();
    run.finish(status, report.as_deref()).await?;
    Ok(())
}

enum Begin {
    Done(Option<ActionEntry>),
    Run(Pending),
}

/// A step as the walk sees it: a built-in one or a `[[steps]]` one, at its position in walk
/// order (`config::user_step::position`).
#[derive(Debug, Clone)]
struct StepId {
    name: String,
    pos: u32,
    builtin: Option<Step>,
    /// A user step with `cache = false`.
    uncached: bool,
    /// A user step that provides the training data: the built-in steps after it read its
    /// outputs.
    provides: bool,
}

impl StepId {
    fn builtin(step: Step) -> StepId {
        StepId {
            name: step.as_str().to_string(),
            pos: builtin_pos(step),
            builtin: Some(step),
            uncached: false,
            provides: false,
        }
    }

    fn key_inputs(&self, inputs: Value) -> KeyInputs {
        KeyInputs::new(&self.name, inputs)
    }
}

/// A built-in step's position in walk order.
fn builtin_pos(step: Step) -> u32 {
    1000 * (step as u32 + 1)
}

/// A step's recorded outputs: the digests downstream keys see, and the blobs, by output name.
type Produced = (BTreeMap<String, String>, BTreeMap<String, String>);

struct Pending {
    step: StepId,
    attempt: u32,
    ki: KeyInputs,
    key: String,
    reason: Reason,
    locked: Option<LockedStep>,
    started: Instant,
}

/// Runs one step through the cache: `step!(self, STEP, ATTEMPT, SUMMARY, |ctx| BODY)` takes the
/// step's key inputs from the planner and evaluates to the step's `ActionEntry`. It returns from the enclosing function when the step
/// is past `run STEP` (`Outcome::Ok`) or a dry run stopped before it (`Outcome::Planned`).
/// BODY may `.await`.
macro_rules! step {
    ($self:ident, $step:expr, $attempt:expr, $summary:path, |$ctx:ident| $body:expr) => {{
        // `run STEP` stops after STEP.
        if !$self.wanted($step) {
            return Ok(Outcome::Ok { version: None });
        }
        let inputs = $self.inputs($step, $attempt)?;
        let id = StepId::builtin($step);
        let entry = match $self.begin(&id, $attempt, inputs, $summary).await? {
            Begin::Done(entry) => entry,
            Begin::Run(pending) => {
                let $ctx = &mut $self.ctx;
                let out = $body;
                $self.finish(pending, out, $summary).await?
            }
        };
        match entry {
            Some(entry) => {
                $self.planner.record(
                    $step,
                    $attempt,
                    &entry.key,
                    &entry.output_digests,
                    &entry.result,
                );
                $self.produced.insert(
                    $step.as_str().to_string(),
                    (entry.output_digests.clone(), entry.outputs.clone()),
                );
                entry
            }
            None => return Ok(Outcome::Planned),
        }
    }};
}

pub struct Pipeline<'a> {
    pub ctx: Ctx<'a>,
    opts: RunOptions,
    old_lock: Option<Lockfile>,
    new_lock: Lockfile,
    /// The position from which every step reruns (`--force`), once resolved.
    forced_from: Option<u32>,
    /// The position of the last step to run (`run STEP`), once resolved.
    until: Option<u32>,
    /// Each step's recorded outputs so far: (digests downstream keys see, blobs), by output
    /// name; the last attempt's for execute and monitor. User steps' `uses` read it.
    produced: BTreeMap<String, Produced>,
    /// User steps a dry run found stale: the user steps that use them are stale too.
    stale_users: std::collections::BTreeSet<String>,
    /// Set once a step was found stale in dry-run mode: nothing downstream can be keyed.
    planning_stopped: bool,
    /// What a dry run found, step by step.
    pub plan: Vec<PlanEntry>,
    /// Computes every key from the config, the data facts and what was recorded so far.
    planner: Planner,
    /// The tags and their versions, read once, before confirm: the baseline
    /// (`monitor.baseline`) and drift's reference (`production`) come from this one read.
    tagged: Vec<(String, crate::registry::Version)>,
    /// What conclude registered and left tagged ([`Mode::Run`]): the `done` event says it
    /// without reading the registry again.
    concluded: Option<steps::conclude::Concluded>,
}

/// One line of `status` / `run --dry-run`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanEntry {
    pub step: String,
    pub attempt: u32,
    pub state: Freshness,
    pub reason: String,
    /// The reason, structured (`{"kind": …}`), for `explain --json`.
    pub detail: Reason,
}

impl PlanEntry {
    /// The entry as `status --json` (and the UI's `/api/status`) shows it.
    pub fn row(&self) -> serde_json::Value {
        json!({ "step": self.step, "attempt": self.attempt, "state": self.state, "reason": self.reason })
    }
}

impl<'a> Pipeline<'a> {
    pub fn new(
        ctx: Ctx<'a>,
        opts: RunOptions,
        old_lock: Option<Lockfile>,
        planner: Planner,
    ) -> Pipeline<'a> {
        let h2o = &ctx.config.h2o;
        let new_lock = Lockfile::new(EngineFingerprint {
            version: h2o.version.clone(),
            nodes: h2o.nodes,
            threads: h2o.threads.filter(|_| h2o.nodes > 1),
        });
        // Built-in names resolve now; `[[steps]]` names when the walk starts ([`Pipeline::resolve`]).
        let config = ctx.config;
        let forced_from = opts
            .force
            .iter()
            .filter_map(|n| position(config, &n.0))
            .min();
        let until = opts.until.as_ref().and_then(|n| position(config, &n.0));
        Pipeline {
            ctx,
            opts,
            old_lock,
            new_lock,
            forced_from,
            until,
            produced: BTreeMap::new(),
            stale_users: Default::default(),
            planning_stopped: false,
            plan: Vec::new(),
            planner,
            tagged: Vec::new(),
            concluded: None,
        }
    }

    /// Hands the planner back (to keep its memo tables for the next plan, as `watch` does).
    pub fn into_planner(self) -> Planner {
        self.planner
    }

    fn planning(&self) -> bool {
        self.ctx.mode == Mode::Plan
    }

    fn wanted(&self, step: Step) -> bool {
        self.wanted_pos(builtin_pos(step))
    }

    fn wanted_pos(&self, pos: u32) -> bool {
        self.until.is_none_or(|u| pos <= u)
    }

    /// Checks that every step named by `run STEP` and `--force` exists in this project.
    fn resolve(&self) -> Result<()> {
        let config = self.ctx.config;
        for name in self.opts.until.iter().chain(&self.opts.force) {
            if position(config, &name.0).is_none() {
                let order = walk_order(config);
                let mut d = Diagnostic::new(format!("there is no step `{}`", name.0))
                    .exit(crate::error::Exit::Usage);
                d = match crate::suggest::closest(&name.0, order.iter().map(String::as_str)) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint(format!("the steps are {}", order.join(", "))),
                };
                return Err(d.into());
            }
        }
        Ok(())
    }

    /// Looks a step up. `Done(Some)` replays it, `Done(None)` means a dry run stops here, and
    /// `Run` hands back what [`Pipeline::finish`] needs once the caller has run the step.
    #[allow(
        clippy::too_many_lines,
        reason = "the cache lookup's decision (hit, miss, corrupt, restored, planned) in one place"
    )]
    async fn begin(
        &mut self,
        step: &StepId,
        attempt: u32,
        inputs: Value,
        summary: fn(&Value) -> String,
    ) -> Result<Begin> {
        if self.planning_stopped {
            return Ok(Begin::Done(None));
        }
        let ki = step.key_inputs(inputs);
        let key = ki.key();
        if self.ctx.printer.verbose() >= 2 {
            self.ctx.printer.detail(
                2,
                &format!("{} key {key} from {}", step.name, ki.canonical_json()),
            );
        }
        let locked = self
            .old_lock
            .as_ref()
            .and_then(|l| l.entry(&step.name, attempt))
            .cloned();
        if self.opts.frozen {
            match &locked {
                Some(l) if l.key == key => {}
                Some(l) => {
                    let changes = diff_inputs(&l.inputs, &ki.inputs);
                    return Err(Diagnostic::new(format!(
                        "`ml.lock` is out of date: the key of step `{}` changed ({})",
                        step.name,
                        if changes.is_empty() {
                            "format".to_string()
                        } else {
                            changes.join(", ")
                        }
                    ))
                    .hint("run `mlbuild run` without `--frozen` and commit the updated `ml.lock`")
                    .into());
                }
                None => {
                    return Err(Diagnostic::new(format!(
                        "`ml.lock` has no entry for step `{}` (attempt {attempt})",
                        step.name
                    ))
                    .hint("run `mlbuild run` without `--frozen` and commit the updated `ml.lock`")
                    .into())
                }
            }
        }
        let forced_by_flag = self.forced_from.is_some_and(|f| step.pos >= f);
        let forced = forced_by_flag || step.uncached;
        let lookup = if forced {
            None
        } else {
            Some(self.ctx.store.ac_get(&key))
        };
        let reason = match lookup {
            Some(AcLookup::Hit(entry)) => {
                let entry = *entry;
                if self.planning() {
                    self.plan.push(PlanEntry {
                        step: step.name.clone(),
                        attempt,
                        state: Freshness::Fresh,
                        reason: Reason::Cached.render(),
                        detail: Reason::Cached,
                    });
                } else {
                    self.emit(
                        &step.name,
                        attempt,
                        &key,
                        StepStatus::Cached,
                        0,
                        &entry.result,
                        &Reason::Cached,
                        &summary(&entry.result),
                    )
                    .await;
                }
                self.lock_entry(&step.name, attempt, &key, &ki, &entry);
                return Ok(Begin::Done(Some(entry)));
            }
            None if forced_by_flag => Reason::Forced,
            None => Reason::Uncached,
            Some(AcLookup::Miss) => match &locked {
                Some(l) if l.key != key => match step.builtin {
                    Some(builtin) => {
                        let store = self.ctx.store;
                        Reason::classify(builtin, &l.inputs, &ki.inputs, |digest| {
                            steps::locate::remembered_profile(store, digest).map(|p| p.rows)
                        })
                    }
                    None => Reason::classify_user(&l.inputs, &ki.inputs),
                },
                Some(_) => Reason::CacheEntryMissing,
                None => Reason::NeverRun,
            },
            Some(AcLookup::Corrupt) => Reason::CacheEntryCorrupt,
            Some(AcLookup::OutputMissing(d)) => Reason::OutputMissing { digest: d },
        };
        // A local miss may be a remote hit (restored into the local store, verified).
        if !forced && !self.planning() {
            if let Some(entry) = self.restore(step, attempt, &ki, &key, summary).await {
                self.lock_entry(&step.name, attempt, &key, &ki, &entry);
                return Ok(Begin::Done(Some(entry)));
            }
        }
        if self.planning() {
            self.plan.push(PlanEntry {
                step: step.name.clone(),
                attempt,
                state: Freshness::Stale,
                reason: reason.render(),
                detail: reason.clone(),
            });
            // A stale user step stops only the user steps that use it: the built-in steps do
            // not read its outputs.
            if step.builtin.is_some() || step.provides {
                self.planning_stopped = true;
            } else {
                self.stale_users.insert(step.name.clone());
            }
            return Ok(Begin::Done(None));
        }
        if let Some(run) = self.ctx.run {
            // The run's row is written before a step executes (docs/registry.md).
            run.start_step(&step.name, attempt).await?;
        }
        Ok(Begin::Run(Pending {
            step: step.clone(),
            attempt,
            ki,
            key,
            reason,
            locked,
            started: Instant::now(),
        }))
    }

    /// Records a step that ran: the action-cache entry (only on success), the event, the lock.
    #[allow(
        clippy::too_many_lines,
        reason = "stores outputs, the entry, ml.lock's line and the event in the order the rules require"
    )]
    async fn finish(
        &mut self,
        p: Pending,
        out: Result<StepOutput>,
        summary: fn(&Value) -> String,
    ) -> Result<Option<ActionEntry>> {
        let Pending {
            step,
            attempt,
            ki,
            key,
            reason,
            locked,
            started,
        } = p;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let ms = started.elapsed().as_millis() as u64;
                self.emit(
                    &step.name,
                    attempt,
                    &key,
                    StepStatus::Failed,
                    ms,
                    &Value::Null,
                    &reason,
                    "",
                )
                .await;
                return Err(e.context(format!("step `{}` failed", step.name)));
            }
        };
        // Sizes let a remote cache's reply be cut off at the right length (`store::remote`).
        let output_sizes = out
            .outputs
            .iter()
            .filter_map(|(name, d)| {
                let size = std::fs::metadata(self.ctx.store.blob_path(d)).ok()?.len();
                Some((name.clone(), size))
            })
            .collect();
        let entry = ActionEntry {
            step: step.name.clone(),
            key: key.clone(),
            inputs: ki.inputs.clone(),
            output_digests: out.output_digests.unwrap_or_else(|| out.outputs.clone()),
            outputs: out.outputs,
            result: out.result,
            output_sizes,
        };
        crate::faultpoint::hit(&format!("pipeline.before-action-entry.{}", step.name));
        self.ctx
            .store
            .ac_put(&entry)
            .context("recording the step in the action cache")?;
        crate::faultpoint::hit(&format!("pipeline.after-action-entry.{}", step.name));
        if self.opts.frozen {
            if let Some(l) = &locked {
                if l.outputs != entry.output_digests {
                    return Err(Diagnostic::new(format!(
                        "step `{}` produced outputs that differ from `ml.lock` ({})",
                        step.name,
                        diff_inputs(&json!(l.outputs), &json!(entry.output_digests)).join(", ")
                    ))
                    .hint("the step is not reproducible with these settings, or the lock came from another engine; rerun without `--frozen` to update the lock")
                    .into());
                }
            }
        }
        let ms = started.elapsed().as_millis() as u64;
        self.emit(
            &step.name,
            attempt,
            &key,
            StepStatus::Ran,
            ms,
            &entry.result,
            &reason,
            &summary(&entry.result),
        )
        .await;
        if let Some(remote) = self.ctx.store.remote().filter(|_| !step.uncached) {
            remote.upload(self.ctx.store, &entry).await;
            self.remote_warnings();
        }
        self.lock_entry(&step.name, attempt, &key, &ki, &entry);
        Ok(Some(entry))
    }

    /// Restores a step from the remote cache, if there is one and it has the key, and the
    /// entry agrees with what this run knows (`steps::restored`); a refused entry is a miss
    /// with one warning. Recomputed steps (define, confirm, monitor, modify) keep the entry
    /// computed here.
    async fn restore(
        &mut self,
        step: &StepId,
        attempt: u32,
        ki: &KeyInputs,
        key: &str,
        summary: fn(&Value) -> String,
    ) -> Option<ActionEntry> {
        let remote = self.ctx.store.remote()?;
        if step.uncached {
            return None;
        }
        let started = Instant::now();
        let fetched = remote.fetch(self.ctx.store, key).await;
        self.remote_warnings();
        let mut entry = fetched?;
        // A user step's entry is its key's: nothing beyond it to agree with.
        let checked = match step.builtin {
            Some(builtin) => {
                let known = self.known(builtin).await;
                steps::restored::check(&mut self.ctx, builtin, attempt, &entry, &known).await
            }
            None => Ok(None),
        };
        match checked {
            Ok(None) => {}
            Ok(Some(out)) => {
                entry = ActionEntry {
                    output_digests: out.output_digests.unwrap_or_else(|| out.outputs.clone()),
                    output_sizes: out
                        .outputs
                        .iter()
                        .filter_map(|(name, d)| {
                            let size = std::fs::metadata(self.ctx.store.blob_path(d)).ok()?;
                            Some((name.clone(), size.len()))
                        })
                        .collect(),
                    outputs: out.outputs,
                    result: out.result,
                    inputs: ki.inputs.clone(),
                    ..entry
                }
            }
            Err(why) => {
                remote.refuse(&entry, &why);
                self.remote_warnings();
                return None;
            }
        }
        if remote.accept(self.ctx.store, &entry) != crate::store::remote::Restore::Restored {
            self.remote_warnings();
            return None;
        }
        let ms = started.elapsed().as_millis() as u64;
        let r = &entry.result;
        self.emit(
            &step.name,
            attempt,
            key,
            StepStatus::Restored,
            ms,
            r,
            &Reason::Restored,
            &summary(r),
        )
        .await;
        Some(entry)
    }

    /// What this run knows that a restored entry of `step` must agree with.
    async fn known(&self, step: Step) -> steps::restored::Known {
        let source = self
            .planner
            .key_inputs(Step::Locate, 1)
            .ok()
            .and_then(|v| v["source"].as_str().map(str::to_string))
            .unwrap_or_default();
        let mut upstream = BTreeMap::new();
        let attempts = self.ctx.config.modify.max_attempts.max(1);
        for s in Step::ALL.iter().copied().filter(|s| *s < step) {
            let last = if matches!(s, Step::Execute | Step::Monitor) {
                attempts
            } else {
                1
            };
            for n in 1..=last {
                let Some(key) = self.planner.recorded_key(s, n) else {
                    break;
                };
                if let AcLookup::Hit(e) = self.ctx.store.ac_get(&key) {
                    upstream.insert((s, n), *e);
                }
            }
        }
        let drift = if step == Step::Confirm {
            self.drift_reference()
        } else {
            None
        };
        steps::restored::Known {
            source,
            upstream,
            drift,
        }
    }

    fn remote_warnings(&self) {
        if let Some(remote) = self.ctx.store.remote() {
            for w in remote.take_warnings() {
                self.ctx.printer.warn(&w);
            }
        }
    }

    fn lock_entry(
        &mut self,
        step: &str,
        attempt: u32,
        key: &str,
        ki: &KeyInputs,
        entry: &ActionEntry,
    ) {
        self.new_lock.steps.push(LockedStep {
            step: step.to_string(),
            attempt,
            key: key.to_string(),
            inputs: ki.inputs.clone(),
            outputs: entry.output_digests.clone(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn emit(
        &self,
        step: &str,
        attempt: u32,
        key: &str,
        status: StepStatus,
        ms: u64,
        result: &Value,
        reason: &Reason,
        summary: &str,
    ) {
        let verdict = result
            .get("verdict")
            .and_then(Value::as_str)
            .map(str::to_string);
        let event = StepEvent {
            event: "step",
            step: step.to_string(),
            status,
            key: key.to_string(),
            attempt,
            duration_ms: ms,
            verdict,
            reason: reason.render(),
            summary: summary.to_string(),
        };
        self.ctx.printer.step(&event);
        if let Some(run) = self.ctx.run {
            let _ = run
                .step(StepRecord::now(
                    step,
                    attempt,
                    status,
                    key,
                    ms,
                    &event.reason,
                ))
                .await;
        }
    }

    /// Runs the pipeline. Returns the outcome and the done event to print.
    pub async fn run(&mut self) -> Result<(Outcome, DoneEvent)> {
        let walked = self.walk().await;
        // A background start still under way decides `h2o_started` before the event says it.
        self.ctx.settle_engine().await;
        let outcome = walked?;
        let mut done = DoneEvent {
            event: "done",
            status: outcome.done_status(),
            h2o_started: self.ctx.engine_started(),
            version: None,
            model: None,
            tags: Default::default(),
        };
        let concluded = self.concluded.take();
        match (&outcome, concluded) {
            (Outcome::Ok { version: Some(v) }, Some(c)) if c.id == *v => {
                done.tags = c.tags;
                done.model = Some(c.model);
                done.version = Some(c.id);
            }
            (outcome, _) => {
                if let Ok(registry) = self.ctx.registry().await {
                    done.tags = registry.tags().await.unwrap_or_default();
                }
                if let Outcome::Ok { version: Some(v) } = outcome {
                    let registry = self.ctx.registry().await?;
                    if let Ok(Some(version)) = registry.get(v).await {
                        done.model = Some(version.model.clone());
                    }
                    done.version = Some(v.clone());
                }
            }
        }
        // The lock records complete runs of the file's own inputs: not `--set`, not a partial run.
        let complete = self.opts.until.is_none()
            && matches!(outcome, Outcome::Ok { .. } | Outcome::Escalated(_));
        if complete && self.opts.overrides.is_empty() && !self.opts.frozen && !self.planning() {
            self.new_lock
                .save(&self.ctx.paths.lockfile)
                .context("writing `ml.lock`")?;
        }
        Ok((outcome, done))
    }

    /// Whether this run will certainly run execute (so H2O may start while the data steps
    /// work): execute is within the run's target, and either `--force` reaches it or no cache
    /// could answer for it — `ml.lock` records no execute, no remote cache is configured and
    /// the local action cache holds no execute entry (a first run in a fresh cache). Never in a
    /// dry run, `run confirm` or with `--frozen`; `MLBUILD_H2O_EARLY_START=0` turns it off.
    fn execute_certain(&self) -> bool {
        let off = std::env::var("MLBUILD_H2O_EARLY_START").is_ok_and(|v| v == "0");
        if off || self.planning() || !self.wanted(Step::Execute) || self.opts.frozen {
            return false;
        }
        if self
            .forced_from
            .is_some_and(|f| f <= builtin_pos(Step::Execute))
        {
            return true;
        }
        // A project whose `ml.lock` records execute most likely has its entry: the action cache
        // is read only when it does not (a first run), so a no-op run reads nothing more.
        let locked = self
            .old_lock
            .as_ref()
            .is_some_and(|l| l.entry(Step::Execute.as_str(), 1).is_some());
        let store = self.ctx.store;
        !locked && store.remote().is_none() && !store.may_hold_entry_for(Step::Execute.as_str())
    }

    /// A step's key inputs, from the planner.
    fn inputs(&self, step: Step, attempt: u32) -> Result<Value> {
        self.planner
            .key_inputs(step, attempt)
            .map_err(|e| anyhow::anyhow!("planning step `{step}`: {e}"))
    }

    #[allow(
        clippy::too_many_lines,
        reason = "the eight steps in order, a few lines each; splitting it would hide the order"
    )]
    async fn walk(&mut self) -> Result<Outcome> {
        let config = self.ctx.config;
        self.resolve()?;
        if self.execute_certain() {
            self.ctx.prestart_engine();
        }
        // The source, as a snapshot digest (a stat for an unchanged file; a query for SQL).
        let source =
            steps::locate::materialize(&self.ctx, &self.opts.overrides, self.opts.full_refresh)
                .await?;
        let source_digest = source.digest.clone();
        let (profile, collected) = steps::locate::profile_collecting(
            self.ctx.store,
            &source.file,
            &source_digest,
            &config.define.target,
            &config.prepare,
        )
        // A file source read as it is is named as `[locate] path` names it.
        .map_err(|e| match e.downcast::<crate::table::TableError>() {
            Ok(t) => t.relative_to(&self.ctx.paths.project).into(),
            Err(e) => e,
        })?;
        self.ctx.collected = Some((source_digest.clone(), collected));
        steps::define::check_columns(config, &profile)?;
        self.planner.set_data(source_digest.clone(), &profile);

        // 1 define
        let define = step!(
            self,
            Step::Define,
            1,
            steps::summary::<steps::define::DefineResult>,
            |_ctx| { steps::define::run(config, &profile) }
        );
        let spec = steps::define::spec(config, &define.result)?;
        if let Some(end) = self.user_steps(Step::Define).await? {
            return Ok(end);
        }

        // 2 locate
        let locate = step!(
            self,
            Step::Locate,
            1,
            steps::summary::<steps::locate::LocateResult>,
            |ctx| { steps::locate::run(ctx.store, &source, &profile) }
        );
        if !self.planning() {
            source.remember(self.ctx.store)?;
        }
        if let Some(end) = self.user_steps(Step::Locate).await? {
            return Ok(end);
        }

        // 3 prepare
        let snapshot = locate.output_digests["snapshot"].clone();
        let prepare = step!(
            self,
            Step::Prepare,
            1,
            steps::summary::<steps::prepare::PrepareResult>,
            |ctx| { steps::prepare::run(ctx, &snapshot, &spec).await }
        );
        // A cached prepare left what the profile pass collected unused: not held through
        // training.
        self.ctx.collected = None;
        if let Some(end) = self.user_steps(Step::Prepare).await? {
            return Ok(end);
        }
        // A user step that provides the training data: confirm, execute and monitor (and their
        // keys) read its files instead of prepare's.
        let prepare = match config.steps.iter().find(|s| !s.provides.is_empty()) {
            None => prepare,
            Some(user) => {
                let (_, blobs) = self.produced.get(&user.name).with_context(|| {
                    format!(
                        "step `{}` provides the training data but recorded nothing",
                        user.name
                    )
                })?;
                let provided = steps::user::provided_prepare(
                    self.ctx.store,
                    &prepare,
                    user,
                    blobs,
                    &spec.target,
                )
                .with_context(|| format!("step `{}` failed", user.name))?;
                self.planner.record(
                    Step::Prepare,
                    1,
                    &provided.key,
                    &provided.output_digests,
                    &provided.result,
                );
                provided
            }
        };

        // The registry is first needed here: the baseline enters monitor's key, drift's
        // reference confirm's (the data steps ran while it was being opened).
        if let Ok(registry) = self.ctx.registry().await {
            self.tagged = registry.tagged().await.unwrap_or_default();
        }
        let baseline = self.tagged_version(&config.monitor.baseline);
        self.planner
            .set_baseline(baseline.map(|v| v.canonical.clone()));
        let drift_reference = self.drift_reference();
        self.planner
            .set_drift_reference(drift_reference.as_ref().map(|r| r.train.clone()));

        // 4 confirm
        let confirm = step!(
            self,
            Step::Confirm,
            1,
            steps::summary::<steps::confirm::ConfirmResult>,
            |ctx| { steps::confirm::run(ctx, &prepare, &spec, drift_reference.as_ref()) }
        );
        if steps::confirm::ConfirmResult::read(&confirm.result)?.verdict == Verdict::Fail {
            return Ok(Outcome::GateFailed(steps::confirm::gate_error(
                &confirm,
                self.ctx.store,
                &self.ctx.paths.project,
            )));
        }
        if let Some(end) = self.user_steps(Step::Confirm).await? {
            return Ok(end);
        }

        // 5–7 execute, monitor, and the feedback attempts that modify asks for
        let max_attempts = config.modify.max_attempts.max(1);
        let mut attempts: Vec<(ActionEntry, ActionEntry)> = Vec::new();
        for attempt in 1..=max_attempts {
            let params = steps::modify::attempt_params(&config.execute, attempt);
            let execute = step!(
                self,
                Step::Execute,
                attempt,
                steps::summary::<steps::execute::ExecuteResult>,
                |ctx| { steps::execute::run(ctx, &prepare, &spec, &params, attempt).await }
            );
            let monitor = step!(
                self,
                Step::Monitor,
                attempt,
                steps::summary::<steps::monitor::MonitorResult>,
                |ctx| { steps::monitor::run(ctx, &prepare, &execute, &spec).await }
            );
            let pass =
                steps::monitor::MonitorResult::read(&monitor.result)?.verdict == Verdict::Pass;
            attempts.push((execute, monitor));
            if pass || !self.wanted(Step::Modify) {
                break;
            }
        }
        // Steps placed after execute or monitor run once, after the last attempt.
        for place in [Step::Execute, Step::Monitor] {
            if let Some(end) = self.user_steps(place).await? {
                return Ok(end);
            }
        }

        // 7 modify: the decision over all attempts
        let modify = step!(
            self,
            Step::Modify,
            1,
            steps::summary::<steps::modify::ModifyResult>,
            |ctx| { steps::modify::run(ctx, &attempts) }
        );
        let decided = steps::modify::ModifyResult::read(&modify.result)?;
        let Some(chosen) = decided.chosen_attempt else {
            // Planning reports the escalation; only a run notifies the escalation hooks.
            return Ok(Outcome::Escalated(match self.ctx.mode {
                Mode::Run => steps::modify::escalate(&self.ctx, &decided).await,
                Mode::Plan => steps::modify::escalation_error(&decided),
            }));
        };
        if let Some(end) = self.user_steps(Step::Modify).await? {
            return Ok(end);
        }

        // 8 conclude
        let (execute, monitor) = attempts
            .get(chosen as usize - 1)
            .with_context(|| format!("modify chose attempt {chosen}, which did not run"))?;
        let conclude = step!(
            self,
            Step::Conclude,
            1,
            steps::summary::<steps::conclude::ConcludeResult>,
            |ctx| { steps::conclude::run(ctx, execute, monitor, &spec, &locate, &prepare).await }
        );
        if let Some(end) = self.user_steps(Step::Conclude).await? {
            return Ok(end);
        }
        match self.ctx.mode {
            // Replaying conclude registers the version in a registry that lacks it (a fresh CI
            // runner), repairs its bytes and the `models/` files; otherwise it changes nothing.
            Mode::Run => {
                let concluded = steps::conclude::ensure(&mut self.ctx, &conclude, monitor).await?;
                let version = concluded.id.clone();
                self.concluded = Some(concluded);
                Ok(Outcome::Ok {
                    version: Some(version),
                })
            }
            // Planning only says what `run` would do about the version.
            Mode::Plan => {
                if let Some(note) = steps::conclude::inspect(&self.ctx, &conclude).await? {
                    if let Some(entry) = self.plan.iter_mut().rev().find(|e| e.step == "conclude") {
                        entry.reason = format!("{}; {note}", entry.reason);
                    }
                }
                Ok(Outcome::Planned)
            }
        }
    }

    /// Runs the `[[steps]]` placed after `place`, in file order, each through the cache as the
    /// built-in steps are. `Some(outcome)` ends the walk: `run STEP` stopped before one
    /// (`Ok`), or a dry run stopped at a stale one (`Planned`).
    async fn user_steps(&mut self, place: Step) -> Result<Option<Outcome>> {
        let config = self.ctx.config;
        for user in config.steps.iter().filter(|s| place_of(s) == Some(place)) {
            let pos = position(config, &user.name).unwrap_or(u32::MAX);
            if !self.wanted_pos(pos) {
                return Ok(Some(Outcome::Ok { version: None }));
            }
            if self.planning_stopped {
                return Ok(Some(Outcome::Planned));
            }
            let behind = user
                .uses
                .iter()
                .filter_map(|u| u.split_once('.').map(|(s, _)| s))
                .find(|s| self.stale_users.contains(*s))
                .map(str::to_string);
            if let Some(step) = behind {
                let detail = Reason::UpstreamStale { step };
                self.plan.push(PlanEntry {
                    step: user.name.clone(),
                    attempt: 1,
                    state: Freshness::Stale,
                    reason: detail.render(),
                    detail,
                });
                self.stale_users.insert(user.name.clone());
                continue;
            }
            let mut upstream = BTreeMap::new();
            for used in &user.uses {
                let Some((step, output)) = used.split_once('.') else {
                    continue;
                };
                let Some((digests, blobs)) = self.produced.get(step) else {
                    continue;
                };
                if let Some(blob) = blobs.get(output) {
                    let digest = digests.get(output).unwrap_or(blob);
                    upstream.insert(used.clone(), (digest.clone(), blob.clone()));
                }
            }
            let keyed = steps::user::key_inputs(&self.ctx, user, &upstream).await?;
            let id = StepId {
                name: user.name.clone(),
                pos,
                builtin: None,
                uncached: !user.cache,
                provides: !user.provides.is_empty(),
            };
            let summary = steps::user::summary;
            let entry = match self.begin(&id, 1, keyed.inputs.clone(), summary).await? {
                Begin::Done(entry) => entry,
                Begin::Run(pending) => {
                    let out = steps::user::run(&self.ctx, user, &keyed).await;
                    self.finish(pending, out, summary).await?
                }
            };
            let Some(entry) = entry else {
                if self.stale_users.contains(&user.name) {
                    continue;
                }
                return Ok(Some(Outcome::Planned));
            };
            self.produced.insert(
                user.name.clone(),
                (entry.output_digests.clone(), entry.outputs.clone()),
            );
        }
        Ok(None)
    }

    /// The prepared training rows of the version tagged `production` (drift's reference), when
    /// drift is enabled and that version recorded them (`provenance.prepared_train`).
    fn drift_reference(&self) -> Option<steps::confirm::DriftReference> {
        if !self.ctx.config.confirm.drift.enabled {
            return None;
        }
        let version = self.tagged_version("production")?;
        let train = version.provenance["prepared_train"].as_str()?.to_string();
        Some(steps::confirm::DriftReference {
            version: version.id.clone(),
            train,
        })
    }

    /// The version `tag` named when the tags were read (a registry that cannot be read has none).
    fn tagged_version(&self, tag: &str) -> Option<&crate::registry::Version> {
        self.tagged.iter().find(|(t, _)| t == tag).map(|(_, v)| v)
    }
}

/// Plans without running: each step fresh or stale, with its reason, up to the first stale
/// one, then the rest as stale because of it ([`complete_plan`]). Reads only ([`Mode::Plan`]): no run lock, no remote
/// cache, `registry` opened read-only by the caller; never starts H2O. `status`, `explain`,
/// `run --dry-run` and the UI's pipeline page all plan here.
pub async fn plan(
    paths: &Paths,
    registry: &Opening,
    printer: &Printer,
    opts: RunOptions,
) -> Result<Vec<PlanEntry>> {
    let loaded = crate::config::load(&paths.project, &opts.overrides)?;
    let store = Store::open(&paths.cache)?;
    let old_lock = Lockfile::load(&paths.lockfile)?;
    let engine = Ctx::engine_slot();
    let ctx = Ctx::new(
        paths,
        &loaded.config,
        &store,
        printer,
        registry,
        &engine,
        None,
        Mode::Plan,
    );
    let planner = Planner::for_config(&loaded, &opts.overrides);
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, planner);
    pipeline.run().await?;
    Ok(complete_plan(
        &std::mem::take(&mut pipeline.plan),
        &walk_order(&loaded.config),
    ))
}

/// The plan, completed: steps after the first stale one are stale because of it (their keys
/// depend on outputs that do not exist yet). `order` names every step in walk order.
fn complete_plan(plan: &[PlanEntry], order: &[String]) -> Vec<PlanEntry> {
    let mut rows = plan.to_vec();
    // The walk stops at a stale built-in step; a stale user step stops only its users.
    let builtin = |p: &&PlanEntry| Step::ALL.iter().any(|s| s.as_str() == p.step);
    let stale = |p: &&PlanEntry| p.state == Freshness::Stale;
    let first = plan
        .iter()
        .filter(stale)
        .find(builtin)
        .or_else(|| plan.iter().find(stale));
    if let Some(first) = first {
        let seen: Vec<&str> = plan.iter().map(|p| p.step.as_str()).collect();
        for step in order
            .iter()
            .map(String::as_str)
            .filter(|s| !seen.contains(s))
        {
            let detail = Reason::UpstreamStale {
                step: first.step.clone(),
            };
            rows.push(PlanEntry {
                step: step.to_string(),
                attempt: 1,
                state: Freshness::Stale,
                reason: detail.render(),
                detail,
            });
        }
    }
    rows
}
