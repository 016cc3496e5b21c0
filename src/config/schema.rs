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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locate {
    /// A data file, relative to the project directory.
    pub path: String,
}

/// A column type that `prepare.types` can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Numeric,
    Enum,
    String,
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
}

impl Default for Prepare {
    fn default() -> Self {
        Prepare {
            types: BTreeMap::new(),
            drop: Vec::new(),
            holdout: default_holdout(),
            seed: default_seed(),
            sample: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    #[serde(default = "default_max_null_fraction")]
    pub max_null_fraction: f64,
}

impl Default for Confirm {
    fn default() -> Self {
        Confirm {
            min_rows: default_min_rows(),
            max_null_fraction: default_max_null_fraction(),
        }
    }
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
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            baseline: default_baseline(),
            min_improvement: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modify {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for Modify {
    fn default() -> Self {
        Modify {
            max_attempts: default_max_attempts(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conclude {
    #[serde(default = "default_promote")]
    pub promote: Vec<String>,
}

impl Default for Conclude {
    fn default() -> Self {
        Conclude {
            promote: default_promote(),
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
    /// Heap of the local node (`-Xmx`).
    #[serde(default = "default_memory")]
    pub memory: String,
}

impl Default for H2o {
    fn default() -> Self {
        H2o {
            url: None,
            jar: None,
            version: default_h2o_version(),
            nodes: default_nodes(),
            memory: default_memory(),
        }
    }
}

fn default_holdout() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    42
}
fn default_min_rows() -> u64 {
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
