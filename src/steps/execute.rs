//! Step 5, execute: H2O AutoML on the prepared training rows, with the holdout as the
//! leaderboard frame, so every model's leaderboard metrics are holdout metrics.
//!
//! Outputs: the leader's MOJO (bytes as H2O gave them, under their blake3), the leaderboard
//! (JSON) and the leader's predictions on the holdout (CSV). Downstream keys see the MOJO's
//! *canonical* digest (stable across downloads and identical retrains) and the predictions'
//! digest; the leaderboard holds timings, so it is informative only. Everything created in H2O
//! (frames, the AutoML project and its models) is deleted afterwards, also on failure.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::{self, ColumnType, Config, Problem};
use crate::h2o::{AutoMlSpec, Client, ColumnKind};
use crate::pipeline::{Ctx, ProblemSpec, StepOutput};
use crate::steps::modify::AttemptParams;
use crate::store::ActionEntry;

/// AutoML's sort metric: `execute.sort_metric`, else define's metric.
pub fn sort_metric(config: &Config, spec: &ProblemSpec) -> String {
    config
        .execute
        .sort_metric
        .clone()
        .unwrap_or_else(|| spec.metric.clone())
}

pub async fn run(
    ctx: &mut Ctx<'_>,
    prepare: &ActionEntry,
    spec: &ProblemSpec,
    params: &AttemptParams,
    attempt: u32,
) -> Result<StepOutput> {
    let schema = super::prepare::schema(ctx.store, &prepare.outputs["schema"])?;
    let columns: Vec<(String, ColumnKind)> = schema
        .columns
        .iter()
        .map(|(name, ty)| {
            let kind = match ty {
                ColumnType::Numeric => ColumnKind::Numeric,
                ColumnType::Enum => ColumnKind::Enum,
                ColumnType::String => ColumnKind::String,
            };
            (name.clone(), kind)
        })
        .collect();
    let train_path = ctx.store.verified_path(&prepare.outputs["train"])?;
    let holdout_path = ctx.store.verified_path(&prepare.outputs["holdout"])?;
    let sort = sort_metric(ctx.config, spec);
    let client = ctx.client().await?;

    // Fresh names per build: H2O appends to a reused AutoML project (h2o-rest.md G6).
    let tag = format!("mlb{}_{}_{:08x}", ctx.run_id, attempt, rand_u32());
    let train_frame = format!("{tag}_train");
    let holdout_frame = format!("{tag}_holdout");
    let pred_frame = format!("{tag}_pred");
    let spec_aml = AutoMlSpec {
        project_name: tag.clone(),
        training_frame: train_frame.clone(),
        leaderboard_frame: Some(holdout_frame.clone()),
        response_column: spec.target.clone(),
        ignored_columns: spec.ignore.clone(),
        seed: params.seed,
        max_models: params.max_models,
        nfolds: params.nfolds,
        include_algos: params.include_algos.clone(),
        // H2O takes one of the two lists: an explicit include list wins.
        exclude_algos: if params.include_algos.is_empty() {
            params.exclude_algos.clone()
        } else {
            Vec::new()
        },
        sort_metric: config::h2o_metric_name(&sort).to_string(),
    };
    let result = train(
        ctx.printer,
        &client,
        [&train_path, &holdout_path],
        &columns,
        &spec_aml,
        &holdout_frame,
        &pred_frame,
    )
    .await;
    // Clean up whatever was created, whether training worked or not.
    let _ = client
        .delete(&format!("{tag}@@{}", spec.target), true)
        .await;
    for frame in [&train_frame, &holdout_frame, &pred_frame] {
        let _ = client.delete(frame, false).await;
    }
    let (leaderboard, mojo, predictions) = result?;

    let mut leader = leaderboard
        .rows
        .first()
        .context("AutoML built no model")?
        .clone();
    // Timings differ on every run; keeping them out of the result keeps reports reproducible.
    leader.metrics.retain(|name, _| !name.ends_with("_ms"));
    let canonical = crate::mojo::canonical_digest(&mojo).context("reading the leader's MOJO")?;
    let mojo_digest = ctx.store.put_bytes(&mojo)?;
    let predictions_digest = ctx.store.put_bytes(&predictions)?;
    let leaderboard_digest = ctx
        .store
        .put_bytes(&serde_json::to_vec_pretty(&leaderboard)?)?;
    if spec.problem != Problem::Regression
        && ctx
            .config
            .execute
            .exclude_algos
            .iter()
            .all(|a| a != "DeepLearning")
    {
        ctx.printer.warn("DeepLearning is included: AutoML results are not reproducible (h2o docs), so reruns may retrain different models");
    }
    Ok(StepOutput {
        outputs: super::outputs([
            ("mojo", mojo_digest.clone()),
            ("leaderboard", leaderboard_digest),
            ("predictions", predictions_digest.clone()),
        ]),
        output_digests: Some(super::outputs([
            ("mojo", canonical.clone()),
            ("predictions", predictions_digest),
        ])),
        result: json!({
            "leader": leader.model_id,
            "algo": leader.algo,
            "sort_metric": sort,
            "leaderboard_metrics": leader.metrics,
            "models": leaderboard.rows.len(),
            "mojo": mojo_digest,
            "canonical": canonical,
            "params": params,
        }),
    })
}

type Trained = (crate::h2o::Leaderboard, Vec<u8>, Vec<u8>);

/// Uploads the `[train, holdout]` files, trains, and fetches the leader's MOJO and predictions.
async fn train(
    printer: &crate::report::Printer,
    client: &Client,
    files: [&std::path::Path; 2],
    columns: &[(String, ColumnKind)],
    spec: &AutoMlSpec,
    holdout_frame: &str,
    pred_frame: &str,
) -> Result<Trained> {
    let [train_path, holdout_path] = files;
    client
        .upload_csv(train_path, &spec.training_frame, columns)
        .await
        .context("uploading the training rows")?;
    client
        .upload_csv(holdout_path, holdout_frame, columns)
        .await
        .context("uploading the holdout rows")?;
    printer.start_progress("AutoML");
    let run = client
        .automl(spec, &|fraction: f64, msg: &str| {
            printer.set_progress(fraction, msg)
        })
        .await;
    printer.finish_progress();
    let run = run.context("running AutoML")?;
    let leader = run
        .leaderboard
        .rows
        .first()
        .context("AutoML built no model")?
        .model_id
        .clone();
    let mojo = client.download_mojo(&leader).await?;
    client
        .predict(&leader, holdout_frame, pred_frame)
        .await
        .context("predicting the holdout")?;
    let predictions = client
        .download_frame_csv(pred_frame)
        .await
        .context("downloading the holdout predictions")?;
    Ok((run.leaderboard, mojo, predictions))
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (crate::table::splitmix64(nanos as u64 ^ std::process::id() as u64) >> 32) as u32
}

pub fn summary(result: &Value) -> String {
    let metric = result["sort_metric"].as_str().unwrap_or("");
    let value = result["leaderboard_metrics"][metric].as_f64();
    format!(
        "leader {} ({}), holdout {} {} of {} models",
        result["leader"].as_str().unwrap_or("?"),
        result["algo"].as_str().unwrap_or("?"),
        metric,
        value
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "?".into()),
        result["models"]
    )
}
