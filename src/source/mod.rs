//! Data sources: from `[locate]` to one immutable snapshot (a CSV file) and its blake3 digest.
//!
//! | source | snapshot | how an unchanged source is recognised |
//! |---|---|---|
//! | one CSV file, default options | the file's raw bytes (reflink or copy) | the stat cache: one `stat` |
//! | CSV with `delimiter`/`header`/`na_strings`, Parquet, a glob | canonical CSV ([`canonical`]) | the stat cache per file, then a memo (file digests + options → snapshot digest): no re-conversion |
//! | `sql` | canonical CSV of the result, in the query's order | re-queried on every run (and by `status`/`explain`); an identical result has the identical digest |
//! | `sql` + `[locate.incremental]` | the previous snapshot plus the rows past its watermark | the query for new rows returns none |
//!
//! [`materialize`] runs before the planner, because the snapshot's digest enters locate's key
//! (and its profile define's). It writes nothing into the CAS: a converted or queried snapshot
//! waits in `v1/tmp/` until the locate step runs and calls [`Snapshot::commit`]; the sidecars
//! (conversion memo, incremental state) are written by [`Snapshot::remember`] only after locate
//! completed in a real run. So `status`, `explain` and a failed run leave the previous snapshot,
//! its watermark and everything downstream untouched.
//!
//! Incremental state lives in `v1/sources/incremental-<id>.json`, where `<id>` hashes the query,
//! its params, the watermark and key columns and the database URL without its password: change
//! any of them and the next run extracts everything again.

pub mod canonical;
pub mod files;
#[cfg(test)]
mod properties;
pub mod sql;

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{Locate, Place, SqlParam};
use crate::error::Diagnostic;
use crate::report::Printer;
use crate::store::{read_sealed, write_sealed, StatCache, Store};
use canonical::{CanonicalWriter, Cell};
use files::CsvOptions;
use sql::{Bind, SqlError};

/// Format version of the canonical form and the conversion memo; bump to reconvert everything.
/// 2: a row of one empty field is `""`, no longer a blank line that lost the row on reading.
const CANONICAL_VERSION: u32 = 2;

/// What `[locate]` names, for messages: "`data/x.csv`" or "the query in `[locate] sql`".
pub fn describe(locate: &Locate) -> String {
    match (&locate.path, &locate.sql) {
        (Some(path), _) => format!("`{path}`"),
        _ => "the result of `[locate] sql`".to_string(),
    }
}

/// Where the bytes of a snapshot are until locate stores them.
#[derive(Debug)]
enum Origin {
    /// The user's own file (stored by reflink or copy).
    Raw,
    /// A converted or queried file in the store's temp dir.
    Staged(tempfile::TempPath),
    /// Already in the CAS.
    Stored,
}

/// A materialised source: its digest and a readable file with its bytes.
#[derive(Debug)]
pub struct Snapshot {
    pub digest: String,
    /// Where the bytes can be read now (the user's file, a temp file, or the blob).
    pub file: PathBuf,
    origin: Origin,
    /// Sidecars to write once locate has completed: the conversion memo's path and key.
    memo: Option<(PathBuf, String)>,
    state: Option<(PathBuf, IncrementalState)>,
    /// How it was extracted, for locate's result (`{"source": "sql", "mode": "append", …}`).
    pub detail: Value,
}

/// What an incremental source remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrementalState {
    pub snapshot: String,
    /// The largest value of the watermark column in `snapshot` (`None`: all NULL).
    pub watermark: Option<Cell>,
    pub rows: u64,
}

impl Snapshot {
    /// Puts the snapshot's bytes into the CAS (locate's work) and checks they still have the
    /// digest the plan was made with.
    pub fn commit(&self, store: &Store) -> Result<()> {
        let stored = match &self.origin {
            Origin::Stored => {
                if !store.contains(&self.digest) {
                    return Err(crate::store::StoreError::Missing {
                        digest: self.digest.clone(),
                    }
                    .into());
                }
                return Ok(());
            }
            Origin::Raw => store
                .put_file(&self.file)
                .with_context(|| format!("snapshotting `{}`", self.file.display()))?,
            // Written and hashed by this process in the store's temp dir: moved into the CAS
            // under the digest computed as it was written (had the move failed, the temp file
            // is removed when the snapshot is dropped).
            Origin::Staged(tmp) => {
                store
                    .commit_path(tmp, &self.digest)
                    .context("storing the snapshot")?;
                return Ok(());
            }
        };
        if stored != self.digest {
            return Err(Diagnostic::new(format!(
                "`{}` changed while mlbuild was reading it",
                self.file.display()
            ))
            .hint("run again once the file is no longer being written")
            .into());
        }
        Ok(())
    }

    /// Records the sidecars (conversion memo, incremental state) once locate has completed.
    pub fn remember(&self, store: &Store) -> Result<()> {
        if !store.contains(&self.digest) {
            return Ok(());
        }
        if let Some((memo, key)) = &self.memo {
            let body = ConversionMemo {
                key: key.clone(),
                snapshot: self.digest.clone(),
            };
            write_sealed(memo, &body)?;
        }
        if let Some((path, state)) = &self.state {
            write_sealed(path, state)?;
        }
        Ok(())
    }
}

/// Everything [`materialize`] needs.
pub struct Request<'a> {
    pub project: &'a Path,
    pub locate: &'a Locate,
    pub store: &'a Store,
    pub printer: &'a Printer,
    /// `run --full-refresh`: ignore the incremental state.
    pub full_refresh: bool,
    /// Where a key of `[locate]` (`"sql"`, `"path"`) is written (computed only for an error).
    pub place_of: &'a dyn Fn(&str) -> Option<Place>,
}

/// Reads the source into a snapshot (see the module doc).
pub async fn materialize(req: &Request<'_>) -> Result<Snapshot> {
    match (&req.locate.path, &req.locate.sql) {
        (Some(path), _) => from_files(req, path),
        (None, Some(sql)) => from_sql(req, sql).await,
        (None, None) => Err(Diagnostic::new("`[locate]` names no source")
            .hint("set `path` or `sql`")
            .into()),
    }
}

/// The key of a file source's conversion memo: the blake3 of the JSON object of the canonical
/// form's version, the CSV options and the files' (name, digest) pairs, its keys sorted — the
/// text is streamed into the hash, never built (a 10,000-file source makes ~1 MB of it).
fn memo_key(options: &files::CsvOptions, digests: &[(String, String)]) -> String {
    #[derive(serde::Serialize)]
    struct MemoKey<'a> {
        canonical: u32,
        delimiter: u8,
        files: &'a [(String, String)],
        header: bool,
        na_strings: &'a [String],
    }
    let mut hasher = blake3::Hasher::new();
    serde_json::to_writer(
        &mut hasher,
        &MemoKey {
            canonical: CANONICAL_VERSION,
            delimiter: options.delimiter,
            files: digests,
            header: options.header,
            na_strings: &options.na_strings,
        },
    )
    .expect("a memo key serialises");
    hasher.finalize().to_hex().to_string()
}

/// A conversion memo: the snapshot the sources of `key` ([`memo_key`]) convert to. Written
/// sealed (`store::write_sealed`) with its key inside, so that a memo that was damaged, edited
/// or copied under another key's name is never believed.
#[derive(Serialize, Deserialize)]
struct ConversionMemo {
    key: String,
    snapshot: String,
}

fn from_files(req: &Request<'_>, path: &str) -> Result<Snapshot> {
    let options = CsvOptions::of(req.locate);
    let expand = || files::expand_stat(req.project, path);
    let load = || StatCache::load(&req.store.stat_cache_path());
    // A glob's stat cache (a JSON file of every file's stat) loads while the files are listed;
    // a single file is not worth starting threads for.
    let glob = files::reads_as_glob(req.project, path);
    let (found, mut stat) = match glob {
        true => rayon::join(expand, load),
        false => (expand(), load()),
    };
    let found = found.map_err(|e| placed(req, "path", e))?;
    let mut digests = Vec::with_capacity(found.len());
    let mut files = Vec::with_capacity(found.len());
    for (file, shown, meta) in found {
        digests.push((shown.clone(), stat.digest_of(&file, &meta)?));
        files.push((file, shown));
    }
    stat.save()?;
    let plain = files.len() == 1 && !glob && !files::is_parquet(&files[0].0);
    if plain && options.is_default() {
        return Ok(Snapshot {
            digest: digests[0].1.clone(),
            file: files[0].0.clone(),
            origin: Origin::Raw,
            memo: None,
            state: None,
            detail: json!({ "source": "file" }),
        });
    }
    let memo_key = memo_key(&options, &digests);
    let memo = req
        .store
        .source_memo_path(&format!("converted-{memo_key}.json"));
    let detail = json!({ "source": "files", "files": files.len() });
    let remembered = read_sealed::<ConversionMemo>(&memo)
        .filter(|m| m.key == memo_key)
        .map(|m| m.snapshot);
    if let Some(digest) = remembered.filter(|d| req.store.contains(d)) {
        return Ok(Snapshot {
            file: req.store.blob_path(&digest),
            digest,
            origin: Origin::Stored,
            memo: None,
            state: None,
            detail,
        });
    }
    let tmp = req.store.temp_file()?;
    let (tmp_file, tmp_path) = tmp.into_parts();
    let (out, digest, _rows) = files::convert(&files, &options, BufWriter::new(tmp_file))
        .map_err(|e| writing(e, &tmp_path))?;
    out.into_inner()
        .map_err(|e| writing(e.into_error().into(), &tmp_path))?;
    Ok(Snapshot {
        digest,
        file: tmp_path.to_path_buf(),
        origin: Origin::Staged(tmp_path),
        memo: Some((memo, memo_key)),
        state: None,
        detail,
    })
}

/// A conversion's error, with the file it was writing named when writing failed: a bare I/O
/// error (a full disk, say), since whatever fails in reading a source is reported with its
/// file and line already.
fn writing(e: anyhow::Error, path: &Path) -> anyhow::Error {
    match e.downcast::<std::io::Error>() {
        Ok(io) => anyhow::Error::new(io).context(format!(
            "cannot write the converted snapshot `{}`",
            path.display()
        )),
        Err(e) => e,
    }
}

/// The database URL from the environment variable `[locate] url_env` names.
fn database_url(locate: &Locate) -> Result<String> {
    let name = locate.url_env.as_deref().unwrap_or_default();
    match std::env::var(name) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(Diagnostic::new(format!(
            "the environment variable `{name}` (named by `[locate] url_env`) is not set"
        ))
        .hint(format!(
            "export {name}=postgres://USER:PASSWORD@HOST/DB (or sqlite://FILE); the URL stays out of `ml.toml` so no secret sits in the project"
        ))
        .into()),
    }
}

fn bind_param(p: &SqlParam) -> Bind {
    match p {
        SqlParam::Bool(b) => Bind::Bool(*b),
        SqlParam::Int(i) => Bind::Int(*i),
        SqlParam::Float(f) => Bind::Float(*f),
        SqlParam::Text(t) => Bind::Text(t.clone()),
    }
}

/// An error about `[locate] KEY`, placed at the key's value in `ml.toml` (with the line and a
/// caret) when it is a [`Diagnostic`] and the place is known.
fn placed(req: &Request<'_>, key: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<Diagnostic>() {
        Ok(mut d) => {
            if let Some(at) = (req.place_of)(key) {
                d.message = format!("{at}: {}{}", d.message, at.snippet());
            }
            d.into()
        }
        Err(e) => e,
    }
}

/// A SQL error, with the place of the query in `ml.toml`.
fn sql_error(req: &Request<'_>, e: SqlError) -> anyhow::Error {
    let at = (req.place_of)("sql");
    let prefix = at.as_ref().map(|p| format!("{p}: ")).unwrap_or_default();
    let snippet = at.as_ref().map(Place::snippet).unwrap_or_default();
    let d = match &e {
        SqlError::Query { message } => Diagnostic::new(format!(
            "{prefix}the database rejected the query in `[locate] sql`: {message}{snippet}"
        ))
        .hint("check the query against the database, e.g. with `psql` or `sqlite3`; parameters are `$1`, `$2`, … bound from `[locate] params`"),
        SqlError::Connect { .. } => Diagnostic::new(format!("{prefix}{e}"))
            .hint(format!(
                "check the URL in `${}` and that the database is running",
                req.locate.url_env.as_deref().unwrap_or_default()
            )),
        SqlError::UnsupportedType { column, .. } => Diagnostic::new(format!("{prefix}{e}{snippet}"))
            .hint(format!("cast it in the query, e.g. `{column}::text` or `{column}::float8`")),
        SqlError::MixedWatermark { column, .. } => Diagnostic::new(format!("{prefix}{e}{snippet}"))
            .hint(format!(
                "an incremental source needs one type in its watermark column (a database orders a text after every number, so that row would be fetched again on every run): fix those rows, or make the query give one type, e.g. `WHERE typeof({column}) = 'integer'` on SQLite or `CAST({column} AS …)`"
            )),
        SqlError::Unsupported(_) | SqlError::Write(_) => Diagnostic::new(format!("{prefix}{e}")),
    };
    d.into()
}

/// Collects a query's result into a canonical CSV: the header, the rows, the watermark.
struct Collect<W: Write> {
    out: Option<W>,
    writer: Option<CanonicalWriter<W>>,
    columns: Vec<String>,
    watermark_col: Option<usize>,
    watermark_name: Option<String>,
    watermark: Option<Cell>,
    key_col: Option<usize>,
    key_name: Option<String>,
    /// key text → index of its last row (only with a key).
    last_of_key: HashMap<String, u64>,
}

impl<W: Write> Collect<W> {
    fn new(out: W, watermark: Option<&str>, key: Option<&str>) -> Self {
        Collect {
            out: Some(out),
            writer: None,
            columns: Vec::new(),
            watermark_col: None,
            watermark_name: watermark.map(str::to_string),
            watermark: None,
            key_col: None,
            key_name: key.map(str::to_string),
            last_of_key: HashMap::new(),
        }
    }
}

/// Whether watermark value `v` is past `mark`. NULL never is; a value that does not order
/// with the mark (another type) is an error naming the column, never skipped: the database
/// would return its row past the mark again on every run, appending it each time.
fn past(mark: &Cell, v: &Cell, column: &str) -> Result<bool, SqlError> {
    match v.compare(mark) {
        Some(order) => Ok(order == std::cmp::Ordering::Greater),
        None if matches!(v, Cell::Null) => Ok(false),
        None => Err(SqlError::MixedWatermark {
            column: column.to_string(),
            first: mark.described(),
            then: v.described(),
        }),
    }
}

fn missing_column(what: &str, name: &str, columns: &[String]) -> SqlError {
    SqlError::Unsupported(format!(
        "`[locate.incremental] {what}` names `{name}`, which is not a column of the query's result (columns: {})",
        crate::report::list_names(columns)
    ))
}

impl<W: Write> sql::Sink for Collect<W> {
    fn header(&mut self, columns: &[String]) -> Result<(), SqlError> {
        self.columns = columns.to_vec();
        if let Some(name) = &self.watermark_name {
            self.watermark_col = Some(
                columns
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| missing_column("column", name, columns))?,
            );
        }
        if let Some(name) = &self.key_name {
            self.key_col = Some(
                columns
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| missing_column("key", name, columns))?,
            );
        }
        self.writer = Some(CanonicalWriter::new(
            self.out.take().expect("one header"),
            columns,
        ));
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), SqlError> {
        let w = self.writer.as_mut().expect("header first");
        if let Some(i) = self.watermark_col {
            let v = &cells[i];
            let larger = match &self.watermark {
                None => !matches!(v, Cell::Null),
                Some(m) => past(m, v, &self.columns[i])?,
            };
            if larger {
                self.watermark = Some(v.clone());
            }
        }
        if let Some(i) = self.key_col {
            self.last_of_key.insert(cells[i].render(), w.rows);
        }
        w.write_row(&cells)?;
        Ok(())
    }
}

fn state_path(req: &Request<'_>, sql: &str, url: &str) -> Option<PathBuf> {
    let inc = req.locate.incremental.as_ref()?;
    let id = blake3::hash(
        json!({
            "canonical": CANONICAL_VERSION,
            "sql": sql,
            "params": req.locate.params,
            "column": inc.column,
            "key": inc.key,
            "url": crate::redact::without_credentials(url),
        })
        .to_string()
        .as_bytes(),
    )
    .to_hex()
    .to_string();
    Some(
        req.store
            .source_memo_path(&format!("incremental-{id}.json")),
    )
}

/// The incremental state at `path`: none before the first extraction; an error when it is
/// damaged (it does not parse, or its seal does not match: a watermark changed by hand or by a
/// bad disk would skip rows or fetch them twice) or its snapshot is no longer in the store.
/// Either way the rows accumulated so far are not silently replaced by the query's current
/// result, which lacks any row the database has deleted since: `--full-refresh` says so. A
/// state written before states were sealed (no seal at all) is believed, and sealed when next
/// written.
fn read_state(store: &Store, path: &Path) -> Result<Option<IncrementalState>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", path.display())),
    };
    let unsealed = || {
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        value
            .get("blake3")
            .is_none()
            .then(|| serde_json::from_value(value).ok())
            .flatten()
    };
    let refresh = "`mlbuild run --full-refresh` extracts the query's whole result again and \
                   writes a new state (without the rows the database no longer holds)";
    let Some(state) = crate::store::unseal::<IncrementalState>(&bytes).or_else(unsealed) else {
        return Err(Diagnostic::new(format!(
            "the incremental state of `[locate] sql`, `{}`, is damaged (it does not parse, or \
             its seal does not match what it holds)",
            path.display()
        ))
        .hint(refresh)
        .into());
    };
    if !store.contains(&state.snapshot) {
        return Err(Diagnostic::new(format!(
            "the incremental state of `[locate] sql` appends to snapshot {}, which is not in \
             the store{}",
            crate::store::short_digest(&state.snapshot),
            if store.quarantined(&state.snapshot) {
                " (it was found corrupt and quarantined)"
            } else {
                ""
            }
        ))
        .hint(format!(
            "restore it (`mlbuild cache pull`, if the remote cache has it), or {refresh}"
        ))
        .into());
    }
    Ok(Some(state))
}

#[allow(
    clippy::too_many_lines,
    reason = "a SQL source: connect, query or increment, canonicalise and memo, in order"
)]
async fn from_sql(req: &Request<'_>, sql: &str) -> Result<Snapshot> {
    let url = database_url(req.locate)?;
    if !sql::has_order_by(sql) {
        req.printer.warn(
            "the query in `[locate] sql` has no ORDER BY: rows come in whatever order the database \
             picks, which can change between runs and with it the snapshot's digest",
        );
    }
    let inc = req.locate.incremental.as_ref();
    let state_file = state_path(req, sql, &url);
    let previous = match (&state_file, req.full_refresh) {
        (Some(path), false) => read_state(req.store, path)?,
        _ => None,
    };
    let binds: Vec<Bind> = req.locate.params.iter().map(bind_param).collect();

    // Incremental: only the rows past the watermark, appended to the previous snapshot.
    if let (Some(inc), Some(prev), Some(state_file)) = (inc, &previous, &state_file) {
        if let Some(mark) = prev.watermark.as_ref().and_then(Bind::of_cell) {
            let query =
                sql::incremental_query(sql, &inc.column, inc.key.as_deref(), binds.len() + 1);
            let mut binds = binds.clone();
            binds.push(mark);
            let delta = req.store.temp_file()?.into_temp_path();
            let file = std::fs::File::create(&delta)
                .with_context(|| format!("creating `{}`", delta.display()))?;
            let mut sink =
                Collect::new(BufWriter::new(file), Some(&inc.column), inc.key.as_deref());
            let n = sql::extract(&url, req.project, &query, binds, &mut sink)
                .await
                .map_err(|e| sql_error(req, e))?;
            if n == 0 {
                return Ok(Snapshot {
                    file: req.store.blob_path(&prev.snapshot),
                    digest: prev.snapshot.clone(),
                    origin: Origin::Stored,
                    memo: None,
                    state: Some((state_file.clone(), prev.clone())),
                    detail: json!({ "source": "sql", "mode": "append", "appended": 0 }),
                });
            }
            let (out, _) = sink.writer.take().expect("rows mean a header").finish()?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .context("writing the fetched rows")?;
            return append(req, prev, &sink, &delta, state_file.clone(), n);
        }
    }

    // A full extraction.
    let staged = req.store.temp_file()?.into_temp_path();
    let file = std::fs::File::create(&staged)
        .with_context(|| format!("creating `{}`", staged.display()))?;
    let mut sink = Collect::new(
        BufWriter::new(file),
        inc.map(|i| i.column.as_str()),
        inc.and_then(|i| i.key.as_deref()),
    );
    let n = sql::extract(&url, req.project, sql, binds, &mut sink)
        .await
        .map_err(|e| sql_error(req, e))?;
    if n == 0 {
        let at = (req.place_of)("sql")
            .map(|p| format!("{p}: "))
            .unwrap_or_default();
        return Err(Diagnostic::new(format!(
            "{at}the query in `[locate] sql` returned no rows"
        ))
        .hint("check the query and its `params`; the previous snapshot and tags are left as they were")
        .into());
    }
    let (out, digest) = sink.writer.take().expect("rows mean a header").finish()?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .context("writing the query's result")?;
    let state = state_file.map(|path| {
        (
            path,
            IncrementalState {
                snapshot: digest.clone(),
                watermark: sink.watermark.clone(),
                rows: n,
            },
        )
    });
    Ok(Snapshot {
        digest,
        file: staged.to_path_buf(),
        origin: Origin::Staged(staged),
        memo: None,
        state,
        detail: json!({ "source": "sql", "mode": "full" }),
    })
}

/// The watermark after an append: the later of the previous one and the fetch's.
fn later_mark<W: Write>(
    prev: &IncrementalState,
    delta: &Collect<W>,
) -> Result<Option<Cell>, SqlError> {
    Ok(match (&prev.watermark, &delta.watermark) {
        (Some(a), Some(b)) => {
            let column = delta.watermark_name.as_deref().unwrap_or_default();
            Some(if past(a, b, column)? { b } else { a }.clone())
        }
        (Some(a), None) => Some(a.clone()),
        (None, b) => b.clone(),
    })
}

/// The previous snapshot, minus rows whose key was fetched again, plus the fetched rows (the
/// last version of each key when there is a key).
fn append<W: Write>(
    req: &Request<'_>,
    prev: &IncrementalState,
    delta: &Collect<W>,
    delta_file: &Path,
    state_file: PathBuf,
    fetched: u64,
) -> Result<Snapshot> {
    let old = req.store.verified_path(&prev.snapshot)?;
    let mut old_rows = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(&old)
        .with_context(|| format!("reading the previous snapshot `{}`", old.display()))?;
    let old_header: Vec<String> = old_rows.headers()?.iter().map(str::to_string).collect();
    if old_header != delta.columns {
        return Err(Diagnostic::new(format!(
            "the query's columns changed since the previous snapshot: [{}] instead of [{}]",
            crate::report::list_names(&delta.columns),
            crate::report::list_names(&old_header)
        ))
        .hint("run `mlbuild run --full-refresh` to extract everything again with the new columns")
        .into());
    }
    let staged = req.store.temp_file()?.into_temp_path();
    let file = std::fs::File::create(&staged)
        .with_context(|| format!("creating `{}`", staged.display()))?;
    let mut w = CanonicalWriter::new(BufWriter::new(file), &old_header);
    let replaced: HashSet<&String> = delta.last_of_key.keys().collect();
    let mut record = csv::StringRecord::new();
    let mut kept_old = 0u64;
    while old_rows.read_record(&mut record)? {
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if let Some(k) = delta.key_col {
            if replaced.contains(&fields[k]) {
                continue;
            }
        }
        w.write_texts(&fields)?;
        kept_old += 1;
    }
    let mut new_rows = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(delta_file)
        .context("reading the fetched rows")?;
    let mut index = 0u64;
    while new_rows.read_record(&mut record)? {
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        let keep = match delta.key_col {
            Some(k) => delta.last_of_key.get(&fields[k]) == Some(&index),
            None => true,
        };
        if keep {
            w.write_texts(&fields)?;
        }
        index += 1;
    }
    let rows = w.rows;
    let (out, digest) = w.finish()?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .context("writing the appended snapshot")?;
    let watermark = later_mark(prev, delta).map_err(|e| sql_error(req, e))?;
    Ok(Snapshot {
        digest: digest.clone(),
        file: staged.to_path_buf(),
        origin: Origin::Staged(staged),
        memo: None,
        state: Some((
            state_file,
            IncrementalState {
                snapshot: digest,
                watermark,
                rows,
            },
        )),
        detail: json!({
            "source": "sql", "mode": "append", "appended": fetched,
            "replaced": prev.rows - kept_old,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that is full.
    #[derive(Debug)]
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A failed write names the snapshot's file (the I/O error stays its cause); an error in
    /// a source, already reported with its file and line, is left as it is.
    #[test]
    fn a_failed_write_of_a_conversion_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let options = CsvOptions::of(&Locate::default());
        let file = dir.path().join("part-1.csv");
        let files = [(file.clone(), "part-1.csv".to_string())];
        let staged = dir.path().join("staged.csv");
        std::fs::write(&file, "a,b\n1,2\n").unwrap();
        let e = writing(files::convert(&files, &options, Full).unwrap_err(), &staged);
        assert_eq!(
            format!("{e:#}"),
            format!(
                "cannot write the converted snapshot `{}`: {}",
                staged.display(),
                std::io::Error::from(std::io::ErrorKind::StorageFull)
            )
        );
        std::fs::write(&file, "a,b\n1,2,3\n").unwrap();
        let e = writing(
            files::convert(&files, &options, Vec::new()).unwrap_err(),
            &staged,
        );
        assert_eq!(
            e.to_string(),
            "`part-1.csv` line 2: expected 2 fields (as in the header), found 3"
        );
    }

    /// The streamed memo key is the hash of the JSON text it replaced, so a memo keeps the file
    /// name it had.
    #[test]
    fn the_memo_key_is_the_hash_of_the_json_text() {
        let options = files::CsvOptions {
            delimiter: b';',
            header: true,
            na_strings: vec!["NA".into(), "\"?\"".into()],
        };
        let digests = vec![
            ("parts/a.csv".to_string(), "ab".repeat(32)),
            ("parts/b \"x\".csv".to_string(), "cd".repeat(32)),
        ];
        let text = json!({
            "canonical": CANONICAL_VERSION,
            "delimiter": options.delimiter,
            "header": options.header,
            "na_strings": options.na_strings,
            "files": digests,
        })
        .to_string();
        assert_eq!(
            memo_key(&options, &digests),
            blake3::hash(text.as_bytes()).to_hex().to_string()
        );
    }

    /// A project whose source is the glob `parts/*.csv`: `parts/a.csv` (`x,y` and `1,2`) and
    /// `parts/b.csv` (`b`), with its store.
    struct Glob {
        dir: tempfile::TempDir,
        store: Store,
        printer: Printer,
        locate: Locate,
    }

    impl Glob {
        fn new(b: &str) -> Glob {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("parts")).unwrap();
            std::fs::write(dir.path().join("parts/a.csv"), "x,y\n1,2\n").unwrap();
            std::fs::write(dir.path().join("parts/b.csv"), b).unwrap();
            Glob {
                store: Store::open(&dir.path().join("cache")).unwrap(),
                printer: Printer::new(false, true, 0, crate::report::ColorChoice::Never),
                locate: Locate {
                    path: Some("parts/*.csv".into()),
                    ..Locate::default()
                },
                dir,
            }
        }

        fn request(&self) -> Request<'_> {
            Request {
                project: self.dir.path(),
                locate: &self.locate,
                store: &self.store,
                printer: &self.printer,
                full_refresh: false,
                place_of: &|_| None,
            }
        }
    }

    /// A converted snapshot is moved into the store, not copied: the blob is the very file the
    /// conversion wrote and hashed, and no temp file is left behind.
    #[tokio::test]
    async fn a_converted_snapshot_is_moved_into_the_store() {
        use std::os::unix::fs::MetadataExt;
        let glob = Glob::new("x,y\n3, 4 \n");
        let store = &glob.store;
        let snapshot = materialize(&glob.request()).await.unwrap();
        let staged = std::fs::metadata(&snapshot.file).unwrap().ino();
        snapshot.commit(store).unwrap();
        let blob = store.blob_path(&snapshot.digest);
        assert_eq!(std::fs::metadata(&blob).unwrap().ino(), staged);
        assert!(!snapshot.file.exists());
        assert_eq!(
            std::fs::read_to_string(&blob).unwrap(),
            "x,y\n1,2\n3,\" 4 \"\n"
        );
        assert_eq!(crate::store::hash_file(&blob).unwrap(), snapshot.digest);
        // A retried locate finds the blob in place.
        snapshot.commit(store).unwrap();
        drop(snapshot);
        assert_eq!(std::fs::metadata(&blob).unwrap().ino(), staged);
    }

    /// A conversion memo is believed only as it was written: one that names another stored blob
    /// (damaged, edited, or copied from another key) or has no seal makes the sources convert
    /// again, to the right snapshot. It was believed whatever it named, if that blob existed.
    #[tokio::test]
    async fn a_conversion_memo_that_does_not_match_its_seal_is_not_believed() {
        let glob = Glob::new("x,y\n3,4\n");
        let (project, store, req) = (glob.dir.path(), &glob.store, glob.request());
        let first = materialize(&req).await.unwrap();
        first.commit(store).unwrap();
        first.remember(store).unwrap();
        let right = first.digest.clone();
        let (memo, _) = first.memo.clone().unwrap();
        drop(first);
        // As written, the memo answers: no conversion.
        let again = materialize(&req).await.unwrap();
        assert!(matches!(again.origin, Origin::Stored), "{again:?}");
        assert_eq!(again.digest, right);

        let other = std::fs::write(project.join("other.csv"), "x,y\n9,9\n")
            .map(|()| store.put_file(&project.join("other.csv")).unwrap())
            .unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&memo).unwrap()).unwrap();
        let mut pointed_elsewhere = written.clone();
        pointed_elsewhere["body"]["snapshot"] = json!(other);
        let another_key = tempfile::NamedTempFile::new().unwrap();
        let body = ConversionMemo {
            key: "ab".repeat(32),
            snapshot: other.clone(),
        };
        write_sealed(another_key.path(), &body).unwrap();
        let another_key: Value =
            serde_json::from_slice(&std::fs::read(another_key.path()).unwrap()).unwrap();
        for bad in [pointed_elsewhere, json!({ "snapshot": other }), another_key] {
            std::fs::write(&memo, bad.to_string()).unwrap();
            let snapshot = materialize(&req).await.unwrap();
            assert!(
                matches!(snapshot.origin, Origin::Staged(_)),
                "{bad}: {snapshot:?}"
            );
            assert_eq!(snapshot.digest, right, "{bad}");
        }
    }

    /// A plain `path` source serialises as it always did, so existing keys and `ml.lock` files
    /// stay valid: every other `[locate]` field is left out when unset.
    #[test]
    fn a_plain_path_keeps_its_key_slice() {
        let locate = Locate {
            path: Some("data/prostate.csv".into()),
            ..Locate::default()
        };
        assert_eq!(
            serde_json::to_string(&locate).unwrap(),
            r#"{"path":"data/prostate.csv"}"#
        );
        assert_eq!(describe(&locate), "`data/prostate.csv`");
    }
}
