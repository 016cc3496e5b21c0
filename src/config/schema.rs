//! The typed `ml.toml` schema. Every key here is documented in `docs/config.md`.
//!
//! Defaults are filled in by serde, so a key slice serialised from these structs is the same
//! whether a user wrote a default explicitly or left it out: keys see meaning, not formatting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub project: Project,
    pub define: Define,
    pub locate: Locate,
    #[serde(default)]
    pub prepare: Prepare,
    #[serde(default)]
    pub confirm: Confirm,
    #[serde(default)]
    pub execute: Execute,
    #[serde(default)]
    pub monitor: Monitor,
    #[serde(default)]
    pub modify: Modify,
    #[serde(default)]
    pub conclude: Conclude,
    #[serde(default)]
    pub h2o: H2o,
    /// The remote cache and gc (never part of a step key; left out of the serialised form when
    /// default, so provenance and cards of projects without it do not change).
    #[serde(default, skip_serializing_if = "Cache::is_default")]
    pub cache: Cache,
    /// `[[steps]]`: the project's own steps, in file order (docs/steps.md). Left out of the
    /// serialised form when there are none, so provenance of projects without them is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<UserStep>,
}

/// One `[[steps]]` table: a command of the user's, run hermetically between two built-in
/// steps and keyed like them (docs/steps.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserStep {
    pub name: String,
    /// The built-in step it runs after (and before the next one).
    pub after: String,
    /// The command and its arguments (no shell), with `{use.STEP.OUTPUT}`, `{out.NAME}` and
    /// `{params}` placeholders.
    pub run: Vec<String>,
    /// Project files and globs, copied into the step's directory at the same relative paths.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Outputs of earlier steps, `STEP.OUTPUT` as in `ml.lock`.
    #[serde(default)]
    pub uses: Vec<String>,
    /// Free parameters, handed to the command as a JSON file (`{params}`).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// The only environment variables the command sees besides a fixed minimal set.
    #[serde(default)]
    pub env: Vec<String>,
    /// Commands whose version output enters the key (`"python3"` runs `python3 --version`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Named files the command must write, relative to its directory.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// `false`: the step runs every time (its outputs still feed downstream keys).
    #[serde(default = "default_true")]
    pub cache: bool,
    /// `["train", "holdout"]`: its outputs of those names replace prepare's for confirm,
    /// execute and monitor (a step after prepare only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Display name; defaults to the project directory's name.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Problem {
    Binary,
    Multiclass,
    Regression,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Define {
    pub target: String,
    /// Inferred from the target column when omitted.
    #[serde(default)]
    pub problem: Option<Problem>,
    /// Primary metric; defaulted by problem type when omitted (auc, logloss, rmse).
    #[serde(default)]
    pub metric: Option<String>,
    /// The leader must reach this on the holdout (at most this for error metrics).
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// The data source: `path` (a file or a glob) or `sql` (+ `url_env`, `params`). Every field
/// but `path` is left out of the serialised form when unset, so the keys of existing projects
/// do not change. See `docs/sources.md`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locate {
    /// A data file or a glob of files, relative to the project directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// CSV field delimiter (one ASCII character); default `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV: whether the first row names the columns; default true (`false` → `C1..Cn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV: field values read as missing (besides the empty field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub na_strings: Vec<String>,
    /// A SQL query (Postgres or SQLite); its result is the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The environment variable holding the database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// Values bound to `$1`, `$2`, … of `sql` (never spliced into its text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<SqlParam>,
    /// Fetch only rows past the stored watermark and append them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
}

/// A value bound to a SQL parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SqlParam {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// `[locate.incremental]`: watermark extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The watermark column: rows with a larger value than the stored maximum are fetched.
    pub column: String,
    /// A key column: a fetched row replaces the earlier row with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A column type that `prepare.types` can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Numeric,
    Enum,
    String,
}

impl ColumnType {
    /// The names `prepare.types` takes, in declaration order: the one spelling of each type
    /// in config, messages and reports.
    pub const NAMES: [&'static str; 3] = ["numeric", "enum", "string"];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Numeric => Self::NAMES[0],
            ColumnType::Enum => Self::NAMES[1],
            ColumnType::String => Self::NAMES[2],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepare {
    #[serde(default)]
    pub types: BTreeMap<String, ColumnType>,
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Keep only this fraction of the rows (seeded, before the split); unset keeps all.
    /// Left out of the serialised form when unset, so existing keys do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    /// Stratify the split by the target's class; unset = yes for classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratify: Option<bool>,
    /// `old = "new"` column renames (keys are the data's names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// Missing-value imputation per column, fitted on the training rows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub impute: BTreeMap<String, Impute>,
    /// Derived numeric columns: name = expression (see `transform::expr`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derive: BTreeMap<String, String>,
    /// Text columns turned into averaged Word2Vec features.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text: BTreeMap<String, TextSpec>,
}

impl Default for Prepare {
    fn default() -> Self {
        Prepare {
            types: BTreeMap::new(),
            drop: Vec::new(),
            holdout: default_holdout(),
            seed: default_seed(),
            sample: None,
            stratify: None,
            rename: BTreeMap::new(),
            impute: BTreeMap::new(),
            derive: BTreeMap::new(),
            text: BTreeMap::new(),
        }
    }
}

/// How `prepare.impute` fills a column's missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Impute {
    /// `"mean"`, `"median"` (numeric columns) or `"mode"` (any column).
    Strategy(ImputeStrategy),
    /// `{ constant = 0 }` or `{ constant = "unknown" }`.
    Constant { constant: Scalar },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImputeStrategy {
    Mean,
    Median,
    Mode,
}

/// A TOML scalar used as a value in the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Integer(i64),
    Float(f64),
    String(String),
}

/// `prepare.text.COLUMN`: H2O Word2Vec parameters (defaults filled in, so keys see meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSpec {
    #[serde(default = "default_vec_size")]
    pub vec_size: u32,
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    #[serde(default = "default_min_word_freq")]
    pub min_word_freq: u32,
    #[serde(default = "default_window_size")]
    pub window_size: u32,
}

impl Default for TextSpec {
    fn default() -> Self {
        TextSpec {
            vec_size: default_vec_size(),
            epochs: default_epochs(),
            min_word_freq: default_min_word_freq(),
            window_size: default_window_size(),
        }
    }
}

fn default_vec_size() -> u32 {
    16
}
fn default_epochs() -> u32 {
    10
}
fn default_min_word_freq() -> u32 {
    2
}
fn default_window_size() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    #[serde(default = "default_max_null_fraction")]
    pub max_null_fraction: f64,
    /// Largest fraction of missing cells over the whole prepared data; unset = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_null_fraction_overall: Option<f64>,
    /// Columns that must be in the prepared data, with their type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required: BTreeMap<String, ColumnType>,
    /// Smallest share of the rows any class of the target may have (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_class_fraction: Option<f64>,
    /// Columns whose non-missing values must be unique (each column on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<String>,
    /// Drift against the training data of the version tagged `production`.
    #[serde(default, skip_serializing_if = "Drift::is_default")]
    pub drift: Drift,
}

impl Default for Confirm {
    fn default() -> Self {
        Confirm {
            min_rows: default_min_rows(),
            max_null_fraction: default_max_null_fraction(),
            max_null_fraction_overall: None,
            required: BTreeMap::new(),
            min_class_fraction: None,
            unique: Vec::new(),
            drift: Drift::default(),
        }
    }
}

/// `[confirm.drift]`: PSI limits (see `drift`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Largest population stability index allowed per column.
    #[serde(default = "default_psi")]
    pub psi: f64,
}

impl Default for Drift {
    fn default() -> Self {
        Drift {
            enabled: true,
            psi: default_psi(),
        }
    }
}

impl Drift {
    pub fn is_default(&self) -> bool {
        *self == Drift::default()
    }
}

fn default_true() -> bool {
    true
}
fn default_psi() -> f64 {
    0.2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execute {
    #[serde(default = "default_max_models")]
    pub max_models: u32,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_nfolds")]
    pub nfolds: u32,
    #[serde(default)]
    pub include_algos: Vec<String>,
    #[serde(default = "default_exclude_algos")]
    pub exclude_algos: Vec<String>,
    /// Defaults to `define.metric`.
    #[serde(default)]
    pub sort_metric: Option<String>,
}

impl Default for Execute {
    fn default() -> Self {
        Execute {
            max_models: default_max_models(),
            seed: default_seed(),
            nfolds: default_nfolds(),
            include_algos: Vec::new(),
            exclude_algos: default_exclude_algos(),
            sort_metric: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    #[serde(default = "default_baseline")]
    pub baseline: String,
    #[serde(default)]
    pub min_improvement: f64,
    /// Holdout rows execute explains with SHAP (default 100; 0 = no SHAP). Used by execute
    /// while the leader is loaded; not part of any key (the contributions are informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shap_rows: Option<u32>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            baseline: default_baseline(),
            min_improvement: 0.0,
            shap_rows: None,
        }
    }
}

impl Monitor {
    pub fn shap_rows(&self) -> u32 {
        self.shap_rows.unwrap_or(100)
    }
}

/// `[modify.escalate]` and `[conclude.deploy]`: notifications, never part of a key. A webhook
/// gets a JSON POST (retried with backoff); a command gets the JSON on stdin and in
/// `MLBUILD_HOOK_JSON`. A failing hook is a warning, not an error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.command.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modify {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Notified when the run escalates.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub escalate: Hooks,
}

impl Default for Modify {
    fn default() -> Self {
        Modify {
            max_attempts: default_max_attempts(),
            escalate: Hooks::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conclude {
    #[serde(default = "default_promote")]
    pub promote: Vec<String>,
    /// Notified when conclude registers a version and moves tags.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub deploy: Hooks,
}

impl Default for Conclude {
    fn default() -> Self {
        Conclude {
            promote: default_promote(),
            deploy: Hooks::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2o {
    /// Use this cluster instead of launching a local node (`MLBUILD_H2O_URL` wins).
    #[serde(default)]
    pub url: Option<String>,
    /// The jar to launch (`MLBUILD_H2O_JAR` wins).
    #[serde(default)]
    pub jar: Option<String>,
    /// Declared engine version: enters execute's key, checked on connect.
    #[serde(default = "default_h2o_version")]
    pub version: String,
    /// Declared cluster size: enters execute's key, checked on connect.
    #[serde(default = "default_nodes")]
    pub nodes: u32,
    /// Threads per node (`-nthreads` of managed nodes, checked on an external cluster); enters
    /// execute's key only when `nodes` > 1 (H2O results depend on the cluster's shape).
    #[serde(default)]
    pub threads: Option<u32>,
    /// Heap of each local node (`-Xmx`), per node.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// A directory this machine and every node of the cluster read at the same path: data is
    /// imported from content-addressed copies there instead of uploaded
    /// (`MLBUILD_H2O_EXCHANGE_DIR` wins). Not in any key.
    #[serde(default)]
    pub exchange_dir: Option<String>,
}

impl Default for H2o {
    fn default() -> Self {
        H2o {
            url: None,
            jar: None,
            version: default_h2o_version(),
            nodes: default_nodes(),
            threads: None,
            memory: default_memory(),
            exchange_dir: None,
        }
    }
}

/// `[cache]`: where the remote cache is and how `cache gc` prunes. Not in any key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Base URL of the remote cache (`MLBUILD_REMOTE_CACHE` wins).
    #[serde(default)]
    pub remote: Option<String>,
    /// Restore from the remote, never upload to it.
    #[serde(default)]
    pub read_only: bool,
    /// `cache gc` keeps what the last this many runs used.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: u32,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            remote: None,
            read_only: false,
            keep_runs: default_keep_runs(),
        }
    }
}

impl Cache {
    pub fn is_default(&self) -> bool {
        *self == Cache::default()
    }
}

fn default_keep_runs() -> u32 {
    10
}

fn default_holdout() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    42
}
pub(super) fn default_min_rows() -> u64 {
    10
}
fn default_max_null_fraction() -> f64 {
    0.5
}
fn default_max_models() -> u32 {
    4
}
fn default_nfolds() -> u32 {
    5
}
fn default_exclude_algos() -> Vec<String> {
    // DeepLearning is not reproducible (h2o-rest.md §9); leave it out unless asked for.
    vec!["DeepLearning".to_string()]
}
fn default_baseline() -> String {
    "production".to_string()
}
fn default_max_attempts() -> u32 {
    2
}
fn default_promote() -> Vec<String> {
    vec!["staging".to_string()]
}
pub fn default_h2o_version() -> String {
    crate::h2o::PINNED_VERSION.to_string()
}
fn default_nodes() -> u32 {
    1
}
fn default_memory() -> String {
    "2g".to_string()
}
