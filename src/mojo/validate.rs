//! `mlbuild mojo validate`: is this zip a MOJO that H2O's genmodel would load, and can mlbuild
//! score it? The seed platform's `validate_mojo.py`, made thorough.
//!
//! [`validate`] never panics and never stops at the first problem: it collects every problem it
//! finds into a [`Report`] (errors make the MOJO invalid; warnings do not), in this order:
//! 1. **The archive.** It is a zip; every entry name is relative and normalised (no absolute
//!    path, drive letter, `..`, `.` or empty component, backslash, NUL or symbolic link: nothing
//!    can escape the archive when extracted); no two entries share a name (the zip crate keeps
//!    only one of them, so the central directory is walked here); at most [`MAX_ENTRIES`]
//!    entries and [`MAX_UNCOMPRESSED`] bytes once inflated (an entry whose declared size would
//!    pass the budget is not read; one that inflates past its declared size is corrupt); every
//!    entry inflates and matches its CRC.
//! 2. **Each `model.ini`** (the top one, then every StackedEnsemble member under its
//!    `submodel_dir_i`, recursively, messages naming the nested path): it parses; the `[info]`
//!    keys genmodel 3.46 reads unconditionally are there and of the right type
//!    ([`REQUIRED`], from `ModelMojoReader.readFrom`/`readAll`); `n_columns` matches
//!    `[columns]`; `n_domains` matches `[domains]`; each domain file exists with the declared
//!    number of levels; a classifier's response has a domain of `n_classes` levels.
//! 3. **The files and keys each algorithm's reader needs** (genmodel's per-algorithm readers):
//!    trees `trees/tCC_GGG.bin` (and their `_aux.bin`) for GBM/DRF, `boosterBytes` for XGBoost,
//!    `beta` for GLM, weights and biases of every layer for DeepLearning, the metalearner and base
//!    models for StackedEnsemble. Other algorithms get a warning: only their common fields are
//!    checked.
//! 4. **mlbuild's scorer** ([`super::Mojo::load`]) is tried on an archive without errors:
//!    `scorable` says whether it loads, and why not. An unsupported model is a warning; a
//!    structurally valid MOJO that the reader finds malformed is an error (`load_failed`).
//!
//! The canonical digest is computed once the archive passed step 1. Problem codes are stable
//! snake_case strings, listed in `docs/mojo.md` ("Validating a MOJO").
//!
//! Limits: domain files are counted by lines, as mlbuild's reader does (genmodel's reader also
//! understands quoted levels spanning lines, which H2O 3.46 never writes); tree and booster bytes
//! are decoded only by the scorer in step 4; `experimental/` is checked for safety only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The most bytes read out of one archive, all entries inflated.
pub const MAX_UNCOMPRESSED: u64 = 1 << 30;
/// The most entries an archive may have (a 1,000-tree, 10-class DRF has 20,000).
pub const MAX_ENTRIES: usize = 100_000;
/// Errors recorded before the rest are summed up in one `too_many_problems`.
const MAX_ERRORS: usize = 200;
/// StackedEnsembles nest models; deeper than this is a loop or an attack.
const MAX_DEPTH: usize = 4;
/// Missing trees named one by one before the rest are counted.
const MISSING_TREES_SHOWN: usize = 5;

/// The `[info]` keys genmodel 3.46 reads for every model without a default (primitive fields
/// and `ModelCategory.valueOf`), plus `algo`, by which mlbuild picks its reader.
pub const REQUIRED: [&str; 10] = [
    "algo",
    "algorithm",
    "mojo_version",
    "category",
    "supervised",
    "n_features",
    "n_classes",
    "n_columns",
    "balance_classes",
    "default_threshold",
];

/// Keys every H2O writer emits but no reader needs: a warning when absent.
pub const RECOMMENDED: [&str; 4] = ["h2o_version", "uuid", "timestamp", "n_domains"];

/// `hex.ModelCategory` values (genmodel 3.46 and newer).
const CATEGORIES: [&str; 14] = [
    "Unknown",
    "Binomial",
    "Multinomial",
    "Ordinal",
    "Regression",
    "Clustering",
    "AutoEncoder",
    "TargetEncoder",
    "DimReduction",
    "WordEmbedding",
    "CoxPH",
    "AnomalyDetection",
    "KLime",
    "BinomialUplift",
];

/// One problem: a stable code, the archive path it concerns, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    /// The entry (or the `model.ini`) concerned; empty for the archive as a whole.
    pub path: String,
    pub message: String,
}

/// One input column of the model, as declared in `model.ini`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputColumn {
    pub name: String,
    /// `numeric` or `categorical`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The number of levels of a categorical column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<usize>,
}

/// What `mojo validate --json` prints (format in `docs/mojo.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The file as named by the caller ([`validate`] leaves it `None`).
    pub file: Option<String>,
    /// No errors (warnings allowed).
    pub valid: bool,
    /// `model.ini`'s `algo`: `gbm`, `drf`, `glm`, `xgboost`, `deeplearning`, `stackedensemble`, ….
    pub algorithm: Option<String>,
    pub h2o_version: Option<String>,
    pub mojo_version: Option<String>,
    pub category: Option<String>,
    pub n_features: Option<usize>,
    pub n_classes: Option<usize>,
    /// The input columns (the features, without the response), in the model's order.
    pub columns: Vec<InputColumn>,
    pub response: Option<String>,
    /// The canonical MOJO digest (a version's identity), once the archive itself is sound.
    pub canonical: Option<String>,
    /// Whether mlbuild's native scorer loads it.
    pub scorable: bool,
    /// Why not, when `scorable` is false.
    pub scorable_reason: Option<String>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    fn empty() -> Report {
        Report {
            file: None,
            valid: false,
            algorithm: None,
            h2o_version: None,
            mojo_version: None,
            category: None,
            n_features: None,
            n_classes: None,
            columns: Vec::new(),
            response: None,
            canonical: None,
            scorable: false,
            scorable_reason: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The human summary: one `field  value` line each.
    pub fn render(&self) -> String {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let mut lines = Vec::new();
        let mut line = |name: &str, value: String| lines.push(format!("{name:<10} {value}"));
        if let Some(file) = &self.file {
            line("file", file.clone());
        }
        line(
            "valid",
            if self.valid {
                match self.warnings.len() {
                    0 => "yes".to_string(),
                    n => format!("yes ({})", count(n, "warning")),
                }
            } else {
                format!("no ({})", count(self.errors.len(), "problem"))
            },
        );
        line("algorithm", or_unknown(&self.algorithm));
        line(
            "h2o",
            format!(
                "{} (MOJO {})",
                or_unknown(&self.h2o_version),
                or_unknown(&self.mojo_version)
            ),
        );
        line(
            "category",
            match (&self.category, self.n_classes) {
                (Some(c), Some(n)) if c != "Regression" => format!("{c} ({n} classes)"),
                (c, _) => or_unknown(c),
            },
        );
        line("response", or_unknown(&self.response));
        let inputs: Vec<String> = self
            .columns
            .iter()
            .map(|c| match c.levels {
                Some(n) => format!("{} ({n} levels)", c.name),
                None => c.name.clone(),
            })
            .collect();
        line("inputs", format!("{}: {}", inputs.len(), inputs.join(", ")));
        line("canonical", or_unknown(&self.canonical));
        line(
            "scorable",
            match (&self.scorable, &self.scorable_reason) {
                (true, _) => "yes (natively, by mlbuild)".to_string(),
                (false, Some(why)) => format!("no ({why})"),
                (false, None) => "no".to_string(),
            },
        );
        lines.join("\n")
    }

    /// The refusal of an invalid MOJO: a summary line, then one line per error.
    pub fn refusal(&self) -> String {
        let what = match &self.file {
            Some(file) => format!("`{file}`"),
            None => "the archive".to_string(),
        };
        let mut s = format!(
            "{what} is not a valid MOJO: {}",
            count(self.errors.len(), "problem")
        );
        for p in &self.errors {
            s.push_str("\n  ");
            s.push_str(&p.to_string());
        }
        s
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} [{}]", self.message, self.code)
        } else {
            write!(f, "`{}`: {} [{}]", self.path, self.message, self.code)
        }
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Why a MOJO file could not be read (before any check).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is {size} bytes; mlbuild reads MOJOs of at most {} MiB", path.display(), MAX_UNCOMPRESSED >> 20)]
    TooLarge { path: PathBuf, size: u64 },
}

/// Reads a MOJO file, refusing one larger than [`MAX_UNCOMPRESSED`] before reading it.
pub fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_UNCOMPRESSED {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    std::fs::read(path).map_err(io)
}

/// Checks a MOJO archive. Never panics; every problem found is in the report.
pub fn validate(bytes: &[u8]) -> Report {
    // A panic here would be a bug in mlbuild: caught quietly (no panic message printed before
    // the report), and reported as one.
    match crate::panic_boundary::catch(|| check(bytes)) {
        Ok(report) => report,
        Err(_) => {
            let mut report = Report::empty();
            report.errors.push(Problem {
                code: "internal_error",
                path: String::new(),
                message:
                    "mlbuild's validator crashed on this file (a bug in mlbuild; please report it)"
                        .into(),
            });
            report.scorable_reason = Some("not tried: the validator crashed".into());
            report
        }
    }
}

fn check(bytes: &[u8]) -> Report {
    let mut c = Checker::default();
    let mut report = Report::empty();
    let archive = scan(bytes, &mut c);
    if let Some(archive) = &archive {
        if let Some(top) = model(archive, "", 0, &mut c) {
            report.algorithm = top.algo;
            report.h2o_version = top.h2o_version;
            report.mojo_version = top.mojo_version;
            report.category = top.category;
            report.n_features = top.n_features;
            report.n_classes = top.n_classes;
            report.columns = top.columns;
            report.response = top.response;
        }
    }
    let sound = archive.as_ref().is_some_and(|a| a.sound);
    if sound {
        report.canonical = super::canonical_digest(bytes).ok();
    }
    if !c.errors.is_empty() {
        report.scorable_reason = Some(if sound {
            "not tried: the MOJO has errors".into()
        } else {
            "not tried: the archive is unsafe or damaged".into()
        });
    } else {
        match crate::panic_boundary::catch(|| super::Mojo::load(bytes)) {
            Ok(Ok(_)) => report.scorable = true,
            Ok(Err(e @ super::MojoError::Unsupported { .. })) => {
                c.warn(
                    "not_scorable",
                    "",
                    format!("mlbuild cannot score it natively: {e}"),
                );
                report.scorable_reason = Some(e.to_string());
            }
            Ok(Err(e)) => {
                c.error(
                    "load_failed",
                    "",
                    format!("mlbuild's MOJO reader rejects it: {e}"),
                );
                report.scorable_reason = Some(e.to_string());
            }
            Err(_) => {
                c.error(
                    "internal_error",
                    "",
                    "mlbuild's MOJO reader crashed on this file (a bug in mlbuild; please report it)",
                );
                report.scorable_reason = Some("mlbuild's MOJO reader crashed".into());
            }
        }
    }
    if c.dropped > 0 {
        c.errors.push(Problem {
            code: "too_many_problems",
            path: String::new(),
            message: format!("{} more errors not listed", c.dropped),
        });
    }
    report.valid = c.errors.is_empty();
    report.errors = c.errors;
    report.warnings = c.warnings;
    report
}

#[derive(Default)]
struct Checker {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Errors past [`MAX_ERRORS`], only counted.
    dropped: usize,
    /// Nested model directories already checked: each is checked once, however often a
    /// `submodel_dir_i` names it.
    visited: HashSet<String>,
}

impl Checker {
    fn error(&mut self, code: &'static str, path: &str, message: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            self.dropped += 1;
            return;
        }
        self.errors.push(Problem {
            code,
            path: printable(path),
            message: message.into(),
        });
    }

    fn warn(&mut self, code: &'static str, path: &str, message: impl Into<String>) {
        if self.warnings.len() < MAX_ERRORS {
            self.warnings.push(Problem {
                code,
                path: printable(path),
                message: message.into(),
            });
        }
    }
}

/// A name fit for a message: control characters (NUL, newlines) escaped.
fn printable(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A value fit for a message: at most 60 characters.
fn shown(v: &str) -> String {
    let mut s: String = v.chars().take(60).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    printable(&s)
}

// ---------------------------------------------------------------------------------------------
// 1. The archive

/// What the scan kept: the file names, and the text files the checks read.
struct Archive {
    files: HashSet<String>,
    /// Entries present but not read (corrupt, or past the budget): already reported, so they
    /// count as existing and their content is not checked.
    damaged: HashSet<String>,
    /// Every `model.ini` and `domains/` file, by name.
    texts: HashMap<String, Vec<u8>>,
    /// Nothing unsafe or damaged: the bytes may be handed to a reader.
    sound: bool,
}

impl Archive {
    fn exists(&self, name: &str) -> bool {
        self.files.contains(name) || self.damaged.contains(name)
    }

    /// A kept text file; `None` (with an error recorded) when absent or not UTF-8.
    fn text(&self, name: &str, c: &mut Checker, what: &str) -> Option<&str> {
        let Some(bytes) = self.texts.get(name) else {
            if !self.damaged.contains(name) {
                c.error("missing_file", name, format!("{what} is missing"));
            }
            return None;
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                c.error("not_utf8", name, format!("{what} is not UTF-8 text ({e})"));
                None
            }
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one pass over the zip's entries, a check each"
)]
fn scan(bytes: &[u8], c: &mut Checker) -> Option<Archive> {
    let mut zip = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(zip) => zip,
        Err(e) => {
            c.error("not_a_zip", "", format!("not a zip archive ({e})"));
            return None;
        }
    };
    if zip.len() > MAX_ENTRIES {
        c.error(
            "too_many_entries",
            "",
            format!(
                "the archive has {} entries; mlbuild reads at most {MAX_ENTRIES}",
                zip.len()
            ),
        );
        return None;
    }
    let mut archive = Archive {
        files: HashSet::new(),
        damaged: HashSet::new(),
        texts: HashMap::new(),
        sound: true,
    };
    for (name, n) in duplicates(bytes) {
        c.error(
            "duplicate_entry",
            &name,
            format!("{n} entries have this name; readers disagree on which one counts"),
        );
        archive.sound = false;
    }
    let mut budget = MAX_UNCOMPRESSED;
    let mut over_budget = false;
    for i in 0..zip.len() {
        let name = zip.name_for_index(i).unwrap_or_default().to_string();
        if let Some((code, why)) = unsafe_name(&name) {
            c.error(code, &name, why);
            archive.sound = false;
        }
        let mut file = match zip.by_index(i) {
            Ok(file) => file,
            Err(e) => {
                c.error("corrupt_entry", &name, format!("cannot be read ({e})"));
                archive.sound = false;
                archive.damaged.insert(name);
                continue;
            }
        };
        if file.is_dir() {
            continue;
        }
        if file.is_symlink() {
            c.error(
                "unsafe_path",
                &name,
                "is a symbolic link, which could point out of the archive",
            );
            archive.sound = false;
            continue;
        }
        let declared = file.size();
        if over_budget || declared > budget {
            if !over_budget {
                c.error(
                    "too_large",
                    &name,
                    format!(
                        "declares {declared} bytes; with the entries before it that passes the {} MiB mlbuild reads from one archive (a zip bomb?), so it and the entries after it were not read",
                        MAX_UNCOMPRESSED >> 20
                    ),
                );
            }
            over_budget = true;
            archive.sound = false;
            archive.damaged.insert(name);
            continue;
        }
        let mut data = Vec::new();
        // One byte more than declared shows an entry that inflates past its declared size.
        if let Err(e) = (&mut file).take(declared + 1).read_to_end(&mut data) {
            c.error("corrupt_entry", &name, format!("cannot be inflated ({e})"));
            archive.sound = false;
            archive.damaged.insert(name);
            continue;
        }
        if data.len() as u64 != declared {
            let why = if data.len() as u64 > declared {
                format!("inflates to more than the {declared} bytes its header declares")
            } else {
                format!(
                    "inflates to {} bytes, its header declares {declared}",
                    data.len()
                )
            };
            c.error("corrupt_entry", &name, why);
            archive.sound = false;
            archive.damaged.insert(name);
            continue;
        }
        budget -= declared;
        if name.ends_with("model.ini") || name.starts_with("domains/") || name.contains("/domains/")
        {
            archive.texts.insert(name.clone(), data);
        }
        archive.files.insert(name);
    }
    Some(archive)
}

/// Why an entry name is unsafe (`unsafe_path`) or not normalised (`unnormalised_path`).
fn unsafe_name(name: &str) -> Option<(&'static str, &'static str)> {
    let escape = |why| Some(("unsafe_path", why));
    if name.is_empty() {
        return Some(("unnormalised_path", "an entry has an empty name"));
    }
    if name.contains('\0') {
        return escape("contains a NUL byte");
    }
    if name.contains('\\') {
        return escape("contains a backslash, a path separator on Windows");
    }
    if name.starts_with('/') {
        return escape("is an absolute path");
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return escape("starts with a drive letter");
    }
    let inner = name.strip_suffix('/').unwrap_or(name);
    let components: Vec<&str> = inner.split('/').collect();
    if components.contains(&"..") {
        return escape("has a `..` component, which leads out of the archive");
    }
    if components.iter().any(|c| c.is_empty() || *c == ".") {
        return Some((
            "unnormalised_path",
            "has an empty or `.` component (not a normalised path)",
        ));
    }
    None
}

/// Names that more than one entry of the central directory has, with their count. The zip
/// crate keeps one entry per name, so the directory is walked here; an archive it cannot walk
/// (zip64, damaged) yields nothing, and the zip crate's own errors report the damage.
fn duplicates(bytes: &[u8]) -> Vec<(String, usize)> {
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for name in central_names(bytes).unwrap_or_default() {
        *seen.entry(name).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, n)| (String::from_utf8_lossy(&name).into_owned(), n))
        .collect()
}

/// Every entry name of the central directory, in order, duplicates included.
fn central_names(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let u16_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at.checked_add(2)?)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
    let last = bytes.len().checked_sub(22)?;
    let first = last.saturating_sub(65_535);
    let eocd = (first..=last)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])?;
    let entries = u16_at(eocd + 10)?;
    let size = u32_at(eocd + 12)?;
    if entries == 0xFFFF || size == 0xFFFF_FFFF {
        return None;
    }
    let mut at = eocd.checked_sub(size)?;
    let mut names = Vec::with_capacity(entries);
    for _ in 0..entries {
        if bytes.get(at..at + 4)? != [0x50, 0x4b, 0x01, 0x02] {
            return None;
        }
        let (n, m, k) = (u16_at(at + 28)?, u16_at(at + 30)?, u16_at(at + 32)?);
        names.push(bytes.get(at + 46..at + 46 + n)?.to_vec());
        at += 46 + n + m + k;
    }
    Some(names)
}

// ---------------------------------------------------------------------------------------------
// 2. model.ini

/// `model.ini` as genmodel's `ModelMojoReader.parseModelInfo` reads it.
#[derive(Default)]
struct Ini {
    info: BTreeMap<String, String>,
    columns: Vec<String>,
    /// `column: levels file` lines.
    domains: Vec<DomainRef>,
}

struct DomainRef {
    line: usize,
    column: usize,
    levels: usize,
    file: String,
}

impl Ini {
    fn parse(text: &str, path: &str, c: &mut Checker) -> Ini {
        #[derive(PartialEq)]
        enum Section {
            None,
            Info,
            Columns,
            Domains,
            Unknown,
        }
        let mut ini = Ini::default();
        let mut section = Section::None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                section = match line {
                    "[info]" => Section::Info,
                    "[columns]" => Section::Columns,
                    "[domains]" => Section::Domains,
                    _ => {
                        c.error(
                            "malformed_ini",
                            path,
                            format!("line {n}: unknown section `{}`", shown(line)),
                        );
                        Section::Unknown
                    }
                };
                continue;
            }
            match section {
                Section::None => c.error(
                    "malformed_ini",
                    path,
                    format!("line {n}: `{}` is outside any section", shown(line)),
                ),
                Section::Unknown => {}
                Section::Info => match line.split_once('=') {
                    Some((key, value)) => {
                        let key = key.trim().to_string();
                        if ini.info.contains_key(&key) {
                            c.error(
                                "malformed_ini",
                                path,
                                format!("line {n}: `{}` is given twice", shown(&key)),
                            );
                        }
                        ini.info.insert(key, value.trim().to_string());
                    }
                    None => c.error(
                        "malformed_ini",
                        path,
                        format!("line {n}: `{}` is not `key = value`", shown(line)),
                    ),
                },
                Section::Columns => ini.columns.push(line.to_string()),
                Section::Domains => {
                    let parsed = line.split_once(':').and_then(|(col, rest)| {
                        let (levels, file) = rest.trim_start().split_once(' ')?;
                        Some(DomainRef {
                            line: n,
                            column: col.trim().parse().ok()?,
                            levels: levels.trim().parse().ok()?,
                            file: file.trim().to_string(),
                        })
                    });
                    match parsed {
                        Some(d) => ini.domains.push(d),
                        None => c.error(
                            "malformed_ini",
                            path,
                            format!("line {n}: `{}` is not `COLUMN: LEVELS FILE`", shown(line)),
                        ),
                    }
                }
            }
        }
        ini
    }

    /// The raw value; `None` when absent or `null`.
    fn raw(&self, key: &str) -> Option<&str> {
        self.info
            .get(key)
            .map(String::as_str)
            .filter(|v| *v != "null")
    }
}

/// Typed reads of `[info]` values; a value of the wrong form is a `bad_value` error.
struct Fields<'a> {
    ini: &'a Ini,
    path: &'a str,
}

impl Fields<'_> {
    /// Records `missing_field` for each absent (or `null`) key.
    fn require(&self, keys: &[&str], what: &str, c: &mut Checker) {
        for key in keys {
            if self.ini.raw(key).is_none() {
                c.error(
                    "missing_field",
                    self.path,
                    format!("`[info]` has no `{key}`, which {what} needs"),
                );
            }
        }
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
        c: &mut Checker,
    ) -> Option<T> {
        let value = self.ini.raw(key)?;
        let parsed = parse(value);
        if parsed.is_none() {
            c.error(
                "bad_value",
                self.path,
                format!("`{key}` is `{}`, not {expected}", shown(value)),
            );
        }
        parsed
    }

    fn usize(&self, key: &str, c: &mut Checker) -> Option<usize> {
        self.typed(key, "a count", |v| v.parse().ok(), c)
    }

    fn f64(&self, key: &str, c: &mut Checker) -> Option<f64> {
        self.typed(key, "a number", |v| v.parse().ok(), c)
    }

    fn bool(&self, key: &str, c: &mut Checker) -> Option<bool> {
        self.typed(key, "`true` or `false`", |v| v.parse().ok(), c)
    }

    fn f64s(&self, key: &str, c: &mut Checker) -> Option<Vec<f64>> {
        self.typed(
            key,
            "an array of numbers",
            |v| array(v)?.map(|x| x.parse().ok()).collect(),
            c,
        )
    }

    fn usizes(&self, key: &str, c: &mut Checker) -> Option<Vec<usize>> {
        self.typed(
            key,
            "an array of counts",
            |v| array(v)?.map(|x| x.parse().ok()).collect(),
            c,
        )
    }
}

/// `[a, b, c]` as its trimmed items.
fn array(v: &str) -> Option<impl Iterator<Item = &str>> {
    let inner = v.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

/// The common header of one model, for the report.
struct Header {
    algo: Option<String>,
    h2o_version: Option<String>,
    mojo_version: Option<String>,
    category: Option<String>,
    n_features: Option<usize>,
    n_classes: Option<usize>,
    columns: Vec<InputColumn>,
    response: Option<String>,
}

/// Checks the model whose files are under `dir` (`""`, or a StackedEnsemble member's
/// `models/…/`), and its members. `None` when its `model.ini` cannot be read.
#[allow(
    clippy::too_many_lines,
    reason = "one check per model.ini field, in the order docs/mojo.md lists the codes"
)]
fn model(archive: &Archive, dir: &str, depth: usize, c: &mut Checker) -> Option<Header> {
    let path = format!("{dir}model.ini");
    let what = if dir.is_empty() {
        "`model.ini`".to_string()
    } else {
        format!("the `model.ini` of nested model `{dir}`")
    };
    let text = archive.text(&path, c, &what)?;
    let ini = Ini::parse(text, &path, c);
    let f = Fields {
        ini: &ini,
        path: &path,
    };
    f.require(&REQUIRED, "every MOJO", c);
    for key in RECOMMENDED {
        if ini.raw(key).is_none() {
            c.warn(
                "missing_recommended_field",
                &path,
                format!("`[info]` has no `{key}` (H2O always writes it)"),
            );
        }
    }
    let n_features = f.usize("n_features", c);
    let n_classes = f.usize("n_classes", c);
    let n_columns = f.usize("n_columns", c);
    let n_domains = f.usize("n_domains", c);
    f.f64("default_threshold", c);
    f.f64("mojo_version", c);
    let supervised = f.bool("supervised", c);
    f.bool("balance_classes", c);
    f.bool("escape_domain_values", c);
    let prior = f.f64s("prior_class_distrib", c);
    f.f64s("model_class_distrib", c);
    let category = ini.raw("category");
    if let Some(category) = category {
        if !CATEGORIES.contains(&category) {
            c.warn(
                "unknown_category",
                &path,
                format!(
                    "model category `{}` is not one genmodel 3.46 knows",
                    shown(category)
                ),
            );
        }
    }

    // Columns.
    let columns = &ini.columns;
    if let Some(n) = n_columns {
        if n != columns.len() {
            c.error(
                "column_count",
                &path,
                format!(
                    "`n_columns` is {n} but `[columns]` lists {} names",
                    columns.len()
                ),
            );
        }
    }
    let supervised = supervised.unwrap_or(true);
    let response_slot = usize::from(supervised);
    if supervised && columns.is_empty() {
        c.error(
            "column_count",
            &path,
            "a supervised model needs its response in `[columns]`, which is empty",
        );
    }
    if let Some(n) = n_features {
        if n + response_slot > columns.len() {
            c.error(
                "feature_count",
                &path,
                format!(
                    "`n_features` is {n}, but `[columns]` has only {} names{}",
                    columns.len(),
                    if supervised {
                        " including the response"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    let mut seen = HashSet::new();
    for name in columns {
        if !seen.insert(name.as_str()) {
            c.warn(
                "duplicate_column",
                &path,
                format!(
                    "column `{}` is listed twice; inputs are matched by name",
                    shown(name)
                ),
            );
        }
    }

    // Domains.
    if let Some(n) = n_domains {
        if n != ini.domains.len() {
            c.error(
                "domain_count",
                &path,
                format!(
                    "`n_domains` is {n} but `[domains]` lists {}",
                    ini.domains.len()
                ),
            );
        }
    }
    let mut domains: HashMap<usize, usize> = HashMap::new();
    // Levels per domain file, counted once however many lines name it.
    let mut counted: HashMap<String, Option<usize>> = HashMap::new();
    for d in &ini.domains {
        if d.column >= columns.len() {
            c.warn(
                "domain_out_of_range",
                &path,
                format!(
                    "line {}: a domain for column {}, but there are {} columns (genmodel ignores it)",
                    d.line,
                    d.column,
                    columns.len()
                ),
            );
            continue;
        }
        if domains.insert(d.column, d.levels).is_some() {
            c.error(
                "bad_domain",
                &path,
                format!("line {}: column {} has a second domain", d.line, d.column),
            );
        }
        if let Some((code, why)) = unsafe_name(&d.file) {
            c.error(
                code,
                &path,
                format!("line {}: domain file `{}` {why}", d.line, shown(&d.file)),
            );
            continue;
        }
        let file = format!("{dir}domains/{}", d.file);
        let lines = match counted.get(&file) {
            Some(lines) => *lines,
            None => {
                let what = format!("the domain of column `{}`", shown(&columns[d.column]));
                let lines = archive.text(&file, c, &what).map(|t| t.lines().count());
                counted.insert(file.clone(), lines);
                lines
            }
        };
        let Some(lines) = lines else {
            continue;
        };
        if lines != d.levels {
            c.error(
                "domain_length",
                &file,
                format!(
                    "has {lines} levels, `model.ini` declares {} for column `{}`",
                    d.levels,
                    shown(&columns[d.column])
                ),
            );
        }
    }

    // The response of a classifier.
    let response = (supervised && !columns.is_empty()).then(|| columns[columns.len() - 1].clone());
    if let (Some(cat @ ("Binomial" | "Multinomial")), Some(response)) = (category, &response) {
        let levels = domains.get(&(columns.len() - 1)).copied();
        match (levels, n_classes) {
            (None, _) => c.error(
                "class_count",
                &path,
                format!(
                    "the response `{}` of a {cat} model has no domain",
                    shown(response)
                ),
            ),
            (Some(levels), Some(n)) if levels != n => c.error(
                "class_count",
                &path,
                format!(
                    "the response `{}` has {levels} levels, `n_classes` is {n}",
                    shown(response)
                ),
            ),
            _ => {}
        }
        if cat == "Binomial" && n_classes.is_some_and(|n| n != 2) {
            c.error(
                "class_count",
                &path,
                format!(
                    "a Binomial model with `n_classes` {}",
                    n_classes.unwrap_or(0)
                ),
            );
        }
        if let (Some(prior), Some(n)) = (&prior, n_classes) {
            if prior.len() != n {
                c.error(
                    "bad_value",
                    &path,
                    format!(
                        "`prior_class_distrib` has {} values for {n} classes",
                        prior.len()
                    ),
                );
            }
        }
    }

    // What the algorithm's reader needs.
    let algo = ini.raw("algo");
    match algo {
        Some("gbm") | Some("drf") => trees(archive, dir, &f, n_classes, c),
        Some("glm") => glm(&f, c),
        Some("xgboost") => xgboost(archive, dir, &f, c),
        Some("deeplearning") => deeplearning(&f, c),
        Some("stackedensemble") => ensemble(archive, dir, depth, &f, c),
        Some(other) => c.warn(
            "unknown_algorithm",
            &path,
            format!(
                "mlbuild cannot score `{}` natively; only the fields every MOJO has were checked",
                shown(other)
            ),
        ),
        None => {}
    }

    let n_inputs = n_features
        .unwrap_or(columns.len().saturating_sub(response_slot))
        .min(columns.len());
    Some(Header {
        algo: algo.map(str::to_string),
        h2o_version: ini.raw("h2o_version").map(str::to_string),
        mojo_version: ini.raw("mojo_version").map(str::to_string),
        category: category.map(str::to_string),
        n_features,
        n_classes,
        columns: columns[..n_inputs]
            .iter()
            .enumerate()
            .map(|(i, name)| InputColumn {
                name: name.clone(),
                kind: if domains.contains_key(&i) {
                    "categorical"
                } else {
                    "numeric"
                },
                levels: domains.get(&i).copied(),
            })
            .collect(),
        response,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Per algorithm (genmodel's readers)

/// GBM and DRF (`SharedTreeMojoReader`): `trees/tCC_GGG.bin` for class CC below
/// `n_trees_per_class` and group GGG below `n_trees`, each with its `_aux.bin` after MOJO 1.00.
/// genmodel skips a tree that is absent (H2O writes none for a class without training rows), so
/// a class without any tree is a warning; a class missing some of its trees is truncated.
#[allow(
    clippy::too_many_lines,
    reason = "checks each tree blob's encoding in genmodel's byte order"
)]
fn trees(archive: &Archive, dir: &str, f: &Fields, n_classes: Option<usize>, c: &mut Checker) {
    let gbm = f.ini.raw("algo") == Some("gbm");
    f.require(&["n_trees"], "a tree model", c);
    if gbm {
        f.require(&["distribution", "init_f"], "a GBM", c);
        f.f64("init_f", c);
    } else {
        f.require(&["binomial_double_trees"], "a DRF", c);
    }
    let double = f.bool("binomial_double_trees", c).unwrap_or(false);
    let groups = f.usize("n_trees", c);
    let per_class = match f.usize("n_trees_per_class", c) {
        Some(n) => Some(n),
        None if f.ini.raw("n_trees_per_class").is_some() => None,
        None => n_classes.map(|n| if n == 2 && !double { 1 } else { n }),
    };
    let (Some(groups), Some(per_class)) = (groups, per_class) else {
        return;
    };
    let aux = f
        .ini
        .raw("mojo_version")
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|v| v > 1.0);
    let tree_files = archive
        .files
        .iter()
        .filter(|n| n.starts_with(&format!("{dir}trees/")))
        .count();
    let declared = groups.saturating_mul(per_class);
    if declared == 0 {
        return;
    }
    if declared > tree_files {
        // More trees than files: name the shortfall instead of listing millions of names.
        c.error(
            "missing_file",
            &format!("{dir}trees/"),
            format!(
                "`model.ini` declares {groups} × {per_class} trees, the archive holds {tree_files} tree files"
            ),
        );
        return;
    }
    for class in 0..per_class {
        let name = |group: usize| format!("{dir}trees/t{class:02}_{group:03}.bin");
        let missing: Vec<String> = (0..groups)
            .map(&name)
            .filter(|n| !archive.exists(n))
            .collect();
        if missing.len() == groups && groups > 0 {
            c.warn(
                "missing_class_trees",
                &format!("{dir}trees/t{class:02}_*.bin"),
                format!("class {class} has none of its {groups} trees (genmodel scores it as 0)"),
            );
            continue;
        }
        for (i, n) in missing.iter().enumerate() {
            if i == MISSING_TREES_SHOWN {
                c.error(
                    "missing_file",
                    &format!("{dir}trees/t{class:02}_*.bin"),
                    format!("and {} more trees of class {class}", missing.len() - i),
                );
                break;
            }
            c.error(
                "missing_file",
                n,
                format!("tree file of class {class} is missing"),
            );
        }
        if aux {
            for group in 0..groups {
                let tree = name(group);
                let aux = tree.replace(".bin", "_aux.bin");
                if archive.exists(&tree) && !archive.exists(&aux) {
                    c.error(
                        "missing_file",
                        &aux,
                        "the tree's node statistics are missing (genmodel reads them at load time)",
                    );
                }
            }
        }
    }
}

/// GLM (`GlmMojoReader`): the coefficients and the family, and a link unless multinomial or
/// ordinal.
fn glm(f: &Fields, c: &mut Checker) {
    f.require(&["beta", "family"], "a GLM", c);
    f.f64s("beta", c);
    if !matches!(f.ini.raw("family"), Some("multinomial" | "ordinal") | None) {
        f.require(&["link"], "this GLM family", c);
    }
}

/// XGBoost (`XGBoostMojoReader`): the booster blob and the one-hot layout keys.
fn xgboost(archive: &Archive, dir: &str, f: &Fields, c: &mut Checker) {
    f.require(
        &[
            "booster",
            "nums",
            "cats",
            "cat_offsets",
            "use_all_factor_levels",
            "sparse",
        ],
        "an XGBoost model",
        c,
    );
    f.usize("nums", c);
    f.usize("cats", c);
    f.usizes("cat_offsets", c);
    f.bool("use_all_factor_levels", c);
    f.bool("sparse", c);
    let booster = format!("{dir}boosterBytes");
    if !archive.exists(&booster) {
        c.error("missing_file", &booster, "the XGBoost booster is missing");
    }
}

/// DeepLearning (`DeeplearningMojoReader`): the network's shape, then `weight_layerL` and
/// `bias_layerL` for each layer, of the sizes the shape implies.
fn deeplearning(f: &Fields, c: &mut Checker) {
    f.require(
        &[
            "mini_batch_size",
            "nums",
            "cats",
            "use_all_factor_levels",
            "activation",
            "distribution",
            "mean_imputation",
            "neural_network_sizes",
        ],
        "a DeepLearning model",
        c,
    );
    f.usize("nums", c);
    f.usize("cats", c);
    f.bool("use_all_factor_levels", c);
    f.bool("mean_imputation", c);
    let Some(units) = f.usizes("neural_network_sizes", c) else {
        return;
    };
    if units.len() < 2 {
        c.error(
            "layer_size",
            f.path,
            "`neural_network_sizes` needs an input and an output layer",
        );
        return;
    }
    let maxout = f
        .ini
        .raw("activation")
        .is_some_and(|a| a.starts_with("Maxout"));
    for l in 0..units.len() - 1 {
        let (weight, bias) = (format!("weight_layer{l}"), format!("bias_layer{l}"));
        f.require(&[weight.as_str(), bias.as_str()], "each layer", c);
        let (Some(w), Some(b)) = (f.f64s(&weight, c), f.f64s(&bias, c)) else {
            continue;
        };
        let (inputs, outputs) = (units[l], units[l + 1]);
        // Maxout layers have k pieces per unit (and k biases); other layers one.
        let k = if maxout && outputs > 0 && l + 2 < units.len() {
            b.len() / outputs
        } else {
            1
        };
        let want_b = outputs.saturating_mul(k);
        let want_w = inputs.saturating_mul(want_b);
        if b.len() != want_b || w.len() != want_w {
            c.error(
                "layer_size",
                f.path,
                format!(
                    "layer {l} ({inputs} → {outputs} units) has {} weights and {} biases; it needs {want_w} and {want_b}",
                    w.len(),
                    b.len()
                ),
            );
        }
    }
}

/// StackedEnsemble (`MultiModelMojoReader`, `StackedEnsembleMojoReader`): every
/// `submodel_dir_i` holds a complete model, checked recursively; the metalearner and every
/// `base_model<i>` (absent when the metalearner dropped it) name one of the submodels.
fn ensemble(archive: &Archive, dir: &str, depth: usize, f: &Fields, c: &mut Checker) {
    f.require(&["submodel_count", "metalearner"], "a StackedEnsemble", c);
    let count = f.usize("submodel_count", c).unwrap_or(0);
    let base_models = f.usize("base_models_num", c).unwrap_or(0);
    if count > MAX_ENTRIES {
        c.error(
            "bad_value",
            f.path,
            format!("`submodel_count` is {count}, more than the archive could hold"),
        );
        return;
    }
    let mut keys = HashSet::new();
    for i in 0..count {
        let (key, sub) = (format!("submodel_key_{i}"), format!("submodel_dir_{i}"));
        f.require(&[key.as_str(), sub.as_str()], "each submodel", c);
        if let Some(k) = f.ini.raw(&key) {
            keys.insert(k.to_string());
        }
        let Some(sub_dir) = f.ini.raw(&sub) else {
            continue;
        };
        let unsafe_dir = unsafe_name(sub_dir);
        if let Some((code, why)) = unsafe_dir {
            c.error(code, f.path, format!("`{sub}` `{}` {why}", shown(sub_dir)));
            continue;
        }
        if !sub_dir.ends_with('/') {
            c.error(
                "bad_value",
                f.path,
                format!(
                    "`{sub}` `{}` is not a directory (no trailing `/`)",
                    shown(sub_dir)
                ),
            );
            continue;
        }
        if depth + 1 > MAX_DEPTH {
            c.error(
                "nesting_too_deep",
                f.path,
                format!("submodels nest more than {MAX_DEPTH} levels deep"),
            );
            return;
        }
        let nested = format!("{dir}{sub_dir}");
        if c.visited.insert(nested.clone()) {
            model(archive, &nested, depth + 1, c);
        }
    }
    let reference = |key: &str, role: String, c: &mut Checker| {
        if !keys.contains(key) {
            c.error(
                "missing_submodel",
                f.path,
                format!("{role} `{}` is not among the submodels", shown(key)),
            );
        }
    };
    if let Some(meta) = f.ini.raw("metalearner") {
        reference(meta, "the metalearner".into(), c);
    }
    for i in 0..base_models.min(MAX_ENTRIES) {
        if let Some(key) = f.ini.raw(&format!("base_model{i}")) {
            reference(key, format!("base model {i}"), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixtures().join(format!("{name}.zip"))).unwrap()
    }

    /// The fixture's entries, in order.
    fn entries(name: &str) -> Vec<(String, Vec<u8>)> {
        let bytes = fixture(name);
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut f = zip.by_index(i).unwrap();
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                (f.name().to_string(), data)
            })
            .collect()
    }

    fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, body) in files {
            zip.start_file(name.as_str(), opts).unwrap();
            zip.write_all(body).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// A fixture with `edit` applied to each entry (`None` drops it) and `extra` entries added.
    fn altered(
        name: &str,
        edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut files: Vec<(String, Vec<u8>)> = entries(name)
            .into_iter()
            .filter_map(|(n, d)| edit(&n, d).map(|d| (n, d)))
            .collect();
        files.extend(
            extra
                .iter()
                .map(|(n, d)| (n.to_string(), d.as_bytes().to_vec())),
        );
        zip_of(&files)
    }

    /// The fixture with `model.ini`'s text edited.
    fn with_ini(name: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
        altered(
            name,
            |n, d| {
                Some(if n == "model.ini" {
                    edit(std::str::from_utf8(&d).unwrap()).into_bytes()
                } else {
                    d
                })
            },
            &[],
        )
    }

    fn codes(report: &Report) -> Vec<(&'static str, &str)> {
        report
            .errors
            .iter()
            .map(|p| (p.code, p.path.as_str()))
            .collect()
    }

    fn assert_error(report: &Report, code: &str, path: &str) {
        assert!(!report.valid, "{report:#?}");
        assert!(
            report
                .errors
                .iter()
                .any(|p| p.code == code && p.path == path),
            "expected {code} at `{path}`, got {:?}",
            codes(report)
        );
    }

    fn manifest() -> Vec<String> {
        std::fs::read_to_string(fixtures().join("manifest.tsv"))
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn every_fixture_is_valid_and_scorable() {
        let names = manifest();
        assert!(names.len() >= 29, "{names:?}");
        for name in names {
            let bytes = fixture(&name);
            let report = validate(&bytes);
            assert!(
                report.valid && report.errors.is_empty(),
                "{name}: {:#?}",
                report.errors
            );
            assert!(report.warnings.is_empty(), "{name}: {:#?}", report.warnings);
            assert!(report.scorable, "{name}: {:?}", report.scorable_reason);
            assert_eq!(
                report.canonical.as_deref(),
                Some(crate::mojo::canonical_digest(&bytes).unwrap().as_str())
            );
            let mojo = crate::mojo::Mojo::load(&bytes).unwrap();
            assert_eq!(report.algorithm.as_deref(), Some(mojo.algo()), "{name}");
            assert_eq!(report.mojo_version.as_deref(), Some(mojo.mojo_version()));
            assert_eq!(report.h2o_version.as_deref(), Some("3.46.0.11"));
            assert_eq!(report.response.as_deref(), mojo.response(), "{name}");
            let names: Vec<&str> = report.columns.iter().map(|c| c.name.as_str()).collect();
            let want: Vec<&str> = mojo.signature().iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, want, "{name}");
        }
    }

    #[test]
    fn reports_the_header_fields() {
        let report = validate(&fixture("gbm_bin"));
        assert_eq!(report.algorithm.as_deref(), Some("gbm"));
        assert_eq!(report.category.as_deref(), Some("Binomial"));
        assert_eq!((report.n_features, report.n_classes), (Some(7), Some(2)));
        assert_eq!(report.response.as_deref(), Some("CAPSULE"));
        assert_eq!(
            report.columns[1],
            InputColumn {
                name: "RACE".into(),
                kind: "categorical",
                levels: Some(3)
            }
        );
        assert_eq!(report.columns[0].kind, "numeric");
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "file",
            "valid",
            "algorithm",
            "h2o_version",
            "mojo_version",
            "category",
            "n_features",
            "n_classes",
            "columns",
            "response",
            "canonical",
            "scorable",
            "scorable_reason",
            "errors",
            "warnings",
        ] {
            assert!(json.get(key).is_some(), "`{key}` in {json}");
        }
        assert!(report.render().contains("RACE (3 levels)"));
    }

    #[test]
    fn garbage_is_not_a_zip() {
        for bytes in [
            &b""[..],
            b"garbage bytes, not a zip",
            &[0x50, 0x4b, 5, 6][..],
        ] {
            let report = validate(bytes);
            assert_eq!(codes(&report), [("not_a_zip", "")]);
            assert!(!report.scorable && report.canonical.is_none());
        }
    }

    #[test]
    fn entries_escaping_the_archive_are_refused() {
        for (evil, code) in [
            ("../evil", "unsafe_path"),
            ("trees/../../evil", "unsafe_path"),
            ("/etc/passwd", "unsafe_path"),
            ("..\\evil", "unsafe_path"),
            ("C:/evil", "unsafe_path"),
            ("a\0b", "unsafe_path"),
            ("./model.ini.bak", "unnormalised_path"),
            ("trees//t.bin", "unnormalised_path"),
        ] {
            let report = validate(&altered("gbm_bin", |_, d| Some(d), &[(evil, "x")]));
            assert_error(&report, code, &printable(evil));
            assert!(
                report.canonical.is_none(),
                "{evil}: no digest of an unsafe archive"
            );
            assert!(!report.scorable);
            // Everything else is still checked: the model itself is fine.
            assert_eq!(report.errors.len(), 1, "{evil}: {:?}", codes(&report));
            assert_eq!(report.algorithm.as_deref(), Some("gbm"));
        }
    }

    #[test]
    fn duplicate_entries_are_refused() {
        // The zip writer refuses duplicates: write `model.inX` and rename it in both headers.
        let ini = entries("gbm_bin")
            .into_iter()
            .find(|(n, _)| n == "model.ini")
            .unwrap()
            .1;
        let mut bytes = altered(
            "gbm_bin",
            |_, d| Some(d),
            &[("model.inX", std::str::from_utf8(&ini).unwrap())],
        );
        let mut renamed = 0;
        for i in 0..bytes.len() - 9 {
            if &bytes[i..i + 9] == b"model.inX" {
                bytes[i + 8] = b'i';
                renamed += 1;
            }
        }
        assert_eq!(renamed, 2);
        let report = validate(&bytes);
        assert_error(&report, "duplicate_entry", "model.ini");
    }

    #[test]
    fn a_declared_size_past_the_budget_is_not_read() {
        let mut bytes = fixture("glm_bin");
        // Patch the central directory's uncompressed size of the first entry to ~4 GiB.
        let cd = bytes
            .windows(4)
            .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
            .unwrap();
        bytes[cd + 24..cd + 28].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let report = validate(&bytes);
        assert!(
            report.errors.iter().any(|p| p.code == "too_large"),
            "{:?}",
            codes(&report)
        );
        assert!(report.canonical.is_none() && !report.scorable);
    }

    #[test]
    fn missing_model_ini() {
        let report = validate(&altered(
            "gbm_bin",
            |n, d| (n != "model.ini").then_some(d),
            &[],
        ));
        assert_eq!(codes(&report), [("missing_file", "model.ini")]);
    }

    #[test]
    fn missing_and_bad_fields() {
        let report = validate(&with_ini("gbm_bin", |t| t.replace("n_classes = 2\n", "")));
        assert_error(&report, "missing_field", "model.ini");
        assert!(report.errors[0].message.contains("`n_classes`"));
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace(
                "default_threshold = 0.4667580512262128",
                "default_threshold = high",
            )
            .replace("supervised = true", "supervised = yes")
        }));
        let bad: Vec<&str> = report
            .errors
            .iter()
            .filter(|p| p.code == "bad_value")
            .map(|p| p.message.as_str())
            .collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        // A missing recommended key is only a warning.
        let report = validate(&with_ini("gbm_bin", |t| t.replace("n_domains = 4\n", "")));
        assert!(report.valid, "{:?}", codes(&report));
        assert_eq!(report.warnings[0].code, "missing_recommended_field");
    }

    #[test]
    fn wrong_n_columns() {
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace("n_columns = 8", "n_columns = 9")
        }));
        assert_eq!(codes(&report), [("column_count", "model.ini")]);
        assert!(report.errors[0].message.contains("9") && report.errors[0].message.contains("8"));
    }

    #[test]
    fn wrong_n_domains() {
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace("n_domains = 4", "n_domains = 3")
        }));
        assert_eq!(codes(&report), [("domain_count", "model.ini")]);
    }

    #[test]
    fn missing_domain_file() {
        let report = validate(&altered(
            "gbm_bin",
            |n, d| (n != "domains/d001.txt").then_some(d),
            &[],
        ));
        assert_eq!(codes(&report), [("missing_file", "domains/d001.txt")]);
        assert!(
            report.errors[0].message.contains("`DPROS`"),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn domain_line_count_mismatch() {
        let report = validate(&altered(
            "gbm_bin",
            |n, d| {
                Some(if n == "domains/d001.txt" {
                    b"1\n2\n".to_vec()
                } else {
                    d
                })
            },
            &[],
        ));
        assert_eq!(codes(&report), [("domain_length", "domains/d001.txt")]);
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace("7: 2 d003.txt", "7: 3 d003.txt")
        }));
        assert_error(&report, "domain_length", "domains/d003.txt");
        assert_error(&report, "class_count", "model.ini");
    }

    #[test]
    fn malformed_ini_lines_name_their_line() {
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace("[domains]\n", "[domains]\nbogus\n")
        }));
        assert_eq!(codes(&report), [("malformed_ini", "model.ini")]);
        assert!(
            report.errors[0].message.starts_with("line "),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn missing_tree_file() {
        let report = validate(&altered(
            "gbm_bin",
            |n, d| (n != "trees/t00_003.bin").then_some(d),
            &[],
        ));
        assert_eq!(codes(&report), [("missing_file", "trees/t00_003.bin")]);
        let report = validate(&altered(
            "gbm_bin",
            |n, d| (n != "trees/t00_005_aux.bin").then_some(d),
            &[],
        ));
        assert_eq!(codes(&report), [("missing_file", "trees/t00_005_aux.bin")]);
        // More trees declared than there are files: one error, not millions.
        let report = validate(&with_ini("gbm_bin", |t| {
            t.replace("n_trees = 8", "n_trees = 999999999999")
        }));
        assert_eq!(codes(&report), [("missing_file", "trees/")]);
    }

    #[test]
    fn xgboost_needs_its_booster_and_glm_its_beta() {
        let report = validate(&altered(
            "xgb_bin",
            |n, d| (n != "boosterBytes").then_some(d),
            &[],
        ));
        assert_eq!(codes(&report), [("missing_file", "boosterBytes")]);
        let report = validate(&with_ini("glm_bin", |t| {
            t.lines()
                .filter(|l| !l.starts_with("beta = "))
                .collect::<Vec<_>>()
                .join("\n")
        }));
        assert_eq!(codes(&report), [("missing_field", "model.ini")]);
    }

    #[test]
    fn deeplearning_layers_are_sized() {
        let report = validate(&with_ini("dl_bin", |t| {
            t.lines()
                .map(|l| {
                    if l.starts_with("bias_layer1 = [") {
                        "bias_layer1 = [1.0, 2.0]"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }));
        assert_eq!(codes(&report), [("layer_size", "model.ini")]);
        assert!(report.errors[0].message.contains("layer 1"));
    }

    #[test]
    fn stacked_ensemble_with_a_missing_base_model() {
        let report = validate(&altered(
            "se_bin",
            |n, d| (!n.starts_with("models/DeepLearning/dl_bin/")).then_some(d),
            &[],
        ));
        assert_eq!(
            codes(&report),
            [("missing_file", "models/DeepLearning/dl_bin/model.ini")]
        );
        // A base model's own problems carry its path.
        let report = validate(&altered(
            "se_bin",
            |n, d| (n != "models/GLM/glm_bin/domains/d001.txt").then_some(d),
            &[],
        ));
        assert_eq!(
            codes(&report),
            [("missing_file", "models/GLM/glm_bin/domains/d001.txt")]
        );
        // A base model key that names no submodel.
        let report = validate(&with_ini("se_bin", |t| {
            t.replace("base_model5 = dl_bin", "base_model5 = dl_gone")
        }));
        assert_eq!(codes(&report), [("missing_submodel", "model.ini")]);
        // A submodel directory that loops back to the top.
        let report = validate(&with_ini("se_bin", |t| {
            t.replace(
                "submodel_dir_1 = models/GLM/glm_bin/",
                "submodel_dir_1 = ../",
            )
        }));
        assert_error(&report, "unsafe_path", "model.ini");
    }

    #[test]
    fn unknown_algorithms_are_a_warning() {
        let ini = "[info]\nh2o_version = 3.46.0.11\nmojo_version = 1.00\nalgo = kmeans\nalgorithm = K-means\n\
category = Clustering\nuuid = 1\nsupervised = false\nn_features = 2\nn_classes = 3\nn_columns = 2\n\
n_domains = 0\nbalance_classes = false\ndefault_threshold = 0.5\nprior_class_distrib = null\n\
model_class_distrib = null\ntimestamp = 2026-01-01T00:00:00Z\n\n[columns]\nx\ny\n\n[domains]\n";
        let report = validate(&zip_of(&[("model.ini".into(), ini.as_bytes().to_vec())]));
        assert!(report.valid, "{:?}", codes(&report));
        let warnings: Vec<&str> = report.warnings.iter().map(|p| p.code).collect();
        assert_eq!(warnings, ["unknown_algorithm", "not_scorable"]);
        assert!(!report.scorable);
        assert!(report.scorable_reason.unwrap().contains("kmeans"));
        assert!(report.canonical.is_some());
    }

    #[test]
    fn collects_every_problem() {
        let report = validate(&altered(
            "gbm_bin",
            |n, d| match n {
                "domains/d000.txt" | "trees/t00_001.bin" => None,
                "model.ini" => Some(
                    String::from_utf8(d)
                        .unwrap()
                        .replace("n_columns = 8", "n_columns = 7")
                        .into_bytes(),
                ),
                _ => Some(d),
            },
            &[("../evil", "x")],
        ));
        let mut got: Vec<&str> = report.errors.iter().map(|p| p.code).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "column_count",
                "missing_file",
                "missing_file",
                "unsafe_path"
            ]
        );
        assert!(report
            .refusal()
            .starts_with("the archive is not a valid MOJO: 4 problems"));
    }

    #[test]
    fn never_panics_on_damaged_archives() {
        let original = fixture("se_bin");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for cut in (0..original.len()).step_by(997) {
            validate(&original[..cut]);
        }
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            validate(&bytes);
        }
        // Damaged `model.ini` text in a sound archive reaches the parsers and the scorer.
        for name in ["gbm_bin", "se_bin", "dl_multi", "xgb_reg", "glm_multi"] {
            for _ in 0..60 {
                let mut text: Vec<u8> = entries(name)
                    .into_iter()
                    .find(|(n, _)| n == "model.ini")
                    .unwrap()
                    .1;
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % text.len();
                    match next() % 3 {
                        0 => text[at] = b"0123456789=:[],\n x"[(next() % 18) as usize],
                        1 => {
                            text.remove(at);
                        }
                        _ => {
                            let end = text[at..]
                                .iter()
                                .position(|&b| b == b'\n')
                                .map_or(text.len(), |p| at + p);
                            text.drain(at..end);
                        }
                    }
                }
                let text = String::from_utf8_lossy(&text).into_owned();
                validate(&with_ini(name, |_| text.clone()));
            }
        }
    }
}
