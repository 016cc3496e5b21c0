//! Step 8, conclude: record a version (MOJO + model card + provenance) in the registry, move
//! the `[conclude] promote` tags, and point `models/<tag>.zip` at the tagged MOJO.
//!
//! Registry rules (DESIGN.md §5.3): a MOJO whose canonical digest is already registered keeps
//! its version, and tags move only when conclude registers a version *new to this registry*.
//! Replaying conclude from the cache therefore registers the version where it is missing (a
//! fresh CI runner) and otherwise changes nothing, so a rerun never undoes a rollback. One
//! exception finishes a conclude that was cut short: when the run that registered the version
//! ended `interrupted` or `failed`, the configured tags that have never pointed at the version
//! move now (a kill between the registration and the tag moves otherwise lost them for good).
//! `production` is moved by conclude only when it is in `[conclude] promote` and the chosen
//! attempt's baseline check *passed* (a skipped check — no baseline, or an incompatible one —
//! does not count); otherwise `promote`/`rollback` move it. Tags move and `models/` follows them
//! under the lock of `models/` (`registry::links`); then the `[conclude.deploy]` hooks get
//! `{event, version, tag, model, canonical, card}` per moved tag (non-fatal, see
//! `report::hooks`). All of this happens in [`Mode::Run`] only: planning (`status`, `explain`,
//! `run --dry-run`) calls [`inspect`], which reads.
//!
//! Repairs. A version whose MOJO, card or plot blob has left the store (a read found it corrupt
//! and quarantined it, or it was deleted) is repaired by the next run that concludes it: the
//! same bytes from the remote cache when it has them, else the bytes this conclude made (for the
//! MOJO: a rebuild with the version's canonical digest), recorded in the version's history.
//!
//! [`Mode::Run`]: super::Mode::Run
//!
//! The card's plots (`report::plots`: leaderboard, SHAP importance, holdout ROC or residuals)
//! are SVG blobs of their own: outputs `plot_<name>` of this step (so `cache push`/`pull`/`verify`
//! carry them) and `provenance.plots` of the version (so `cache gc` keeps them while a tag
//! points at it). They are informative: not in `output_digests`, so no key and no `ml.lock` entry
//! depends on them. A plot that cannot be made is a line in the card, never an error.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::execute::ExecuteResult;
use super::monitor::MonitorResult;
use super::{Ctx, ProblemSpec, StepOutput, StepResult};
use crate::config::Problem;
use crate::error::Diagnostic;
use crate::h2o::Leaderboard;
use crate::metrics;
use crate::project::Step;
use crate::registry::{links, Blob, NewVersion, Version};
use crate::report::card::{self, PlotOutcome};
use crate::report::plots;
use crate::store::ActionEntry;

pub async fn run(
    ctx: &mut Ctx<'_>,
    execute: &ActionEntry,
    monitor: &ActionEntry,
    spec: &ProblemSpec,
    locate: &ActionEntry,
    prepare: &ActionEntry,
) -> Result<StepOutput> {
    let leaderboard: Leaderboard =
        serde_json::from_slice(&ctx.store.read_verified(&execute.outputs["leaderboard"])?)?;
    let mut stored = BTreeMap::new();
    let mut card_plots = Vec::new();
    for (name, title, made) in draw_plots(ctx, spec, &leaderboard, prepare, execute, monitor) {
        let outcome = match made {
            Ok(svg) => {
                let digest = ctx.store.put_bytes(svg.as_bytes())?;
                stored.insert(name.to_string(), digest.clone());
                PlotOutcome::Stored { digest }
            }
            Err(reason) => {
                ctx.printer
                    .detail(1, &format!("the card has no {name} plot: {reason}"));
                PlotOutcome::Missing { reason }
            }
        };
        card_plots.push(card::Plot {
            name: name.to_string(),
            title,
            outcome,
        });
    }
    let provenance = provenance(ctx, locate, prepare, execute, &stored);
    let text = card::render(&card::CardInput {
        project: &ctx.paths.project_name(ctx.config),
        spec,
        execute: &execute.result,
        monitor: &monitor.result,
        leaderboard: &leaderboard,
        provenance: &provenance,
        plots: &card_plots,
    });
    let card_digest = ctx.store.put_bytes(text.as_bytes())?;
    let mut outputs = super::outputs([
        ("card", card_digest.clone()),
        ("mojo", execute.outputs["mojo"].clone()),
    ]);
    outputs.extend(
        stored
            .iter()
            .map(|(name, digest)| (format!("plot_{name}"), digest.clone())),
    );
    Ok(StepOutput {
        outputs,
        output_digests: Some(super::outputs([(
            "mojo",
            execute.output_digests["mojo"].clone(),
        )])),
        result: ConcludeResult {
            canonical: execute.output_digests["mojo"].clone(),
            model: execute.outputs["mojo"].clone(),
            card: card_digest,
            algo: ExecuteResult::read(&execute.result)?.algo,
            metrics: MonitorResult::read(&monitor.result)?.metrics,
            provenance,
        }
        .to_value(),
    })
}

/// The card's plots in card order, `(name, title, SVG or why there is none)`.
fn draw_plots(
    ctx: &Ctx<'_>,
    spec: &ProblemSpec,
    leaderboard: &Leaderboard,
    prepare: &ActionEntry,
    execute: &ActionEntry,
    monitor: &ActionEntry,
) -> Vec<(&'static str, String, Result<String, String>)> {
    let mut out = Vec::new();
    // The metric AutoML sorted by; the primary metric if the leaderboard lacks that column.
    let metric = if leaderboard.columns.contains(&leaderboard.sort_metric) {
        &leaderboard.sort_metric
    } else {
        &spec.metric
    };
    out.push((
        "leaderboard",
        "Leaderboard".to_string(),
        plots::leaderboard(leaderboard, metric).map_err(|e| e.to_string()),
    ));

    let shap = &MonitorResult::read(&monitor.result)
        .map(|m| m.shap)
        .unwrap_or_default();
    let made = match shap["importance"].as_array() {
        Some(rows) => {
            let importance: Vec<(String, f64)> = rows
                .iter()
                .filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_f64()?)))
                .collect();
            plots::shap_importance(&importance, &shap_about(shap)).map_err(|e| e.to_string())
        }
        None => Err(match (shap["skipped"].as_str(), shap["error"].as_str()) {
            (Some(why), _) => format!("SHAP was skipped ({why})."),
            (_, Some(error)) => format!("SHAP failed: {error}"),
            _ => "monitor recorded no SHAP importance.".to_string(),
        }),
    };
    out.push(("shap", "SHAP importance".to_string(), made));

    let (name, title) = match spec.problem {
        Problem::Regression => ("residuals", "Residuals on the holdout"),
        Problem::Binary => ("roc", "ROC on the holdout"),
        Problem::Multiclass => ("roc", "One-vs-rest ROC on the holdout"),
    };
    let made = holdout_plot(ctx, spec, prepare, execute).map_err(|e| format!("{e:#}"));
    out.push((name, title.to_string(), made));
    out
}

/// How monitor's SHAP was computed, for the plot's title: `TreeSHAP (native), 95 rows, summed
/// over 3 classes`.
fn shap_about(shap: &serde_json::Value) -> String {
    let mut about = vec![shap["method"].as_str().unwrap_or("SHAP").to_string()];
    if let Some(rows) = shap["rows"].as_u64() {
        about.push(format!("{rows} rows"));
    }
    if let Some(classes) = shap["by_class"].as_object() {
        about.push(format!("summed over {} classes", classes.len()));
    }
    about.join(", ")
}

/// The holdout plot from the same stored artifacts monitor judged: the holdout's target and
/// the leader's holdout predictions.
fn holdout_plot(
    ctx: &Ctx<'_>,
    spec: &ProblemSpec,
    prepare: &ActionEntry,
    execute: &ActionEntry,
) -> Result<String> {
    let task = spec.task()?;
    let predictions = execute
        .outputs
        .get("predictions")
        .context("execute stored no holdout predictions")?;
    let predictions = ctx.store.read_verified(predictions)?;
    let holdout = prepare
        .outputs
        .get("holdout")
        .context("prepare stored no holdout")?;
    let holdout = ctx.store.read_verified(holdout)?;
    let actual =
        metrics::read_column(&holdout, &spec.target).context("reading the holdout's target")?;
    Ok(plots::holdout(&task, &actual, &predictions)?)
}

/// The version a run concluded, and every tag as conclude left them.
pub struct Concluded {
    pub id: String,
    /// blake3 of its MOJO.
    pub model: String,
    /// Tag → version id.
    pub tags: BTreeMap<String, String>,
}

/// Makes sure the registry holds the concluded version, that its bytes are in the store, and
/// that every `models/<tag>.zip` holds its tag's version ([`links::sync`], under the lock of
/// `models/` taken before any tag moves; a replay that moves no tag takes it only to rewrite a
/// file, [`links::sync_if_stale`]). [`Mode::Run`] only.
///
/// [`Mode::Run`]: super::Mode::Run
#[allow(
    clippy::too_many_lines,
    reason = "registration, repair, tag moves and the models/ files, in the order the rules require"
)]
pub async fn ensure(
    ctx: &mut Ctx<'_>,
    conclude: &ActionEntry,
    monitor: &ActionEntry,
) -> Result<Concluded> {
    let r = &conclude.result;
    let canonical = r["canonical"]
        .as_str()
        .context("conclude result lacks the canonical digest")?
        .to_string();
    let model = r["model"].as_str().unwrap_or_default().to_string();
    let registry = ctx.registry().await?;
    // A replay (the version is registered already) only reads: a no-op run writes nothing
    // before its end (docs/registry.md).
    let (version, created) = match registry
        .find_by_canonical(&canonical.to_ascii_lowercase())
        .await?
    {
        Some(version) => (version, false),
        None => {
            registry
                .register(NewVersion {
                    model: model.clone(),
                    canonical,
                    algo: r["algo"].as_str().unwrap_or_default().to_string(),
                    metrics: r["metrics"].clone(),
                    card: r["card"].as_str().unwrap_or_default().to_string(),
                    provenance: r["provenance"].clone(),
                    run: Some(ctx.run_id().await?),
                })
                .await?
        }
    };
    crate::faultpoint::hit("conclude.after-register");
    // A conclude killed between registering its version and moving its tags is finished by
    // the next run that concludes the same version: the tags it did not get to move, move now.
    let unfinished = match created {
        true => None,
        false => unfinished_conclude(registry, &version, ctx.known_run_id()).await?,
    };
    let moves = created || unfinished.is_some();
    let lock = match moves {
        true => Some(links::lock_for(&ctx.paths.models, ctx.printer)?),
        false => None,
    };
    let mut moved = Vec::new();
    if moves {
        let by = crate::registry::current_user();
        let baseline = &MonitorResult::read(&monitor.result)?.baseline;
        // An experiment's point registers its version and moves nothing (`exp promote` does).
        let promote: &[String] = match ctx.experiment {
            true => &[],
            false => &ctx.config.conclude.promote,
        };
        for tag in promote {
            if !created && pointed_at(registry, tag, &version.id).await? {
                continue;
            }
            let mut reason = format!("conclude of run {}", ctx.run_id().await?);
            if tag == "production" {
                if baseline["status"] != "pass" {
                    ctx.printer.warn(&format!(
                        "`production` not moved: the baseline check did not pass ({}); use `mlbuild promote production {}`",
                        baseline["reason"]
                            .as_str()
                            .map(|r| format!("skipped: {r}"))
                            .unwrap_or_else(|| baseline["status"].as_str().unwrap_or("not run").to_string()),
                        version.id
                    ));
                    continue;
                }
                reason = format!(
                    "{reason}: beats baseline {} by {:.6} {}",
                    baseline["version"].as_str().unwrap_or("?"),
                    baseline["improvement"].as_f64().unwrap_or(f64::NAN),
                    baseline["metric"].as_str().unwrap_or("")
                );
            }
            registry.move_tag(tag, &version.id, &by, &reason).await?;
            moved.push(tag.clone());
            crate::faultpoint::hit("conclude.after-tag-move");
        }
        if created {
            ctx.printer.status(
                "Registered",
                &format!(
                    "version {} ({})",
                    version.id,
                    crate::store::short_digest(&model)
                ),
            );
        } else if let (Some((run, experiment)), false) = (unfinished, moved.is_empty()) {
            let what = match experiment {
                true => format!(
                    "the tag moves for version {}, which experiment run {run} registered: {}",
                    version.id,
                    moved.join(", ")
                ),
                false => format!(
                    "the tag moves of run {run}, which registered version {} and stopped before moving {}",
                    version.id,
                    moved.join(", ")
                ),
            };
            ctx.printer.status("Finished", &what);
        }
    }
    let unrepaired = repair(ctx, &version, conclude).await?;
    let (tags, synced) = match &lock {
        Some(lock) => links::sync_read(registry, ctx.store, &ctx.paths.models, lock).await?,
        None => links::sync_if_stale(registry, ctx.store, &ctx.paths.models, ctx.printer).await?,
    };
    let moved_tags: Vec<&str> = moved.iter().map(String::as_str).collect();
    links::report(ctx.printer, &synced, &moved_tags);
    drop(lock);
    if !moved.is_empty() && !ctx.config.conclude.deploy.is_empty() {
        let run = ctx.run_id().await?;
        for tag in &moved {
            let payload = json!({
                "event": "deployed",
                "version": version.id,
                "tag": tag,
                "model": model,
                "canonical": version.canonical,
                "card": version.card,
                "run": run,
            });
            crate::report::hooks::notify(
                ctx.printer,
                "deploy",
                &ctx.config.conclude.deploy,
                &payload,
                &ctx.paths.project,
            )
            .await;
        }
    }
    for (blob, why) in unrepaired {
        let message = format!(
            "the {} of version {} is not in the store ({why}) and this run could not repair it",
            blob.describe(),
            version.id
        );
        if blob != Blob::Mojo {
            ctx.printer.warn(&format!(
                "{message}; `mlbuild cache verify` lists what is damaged"
            ));
            continue;
        }
        return Err(Diagnostic::new(message)
            .hint("run `mlbuild run` again: execute rebuilds the MOJO now that the damaged blob is out of the store (or `mlbuild run --force execute`)")
            .into());
    }
    Ok(Concluded {
        id: version.id,
        model: version.model,
        tags: links::tags_of(&tags),
    })
}

/// The run that registered `version` when it ended before its conclude was done (`interrupted`:
/// killed or Ctrl-C; `failed`: an error after the registration), so its tag moves may be
/// missing. A finished run (`ok`), a run still going (on another host), or a version registered
/// by `deploy` (no run) has nothing to finish.
async fn unfinished_conclude(
    registry: &crate::registry::Registry,
    version: &Version,
    this_run: Option<i64>,
) -> Result<Option<(i64, bool)>> {
    let Some(run) = version.run.filter(|r| Some(*r) != this_run) else {
        return Ok(None);
    };
    let recorded = registry.run(run).await?;
    // A version an experiment's point registered moved no tag by design: the first ordinary
    // run that concludes it moves the tags `conclude.promote` names.
    let experiment = recorded.as_ref().is_some_and(|r| r.command == "exp");
    let stopped = matches!(
        recorded.map(|r| r.status),
        Some(crate::status::RunStatus::Interrupted | crate::status::RunStatus::Failed)
    );
    Ok((stopped || experiment).then_some((run, experiment)))
}

/// Whether `tag` has ever pointed at `version` (moved there by that conclude before it stopped,
/// or by a user since): such a tag is never moved again by a replayed conclude, so a rerun never
/// undoes a user's rollback.
async fn pointed_at(
    registry: &crate::registry::Registry,
    tag: &str,
    version: &str,
) -> Result<bool> {
    match registry.history(tag).await {
        Ok(events) => Ok(events
            .iter()
            .any(|e| e.to == version || e.from.as_deref() == Some(version))),
        Err(crate::registry::RegistryError::UnknownTag(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Puts back the blobs of `version` that the store lacks (deleted, or moved to the quarantine
/// as corrupt): the same bytes from the remote cache when it has them, else the bytes this
/// conclude made, which for the MOJO must have the version's canonical digest (MOJO bytes are
/// never reproducible: a rebuild is the same model in other bytes). Each repair is an event of
/// the version's history. Returns what could not be repaired, and why it was needed.
#[allow(
    clippy::too_many_lines,
    reason = "one repair per blob kind (MOJO, card, plots), each recorded in the history"
)]
async fn repair(
    ctx: &Ctx<'_>,
    version: &Version,
    conclude: &ActionEntry,
) -> Result<Vec<(Blob, String)>> {
    let mut unrepaired = Vec::new();
    let by = crate::registry::current_user();
    for (blob, digest) in version.blobs() {
        // A stat, as for any cached output; a corrupt blob is found (and quarantined) when read.
        if ctx.store.contains(&digest) {
            continue;
        }
        let why = if ctx.store.quarantined(&digest) {
            "its blob was found corrupt and quarantined"
        } else {
            "its blob is missing"
        };
        if let Some(remote) = ctx.store.remote() {
            let fetched = remote.fetch_blob(ctx.store, &digest, None).await;
            for w in remote.take_warnings() {
                ctx.printer.warn(&w);
            }
            if fetched {
                let reason = format!("{why}; restored from the remote cache");
                ctx.registry()
                    .await?
                    .repair_blob(&version.id, &blob, &digest, &digest, &by, &reason)
                    .await?;
                ctx.printer.status(
                    "Restored",
                    &format!(
                        "the {} of version {} from the remote cache",
                        blob.describe(),
                        version.id
                    ),
                );
                continue;
            }
        }
        let output = match &blob {
            Blob::Mojo => "mojo".to_string(),
            Blob::Card => "card".to_string(),
            Blob::Plot(name) => format!("plot_{name}"),
        };
        let Some(rebuilt) = conclude.outputs.get(&output).filter(|d| **d != digest) else {
            unrepaired.push((blob, why.to_string()));
            continue;
        };
        let bytes = match ctx.store.read_verified(rebuilt) {
            Ok(bytes) => bytes,
            Err(e) => {
                unrepaired.push((blob, format!("{why}; the rebuilt one is unusable: {e}")));
                continue;
            }
        };
        if blob == Blob::Mojo {
            let rebuilt_canonical = crate::mojo::canonical_digest(&bytes).ok();
            if rebuilt_canonical.as_deref() != Some(version.canonical.as_str()) {
                unrepaired.push((
                    blob,
                    format!("{why}; the rebuilt MOJO has another canonical digest"),
                ));
                continue;
            }
        }
        let reason = format!(
            "{why}; rebuilt by run {}{}",
            ctx.run_id().await?,
            if blob == Blob::Mojo {
                " (same canonical digest)"
            } else {
                ""
            }
        );
        if ctx
            .registry()
            .await?
            .repair_blob(&version.id, &blob, &digest, rebuilt, &by, &reason)
            .await?
        {
            ctx.printer.status(
                "Repaired",
                &format!(
                    "version {}: its {} is now {} ({why})",
                    version.id,
                    blob.describe(),
                    &rebuilt[..12]
                ),
            );
        }
    }
    Ok(unrepaired)
}

/// What `status`, `explain` and `run --dry-run` say about a cached conclude ([`Mode::Plan`]:
/// reads only): `None` when `run` would change nothing, else what it would do.
///
/// [`Mode::Plan`]: super::Mode::Plan
pub async fn inspect(ctx: &Ctx<'_>, conclude: &ActionEntry) -> Result<Option<String>> {
    let concluded = ConcludeResult::read(&conclude.result)?;
    let canonical = concluded.canonical.as_str();
    let Some(version) = ctx.registry().await?.find_by_canonical(canonical).await? else {
        let tags = &ctx.config.conclude.promote;
        return Ok(Some(format!(
            "its version is not in this registry: `mlbuild run` registers it{}",
            if tags.is_empty() {
                String::new()
            } else {
                format!(
                    " and moves {}",
                    tags.iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )));
    };
    let missing: Vec<String> = version
        .blobs()
        .into_iter()
        .filter(|(_, digest)| !ctx.store.contains(digest))
        .map(|(blob, _)| blob.describe())
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "the {} of version {} {} not in the store: `mlbuild run` repairs it",
        missing.join(", "),
        version.id,
        if missing.len() == 1 { "is" } else { "are" }
    )))
}

fn provenance(
    ctx: &Ctx<'_>,
    locate: &ActionEntry,
    prepare: &ActionEntry,
    execute: &ActionEntry,
    plots: &BTreeMap<String, String>,
) -> Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&ctx.paths.project)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    json!({
        "git_commit": commit,
        "git_dirty": dirty,
        "mlbuild_version": env!("CARGO_PKG_VERSION"),
        "engine": { "version": ctx.config.h2o.version, "nodes": ctx.config.h2o.nodes },
        "config": ctx.config,
        "data_snapshot": locate.outputs["snapshot"],
        // The prepared training rows: confirm's drift reference once this version is production.
        "prepared_train": prepare.outputs["train"],
        // A version trained on rows a user step provides has no transform to replay: predict
        // and serve take rows in the provided schema (`provided_by`).
        "transform": match prepare.result.get("provided_by") {
            Some(_) => None,
            None => prepare.outputs.get("transform"),
        },
        "provided_by": prepare.result.get("provided_by"),
        // The leader's AutoML leaderboard (JSON blob): `diff` shows two of them side by side.
        "leaderboard": execute.outputs["leaderboard"],
        // The card's plots (SVG blobs) by name; `cache gc` keeps them with the version.
        "plots": plots,
    })
}

/// What conclude registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcludeResult {
    /// The canonical MOJO digest (the version's identity) and the MOJO bytes' blake3.
    pub canonical: String,
    pub model: String,
    /// blake3 of the model card.
    pub card: String,
    pub algo: String,
    /// The holdout metrics monitor computed.
    pub metrics: Value,
    /// The provenance recorded with the version (docs/registry.md).
    pub provenance: Value,
}

impl StepResult for ConcludeResult {
    const STEP: Step = Step::Conclude;

    fn summary(&self) -> String {
        format!(
            "model {} ({})",
            crate::store::short_digest(&self.canonical),
            self.algo
        )
    }
}
