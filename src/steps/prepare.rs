//! Step 3, prepare: the declarative transforms of `[prepare]` (drop, rename, impute, derive,
//! text → Word2Vec; see `transform`) and mlbuild's own seeded train/holdout split (stratified by
//! class for classification, see `table::Split`), independent of H2O's chunking.
//!
//! Outputs: `train` and `holdout` CSVs (normalised: trimmed fields, minimal quoting, missing
//! values empty), `schema` (JSON: each prepared column with the type H2O must parse it as),
//! `transform` (JSON, `transform.json`: the whole transform in order, with its fitted values and
//! artifacts), and one artifact per fitted transform: `impute` (JSON, the values fitted on the
//! training rows) and `word2vec.COLUMN` (CSV `word,v1..vn`, the word vectors).
//!
//! H2O is needed only to fit Word2Vec. The fit is cached on its own, keyed by the training
//! documents' digest, the parameters, the tokenizer and the engine: an edit elsewhere in
//! `[prepare]` reruns prepare without H2O and reuses the same vectors, so the text features do
//! not change just because H2O's Word2Vec has no seed.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, ProblemSpec, StepOutput, StepResult};
use crate::config::{ColumnType, Problem, TextSpec};
use crate::error::Diagnostic;
use crate::fingerprint::KeyInputs;
use crate::h2o::ColumnKind;
use crate::project::Step;
use crate::store::{AcLookup, ActionEntry};
use crate::table::Split;
use crate::transform::{text, Plan};

/// What H2O is told about each column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub columns: Vec<(String, ColumnType)>,
}

#[allow(
    clippy::too_many_lines,
    reason = "prepare's passes (split, fit, apply) and their outputs, in order"
)]
pub async fn run(ctx: &mut Ctx<'_>, snapshot: &str, spec: &ProblemSpec) -> Result<StepOutput> {
    let prepare = ctx.config.prepare.clone();
    let input = ctx.store.verified_path(snapshot)?;
    let profile = super::locate::profile(ctx.store, &input, snapshot)?;
    let plan = Plan::new(&prepare, &profile, spec)?;
    let classification = spec.problem != Problem::Regression;
    let stratify = prepare.stratify.unwrap_or(classification);
    if stratify && !classification {
        return Err(
            Diagnostic::new("`prepare.stratify = true` needs a classification problem")
                .hint("a regression target has no classes to stratify by; remove `stratify`")
                .into(),
        );
    }
    // The source's profile pass may have collected the target's classes and the imputed
    // columns' values from these bytes.
    let collected = ctx
        .collected
        .take()
        .filter(|(digest, _)| digest == snapshot)
        .map(|(_, c)| c)
        .unwrap_or_default();
    let strata = collected.strata;
    let split = if stratify {
        Split::stratified(
            &input,
            plan.target_source,
            prepare.seed,
            prepare.holdout,
            prepare.sample,
            strata,
        )?
    } else {
        Split::random(prepare.seed, prepare.holdout, prepare.sample)
    };

    let docs = plan
        .text
        .iter()
        .map(|_| ctx.store.temp_file())
        .collect::<Result<Vec<_>, _>>()?;
    let doc_paths: Vec<&std::path::Path> = docs.iter().map(|d| d.path()).collect();
    let fitted = plan.fit(&input, &split, &doc_paths, collected.held.as_ref())?;
    drop(collected.held);

    let mut artifacts = BTreeMap::new();
    let mut vectors = Vec::new();
    for (k, (params, doc_path)) in plan.text.iter().map(|t| &t.1).zip(&doc_paths).enumerate() {
        let name = plan.text_name(k).to_string();
        let v = word2vec(ctx, &name, params, doc_path, fitted.documents[k]).await?;
        artifacts.insert(
            format!("word2vec.{name}"),
            ctx.store.put_bytes(&v.to_csv())?,
        );
        vectors.push(v);
    }
    drop(docs);
    if !fitted.impute.is_empty() {
        let bytes =
            serde_json::to_vec_pretty(&json!({ "fitted_on": "train", "columns": fitted.impute }))?;
        artifacts.insert("impute".to_string(), ctx.store.put_bytes(&bytes)?);
    }

    let train = ctx.store.temp_file()?;
    let holdout = ctx.store.temp_file()?;
    let applied = plan.apply(
        &input,
        &split,
        &fitted,
        &vectors,
        [train.path(), holdout.path()],
    )?;
    let [train_rows, holdout_rows] = applied.rows;
    if holdout_rows == 0 || train_rows == 0 {
        return Err(Diagnostic::new(format!(
            "the split left {train_rows} training and {holdout_rows} holdout rows"
        ))
        .hint("use more data or a different `prepare.holdout`")
        .into());
    }
    // Hashed and profiled while written: confirm reads the profiles instead of the files.
    let [train_digest, holdout_digest] = applied.digests;
    let [train_profile, holdout_profile] = applied.profiles;
    ctx.store.commit(train, &train_digest)?;
    ctx.store.commit(holdout, &holdout_digest)?;
    super::locate::remember_profile(ctx.store, &train_digest, &train_profile)?;
    super::locate::remember_profile(ctx.store, &holdout_digest, &holdout_profile)?;
    let columns = plan.schema();
    let n_columns = columns.len();
    let schema = ctx
        .store
        .put_bytes(&serde_json::to_vec(&Schema { columns })?)?;
    let manifest = plan.manifest(
        &split,
        prepare.holdout,
        prepare.seed,
        prepare.sample,
        &fitted,
        &artifacts,
    );
    let transform = ctx
        .store
        .put_bytes(&serde_json::to_vec_pretty(&manifest)?)?;

    let mut outputs = super::outputs([
        ("train", train_digest),
        ("holdout", holdout_digest),
        ("schema", schema),
        ("transform", transform),
    ]);
    outputs.extend(artifacts);
    Ok(StepOutput {
        outputs,
        output_digests: None,
        result: PrepareResult {
            train_rows,
            holdout_rows,
            columns: n_columns,
            split: if split.is_stratified() {
                "stratified"
            } else {
                "random"
            }
            .to_string(),
            imputed: fitted.impute.len(),
            derived: prepare.derive.len(),
            text: prepare.text.len(),
        }
        .to_value(),
    })
}

/// The word vectors for text column `name`, fitted by H2O on the training documents in `docs`
/// (`i,doc` CSV), or taken from an earlier fit of the same documents and parameters.
#[allow(
    clippy::too_many_lines,
    reason = "the Word2Vec fit on the engine (upload, train, export) with its own cache entry"
)]
async fn word2vec(
    ctx: &mut Ctx<'_>,
    name: &str,
    params: &TextSpec,
    docs: &std::path::Path,
    documents: u64,
) -> Result<text::Vectors> {
    if documents == 0 {
        return Err(Diagnostic::new(format!(
            "text column `{name}` has no words in the training rows"
        ))
        .hint("check the column (`prepare.text`) holds text")
        .into());
    }
    let docs_digest = crate::store::hash_file(docs)?;
    let ki = KeyInputs::new(
        "prepare.word2vec",
        json!({
            "documents": docs_digest,
            "params": params,
            "tokenizer": text::TOKENIZER,
            "engine": crate::plan::engine_fingerprint(&ctx.config.h2o),
        }),
    );
    let key = ki.key();
    if let AcLookup::Hit(entry) = ctx.store.ac_get(&key) {
        let bytes = ctx.store.read_verified(&entry.outputs["vectors"])?;
        return text::Vectors::from_csv(&bytes);
    }
    let client = ctx.client().await?;
    ctx.printer.status(
        "Word2Vec",
        &format!("fitting `{name}` on {documents} training documents"),
    );
    let tag = format!("mlb{}_w2v_{:08x}", ctx.run_id().await?, nonce());
    let (frame, words, model, vecs) = (
        format!("{tag}_docs"),
        format!("{tag}_words"),
        format!("{tag}_model"),
        format!("{tag}_vecs"),
    );
    let fit = async {
        client
            .load_csv(
                docs,
                &frame,
                &[
                    ("i".into(), ColumnKind::Numeric),
                    ("doc".into(), ColumnKind::String),
                ],
            )
            .await
            .context("uploading the training documents")?;
        client
            .rapids(
                &format!("(tmp= {words} (tokenize (cols {frame} [1]) \" \"))"),
                &tag,
            )
            .await
            .context("splitting the documents into words")?;
        let p = |x: u32| x.to_string();
        client
            .word2vec(
                &words,
                &model,
                &[
                    ("vec_size", p(params.vec_size)),
                    ("epochs", p(params.epochs)),
                    ("min_word_freq", p(params.min_word_freq)),
                    ("window_size", p(params.window_size)),
                ],
            )
            .await
            .context("training Word2Vec")?;
        client
            .word2vec_vectors(&model, &vecs, &tag)
            .await
            .context("downloading the word vectors")
    }
    .await;
    // The session first: it removes its `tmp=` frames (words, vectors); then the rest.
    let _ = client.end_session(&tag).await;
    for key in [&frame, &words, &model, &vecs] {
        let _ = client.delete(key, false).await;
    }
    let vectors = text::Vectors::from_csv(&fit?).context("reading H2O's word vectors")?;
    if vectors.dim != params.vec_size as usize {
        anyhow::bail!(
            "H2O returned {}-dimensional word vectors for `{name}`, {} were asked for",
            vectors.dim,
            params.vec_size
        );
    }
    if vectors.words.is_empty() {
        return Err(Diagnostic::new(format!(
            "Word2Vec learned no words for `{name}`: none occurs {} times in the training rows",
            params.min_word_freq
        ))
        .hint(format!("lower `prepare.text.{name}.min_word_freq`"))
        .into());
    }
    let digest = ctx.store.put_bytes(&vectors.to_csv())?;
    let outputs = super::outputs([("vectors", digest)]);
    ctx.store.ac_put(&ActionEntry {
        step: "prepare.word2vec".into(),
        key,
        inputs: ki.inputs,
        output_digests: outputs.clone(),
        outputs,
        result: json!({ "words": vectors.words.len() }),
        output_sizes: Default::default(),
    })?;
    Ok(vectors)
}

/// A value that differs between runs, for fresh H2O key names.
fn nonce() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (crate::table::splitmix64(nanos as u64 ^ std::process::id() as u64) >> 32) as u32
}

/// What prepare made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareResult {
    pub train_rows: u64,
    pub holdout_rows: u64,
    pub columns: usize,
    /// `stratified` or `random`.
    pub split: String,
    /// Columns imputed, derived, and text columns turned into Word2Vec features.
    pub imputed: usize,
    pub derived: usize,
    pub text: usize,
}

impl StepResult for PrepareResult {
    const STEP: Step = Step::Prepare;

    fn summary(&self) -> String {
        let mut extra = Vec::new();
        if self.split == "stratified" {
            extra.push("stratified".to_string());
        }
        for (n, what) in [
            (self.imputed, "imputed"),
            (self.derived, "derived"),
            (self.text, "text → word2vec"),
        ] {
            if n > 0 {
                extra.push(format!("{n} {what}"));
            }
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        };
        format!(
            "{} train / {} holdout rows, {} columns{extra}",
            self.train_rows, self.holdout_rows, self.columns
        )
    }
}

/// Reads the schema output of a recorded prepare step.
pub fn schema(store: &crate::store::Store, digest: &str) -> Result<Schema> {
    Ok(serde_json::from_slice(&store.read_verified(digest)?)?)
}
