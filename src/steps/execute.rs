//! Step 5, execute: H2O AutoML on the prepared training rows, with the holdout as the
//! leaderboard frame, so every model's leaderboard metrics are holdout metrics.
//!
//! Outputs: the leader's MOJO (bytes as H2O gave them, under their blake3), the leaderboard
//! (JSON) and the leader's predictions on the holdout (CSV). Downstream keys see the MOJO's
//! *canonical* digest (stable across downloads and identical retrains) and the predictions'
//! digest; the leaderboard holds timings, so it is informative only. Everything created in H2O
//! (frames, the AutoML project with its models and split frames) is deleted afterwards, also on
//! failure; on Ctrl-C the client's ledger lets the run's end cancel and delete it
//! (`h2o::ledger`).
//!
//! SHAP (informative, so not in `output_digests`), only for a leader monitor cannot explain
//! natively from its MOJO ([`natively_explainable`]: StackedEnsemble, DeepLearning): while the
//! leader is loaded, its contributions on at most `[monitor] shap_rows` holdout rows are stored
//! as output `shap` (CSV: one column per feature plus `BiasTerm`). The method follows the
//! leader's algorithm ([`shap_method`], h2o-rest.md G12) and is recorded in the result's
//! `shap`, as is the reason when H2O could not explain the leader: SHAP never fails the run.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Ctx, ProblemSpec, StepOutput, StepResult};
use crate::config::{self, ColumnType, Config, Problem};
use crate::h2o::{AutoMlSpec, Client, ColumnKind};
use crate::project::Step;
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

#[allow(
    clippy::too_many_lines,
    reason = "AutoML's call sequence on the engine (upload, train, export, SHAP), in order"
)]
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
    let shap_rows = ctx.config.monitor.shap_rows() as usize;
    let client = ctx.client().await?;

    // Fresh names per build: H2O appends to a reused AutoML project (h2o-rest.md G6).
    let tag = format!("mlb{}_{}_{:08x}", ctx.run_id().await?, attempt, rand_u32());
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
        &pred_frame,
        shap_rows,
    )
    .await;
    // Clean up whatever was created, whether training worked or not: the AutoML project with
    // its models and split frames, then our frames. What fails here stays in the client's
    // ledger, and the run's end (`Engine::release`) tries again, within its budget. Not on a
    // cluster that lost a node: a delete of a key that lived there hangs until its timeout,
    // one after the other (measured: 120 s each).
    let lost_a_node = result.as_ref().err().is_some_and(|e| {
        e.chain().any(|c| {
            matches!(
                c.downcast_ref::<crate::h2o::H2oError>(),
                Some(crate::h2o::H2oError::NodeLost { .. })
            )
        })
    });
    if !lost_a_node {
        let _ = client
            .delete_automl(&format!("{tag}@@{}", spec.target))
            .await;
        for frame in [&train_frame, &holdout_frame, &pred_frame] {
            let _ = client.delete(frame, false).await;
        }
    }
    let (leaderboard, mojo, predictions, shap) = result?;

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
    let mut outputs = super::outputs([
        ("mojo", mojo_digest.clone()),
        ("leaderboard", leaderboard_digest),
        ("predictions", predictions_digest.clone()),
    ]);
    if let Some(csv) = &shap.csv {
        outputs.insert("shap".into(), ctx.store.put_bytes(csv)?);
    }
    if let Some(reason) = shap.info["error"].as_str() {
        ctx.printer.warn(&format!(
            "SHAP for the {} leader was not computed: {reason}",
            leader.algo
        ));
    }
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
        outputs,
        output_digests: Some(super::outputs([
            ("mojo", canonical.clone()),
            ("predictions", predictions_digest),
        ])),
        result: ExecuteResult {
            leader: leader.model_id.clone(),
            algo: leader.algo.clone(),
            sort_metric: sort.to_string(),
            leaderboard_metrics: json!(leader.metrics),
            models: leaderboard.rows.len(),
            mojo: mojo_digest,
            canonical,
            params: json!(params),
            shap: Some(shap.info),
        }
        .to_value(),
    })
}

type Trained = (crate::h2o::Leaderboard, Vec<u8>, Vec<u8>, Shap);

/// The leader's SHAP contributions (`csv`), and what was done (`info`: `method`, `rows`,
/// `background_rows`, or `error`).
pub struct Shap {
    pub csv: Option<Vec<u8>>,
    pub info: Value,
}

/// Whether this MOJO loads and can be explained natively (`mojo::Mojo::contribution_layout`:
/// TreeSHAP for GBM/DRF/XRT/XGBoost, exact for GLM): monitor then explains the leader itself,
/// and execute asks H2O for nothing.
pub fn natively_explainable(mojo: &[u8]) -> bool {
    crate::mojo::Mojo::load(mojo).is_ok_and(|m| m.contribution_layout().is_ok())
}

/// How H2O explains an algorithm (DESIGN.md §4, h2o-rest.md G12): TreeSHAP for tree models;
/// GLM, DeepLearning and StackedEnsemble need a background frame, StackedEnsemble also the
/// `Compact` output. `(method, needs background, compact)`. execute asks H2O only for the
/// leaders monitor cannot explain natively ([`natively_explainable`]).
pub fn shap_method(algo: &str) -> (&'static str, bool, bool) {
    match algo.to_ascii_lowercase().as_str() {
        "gbm" | "drf" | "xrt" | "xgboost" => ("TreeSHAP", false, false),
        "stackedensemble" => ("background-frame SHAP, Compact output", true, true),
        _ => ("background-frame SHAP", true, false),
    }
}

/// The header and at most `n` records of a CSV, evenly spaced over the file (deterministic).
pub fn sample_csv(bytes: &[u8], n: usize) -> Result<(Vec<u8>, usize)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header = rdr.byte_headers()?.clone();
    let records: Vec<csv::ByteRecord> = rdr.byte_records().collect::<Result<_, _>>()?;
    let step = (records.len() as f64 / n.max(1) as f64).max(1.0);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_byte_record(&header)?;
    let mut taken = 0;
    let mut i = 0.0f64;
    while (i as usize) < records.len() && taken < n {
        w.write_byte_record(&records[i as usize])?;
        taken += 1;
        i += step;
    }
    Ok((w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?, taken))
}

/// Background rows for GLM/DeepLearning/StackedEnsemble SHAP (cost grows with rows × this).
const SHAP_BACKGROUND_ROWS: usize = 100;

/// Computes the leader's contributions on a sample of the holdout; never fails.
async fn shap(
    client: &Client,
    leader: &str,
    algo: &str,
    files: [&std::path::Path; 2],
    columns: &[(String, ColumnKind)],
    tag: &str,
    rows: usize,
) -> Shap {
    if rows == 0 {
        return Shap {
            csv: None,
            info: json!({ "skipped": "monitor.shap_rows = 0" }),
        };
    }
    let (method, needs_background, compact) = shap_method(algo);
    let rows_frame = format!("{tag}_shap_rows");
    let bg_frame = format!("{tag}_shap_bg");
    let out_frame = format!("{tag}_shap");
    let result: Result<(Vec<u8>, usize, usize)> = async {
        let dir = tempfile::tempdir()?;
        let [train_path, holdout_path] = files;
        let (sample, n) = sample_csv(&std::fs::read(holdout_path)?, rows)?;
        let sample_path = dir.path().join("shap_rows.csv");
        std::fs::write(&sample_path, sample)?;
        client
            .load_csv(&sample_path, &rows_frame, columns)
            .await
            .context("uploading the SHAP rows")?;
        let mut background_rows = 0;
        if needs_background {
            let (bg, m) = sample_csv(&std::fs::read(train_path)?, SHAP_BACKGROUND_ROWS)?;
            background_rows = m;
            let bg_path = dir.path().join("shap_background.csv");
            std::fs::write(&bg_path, bg)?;
            client
                .load_csv(&bg_path, &bg_frame, columns)
                .await
                .context("uploading the SHAP background rows")?;
        }
        client
            .predict_contributions(
                leader,
                &rows_frame,
                &out_frame,
                needs_background.then_some(bg_frame.as_str()),
                compact,
            )
            .await?;
        let csv = client.download_frame_csv(&out_frame).await?;
        Ok((csv, n, background_rows))
    }
    .await;
    for frame in [&rows_frame, &bg_frame, &out_frame] {
        let _ = client.delete(frame, false).await;
    }
    match result {
        Ok((csv, n, background_rows)) => Shap {
            csv: Some(csv),
            info: json!({
                "method": method,
                "algo": algo,
                "rows": n,
                "background_rows": if needs_background { Some(background_rows) } else { None },
            }),
        },
        Err(e) => Shap {
            csv: None,
            info: json!({ "method": method, "algo": algo, "error": format!("{e:#}") }),
        },
    }
}

/// Uploads the `[train, holdout]` files, trains, and fetches the leader's MOJO and predictions.
async fn train(
    printer: &crate::report::Printer,
    client: &Client,
    files: [&std::path::Path; 2],
    columns: &[(String, ColumnKind)],
    spec: &AutoMlSpec,
    pred_frame: &str,
    shap_rows: usize,
) -> Result<Trained> {
    let [train_path, holdout_path] = files;
    let holdout_frame = spec
        .leaderboard_frame
        .as_deref()
        .expect("execute always sets the holdout frame");
    // Both files at once: the node parses them in parallel.
    let (train, holdout) = tokio::join!(
        client.load_csv(train_path, &spec.training_frame, columns),
        client.load_csv(holdout_path, holdout_frame, columns)
    );
    train.context("uploading the training rows")?;
    holdout.context("uploading the holdout rows")?;
    printer.start_progress("AutoML");
    let run = client
        .automl(spec, &|fraction: f64, msg: &str| {
            printer.set_progress(fraction, msg)
        })
        .await;
    printer.finish_progress();
    let run = run.context("running AutoML")?;
    let first = run
        .leaderboard
        .rows
        .first()
        .context("AutoML built no model")?;
    let (leader, algo) = (first.model_id.clone(), first.algo.clone());
    // Three independent reads of the leader, at once: the node serves them in parallel.
    let predictions = async {
        client
            .predict(&leader, holdout_frame, pred_frame)
            .await
            .context("predicting the holdout")?;
        client
            .download_frame_csv(pred_frame)
            .await
            .context("downloading the holdout predictions")
    };
    // The MOJO first: H2O is asked for contributions only when monitor cannot compute them
    // from it (by its algorithm and by what it holds, e.g. a GLM without stored means).
    let explained = async {
        let mojo = client.download_mojo(&leader).await?;
        let shap = if natively_explainable(&mojo) {
            Shap {
                csv: None,
                info: json!({ "skipped": format!("monitor explains a {algo} leader natively from its MOJO") }),
            }
        } else {
            shap(
                client,
                &leader,
                &algo,
                files,
                columns,
                &spec.project_name,
                shap_rows,
            )
            .await
        };
        Ok::<_, anyhow::Error>((mojo, shap))
    };
    let (explained, predictions) = tokio::join!(explained, predictions);
    let (mojo, shap) = explained?;
    Ok((run.leaderboard, mojo, predictions?, shap))
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (crate::table::splitmix64(nanos as u64 ^ std::process::id() as u64) >> 32) as u32
}

/// What AutoML trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResult {
    /// The leader's H2O model id and algorithm.
    pub leader: String,
    pub algo: String,
    pub sort_metric: String,
    /// The leader's leaderboard row: metric name → value (null when H2O gave none).
    pub leaderboard_metrics: Value,
    /// How many models the leaderboard holds.
    pub models: usize,
    /// blake3 of the MOJO bytes, and the canonical MOJO digest downstream keys see.
    pub mojo: String,
    pub canonical: String,
    /// The attempt's AutoML parameters ([`super::modify::AttemptParams`]).
    pub params: Value,
    /// SHAP: `method`, `rows`, `background_rows`, or `error`/`skipped`. Absent from entries
    /// made before SHAP support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shap: Option<Value>,
}

impl StepResult for ExecuteResult {
    const STEP: Step = Step::Execute;

    fn summary(&self) -> String {
        let value = self.leaderboard_metrics[&self.sort_metric].as_f64();
        format!(
            "leader {} ({}), holdout {} {} of {} models",
            self.leader,
            self.algo,
            self.sort_metric,
            value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "?".into()),
            self.models
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// execute asks H2O for contributions unless the downloaded MOJO itself can be explained
    /// natively: by what it holds, not by its algorithm's name alone.
    #[test]
    fn h2o_is_asked_unless_the_mojo_itself_is_natively_explainable() {
        let fixture = |name: &str| {
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/mojo")
                    .join(name),
            )
            .unwrap()
        };
        for name in [
            "gbm_multi.zip",
            "glm_bin.zip",
            "xgb_multi.zip",
            "drf_bin.zip",
        ] {
            assert!(natively_explainable(&fixture(name)), "{name}");
        }
        for name in ["dl_bin.zip", "se_bin.zip"] {
            assert!(!natively_explainable(&fixture(name)), "{name}");
        }
        assert!(!natively_explainable(b"not a zip"));
    }

    #[test]
    fn shap_method_follows_the_algorithm() {
        for algo in ["GBM", "DRF", "XRT", "XGBoost"] {
            assert_eq!(shap_method(algo), ("TreeSHAP", false, false));
        }
        for algo in ["GLM", "DeepLearning"] {
            assert_eq!(shap_method(algo), ("background-frame SHAP", true, false));
        }
        assert!(shap_method("StackedEnsemble").1);
        assert!(shap_method("StackedEnsemble").2);
    }

    #[test]
    fn sample_csv_is_even_and_bounded() {
        let mut text = String::from("a,b\n");
        for i in 0..10 {
            text.push_str(&format!("{i},x\n"));
        }
        let (out, n) = sample_csv(text.as_bytes(), 5).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b\n0,x\n2,x\n4,x\n6,x\n8,x\n"
        );
        let (out, n) = sample_csv(text.as_bytes(), 100).unwrap();
        assert_eq!(n, 10);
        assert_eq!(out, text.as_bytes());
    }
}
