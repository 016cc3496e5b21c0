//! Step keys: what enters each step's cache key, and how it is hashed.
//!
//! A key is the blake3 hash of the canonical JSON of a [`KeyInputs`]: the key format version,
//! the step's semantics version, the step name and a JSON object of exactly the inputs listed
//! in DESIGN.md §5.1 (object keys sorted, so field order never matters). The inputs are built
//! from the *typed* config (defaults filled in), so comments, formatting and spelling out a
//! default never change a key. No absolute paths, mtimes, inodes or hostnames enter a key: the
//! same project gives the same keys on every machine.
//!
//! | step     | inputs |
//! |----------|--------|
//! | define   | `define.*` minus `threshold`; data column names; target column kind and distinct count |
//! | locate   | `locate.*`; the source's content digest |
//! | prepare  | `prepare.*`; locate's snapshot digest; the problem spec |
//! | confirm  | `confirm.*`; prepare's output digests; production's training snapshot (drift; none yet) |
//! | execute  | `execute.*` + attempt params; prepare's outputs; problem spec; confirm's verdict; engine |
//! | monitor  | `define.threshold`, `define.metric`, `monitor.*`; execute's output digests; baseline |
//! | modify   | `modify.*`; the monitor verdicts and metrics of the attempts so far |
//! | conclude | `conclude.*`; the chosen attempt's output digests (canonical MOJO digest) |
//!
//! Limits: a key says nothing about the H2O cluster beyond the *declared* engine fingerprint
//! (`[h2o] version`, `nodes`); the cluster is checked against it when mlbuild connects.

use serde::Serialize;
use serde_json::Value;

/// Version of the key format itself; bump to invalidate every key.
pub const KEY_FORMAT: u32 = 1;

/// Version of step semantics; bump when a step's outputs would change for the same inputs.
pub const SEMANTICS: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct KeyInputs {
    pub format: u32,
    pub semantics: u32,
    pub step: String,
    pub inputs: Value,
}

impl KeyInputs {
    pub fn new(step: &str, inputs: Value) -> KeyInputs {
        KeyInputs {
            format: KEY_FORMAT,
            semantics: SEMANTICS,
            step: step.to_string(),
            inputs,
        }
    }

    /// The canonical JSON text hashed into the key.
    pub fn canonical_json(&self) -> String {
        // serde_json's Map is a BTreeMap (no `preserve_order`), so object keys come out sorted.
        let value = serde_json::to_value(self).expect("key inputs serialise");
        serde_json::to_string(&value).expect("json values serialise")
    }

    pub fn key(&self) -> String {
        blake3::hash(self.canonical_json().as_bytes())
            .to_hex()
            .to_string()
    }
}

/// Why a step ran instead of replaying: a closed set, rendered for humans and machines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Nothing recorded under this key: the inputs changed since a previous run, or it never ran.
    NewKey {
        changed: Vec<String>,
    },
    NeverRun,
    Forced,
    CacheEntryMissing,
    CacheEntryCorrupt,
    OutputMissing {
        digest: String,
    },
    Cached,
}

impl Reason {
    pub fn render(&self) -> String {
        match self {
            Reason::NewKey { changed } if changed.is_empty() => "inputs changed".into(),
            Reason::NewKey { changed } => format!("changed: {}", changed.join(", ")),
            Reason::NeverRun => "never run".into(),
            Reason::Forced => "forced with --force".into(),
            Reason::CacheEntryMissing => "cache entry missing".into(),
            Reason::CacheEntryCorrupt => "cache entry corrupt".into(),
            Reason::OutputMissing { digest } => format!(
                "output {} missing from the store",
                &digest[..12.min(digest.len())]
            ),
            Reason::Cached => "up to date".into(),
        }
    }
}

/// Lists the differences between two input objects as `a.b: old → new` strings (first few).
pub fn diff_inputs(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_rec("", old, new, &mut out);
    out
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        s[..12].to_string()
    } else if s.len() > 60 {
        format!("{}…", &s[..57])
    } else {
        s
    }
}

fn diff_rec(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_rec(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("{p}: (none) → {}", short(y))),
                    (Some(x), None) => out.push(format!("{p}: {} → (none)", short(x))),
                    (None, None) => {}
                }
            }
        }
        _ => out.push(format!("{path}: {} → {}", short(old), short(new))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_object_field_order() {
        let a = KeyInputs::new("x", json!({"a": 1, "b": {"c": 2, "d": 3}}));
        let b = KeyInputs::new(
            "x",
            serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap(),
        );
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn step_name_and_every_field_enter_the_key() {
        let base = KeyInputs::new("x", json!({"a": 1}));
        assert_ne!(base.key(), KeyInputs::new("y", json!({"a": 1})).key());
        assert_ne!(base.key(), KeyInputs::new("x", json!({"a": 2})).key());
        assert_ne!(
            base.key(),
            KeyInputs::new("x", json!({"a": 1, "b": null})).key()
        );
    }

    #[test]
    fn diff_names_the_changed_field() {
        let d = diff_inputs(
            &json!({"execute": {"max_models": 4}}),
            &json!({"execute": {"max_models": 8}}),
        );
        assert_eq!(d, vec!["execute.max_models: 4 → 8"]);
    }
}
