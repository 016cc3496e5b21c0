//! `ml.lock`: what the last run of this project's inputs produced, for review and for `--frozen`.
//!
//! JSON with sorted keys, one entry per step (and per feedback attempt): the step's key, the
//! inputs that made it (config values and upstream digests) and its output digests (canonical
//! digests for MOJOs), plus the declared engine fingerprint. No timestamps and no version ids,
//! so rerunning the same inputs writes the same bytes and the file diffs cleanly in review.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{write_atomic, StoreError};

pub const LOCK_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lockfile {
    pub format: u32,
    pub engine: EngineFingerprint,
    pub steps: Vec<LockedStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineFingerprint {
    pub version: String,
    pub nodes: u32,
    /// Threads per node, declared for a cluster of more than one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedStep {
    pub step: String,
    pub attempt: u32,
    pub key: String,
    pub inputs: serde_json::Value,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("cannot read `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid ml.lock: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Lockfile {
    /// Each locked step's name (`step`, or `step#N` for attempt N > 1) and key, in order.
    pub fn named_keys(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .map(|s| {
                let name = if s.attempt == 1 {
                    s.step.clone()
                } else {
                    format!("{}#{}", s.step, s.attempt)
                };
                (name, s.key.clone())
            })
            .collect()
    }

    pub fn new(engine: EngineFingerprint) -> Lockfile {
        Lockfile {
            format: LOCK_FORMAT,
            engine,
            steps: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Option<Lockfile>, LockfileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockfileError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LockfileError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    pub fn entry(&self, step: &str, attempt: u32) -> Option<&LockedStep> {
        self.steps
            .iter()
            .find(|s| s.step == step && s.attempt == attempt)
    }

    pub fn to_text(&self) -> String {
        let value = serde_json::to_value(self).expect("lockfile serialises");
        let mut text = serde_json::to_string_pretty(&value).expect("json serialises");
        text.push('\n');
        text
    }

    /// Writes the lock when its content changed (so an unchanged lock keeps its mtime).
    pub fn save(&self, path: &Path) -> Result<bool, LockfileError> {
        let text = self.to_text();
        if std::fs::read_to_string(path)
            .map(|old| old == text)
            .unwrap_or(false)
        {
            return Ok(false);
        }
        write_atomic(path, text.as_bytes())?;
        Ok(true)
    }
}
