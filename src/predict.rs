//! `mlbuild predict`: score a CSV with a registered model (a tag or a version id) or a MOJO
//! file, natively (see [`crate::mojo`]), the way the model was trained.
//!
//! A registered version whose provenance records a prepare `transform` gets it replayed on
//! every row first ([`crate::transform::replay`]): renames, imputation with the fitted values,
//! derived columns, Word2Vec features. So a row is given in the *data's* columns, as the
//! pipeline's source has them. A MOJO file is scored as is (its inputs are the prepared
//! columns), unless its bytes are a registered version of this project, which then applies.
//!
//! The output has exactly `PredictCsv`'s header (`predict`, then one column per class) and
//! numbers in Rust's shortest round-trip form with Java's spelling of integral values (`1.0`)
//! and infinities: every value reads back to the same double. Rows stream through (memory is
//! one row). An input without a column the model needs is refused before any row is scored,
//! naming the missing columns and the model's input signature.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::error::Diagnostic;
use crate::mojo::{ColumnKind, Mojo, Prediction, ScoreError, Value};
use crate::project::Paths;
use crate::registry::{Registry, Version};
use crate::store::Store;
use crate::transform::replay::Replay;

/// A loaded model with its input preparation: what `predict` and `serve` score with.
#[derive(Debug)]
pub struct Scorer {
    pub mojo: Mojo,
    replay: Option<Replay>,
    /// The registered version, when the model came from the registry.
    pub version: Option<String>,
    /// The columns a row is given in: the transform's inputs, or the model's signature.
    inputs: Vec<String>,
    /// Indices into `inputs` a row must have.
    required: Vec<usize>,
    /// Per signature column: its index in the prepared row (or in `inputs` without replay).
    sources: Vec<usize>,
    /// The user step whose rows the version was trained on (`provides`), when one was.
    provided_by: Option<String>,
    /// The contribution columns written after the predictions (`predict --explain`), if any.
    explained: Option<Vec<String>>,
}

/// Reusable per-thread buffers for [`Scorer::score`].
#[derive(Debug, Default)]
pub struct Scratch {
    stage: Vec<String>,
    prepared: Vec<String>,
    raw: Vec<f64>,
    contributions: Vec<f64>,
}

/// A model picked by `--model`.
#[derive(Debug)]
pub struct Resolved {
    pub bytes: Vec<u8>,
    pub version: Option<Version>,
    /// The transform, when the version records one.
    pub replay: Option<Replay>,
}

impl Scorer {
    pub fn new(mojo: Mojo, replay: Option<Replay>, version: Option<String>) -> Result<Scorer> {
        let signature: Vec<&str> = mojo.signature().iter().map(|c| c.name.as_str()).collect();
        let (inputs, required, sources) = match &replay {
            None => {
                let inputs: Vec<String> = signature.iter().map(|s| s.to_string()).collect();
                let all: Vec<usize> = (0..inputs.len()).collect();
                (inputs, all.clone(), all)
            }
            Some(r) => {
                let outputs = r.output_names();
                let mut required = Vec::new();
                let mut sources = Vec::new();
                for name in &signature {
                    let at = outputs.iter().position(|o| o == name).with_context(|| {
                        format!("the model uses column `{name}`, which the version's transform does not make")
                    })?;
                    sources.push(at);
                    required.extend(r.needed(name).unwrap_or_default());
                }
                required.sort_unstable();
                required.dedup();
                (r.input_columns().to_vec(), required, sources)
            }
        };
        Ok(Scorer {
            mojo,
            replay,
            version,
            inputs,
            required,
            sources,
            provided_by: None,
            explained: None,
        })
    }

    /// Explains every row scored (`predict --explain`): its contributions follow its
    /// prediction. A model whose algorithm cannot be explained is an error naming it.
    pub fn explaining(mut self, explain: bool) -> Result<Scorer> {
        if !explain {
            return Ok(self);
        }
        match self.mojo.contribution_names() {
            Ok(names) => self.explained = Some(names),
            Err(algo) => {
                return Err(Diagnostic::new(format!(
                    "`--explain` cannot explain a {algo} model natively"
                ))
                .hint("explanations are computed for GBM, DRF, XRT and XGBoost models (TreeSHAP) and GLMs trained with mean imputation; drop `--explain` to score this one")
                .into())
            }
        }
        Ok(self)
    }

    /// Marks a version trained on the rows of a user step (`provided_by` in its provenance):
    /// rows missing its columns are refused with an error that says why.
    pub fn provided_by(mut self, version: Option<&Version>) -> Scorer {
        self.provided_by = version
            .and_then(|v| v.provenance["provided_by"].as_str())
            .map(str::to_string);
        self
    }

    /// Loads the model `--model` names; see [`resolve`].
    pub async fn open(dir: &Path, model: &str) -> Result<Scorer> {
        let r = resolve(dir, model).await?;
        let mojo = match (Mojo::load(&r.bytes), &r.version) {
            (Ok(mojo), _) => mojo,
            (Err(e), Some(v)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("loading the MOJO of version {}", v.id)))
            }
            (Err(e), None) => {
                return Err(Diagnostic::new(format!(
                    "`{model}` cannot be loaded as a MOJO: {e}"
                ))
                .hint(format!(
                    "`mlbuild mojo validate {model}` says what a MOJO needs; H2O writes one with `download_mojo()`"
                ))
                .into())
            }
        };
        let scorer = Scorer::new(mojo, r.replay, r.version.as_ref().map(|v| v.id.clone()))?;
        Ok(scorer.provided_by(r.version.as_ref()))
    }

    /// Why a row without the required columns `missing` (shown as `` `A`, `B` ``) is refused:
    /// for a version trained on a user step's rows, that the step's schema is wanted.
    pub fn missing_columns_message(&self, missing: &str) -> String {
        match &self.provided_by {
            Some(step) => format!(
                "the input has no column {missing}: this version was trained on the rows that step `{step}` provides, and mlbuild cannot replay a user's command on raw rows; it takes rows in that schema: {}",
                self.signature_text()
            ),
            None => format!(
                "the input has no column {missing}; the model needs: {}",
                self.signature_text()
            ),
        }
    }

    /// The columns a row is given in, in order.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The columns a row must have (the others may be absent).
    pub fn required(&self) -> Vec<&str> {
        self.required
            .iter()
            .map(|&i| self.inputs[i].as_str())
            .collect()
    }

    pub fn is_required(&self, input: usize) -> bool {
        self.required.binary_search(&input).is_ok()
    }

    /// The input signature for messages: `name (type)` per required column.
    pub fn signature_text(&self) -> String {
        let sig = self.mojo.signature();
        self.required
            .iter()
            .map(|&i| {
                let name = &self.inputs[i];
                let kind = match &self.replay {
                    None => Some(&sig[i].kind),
                    Some(_) => sig.iter().find(|c| &c.name == name).map(|c| &c.kind),
                };
                match kind {
                    Some(ColumnKind::Numeric) => format!("`{name}` (numeric)"),
                    Some(ColumnKind::Categorical(levels)) => {
                        let shown: Vec<&str> = levels.iter().take(6).map(String::as_str).collect();
                        let more = if levels.len() > 6 { ", …" } else { "" };
                        format!("`{name}` (categorical: {}{more})", shown.join(", "))
                    }
                    None => format!("`{name}` (transformed)"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which field of a header feeds each input (`None`: absent), or an error naming the
    /// required columns the header lacks.
    pub fn bind<S: AsRef<str>>(&self, header: &[S]) -> Result<Vec<Option<usize>>> {
        let fields: Vec<Option<usize>> = self
            .inputs
            .iter()
            .map(|name| header.iter().position(|h| h.as_ref() == name))
            .collect();
        let missing: Vec<String> = self
            .required
            .iter()
            .filter(|&&i| fields[i].is_none())
            .map(|&i| format!("`{}`", self.inputs[i]))
            .collect();
        if !missing.is_empty() {
            let hint = match &self.provided_by {
                Some(step) => {
                    format!(
                        "score rows that went through `{step}` (its `train` output has the schema)"
                    )
                }
                None => "add the missing columns (an empty field is a missing value)".to_string(),
            };
            return Err(
                Diagnostic::new(self.missing_columns_message(&missing.join(", ")))
                    .hint(hint)
                    .into(),
            );
        }
        Ok(fields)
    }

    /// The contributions of the row [`Scorer::score`] scored last with `scratch` (the row as
    /// the model read it is still there), in [`Mojo::contribution_names`] order.
    pub fn contributions<'s>(&self, scratch: &'s mut Scratch) -> &'s [f64] {
        self.mojo
            .contributions(&scratch.raw, &mut scratch.contributions);
        &scratch.contributions
    }

    /// Scores one row given in [`Scorer::inputs`] order (`""` for an absent field).
    pub fn score<S: AsRef<str>>(
        &self,
        row: &[S],
        scratch: &mut Scratch,
    ) -> Result<Prediction, ScoreError> {
        let Scratch {
            stage,
            prepared,
            raw,
            ..
        } = scratch;
        match &self.replay {
            Some(r) => {
                r.apply(row, stage, prepared);
                let cells = self.sources.iter().map(|&i| cell(prepared[i].as_str()));
                self.mojo.encode_iter(cells, raw)?;
            }
            None => {
                let cells = self
                    .sources
                    .iter()
                    .map(|&i| cell(row.get(i).map_or("", |s| s.as_ref())));
                self.mojo.encode_iter(cells, raw)?;
            }
        }
        Ok(self.mojo.score_encoded(raw))
    }
}

/// A CSV field as genmodel reads it: `""`, `NA`, `N/A` and `-` are missing.
fn cell(s: &str) -> Value<'_> {
    if crate::table::is_missing_to_score(s) {
        Value::Missing
    } else {
        Value::Text(s)
    }
}

/// A double in its shortest round-trip form, integral values and infinities spelled as Java's
/// `Double.toString` spells them (`1.0`, `Infinity`), very small and large ones in exponent
/// form (`1e-7`).
pub fn format_double(x: f64) -> String {
    let mut s = String::new();
    push_double(&mut s, x);
    s
}

/// [`format_double`] into a buffer the caller reuses.
pub fn push_double(out: &mut String, x: f64) {
    use std::fmt::Write as _;
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{x:?}");
    }
}

/// Picks the model: `model` is a tag, a version id, or a MOJO file. A name ending `.zip` or
/// holding a `/` is a file; a bare name is the registry's tag or version of that name when
/// there is one (a stray file `production` in the working directory does not shadow the tag),
/// else a file of that name.
pub async fn resolve(dir: &Path, model: &str) -> Result<Resolved> {
    let paths = Paths::resolve(dir);
    let file = PathBuf::from(model);
    let names_file = model.ends_with(".zip") || model.contains('/');
    // A project, a registry named elsewhere (`MLBUILD_STATE_URL`, the user config), or the
    // state database `deploy --mojo` made in a directory without `ml.toml`.
    let state_db = crate::store::layout::state_db(&paths.cache);
    let has_registry = paths.project.join("ml.toml").is_file()
        || paths.state_url != crate::registry::sqlite_url(&state_db)
        || state_db.is_file();
    if !names_file && has_registry {
        let reg = open_registry(&paths).await?;
        let found = lookup(&reg, model).await;
        reg.close().await;
        match found {
            Ok(version) => return load_version(&paths, version),
            Err(e) if !file.is_file() => return Err(e),
            Err(_) => {}
        }
    }
    if names_file || file.is_file() {
        let bytes =
            std::fs::read(&file).with_context(|| format!("reading `{}`", file.display()))?;
        // A file that is a registered version of this project gets its transform.
        if has_registry {
            let digest = blake3::hash(&bytes).to_hex().to_string();
            let reg = open_registry(&paths).await?;
            let found = reg
                .versions()
                .await?
                .into_iter()
                .find(|v| v.model == digest);
            reg.close().await;
            if let Some(version) = found {
                let replay = load_replay(&paths, &version)?;
                return Ok(Resolved {
                    bytes,
                    version: Some(version),
                    replay,
                });
            }
        }
        return Ok(Resolved {
            bytes,
            version: None,
            replay: None,
        });
    }
    // A registry would have answered above.
    Err(Diagnostic::new(format!(
        "`{model}` is not a file, and there is no project here to look it up in"
    ))
    .hint("pass a MOJO file, or run in (or `-C`) a project directory to use a tag or version")
    .into())
}

/// `predict` and `serve` only read the registry (DESIGN.md §8).
async fn open_registry(paths: &Paths) -> Result<Registry> {
    Ok(Registry::open_read(&paths.state_url).await?)
}

/// A tag's version, else the version with that id.
pub async fn lookup(reg: &Registry, model: &str) -> Result<Version> {
    let tags = reg.tags().await?;
    let id = tags
        .get(model)
        .cloned()
        .unwrap_or_else(|| model.to_string());
    match reg.get(&id).await? {
        Some(v) => Ok(v),
        None => {
            let names: Vec<&str> = tags.keys().map(String::as_str).collect();
            Err(
                Diagnostic::new(format!("`{model}` is not a tag, a version or a file"))
                    .hint(if names.is_empty() {
                        "no tag is set yet: run `mlbuild run`, or see `mlbuild versions`"
                            .to_string()
                    } else {
                        format!("tags: {}; versions: `mlbuild versions`", names.join(", "))
                    })
                    .into(),
            )
        }
    }
}

/// Reads a version's MOJO and transform from the project's store (a corrupt blob is moved to
/// the quarantine, see [`Store::read_verified`]).
pub fn load_version(paths: &Paths, version: Version) -> Result<Resolved> {
    let store = Store::existing(&paths.cache);
    let bytes = store
        .read_verified(&version.model)
        .with_context(|| format!("reading the MOJO of version {}", version.id))?;
    let replay = load_replay(paths, &version)?;
    Ok(Resolved {
        bytes,
        version: Some(version),
        replay,
    })
}

fn load_replay(paths: &Paths, version: &Version) -> Result<Option<Replay>> {
    let Some(digest) = version.provenance["transform"].as_str() else {
        return Ok(None);
    };
    let store = Store::existing(&paths.cache);
    let replay = Replay::stored(&store, digest)
        .with_context(|| format!("reading the transform of version {}", version.id))?;
    Ok(Some(replay))
}

/// What `predict` did.
#[derive(Debug)]
pub struct Summary {
    pub rows: u64,
    pub version: Option<String>,
}

/// Rows per batch handed to a scoring thread.
const BATCH_ROWS: usize = 4096;

/// One batch read from the input: its records, or the read error that ends the input.
type Batch = Result<Vec<csv::StringRecord>>;

/// A scored batch: its index, its CSV bytes and row count (or the error), and its records.
type Scored = (usize, Result<(Vec<u8>, u64)>, Vec<csv::StringRecord>);

/// Scores `input` (a CSV with a header) into `out`, streaming, on every core: one thread reads
/// batches of [`BATCH_ROWS`] records, the scoring threads turn each into CSV bytes, and the
/// caller's thread writes them in input order. At most two batches per thread are in flight,
/// so memory stays bounded whatever the input's size. The first error in input order (a bad
/// row, a read or write error) stops the run and is returned, as a single thread would.
#[allow(
    clippy::too_many_lines,
    reason = "the header, then the reader, the scoring threads and the in-order writer of one scope"
)]
pub fn predict_csv(scorer: &Scorer, input: &Path, out: impl Write) -> Result<Summary> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(input)
        .with_context(|| format!("opening `{}`", input.display()))?;
    let header: Vec<String> = rdr
        .headers()
        .with_context(|| format!("reading the header of `{}`", input.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    crate::table::unique_names(input, &header)?;
    let fields = scorer
        .bind(&header)
        .with_context(|| format!("`{}` cannot be scored", input.display()))?;
    let mut w = csv::WriterBuilder::new().from_writer(out);
    // Keeps the I/O error itself in the chain, so that a closed pipe (`| head`) is recognised.
    let write_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => anyhow::Error::new(io).context("writing the predictions"),
        other => anyhow::anyhow!("writing the predictions: {other:?}"),
    };
    let mut names = scorer.mojo.output_names();
    names.extend(scorer.explained.iter().flatten().cloned());
    w.write_record(names).map_err(write_err)?;
    let classes = scorer
        .mojo
        .classes()
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    // The header goes out first; the batches are written straight to `out` below it.
    let mut out = w.into_inner().map_err(|e| {
        let kind = e.error().kind();
        anyhow::Error::new(std::io::Error::from(kind)).context("writing the predictions")
    })?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let in_flight = 2 * threads;
    let rows = std::thread::scope(|scope| -> Result<u64> {
        use std::sync::mpsc::sync_channel;
        // A batch is read only with a token, and its token comes back once it is written: at
        // most `in_flight` batches live between the reader and the writer.
        // A token is a batch's records, handed back for reuse once written.
        let (token_tx, token_rx) = sync_channel::<Vec<csv::StringRecord>>(in_flight);
        for _ in 0..in_flight {
            token_tx.send(Vec::new()).expect("the channel has room");
        }
        let (work_tx, work_rx) = sync_channel::<(usize, Batch)>(in_flight);
        let (done_tx, done_rx) = sync_channel::<Scored>(in_flight);
        scope.spawn(move || read_batches(rdr, &token_rx, &work_tx, input));
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        for _ in 0..threads {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            let (fields, classes) = (&fields, &classes);
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((index, batch))) = next else {
                        return;
                    };
                    let scored = match batch {
                        Ok(records) => {
                            let r =
                                score_batch(scorer, fields, classes, &records, &mut scratch, input);
                            (index, r, records)
                        }
                        Err(e) => (index, Err(e), Vec::new()),
                    };
                    if done_tx.send(scored).is_err() {
                        return;
                    }
                }
            });
        }
        drop((work_rx, done_tx));
        // In input order; an error ends the run (dropping the channels stops every thread).
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0;
        let mut rows = 0u64;
        for (index, scored, records) in done_rx.iter() {
            pending.insert(index, (scored, records));
            while let Some((scored, records)) = pending.remove(&next) {
                let (bytes, n) = scored?;
                out.write_all(&bytes)
                    .map_err(|e| anyhow::Error::new(e).context("writing the predictions"))?;
                rows += n;
                next += 1;
                let _ = token_tx.send(records);
            }
        }
        Ok(rows)
    })?;
    out.flush().context("writing the predictions")?;
    Ok(Summary {
        rows,
        version: scorer.version.clone(),
    })
}

/// The reader of [`predict_csv`]: sends batches in order, each once a token is free, then the
/// read error that ended the input, if any.
fn read_batches(
    mut rdr: csv::Reader<std::fs::File>,
    tokens: &std::sync::mpsc::Receiver<Vec<csv::StringRecord>>,
    work: &std::sync::mpsc::SyncSender<(usize, Batch)>,
    input: &Path,
) {
    let mut index = 0;
    loop {
        // A written batch's records come back with its token: read into them again.
        let Ok(mut batch) = tokens.recv() else {
            return;
        };
        let mut n = 0;
        let mut failed = None;
        while n < BATCH_ROWS {
            if n == batch.len() {
                batch.push(csv::StringRecord::new());
            }
            match rdr.read_record(&mut batch[n]) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        batch.truncate(n);
        let end = n < BATCH_ROWS;
        let sent = match failed {
            Some(e) => Err(crate::table::csv_err(input, e).into()),
            None if batch.is_empty() => return,
            None => Ok(batch),
        };
        let failed = sent.is_err();
        if work.send((index, sent)).is_err() || end || failed {
            return;
        }
        index += 1;
    }
}

/// Scores a batch of records into CSV lines (no header): the bytes and the number of rows.
fn score_batch(
    scorer: &Scorer,
    fields: &[Option<usize>],
    classes: &[String],
    records: &[csv::StringRecord],
    scratch: &mut Scratch,
    input: &Path,
) -> Result<(Vec<u8>, u64)> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(records.len() * 48));
    let fmt_err = |e: csv::Error| anyhow::anyhow!("formatting the predictions: {e}");
    // Reused for every row: the fields the model reads, and one number's text.
    let mut row: Vec<&str> = Vec::with_capacity(fields.len());
    let mut number = String::new();
    for record in records {
        row.clear();
        row.extend(
            fields
                .iter()
                .map(|f| f.and_then(|i| record.get(i)).unwrap_or("")),
        );
        let p = scorer.score(&row, scratch).with_context(|| {
            format!(
                "`{}`, line {}",
                input.display(),
                record
                    .position()
                    .map_or(0, |p| crate::table::line_of(input, p))
            )
        })?;
        let field = |w: &mut csv::Writer<Vec<u8>>, number: &mut String, x: f64| {
            number.clear();
            push_double(number, x);
            w.write_field(number.as_bytes())
        };
        match p {
            Prediction::Class {
                label,
                probabilities,
            } => {
                let name = classes.get(label).map_or("", String::as_str);
                w.write_field(name).map_err(fmt_err)?;
                for &x in &probabilities {
                    field(&mut w, &mut number, x).map_err(fmt_err)?;
                }
            }
            Prediction::Value(v) => field(&mut w, &mut number, v).map_err(fmt_err)?,
        }
        if scorer.explained.is_some() {
            for &x in scorer.contributions(scratch) {
                field(&mut w, &mut number, x).map_err(fmt_err)?;
            }
        }
        w.write_record(None::<&[u8]>).map_err(fmt_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("formatting the predictions: {}", e.error()))?;
    Ok((bytes, records.len() as u64))
}

/// Scores `input` into `path`. A regular file (or a new one) is written atomically: the
/// predictions go to a temporary file beside it, renamed over it only when every row was
/// scored, so a refused input (or a kill) leaves an existing file as it was. A symlink is
/// followed (the file it names is replaced, the link stays). Anything else that exists (a FIFO,
/// `/dev/null`, a terminal) is written in place, as a shell redirection would: renaming over
/// it would replace the device itself. `path` naming the input is refused. Once `stop` is set
/// (Ctrl-C), the next batch's write fails with [`Stopped`]: the temporary file is removed and
/// OUT is left as it was.
pub fn predict_to_file(
    scorer: &Scorer,
    input: &Path,
    path: &Path,
    stop: &AtomicBool,
) -> Result<Summary> {
    use std::os::unix::fs::MetadataExt;
    let existing = std::fs::metadata(path).ok();
    if let Some(meta) = &existing {
        if meta.is_dir() {
            anyhow::bail!(
                "`{}` is a directory: -o names the CSV file to write",
                path.display()
            );
        }
        if !meta.is_file() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening `{}` to write", path.display()))?;
            let mut writer = std::io::BufWriter::new(Stoppable { out: file, stop });
            let summary = predict_csv(scorer, input, &mut writer)?;
            writer
                .flush()
                .with_context(|| format!("writing `{}`", path.display()))?;
            return Ok(summary);
        }
        let same =
            std::fs::metadata(input).is_ok_and(|i| (i.dev(), i.ino()) == (meta.dev(), meta.ino()));
        if same {
            return Err(Diagnostic::new(format!(
                "`{}` is the input file: writing the predictions there would replace the rows being scored",
                path.display()
            ))
            .hint("name another file with -o, or leave -o out to print the predictions")
            .exit(crate::error::Exit::Usage)
            .into());
        }
    }
    let target = link_target(path);
    atomic_predict(scorer, input, &target, stop)
}

/// Why a write of the predictions was refused: the command was interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Stopped;

/// A writer that refuses every write once `stop` is set, so that the scoring stops at its next
/// batch and unwinds as after any write error.
struct Stoppable<'a, W> {
    out: W,
    stop: &'a AtomicBool,
}

impl<W: Write> Write for Stoppable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(Stopped));
        }
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The file a symlink at `path` names (through every link), or `path` itself.
fn link_target(path: &Path) -> PathBuf {
    let mut at = path.to_path_buf();
    // As the kernel does, give up on a chain longer than 40 links.
    for _ in 0..40 {
        let Ok(next) = std::fs::read_link(&at) else {
            return at;
        };
        at = match at.parent() {
            Some(dir) => dir.join(next),
            None => next,
        };
    }
    at
}

fn atomic_predict(
    scorer: &Scorer,
    input: &Path,
    path: &Path,
    stop: &AtomicBool,
) -> Result<Summary> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".mlbuild-predict-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in `{}`", dir.display()))?;
    let mut writer = std::io::BufWriter::new(Stoppable { out: tmp, stop });
    let summary = predict_csv(scorer, input, &mut writer)?;
    let tmp = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing `{}`", path.display()))?
        .out;
    {
        use std::os::unix::fs::PermissionsExt;
        // Temporary files are created 0600; OUT is an ordinary user file.
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing `{}`", path.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MOJO fixtures' folder, and a scorer of its binomial GBM.
    fn gbm_scorer() -> (PathBuf, Scorer) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
        let mojo = Mojo::load(&std::fs::read(root.join("gbm_bin.zip")).unwrap()).unwrap();
        (root, Scorer::new(mojo, None, None).unwrap())
    }

    #[test]
    fn doubles_read_back_exactly() {
        for x in [
            0.1,
            1.0,
            65.0,
            1e-7,
            0.30306544792219523,
            1e300,
            -2.5e-300,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let s = format_double(x);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        }
        assert_eq!(format_double(1.0), "1.0");
        assert_eq!(
            format_double(f64::INFINITY).parse::<f64>().unwrap(),
            f64::INFINITY
        );
        assert!(format_double(f64::NAN).parse::<f64>().unwrap().is_nan());
    }

    #[test]
    fn a_mojo_file_scores_as_genmodel_and_refuses_missing_columns() {
        let (root, scorer) = gbm_scorer();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        predict_csv(
            &scorer,
            &root.join("prostate.in.csv"),
            std::fs::File::create(&out).unwrap(),
        )
        .unwrap();
        let ours = std::fs::read_to_string(&out).unwrap();
        let theirs = std::fs::read_to_string(root.join("gbm_bin.out.csv")).unwrap();
        assert_eq!(
            ours.lines().next(),
            theirs.lines().next(),
            "PredictCsv's header"
        );
        assert_eq!(ours.lines().count(), theirs.lines().count());
        for (a, b) in ours.lines().zip(theirs.lines()).skip(1) {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            assert_eq!(a[0], b[0]);
            for (x, y) in a[1..].iter().zip(&b[1..]) {
                assert_eq!(crate::mojo::java_hex(x.parse().unwrap()), *y);
            }
        }
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "AGE,RACE\n65,1\n").unwrap();
        let e = format!("{:#}", predict_csv(&scorer, &bad, Vec::new()).unwrap_err());
        assert!(
            e.contains("no column `DPROS`") && e.contains("`RACE` (categorical"),
            "{e}"
        );
    }

    /// Many batches on every core come out in input order, row for row the single-row
    /// scorer's answer; a bad row deep in the file is reported by its line, as one thread would.
    #[test]
    fn batches_scored_in_parallel_come_out_in_input_order() {
        let (root, scorer) = gbm_scorer();
        let text = std::fs::read_to_string(root.join("prostate.in.csv")).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let body: Vec<&str> = lines.collect();
        let rows = 5 * BATCH_ROWS + 123;
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("many.csv");
        let mut csv = format!("{header}\n");
        for i in 0..rows {
            csv.push_str(body[i % body.len()]);
            csv.push('\n');
        }
        std::fs::write(&input, &csv).unwrap();
        let mut out = Vec::new();
        let summary = predict_csv(&scorer, &input, &mut out).unwrap();
        assert_eq!(summary.rows, rows as u64);
        let ours = String::from_utf8(out).unwrap();
        let got: Vec<&str> = ours.lines().skip(1).collect();
        assert_eq!(got.len(), rows);
        // Each distinct input row scores the same wherever it sits in the file.
        let one = |i: usize| {
            let single = dir.path().join("one.csv");
            std::fs::write(&single, format!("{header}\n{}\n", body[i])).unwrap();
            let mut out = Vec::new();
            predict_csv(&scorer, &single, &mut out).unwrap();
            String::from_utf8(out)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        };
        let expected: Vec<String> = (0..body.len()).map(one).collect();
        for (i, line) in got.iter().enumerate() {
            assert_eq!(*line, expected[i % body.len()], "row {i}");
        }
        // A row that cannot be scored, in the fourth batch: its line is named.
        let bad_at = 3 * BATCH_ROWS + 7;
        let mut bad = format!("{header}\n");
        for i in 0..rows {
            if i == bad_at {
                let cols = header.split(',').count();
                bad.push_str(&vec!["x"; cols].join(","));
            } else {
                bad.push_str(body[i % body.len()]);
            }
            bad.push('\n');
        }
        std::fs::write(&input, &bad).unwrap();
        let e = format!(
            "{:#}",
            predict_csv(&scorer, &input, Vec::new()).unwrap_err()
        );
        assert!(e.contains(&format!("line {}", bad_at + 2)), "{e}");
    }

    /// A refused input leaves an existing OUT untouched (and no temporary file behind); a
    /// scored one replaces it.
    #[test]
    fn a_refused_input_leaves_the_output_file_untouched() {
        let (root, scorer) = gbm_scorer();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        std::fs::write(&out, "yesterday's predictions\n").unwrap();
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "AGE,RACE\n65,1\n").unwrap();
        assert!(predict_to_file(&scorer, &bad, &out, &AtomicBool::new(false)).is_err());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "yesterday's predictions\n"
        );
        let names = || -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names().len(), 2, "{:?}", names());
        let summary = predict_to_file(
            &scorer,
            &root.join("prostate.in.csv"),
            &out,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(summary.rows > 0);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("predict,"), "{text}");
        assert_eq!(names().len(), 2, "{:?}", names());
    }

    /// A bad row is named by its line in the file, whether lines end with `\n` or `\r\n` (the
    /// `csv` crate's count is one short after a `\r\n`), and a short row says so with a hint.
    #[test]
    fn a_bad_row_is_named_by_its_line_with_either_line_ending() {
        let (_, scorer) = gbm_scorer();
        let header = "ID,CAPSULE,AGE,RACE,DPROS,DCAPS,PSA,VOL,GLEASON";
        let good = "1,0,65,1,2,1,1.4,0,6";
        let dir = tempfile::tempdir().unwrap();
        for end in ["\n", "\r\n"] {
            let lines = [header, good, good, "3,0,abc,1,2,1,1.4,0,6", good];
            let path = dir.path().join("in.csv");
            std::fs::write(&path, lines.join(end) + end).unwrap();
            let e = format!("{:#}", predict_csv(&scorer, &path, Vec::new()).unwrap_err());
            assert!(
                e.contains("line 4") && e.contains("`abc` is not a number"),
                "{end:?}: {e}"
            );
            let lines = [header, good, "2,0,72", good];
            std::fs::write(&path, lines.join(end) + end).unwrap();
            let e = predict_csv(&scorer, &path, Vec::new()).unwrap_err();
            // As the data path says it (its hint comes with `TableError::Csv`).
            assert_eq!(
                e.downcast_ref::<crate::table::TableError>()
                    .map(ToString::to_string),
                Some(format!(
                    "`{}` line 3: expected 9 fields (as in the header), found 3",
                    path.display()
                )),
                "{end:?}: {e:#}"
            );
        }
    }

    /// A header naming a column twice is refused (the model would read one of the two).
    #[test]
    fn a_header_naming_a_column_twice_is_refused() {
        let (_, scorer) = gbm_scorer();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(
            &path,
            "ID,CAPSULE,AGE,RACE,DPROS,DCAPS,PSA,VOL,GLEASON,AGE\n1,0,65,1,2,1,1.4,0,6,99\n",
        )
        .unwrap();
        let e = format!("{:#}", predict_csv(&scorer, &path, Vec::new()).unwrap_err());
        assert!(
            e.contains("column `AGE` appears twice in the header (columns 3 and 10)"),
            "{e}"
        );
    }

    /// OUT that is not a regular file is written through, never renamed over: a FIFO stays a
    /// FIFO (its reader gets the predictions), a symlink stays a link (the file it names is
    /// replaced), and OUT naming the input is refused with the input unchanged.
    #[test]
    fn output_to_a_fifo_or_a_symlink_writes_through_and_never_replaces_it() {
        use std::os::unix::fs::FileTypeExt;
        let (root, scorer) = gbm_scorer();
        let input = root.join("prostate.in.csv");
        let mut expected = Vec::new();
        predict_csv(&scorer, &input, &mut expected).unwrap();
        let dir = tempfile::tempdir().unwrap();

        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        predict_to_file(&scorer, &input, &fifo, &AtomicBool::new(false)).unwrap();
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo(),
            "the FIFO was replaced by a file"
        );
        assert_eq!(reader.join().unwrap(), expected);

        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/out.csv"), "old\n").unwrap();
        let link = dir.path().join("out.csv");
        std::os::unix::fs::symlink("real/out.csv", &link).unwrap();
        predict_to_file(&scorer, &input, &link, &AtomicBool::new(false)).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read(dir.path().join("real/out.csv")).unwrap(),
            expected
        );

        let copy = dir.path().join("in.csv");
        std::fs::copy(&input, &copy).unwrap();
        let e = predict_to_file(&scorer, &copy, &copy, &AtomicBool::new(false)).unwrap_err();
        assert!(format!("{e:#}").contains("is the input file"), "{e:#}");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(&input).unwrap()
        );
        let e = predict_to_file(&scorer, &input, dir.path(), &AtomicBool::new(false)).unwrap_err();
        assert!(format!("{e:#}").contains("is a directory"), "{e:#}");
    }
}
