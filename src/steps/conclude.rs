//! Step 8, conclude: record a version (MOJO + model card + provenance) in the registry, move
//! the `[conclude] promote` tags, and point `models/<tag>.zip` at the tagged MOJO.
//!
//! Registry rules (DESIGN.md §5.3): a MOJO whose canonical digest is already registered keeps
//! its version, and tags move only when conclude registers a version *new to this registry*.
//! Replaying conclude from the cache therefore registers the version where it is missing (a
//! fresh CI runner) and otherwise changes nothing, so a rerun never undoes a rollback.
//! `production` is moved by conclude only when it is in `[conclude] promote` and the chosen
//! attempt's baseline check *passed* (a skipped check — no baseline, or an incompatible one —
//! does not count); otherwise `promote`/`rollback` move it. After tags move, the
//! `[conclude.deploy]` hooks get `{event, version, tag, model, canonical, card}` per moved tag
//! (non-fatal, see `report::hooks`).

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::pipeline::{Ctx, ProblemSpec, StepOutput};
use crate::registry::NewVersion;
use crate::report::card;
use crate::store::{write_atomic, ActionEntry};

pub async fn run(
    ctx: &mut Ctx<'_>,
    execute: &ActionEntry,
    monitor: &ActionEntry,
    spec: &ProblemSpec,
    locate: &ActionEntry,
    prepare: &ActionEntry,
) -> Result<StepOutput> {
    let leaderboard: crate::h2o::Leaderboard =
        serde_json::from_slice(&ctx.store.read_verified(&execute.outputs["leaderboard"])?)?;
    let provenance = provenance(ctx, locate, prepare, execute);
    let text = card::render(&card::CardInput {
        project: &project_name(ctx),
        spec,
        execute: &execute.result,
        monitor: &monitor.result,
        leaderboard: &leaderboard,
        provenance: &provenance,
    });
    let card_digest = ctx.store.put_bytes(text.as_bytes())?;
    Ok(StepOutput {
        outputs: super::outputs([
            ("card", card_digest.clone()),
            ("mojo", execute.outputs["mojo"].clone()),
        ]),
        output_digests: Some(super::outputs([(
            "mojo",
            execute.output_digests["mojo"].clone(),
        )])),
        result: json!({
            "canonical": execute.output_digests["mojo"],
            "model": execute.outputs["mojo"],
            "card": card_digest,
            "algo": execute.result["algo"],
            "metrics": monitor.result["metrics"],
            "provenance": provenance,
        }),
    })
}

/// Makes sure the registry holds the concluded version and `models/<tag>.zip` matches the
/// tags that point at it. Returns the version id.
pub async fn ensure(
    ctx: &mut Ctx<'_>,
    conclude: &ActionEntry,
    monitor: &ActionEntry,
) -> Result<String> {
    let r = &conclude.result;
    let canonical = r["canonical"]
        .as_str()
        .context("conclude result lacks the canonical digest")?
        .to_string();
    let model = r["model"].as_str().unwrap_or_default().to_string();
    let registry = ctx.registry;
    let (version, created) = registry
        .register(NewVersion {
            model: model.clone(),
            canonical,
            algo: r["algo"].as_str().unwrap_or_default().to_string(),
            metrics: r["metrics"].clone(),
            card: r["card"].as_str().unwrap_or_default().to_string(),
            provenance: r["provenance"].clone(),
            run: Some(ctx.run_id),
        })
        .await?;
    let mut moved = Vec::new();
    if created {
        let by = crate::registry::current_user();
        let baseline = &monitor.result["baseline"];
        for tag in &ctx.config.conclude.promote {
            let mut reason = format!("conclude of run {}", ctx.run_id);
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
        }
        ctx.printer.status(
            "Registered",
            &format!("version {} ({})", version.id, &model[..12.min(model.len())]),
        );
    }
    if created && !ctx.config.conclude.deploy.is_empty() {
        for tag in &moved {
            let payload = json!({
                "event": "deployed",
                "version": version.id,
                "tag": tag,
                "model": model,
                "canonical": version.canonical,
                "card": version.card,
                "run": ctx.run_id,
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
    let tags = registry.tags().await?;
    for (tag, id) in &tags {
        if *id == version.id {
            let link = ctx.paths.models.join(format!("{tag}.zip"));
            let fresh = std::fs::read(&link)
                .map(|b| blake3::hash(&b).to_hex().to_string() == model)
                .unwrap_or(false);
            if !fresh {
                let bytes = ctx.store.read_verified(&model)?;
                write_atomic(&link, &bytes)?;
            }
        }
    }
    Ok(version.id)
}

fn project_name(ctx: &Ctx<'_>) -> String {
    ctx.config.project.name.clone().unwrap_or_else(|| {
        ctx.paths
            .project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into())
    })
}

fn provenance(
    ctx: &Ctx<'_>,
    locate: &ActionEntry,
    prepare: &ActionEntry,
    execute: &ActionEntry,
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
        "transform": prepare.outputs.get("transform"),
        // The leader's AutoML leaderboard (JSON blob): `diff` shows two of them side by side.
        "leaderboard": execute.outputs["leaderboard"],
    })
}

pub fn summary(result: &Value) -> String {
    format!(
        "model {} ({})",
        result["canonical"]
            .as_str()
            .map(|s| &s[..12.min(s.len())])
            .unwrap_or("?"),
        result["algo"].as_str().unwrap_or("?")
    )
}
