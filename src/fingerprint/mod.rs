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
//! | confirm  | `confirm.*`; prepare's output digests; production's prepared training rows (drift) |
//! | execute  | `execute.*` + attempt params; prepare's outputs; problem spec; confirm's verdict; engine |
//! | monitor  | `define.threshold`, `define.metric`, `monitor.*`; execute's output digests; baseline |
//! | modify   | `modify.*`; the monitor verdicts and metrics of the attempts so far |
//! | conclude | `conclude.*`; the chosen attempt's output digests (canonical MOJO digest) |
//!
//! Each top-level field of a step's inputs is listed once in [`KEY_FIELDS`] with what a change
//! in it means ([`InputClass`]): the planner builds keys only from listed fields, and
//! [`Reason::classify`] reads the same table to say why a step is stale.
//!
//! Limits: a key says nothing about the H2O cluster beyond the *declared* engine fingerprint
//! (`[h2o] version`, `nodes`); the cluster is checked against it when mlbuild connects.

use serde::Serialize;
use serde_json::Value;

use crate::project::Step;

/// What a change in one key input means for `explain` and a rerun's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputClass {
    /// A slice of `ml.toml` (or something derived from it alone).
    Config,
    /// The declared engine (`[h2o] version`, `nodes`).
    Engine,
    /// The data source's content, columns or target column.
    Data,
    /// A tagged version the step compares against (the baseline, production's rows for drift).
    Baseline,
    /// An output or verdict recorded by an earlier step.
    Upstream(Step),
}

/// Every field of every step's key inputs, and what a change in it means: the one table the
/// key builder (`plan::key_inputs`) and [`Reason::classify`] share.
pub const KEY_FIELDS: &[(Step, &str, InputClass)] = &[
    (Step::Define, "define", InputClass::Config),
    (Step::Define, "columns", InputClass::Data),
    (Step::Define, "target_type", InputClass::Data),
    (Step::Locate, "locate", InputClass::Config),
    (Step::Locate, "source", InputClass::Data),
    (Step::Prepare, "prepare", InputClass::Config),
    (
        Step::Prepare,
        "snapshot",
        InputClass::Upstream(Step::Locate),
    ),
    (Step::Prepare, "problem", InputClass::Upstream(Step::Define)),
    // Only with `prepare.text` columns (Word2Vec is fit on H2O).
    (Step::Prepare, "engine", InputClass::Engine),
    (Step::Confirm, "confirm", InputClass::Config),
    (
        Step::Confirm,
        "prepared",
        InputClass::Upstream(Step::Prepare),
    ),
    (Step::Confirm, "drift_reference", InputClass::Baseline),
    (Step::Confirm, "ignored_with_missing", InputClass::Config),
    (Step::Execute, "execute", InputClass::Config),
    (
        Step::Execute,
        "prepared",
        InputClass::Upstream(Step::Prepare),
    ),
    (Step::Execute, "problem", InputClass::Config),
    (
        Step::Execute,
        "confirm_verdict",
        InputClass::Upstream(Step::Confirm),
    ),
    (Step::Execute, "engine", InputClass::Engine),
    (Step::Monitor, "threshold", InputClass::Config),
    (Step::Monitor, "metric", InputClass::Upstream(Step::Define)),
    (Step::Monitor, "monitor", InputClass::Config),
    (
        Step::Monitor,
        "execute",
        InputClass::Upstream(Step::Execute),
    ),
    (Step::Monitor, "baseline", InputClass::Baseline),
    (Step::Modify, "modify", InputClass::Config),
    (
        Step::Modify,
        "attempts",
        InputClass::Upstream(Step::Monitor),
    ),
    (Step::Conclude, "conclude", InputClass::Config),
    (Step::Conclude, "model", InputClass::Upstream(Step::Execute)),
];

/// What a change in `field` of `step`'s inputs means, if the field is one of [`KEY_FIELDS`].
pub fn class_of(step: Step, field: &str) -> Option<InputClass> {
    KEY_FIELDS
        .iter()
        .find(|(s, f, _)| *s == step && *f == field)
        .map(|(_, _, c)| *c)
}

/// Version of the key format itself; bump to invalidate every key.
pub const KEY_FORMAT: u32 = 1;

/// Version of step semantics; bump when a step's outputs would change for the same inputs.
/// 2: prepare's declarative transforms, stratified split and `transform` output.
pub const SEMANTICS: u32 = 2;

/// Execute's own semantics version, ahead of [`SEMANTICS`]: 3: the engine fingerprint in its
/// key names the threads per node of a multi-node cluster (`ml.lock` changes once).
pub const EXECUTE_SEMANTICS: u32 = 3;

/// Monitor's own semantics version, ahead of [`SEMANTICS`]: 3: SHAP is computed natively
/// from the leader's MOJO, on `monitor.shap_rows` rows, which enters its key.
pub const MONITOR_SEMANTICS: u32 = 3;

/// The semantics version of a user step's key (`[[steps]]`, docs/steps.md). Its inputs:
///
/// | field | what |
/// |---|---|
/// | `run` | the command, placeholders unexpanded (so no path enters the key) |
/// | `outputs` | output names and the files they are read from |
/// | `params` | the step's `params` table |
/// | `env` | each listed variable's value (`null` when unset) |
/// | `tools` | each tool's version output |
/// | `platform` | OS and architecture |
/// | `inputs` | each declared file's project-relative path and digest |
/// | `uses` | each upstream output's digest |
pub const USER_SEMANTICS: u32 = 1;

/// What a change in each class of a user step's inputs means, in the order `explain` looks
/// for the first difference ([`user_class_of`] maps a field to its class).
pub const USER_CLASSES: [&str; 7] = [
    "command", "config", "env", "tool", "platform", "input", "upstream",
];

/// The class of a top-level field of a user step's key inputs (the table above), `other` for
/// a field it does not have.
pub fn user_class_of(field: &str) -> &'static str {
    match field {
        "run" | "outputs" => "command",
        "params" => "config",
        "env" => "env",
        "tools" => "tool",
        "platform" => "platform",
        "inputs" => "input",
        "uses" => "upstream",
        _ => "other",
    }
}

/// The semantics version of a step's key: a name that is none of the eight is a user step's
/// (`[[steps]]` names never take a built-in one).
pub fn semantics_of(step: &str) -> u32 {
    match step {
        "execute" => EXECUTE_SEMANTICS,
        "monitor" => MONITOR_SEMANTICS,
        s if Step::ALL.iter().any(|b| b.as_str() == s) => SEMANTICS,
        _ => USER_SEMANTICS,
    }
}

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
            semantics: semantics_of(step),
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

/// One changed input: its dotted path and the old and new values (digests shortened).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub old: String,
    pub new: String,
}

impl Change {
    fn render(&self) -> String {
        format!("{}: {} → {}", self.field, self.old, self.new)
    }
}

/// Why a step is stale (or that it is not): a closed set, checked in this order —
/// forced, never run, engine changed, config changed, data snapshot changed, upstream output
/// changed, baseline changed, cache entry missing/corrupt/output missing. Rendered to one
/// sentence by [`Reason::render`]; serialised (tag `kind`) for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    Forced,
    NeverRun,
    EngineChanged {
        changes: Vec<Change>,
    },
    ConfigChanged {
        changes: Vec<Change>,
    },
    DataChanged {
        old: String,
        new: String,
        old_rows: Option<u64>,
        new_rows: Option<u64>,
        /// What changed in the data's shape, for a step keyed on it rather than on the
        /// snapshot (define: the column names, the target column's kind and distinct count).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<Change>,
    },
    UpstreamChanged {
        step: String,
        changes: Vec<Change>,
    },
    BaselineChanged {
        old: Option<String>,
        new: Option<String>,
    },
    /// Same inputs, another key: this mlbuild keys the step differently (its semantics or key
    /// format version changed); the step reruns once.
    KeyingChanged {
        semantics: u32,
    },
    /// The key is in `ml.lock` but its cache entry is gone (a fresh clone, a cleaned cache).
    CacheEntryMissing,
    CacheEntryCorrupt,
    OutputMissing {
        digest: String,
    },
    /// A step downstream of a stale one: its key cannot be known until that one runs.
    UpstreamStale {
        step: String,
    },
    Cached,
    /// Replayed from the remote cache (a local miss, a remote hit).
    Restored,
    /// A user step's command or declared outputs changed.
    CommandChanged {
        changes: Vec<Change>,
    },
    /// A file a user step declares in `inputs` changed, appeared or went.
    InputsChanged {
        changes: Vec<Change>,
    },
    /// An environment variable a user step lists in `env` changed.
    EnvChanged {
        changes: Vec<Change>,
    },
    /// A tool a user step lists in `tools` reports another version.
    ToolChanged {
        changes: Vec<Change>,
    },
    /// Another OS or architecture.
    PlatformChanged {
        changes: Vec<Change>,
    },
    /// A user step with `cache = false`: it runs every time.
    Uncached,
}

fn short_digest(s: &str) -> String {
    s.chars().take(12).collect()
}

impl Reason {
    pub fn render(&self) -> String {
        let list = |c: &[Change]| c.iter().map(Change::render).collect::<Vec<_>>().join(", ");
        match self {
            Reason::Forced => "forced with --force".into(),
            Reason::NeverRun => "never run".into(),
            Reason::EngineChanged { changes } => format!("engine changed: {}", list(changes)),
            Reason::ConfigChanged { changes } => format!("config changed: {}", list(changes)),
            Reason::KeyingChanged { semantics } => format!(
                "this mlbuild keys the step differently (semantics version {semantics}); it reruns once"
            ),
            Reason::DataChanged {
                old,
                new,
                old_rows,
                new_rows,
                changes,
            } => {
                let rows = match (old_rows, new_rows) {
                    (Some(a), Some(b)) => format!(" ({a} → {b} rows)"),
                    (None, Some(b)) => format!(" (now {b} rows)"),
                    _ => String::new(),
                };
                if old.is_empty() && new.is_empty() {
                    format!("data changed: {}", list(changes))
                } else {
                    format!(
                        "data snapshot changed: source: {} → {}{rows}",
                        short_digest(old),
                        short_digest(new)
                    )
                }
            }
            Reason::UpstreamChanged { step, changes } => {
                format!("upstream output changed: `{step}` ({})", list(changes))
            }
            Reason::BaselineChanged { old, new } => format!(
                "baseline changed: {} → {}",
                old.as_deref()
                    .map(short_digest)
                    .unwrap_or_else(|| "(none)".into()),
                new.as_deref()
                    .map(short_digest)
                    .unwrap_or_else(|| "(none)".into())
            ),
            Reason::CacheEntryMissing => "cache entry missing (the inputs match ml.lock)".into(),
            Reason::CacheEntryCorrupt => "cache entry corrupt".into(),
            Reason::OutputMissing { digest } => {
                format!("output {} missing from the store", short_digest(digest))
            }
            Reason::UpstreamStale { step } => format!("upstream step `{step}` is stale"),
            Reason::Cached => "up to date".into(),
            Reason::Restored => "restored from the remote cache".into(),
            Reason::CommandChanged { changes } => format!("command changed: {}", list(changes)),
            Reason::InputsChanged { changes } => format!("input changed: {}", list(changes)),
            Reason::EnvChanged { changes } => format!("environment changed: {}", list(changes)),
            Reason::ToolChanged { changes } => format!("tool changed: {}", list(changes)),
            Reason::PlatformChanged { changes } => format!("platform changed: {}", list(changes)),
            Reason::Uncached => "runs every time (`cache = false`)".into(),
        }
    }

    /// Classifies the difference between a user step's recorded inputs and its inputs now, in
    /// the order of [`USER_CLASSES`]: command, params, env, tools, platform, input files,
    /// upstream outputs.
    pub fn classify_user(old: &Value, new: &Value) -> Reason {
        let changes = diff_changes(old, new);
        let pick = |class: &str| -> Vec<Change> {
            changes
                .iter()
                .filter(|c| user_class_of(c.field.split('.').next().unwrap_or_default()) == class)
                .cloned()
                .collect()
        };
        for class in USER_CLASSES {
            let changes = pick(class);
            let Some(first) = changes.first() else {
                continue;
            };
            return match class {
                "command" => Reason::CommandChanged { changes },
                "config" => Reason::ConfigChanged { changes },
                "env" => Reason::EnvChanged { changes },
                "tool" => Reason::ToolChanged { changes },
                "platform" => Reason::PlatformChanged { changes },
                "input" => Reason::InputsChanged { changes },
                // `uses.STEP.OUTPUT`: name the upstream step.
                _ => Reason::UpstreamChanged {
                    step: first
                        .field
                        .split('.')
                        .nth(1)
                        .unwrap_or_default()
                        .to_string(),
                    changes,
                },
            };
        }
        Reason::KeyingChanged {
            semantics: USER_SEMANTICS,
        }
    }

    /// Classifies the difference between the inputs recorded for a step (in `ml.lock`) and its
    /// inputs now. `rows` looks up a data snapshot's row count when it is known.
    pub fn classify(
        step: Step,
        old: &Value,
        new: &Value,
        rows: impl Fn(&str) -> Option<u64>,
    ) -> Reason {
        let changes = diff_changes(old, new);
        // A field no longer in the table (an old `ml.lock`) reads as configuration.
        let class = |c: &Change| {
            let top = c.field.split('.').next().unwrap_or_default();
            class_of(step, top).unwrap_or(InputClass::Config)
        };
        let pick = |wanted: &dyn Fn(InputClass) -> bool| -> Vec<Change> {
            changes
                .iter()
                .filter(|c| wanted(class(c)))
                .cloned()
                .collect()
        };
        let engine = pick(&|k| k == InputClass::Engine);
        if !engine.is_empty() {
            return Reason::EngineChanged { changes: engine };
        }
        let config = pick(&|k| k == InputClass::Config);
        if !config.is_empty() {
            return Reason::ConfigChanged { changes: config };
        }
        let data = pick(&|k| k == InputClass::Data);
        if !data.is_empty() {
            let old_digest = old
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let new_digest = new
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // The snapshot's digest says it for locate; define has no digest, so its changes do.
            let changes = match old_digest.is_empty() && new_digest.is_empty() {
                true => data
                    .into_iter()
                    .map(|c| match c.field.as_str() {
                        "columns" => column_change(&old["columns"], &new["columns"]).unwrap_or(c),
                        _ => c,
                    })
                    .collect(),
                false => Vec::new(),
            };
            return Reason::DataChanged {
                old_rows: rows(&old_digest),
                new_rows: rows(&new_digest),
                old: old_digest,
                new: new_digest,
                changes,
            };
        }
        if let Some(upstream) = changes.iter().find_map(|c| match class(c) {
            InputClass::Upstream(step) => Some(step),
            _ => None,
        }) {
            return Reason::UpstreamChanged {
                step: upstream.to_string(),
                changes: pick(&|k| k == InputClass::Upstream(upstream)),
            };
        }
        if !pick(&|k| k == InputClass::Baseline).is_empty() {
            let get = |v: &Value| {
                v.get("baseline")
                    .or_else(|| v.get("drift_reference"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            return Reason::BaselineChanged {
                old: get(old),
                new: get(new),
            };
        }
        // Same inputs by this reading but a different key: the keying itself changed.
        Reason::KeyingChanged {
            semantics: semantics_of(step.as_str()),
        }
    }
}

/// The differences between two input objects, field by field.
/// A change of the data's column names as what went and what came (``removed: `VOL` →
/// added: `VOLUME` ``), or `the same names → another order`: the lists themselves are cut
/// short when they are long, so their difference would not show.
fn column_change(old: &Value, new: &Value) -> Option<Change> {
    let names = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    let (old, new) = (names(old)?, names(new)?);
    let missing = |from: &[String], to: &[String]| -> Vec<String> {
        from.iter()
            .filter(|n| !to.contains(n))
            .map(|n| format!("`{n}`"))
            .collect()
    };
    let (removed, added) = (missing(&old, &new), missing(&new, &old));
    let side = |what: &str, names: Vec<String>| match names.is_empty() {
        true => "(none)".to_string(),
        false => format!("{what}: {}", names.join(", ")),
    };
    Some(match removed.is_empty() && added.is_empty() {
        true => Change {
            field: "columns".into(),
            old: "the same names".into(),
            new: "another order".into(),
        },
        false => Change {
            field: "columns".into(),
            old: side("removed", removed),
            new: side("added", added),
        },
    })
}

pub fn diff_changes(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff_rec("", old, new, &mut out);
    out
}

/// Lists the differences between two input objects as `a.b: old → new` strings.
pub fn diff_inputs(old: &Value, new: &Value) -> Vec<String> {
    diff_changes(old, new).iter().map(Change::render).collect()
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

fn diff_rec(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
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
                    (None, Some(y)) => out.push(Change {
                        field: p,
                        old: "(none)".into(),
                        new: short(y),
                    }),
                    (Some(x), None) => out.push(Change {
                        field: p,
                        old: short(x),
                        new: "(none)".into(),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ => out.push(Change {
            field: path.to_string(),
            old: short(old),
            new: short(new),
        }),
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

    /// define is keyed on the data's shape, not its snapshot: its reason says what changed
    /// (it said only "its columns or the target column changed", and `--json` had empty digests).
    #[test]
    fn a_change_of_the_datas_shape_names_what_changed() {
        let old = json!({
            "define": {"target": "CAPSULE"},
            "columns": ["ID", "CAPSULE", "AGE"],
            "target_type": {"kind": "numeric", "distinct": 2, "capped": false},
        });
        let mut new = old.clone();
        new["target_type"]["distinct"] = json!(3);
        let reason = Reason::classify(Step::Define, &old, &new, |_| None);
        assert_eq!(reason.render(), "data changed: target_type.distinct: 2 → 3");
        let shown = serde_json::to_value(&reason).unwrap();
        assert_eq!(shown["kind"], "data_changed");
        assert_eq!(
            shown["changes"],
            json!([{"field": "target_type.distinct", "old": "2", "new": "3"}])
        );
        new["columns"] = json!(["ID", "CAPSULE", "PSA"]);
        assert_eq!(
            Reason::classify(Step::Define, &old, &new, |_| None).render(),
            "data changed: columns: removed: `AGE` → added: `PSA`, target_type.distinct: 2 → 3"
        );
        new["columns"] = json!(["CAPSULE", "ID", "AGE"]);
        new["target_type"]["distinct"] = json!(2);
        assert_eq!(
            Reason::classify(Step::Define, &old, &new, |_| None).render(),
            "data changed: columns: the same names → another order"
        );
        // locate's reason stays the snapshot's digests and rows, with no `changes`.
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let reason = Reason::classify(
            Step::Locate,
            &json!({"source": a}),
            &json!({"source": b}),
            |d| Some(if d.starts_with('a') { 380 } else { 350 }),
        );
        assert_eq!(
            reason.render(),
            "data snapshot changed: source: aaaaaaaaaaaa → bbbbbbbbbbbb (380 → 350 rows)"
        );
        assert!(serde_json::to_value(&reason)
            .unwrap()
            .get("changes")
            .is_none());
    }

    /// One test per reason a user step reruns: each field of its key, changed alone.
    #[test]
    fn a_user_steps_reasons_name_the_first_difference() {
        let base = json!({
            "run": ["python3", "f.py", "{out.features}"],
            "outputs": {"features": "features.csv"},
            "params": {"k": 1},
            "env": {"LANG": "C"},
            "tools": {"python3": "Python 3.11.2"},
            "platform": "linux-x86_64",
            "inputs": {"f.py": "a".repeat(64)},
            "uses": {"prepare.train": "b".repeat(64)},
        });
        let with = |path: &[&str], v: Value| {
            let mut x = base.clone();
            let mut at = &mut x;
            for p in &path[..path.len() - 1] {
                at = &mut at[*p];
            }
            at[path[path.len() - 1]] = v;
            Reason::classify_user(&base, &x).render()
        };
        assert_eq!(
            with(&["run"], json!(["python3", "g.py"])),
            "command changed: run: [\"python3\",\"f.py\",\"{out.features}\"] → [\"python3\",\"g.py\"]"
        );
        assert_eq!(
            with(&["outputs", "features"], json!("f.csv")),
            "command changed: outputs.features: features.csv → f.csv"
        );
        assert_eq!(
            with(&["params", "k"], json!(2)),
            "config changed: params.k: 1 → 2"
        );
        assert_eq!(
            with(&["env", "LANG"], Value::Null),
            "environment changed: env.LANG: C → null"
        );
        assert_eq!(
            with(&["tools", "python3"], json!("Python 3.12.1")),
            "tool changed: tools.python3: Python 3.11.2 → Python 3.12.1"
        );
        assert_eq!(
            with(&["platform"], json!("macos-aarch64")),
            "platform changed: platform: linux-x86_64 → macos-aarch64"
        );
        assert_eq!(
            with(&["inputs", "f.py"], json!("c".repeat(64))),
            "input changed: inputs.f.py: aaaaaaaaaaaa → cccccccccccc"
        );
        assert_eq!(
            with(&["uses", "prepare.train"], json!("d".repeat(64))),
            "upstream output changed: `prepare` (uses.prepare.train: bbbbbbbbbbbb → dddddddddddd)"
        );
        assert_eq!(
            Reason::classify_user(&base, &base).render(),
            "this mlbuild keys the step differently (semantics version 1); it reruns once"
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
