//! What `run` checks of an action entry from a remote cache before it uses it.
//!
//! `store::remote` has already checked what a cache can check alone: the entry is for the key
//! asked for (its step and inputs hash to it), every blob it names hashed to its name and was
//! no larger than the entry records, and every output digest that enters a downstream key is
//! its blob's digest or the MOJO's recomputed canonical digest. Here the entry is checked
//! against what this machine knows, step by step ([`check`]):
//!
//! | step | checked |
//! |---|---|
//! | all | it is the step asked for; it has the outputs that step makes (downstream reads them) |
//! | define, confirm, monitor, modify | recomputed here (cheap, no engine); the result must agree, and the recomputed entry is the one used |
//! | locate | the snapshot is the local source's digest; rows, columns and bytes are the snapshot's |
//! | prepare | columns from the schema blob, train and holdout rows from the blobs, the split method and imputed columns from the transform blob, derived and text columns from `ml.toml` |
//! | execute | leader, algorithm, model count and metrics from the leaderboard blob; `mojo` and `canonical` are its outputs; params and sort metric are this attempt's |
//! | conclude | model, canonical digest, card, algorithm, metrics and the digests in the provenance are those of the verified upstream entries and outputs |
//!
//! What stays the remote's word: that prepare's split and Word2Vec vectors, and execute's MOJO,
//! leaderboard and predictions, are what those steps made from these inputs (they are not
//! recomputed: that is the work a cache saves), execute's SHAP note, locate's description of a
//! SQL extraction, and conclude's card text and the rest of its provenance (git commit, config,
//! versions). docs/store.md ("Safety") says so to users.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Ctx, StepOutput, StepResult};
use crate::project::Step;
use crate::store::ActionEntry;

/// What the local run knows when a step's entry arrives from the remote.
pub struct Known {
    /// The local source's snapshot digest (locate's key input).
    pub source: String,
    /// The entries of the steps already replayed or run in this walk.
    pub upstream: BTreeMap<(Step, u32), ActionEntry>,
    /// confirm's drift reference (the production version's prepared training rows).
    pub drift: Option<super::confirm::DriftReference>,
}

impl Known {
    fn get(&self, step: Step, attempt: u32) -> Result<&ActionEntry, String> {
        self.upstream
            .get(&(step, attempt))
            .ok_or_else(|| format!("step `{step}` (attempt {attempt}) is not known here"))
    }
}

/// The outputs each step makes and downstream reads (more may be present).
fn required_outputs(step: Step) -> &'static [&'static str] {
    match step {
        Step::Define | Step::Modify => &[],
        Step::Locate => &["snapshot"],
        Step::Prepare => &["train", "holdout", "schema"],
        Step::Confirm => &["report"],
        Step::Execute => &["mojo", "leaderboard", "predictions"],
        Step::Monitor => &["report"],
        Step::Conclude => &["card", "mojo"],
    }
}

/// The output digests downstream keys read.
fn required_output_digests(step: Step) -> &'static [&'static str] {
    match step {
        Step::Locate => &["snapshot"],
        Step::Prepare => &["train", "holdout", "schema"],
        Step::Execute => &["mojo", "predictions"],
        Step::Conclude => &["mojo"],
        _ => &[],
    }
}

/// A JSON value as it reads back from its text, so that a result computed here compares
/// equal to the same result written elsewhere and parsed.
fn as_stored(v: &Value) -> Value {
    serde_json::from_str(&v.to_string()).unwrap_or(Value::Null)
}

/// Removes every `version` field: version ids are local to a registry (the same model has
/// another id in another registry), so they may differ between two honest runs.
fn without_version_ids(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| k.as_str() != "version")
                .map(|(k, v)| (k.clone(), without_version_ids(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_version_ids).collect()),
        v => v.clone(),
    }
}

fn same(field: &str, recorded: &Value, actual: &Value) -> Result<(), String> {
    if as_stored(recorded) == as_stored(actual) {
        return Ok(());
    }
    Err(format!(
        "its result says {field} = {recorded}, but its blobs and this machine say {actual}"
    ))
}

/// Checks a remote entry for `step`. `Ok(Some(output))`: the step was recomputed here and
/// agrees; use `output` (local blobs). `Ok(None)`: use the entry as restored. `Err(why)`: refuse.
pub async fn check(
    ctx: &mut Ctx<'_>,
    step: Step,
    attempt: u32,
    entry: &ActionEntry,
    known: &Known,
) -> Result<Option<StepOutput>, String> {
    if entry.step != step.as_str() {
        return Err(format!("it is an entry of step `{}`", entry.step));
    }
    if let Some(name) = required_outputs(step)
        .iter()
        .find(|n| !entry.outputs.contains_key(**n))
    {
        return Err(format!("it lacks output `{name}`"));
    }
    if let Some(name) = required_output_digests(step)
        .iter()
        .find(|n| !entry.output_digests.contains_key(**n))
    {
        return Err(format!("it lacks output digest `{name}`"));
    }
    let e = |e: anyhow::Error| format!("{e:#}");
    let spec = |config: &crate::config::Config| -> Result<super::ProblemSpec, String> {
        let define = known.get(Step::Define, 1)?;
        super::define::spec(config, &define.result).map_err(e)
    };
    match step {
        Step::Define => {
            let profile = source_profile(ctx, &known.source)?;
            let out = super::define::run(ctx.config, &profile).map_err(e)?;
            agree(entry, out, |r| r.clone())
        }
        Step::Locate => check_locate(ctx, entry, known),
        Step::Prepare => check_prepare(ctx, entry),
        Step::Confirm => {
            let spec = spec(ctx.config)?;
            let prepare = known.get(Step::Prepare, 1)?.clone();
            let out = super::confirm::run(ctx, &prepare, &spec, known.drift.as_ref()).map_err(e)?;
            agree(entry, out, without_version_ids)
        }
        Step::Execute => check_execute(ctx, attempt, entry),
        Step::Monitor => {
            let spec = spec(ctx.config)?;
            let prepare = known.get(Step::Prepare, 1)?.clone();
            let execute = known.get(Step::Execute, attempt)?.clone();
            let out = super::monitor::run(ctx, &prepare, &execute, &spec)
                .await
                .map_err(e)?;
            agree(entry, out, without_version_ids)
        }
        Step::Modify => {
            let mut attempts = Vec::new();
            for n in 1.. {
                match (
                    known.upstream.get(&(Step::Execute, n)),
                    known.upstream.get(&(Step::Monitor, n)),
                ) {
                    (Some(x), Some(m)) => attempts.push((x.clone(), m.clone())),
                    _ => break,
                }
            }
            let out = super::modify::run(ctx, &attempts).map_err(e)?;
            agree(entry, out, |r| r.clone())
        }
        Step::Conclude => check_conclude(entry, known),
    }
}

/// A recomputed step agrees with the entry when their results do (`normal` removes what may
/// honestly differ between machines); the recomputed output is then the one used.
fn agree(
    entry: &ActionEntry,
    out: StepOutput,
    normal: impl Fn(&Value) -> Value,
) -> Result<Option<StepOutput>, String> {
    let (recorded, actual) = (
        normal(&as_stored(&entry.result)),
        normal(&as_stored(&out.result)),
    );
    if recorded != actual {
        let field = first_difference("result", &recorded, &actual);
        return Err(format!(
            "recomputed here, its {field} differs ({} there, {} here)",
            pick(&recorded, &field),
            pick(&actual, &field)
        ));
    }
    Ok(Some(out))
}

/// The dotted path of the first field where `a` and `b` differ.
fn first_difference(path: &str, a: &Value, b: &Value) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if va != vb {
                    return first_difference(&format!("{path}.{k}"), va, vb);
                }
            }
            path.to_string()
        }
        _ => path.to_string(),
    }
}

fn pick(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path.split('.').skip(1) {
        cur = &cur[part];
    }
    let text = cur.to_string();
    if text.len() > 80 {
        Value::String(format!("{}…", &text[..text.floor_char_boundary(80)]))
    } else {
        cur.clone()
    }
}

/// The profile of the local source (remembered by the walk before any step).
fn source_profile(ctx: &Ctx<'_>, source: &str) -> Result<crate::table::Profile, String> {
    let path = ctx.store.blob_path(source);
    super::locate::profile(ctx.store, &path, source).map_err(|e| format!("{e:#}"))
}

fn blob_size(ctx: &Ctx<'_>, digest: &str) -> Option<u64> {
    std::fs::metadata(ctx.store.blob_path(digest))
        .ok()
        .map(|m| m.len())
}

fn check_locate(
    ctx: &Ctx<'_>,
    entry: &ActionEntry,
    known: &Known,
) -> Result<Option<StepOutput>, String> {
    let snapshot = &entry.outputs["snapshot"];
    if *snapshot != known.source {
        return Err(format!(
            "its snapshot {snapshot} is not the local source's ({})",
            known.source
        ));
    }
    let profile = source_profile(ctx, snapshot)?;
    let r = &entry.result;
    same("rows", &r["rows"], &Value::from(profile.rows))?;
    same(
        "columns",
        &r["columns"],
        &Value::from(profile.columns.len()),
    )?;
    same("bytes", &r["bytes"], &Value::from(blob_size(ctx, snapshot)))?;
    Ok(None)
}

fn check_prepare(ctx: &Ctx<'_>, entry: &ActionEntry) -> Result<Option<StepOutput>, String> {
    let e = |e: anyhow::Error| format!("{e:#}");
    let r = &entry.result;
    let schema = super::prepare::schema(ctx.store, &entry.outputs["schema"]).map_err(e)?;
    same("columns", &r["columns"], &Value::from(schema.columns.len()))?;
    for (name, field) in [("train", "train_rows"), ("holdout", "holdout_rows")] {
        let digest = &entry.outputs[name];
        let profile =
            super::locate::profile(ctx.store, &ctx.store.blob_path(digest), digest).map_err(e)?;
        same(field, &r[field], &Value::from(profile.rows))?;
    }
    let prepare = &ctx.config.prepare;
    same("derived", &r["derived"], &Value::from(prepare.derive.len()))?;
    same("text", &r["text"], &Value::from(prepare.text.len()))?;
    if let Some(transform) = entry.outputs.get("transform") {
        let bytes = ctx
            .store
            .read_verified(transform)
            .map_err(|e| e.to_string())?;
        let manifest: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        same("split", &r["split"], &manifest["split"]["method"])?;
        let imputed = manifest["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["op"] == "impute")
            .map(|s| s["columns"].as_array().map_or(0, Vec::len))
            .sum::<usize>();
        same("imputed", &r["imputed"], &Value::from(imputed))?;
    }
    Ok(None)
}

fn check_execute(
    ctx: &Ctx<'_>,
    attempt: u32,
    entry: &ActionEntry,
) -> Result<Option<StepOutput>, String> {
    let bytes = ctx
        .store
        .read_verified(&entry.outputs["leaderboard"])
        .map_err(|e| e.to_string())?;
    let leaderboard: crate::h2o::Leaderboard = serde_json::from_slice(&bytes)
        .map_err(|e| format!("its leaderboard does not parse ({e})"))?;
    let mut leader = leaderboard
        .leader()
        .ok_or("its leaderboard has no model")?
        .clone();
    leader.metrics.retain(|name, _| !name.ends_with("_ms"));
    let r = &entry.result;
    same("leader", &r["leader"], &Value::from(leader.model_id))?;
    same("algo", &r["algo"], &Value::from(leader.algo))?;
    same("models", &r["models"], &Value::from(leaderboard.rows.len()))?;
    same(
        "leaderboard_metrics",
        &r["leaderboard_metrics"],
        &serde_json::json!(leader.metrics),
    )?;
    same(
        "mojo",
        &r["mojo"],
        &Value::from(entry.outputs["mojo"].clone()),
    )?;
    same(
        "canonical",
        &r["canonical"],
        &Value::from(entry.output_digests["mojo"].clone()),
    )?;
    same(
        "sort_metric",
        &r["sort_metric"],
        &entry.inputs["problem"]["sort_metric"],
    )?;
    let params = super::modify::attempt_params(&ctx.config.execute, attempt);
    same("params", &r["params"], &serde_json::json!(params))?;
    Ok(None)
}

fn check_conclude(entry: &ActionEntry, known: &Known) -> Result<Option<StepOutput>, String> {
    let modify = known.get(Step::Modify, 1)?;
    let read = |e: anyhow::Error| format!("{e:#}");
    let chosen = super::modify::ModifyResult::read(&modify.result)
        .map_err(read)?
        .chosen_attempt
        .ok_or("modify chose no attempt")?;
    let execute = known.get(Step::Execute, chosen)?;
    let monitor = known.get(Step::Monitor, chosen)?;
    let locate = known.get(Step::Locate, 1)?;
    let prepare = known.get(Step::Prepare, 1)?;
    let r = &entry.result;
    let s = |v: &String| Value::from(v.clone());
    same(
        "mojo output",
        &s(&entry.outputs["mojo"]),
        &s(&execute.outputs["mojo"]),
    )?;
    same("model", &r["model"], &s(&execute.outputs["mojo"]))?;
    same(
        "canonical",
        &r["canonical"],
        &s(&execute.output_digests["mojo"]),
    )?;
    same("card", &r["card"], &s(&entry.outputs["card"]))?;
    let algo = super::execute::ExecuteResult::read(&execute.result)
        .map_err(read)?
        .algo;
    same("algo", &r["algo"], &Value::from(algo))?;
    let metrics = super::monitor::MonitorResult::read(&monitor.result)
        .map_err(read)?
        .metrics;
    same("metrics", &r["metrics"], &metrics)?;
    let p = &r["provenance"];
    same(
        "provenance.data_snapshot",
        &p["data_snapshot"],
        &s(&locate.outputs["snapshot"]),
    )?;
    same(
        "provenance.prepared_train",
        &p["prepared_train"],
        &s(&prepare.outputs["train"]),
    )?;
    same(
        "provenance.transform",
        &p["transform"],
        &serde_json::json!(prepare.outputs.get("transform")),
    )?;
    same(
        "provenance.leaderboard",
        &p["leaderboard"],
        &s(&execute.outputs["leaderboard"]),
    )?;
    let plots: BTreeMap<String, String> = entry
        .outputs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("plot_")?.to_string(), v.clone())))
        .collect();
    same("provenance.plots", &p["plots"], &serde_json::json!(plots))?;
    Ok(None)
}
