//! The planner: a salsa database that turns `ml.toml`, data fingerprints, tag state and the
//! outputs recorded so far into each step's key inputs and key.
//!
//! Inputs (set by the driver, [`Planner`]): the `ml.toml` text and `--set` overrides, the data
//! source's digest and profile, the canonical digest behind the baseline tag, and the output
//! digests/results of each step as the run records them. Tracked queries: parsing, each step's
//! config slice, each step's key inputs (a canonical JSON string) and key. Because a slice that
//! compares equal after an unrelated edit is "backdated" by salsa, the queries that depend on it
//! are not re-executed: editing `define.threshold` re-executes monitor's key and not execute's
//! (see the test below). Side effects stay outside: running steps, reading the action cache.
//!
//! Everything here returns strings (canonical JSON) so that values compare cheaply and exactly.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::{self, Config};
use crate::fingerprint::KeyInputs;
use crate::project::Step;

#[salsa::db]
#[derive(Clone, Default)]
pub struct PlanDb {
    storage: salsa::Storage<Self>,
}

#[salsa::db]
impl salsa::Database for PlanDb {}

impl PlanDb {
    /// A database that reports salsa's execution events to `log` (for tests and `-vv`).
    pub fn with_events(log: impl Fn(&salsa::Event) + Send + Sync + 'static) -> PlanDb {
        PlanDb {
            storage: salsa::Storage::new(Some(Box::new(move |e| log(&e)))),
        }
    }
}

/// Everything the plan depends on. Each field is tracked on its own.
#[salsa::input]
pub struct PlanInput {
    /// Path shown in config error messages.
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
    #[returns(ref)]
    pub overrides: Vec<String>,
    /// blake3 of the data source.
    #[returns(ref)]
    pub source: String,
    /// The data's profile (JSON of `table::Profile`).
    #[returns(ref)]
    pub profile: String,
    /// Canonical digest of the version the baseline tag points at, if any.
    #[returns(ref)]
    pub baseline: Option<String>,
    /// Digest of the prepared training rows of the version tagged `production` (confirm's
    /// drift reference), if any and drift is enabled.
    #[returns(ref)]
    pub drift_reference: Option<String>,
    /// What each step recorded: `step#attempt` → JSON `{outputs: {..}, result: {..}}`.
    #[returns(ref)]
    pub recorded: Vec<(String, String)>,
}

fn slot(step: Step, attempt: u32) -> String {
    format!("{step}#{attempt}")
}

/// What an earlier step recorded in this walk ([`Planner::record`]): its key, the digests of
/// its outputs as seen downstream, and its result. Reading a field it lacks is an error that
/// names the step and the field: nothing missing ever enters a key as `null`.
#[derive(Debug, serde::Deserialize)]
struct Recorded {
    #[serde(skip)]
    slot: String,
    key: String,
    outputs: std::collections::BTreeMap<String, String>,
    result: Value,
}

impl Recorded {
    /// The digest of one output.
    fn output(&self, name: &str) -> Result<Value, String> {
        self.outputs
            .get(name)
            .map(|d| Value::from(d.as_str()))
            .ok_or_else(|| format!("{} recorded no output `{name}`", self.slot))
    }

    /// Every output's digest, by name.
    fn outputs(&self) -> Value {
        json!(self.outputs)
    }

    /// One field of the result.
    fn result(&self, field: &str) -> Result<Value, String> {
        self.result
            .get(field)
            .cloned()
            .ok_or_else(|| format!("{} recorded no result field `{field}`", self.slot))
    }
}

fn recorded(
    db: &dyn salsa::Database,
    p: PlanInput,
    step: Step,
    attempt: u32,
) -> Result<Recorded, String> {
    let name = slot(step, attempt);
    let text = p
        .recorded(db)
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| format!("step `{step}` (attempt {attempt}) has not been recorded yet"))?;
    let mut recorded: Recorded = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    recorded.slot = if attempt == 1 {
        format!("step `{step}`")
    } else {
        format!("step `{step}` (attempt {attempt})")
    };
    Ok(recorded)
}

/// A step's key inputs: each field must be listed in [`crate::fingerprint::KEY_FIELDS`], the
/// table `explain` reads too.
fn key_fields(step: Step, fields: Vec<(&str, Value)>) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for (name, value) in fields {
        if crate::fingerprint::class_of(step, name).is_none() {
            return Err(format!(
                "key field `{name}` of step `{step}` is not in fingerprint::KEY_FIELDS"
            ));
        }
        map.insert(name.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// The typed config as canonical JSON, or the error message.
#[salsa::tracked]
pub fn parsed(db: &dyn salsa::Database, p: PlanInput) -> Result<String, String> {
    let config = config::parse(&PathBuf::from(p.path(db)), p.text(db), p.overrides(db))
        .map_err(|e| e.to_string())?;
    Ok(serde_json::to_string(&config).expect("configs serialise"))
}

fn config_of(db: &dyn salsa::Database, p: PlanInput) -> Result<Config, String> {
    let text = parsed(db, p)?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A list whose order means nothing (a set of columns or algorithms), in canonical order.
fn set(list: &[String]) -> Vec<String> {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A step's slice of the config, as canonical JSON. Lists that are sets for H2O or prepare
/// (`ignore`, `drop`, `include_algos`, `exclude_algos`) are sorted, so reordering them is not a
/// change. Tracked per step, so that a slice that compares equal after an edit is backdated
/// and the keys that read it are not recomputed; the config is read once for all of them
/// ([`slices`]).
#[salsa::tracked]
pub fn slice(db: &dyn salsa::Database, p: PlanInput, step: Step) -> Result<String, String> {
    let all = slices(db, p)?;
    let at = Step::ALL
        .iter()
        .position(|s| *s == step)
        .expect("every step is in Step::ALL");
    Ok(all[at].clone())
}

/// Every step's slice ([`slice`]), in [`Step::ALL`]'s order, from one reading of the config.
#[salsa::tracked]
fn slices(db: &dyn salsa::Database, p: PlanInput) -> Result<Vec<String>, String> {
    let mut c = config_of(db, p)?;
    c.define.ignore = set(&c.define.ignore);
    c.prepare.drop = set(&c.prepare.drop);
    c.execute.include_algos = set(&c.execute.include_algos);
    c.execute.exclude_algos = set(&c.execute.exclude_algos);
    Ok(Step::ALL
        .iter()
        .map(|&step| slice_of(&c, step).to_string())
        .collect())
}

/// One step's slice of a config whose set-like lists are sorted.
fn slice_of(c: &Config, step: Step) -> Value {
    match step {
        Step::Define => json!({
            "target": c.define.target, "problem": c.define.problem,
            "metric": c.define.metric, "ignore": c.define.ignore,
        }),
        Step::Locate => {
            // Spelling out a default CSV option is not a change; NA strings are a set.
            let mut l = c.locate.clone();
            l.header = l.header.filter(|h| !h);
            l.delimiter = l.delimiter.filter(|d| d != ",");
            l.na_strings = set(&l.na_strings);
            json!(l)
        }
        Step::Prepare => json!(c.prepare),
        Step::Confirm => json!(c.confirm),
        Step::Execute => json!({
            "execute": c.execute,
            "target": c.define.target,
            "ignore": c.define.ignore,
            "engine": engine_fingerprint(&c.h2o),
        }),
        Step::Monitor => json!({ "threshold": c.define.threshold, "monitor": c.monitor }),
        Step::Modify => {
            // Hooks notify; they change no result.
            let mut modify = c.modify.clone();
            modify.escalate = Default::default();
            json!(modify)
        }
        Step::Conclude => {
            let mut conclude = c.conclude.clone();
            conclude.deploy = Default::default();
            json!(conclude)
        }
    }
}

fn slice_value(db: &dyn salsa::Database, p: PlanInput, step: Step) -> Result<Value, String> {
    serde_json::from_str(&slice(db, p, step)?).map_err(|e| e.to_string())
}

/// The problem spec define decided: `{target, problem, metric}`.
fn problem(db: &dyn salsa::Database, p: PlanInput) -> Result<Value, String> {
    let define = recorded(db, p, Step::Define, 1)?;
    let target = slice_value(db, p, Step::Define)?["target"].clone();
    Ok(json!({
        "target": target,
        "problem": define.result("problem")?,
        "metric": define.result("metric")?,
    }))
}

/// What the keys read of one column of the data's profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, salsa::Update)]
struct ColumnFacts {
    name: String,
    /// As the profile writes it: `numeric` or `categorical`.
    kind: String,
    /// How many distinct values the profile kept (at most `table::DISTINCT_CAP`).
    distinct: usize,
    /// Whether the column had more distinct values than kept.
    capped: bool,
    /// Whether the column has missing values.
    missing: bool,
}

/// The data's columns, in order, as the keys read them: the profile (each column's distinct
/// values) is parsed once for every key that reads it.
#[salsa::tracked]
fn columns(db: &dyn salsa::Database, p: PlanInput) -> Result<Vec<ColumnFacts>, String> {
    let profile: crate::table::Profile =
        serde_json::from_str(p.profile(db)).map_err(|e| e.to_string())?;
    Ok(profile
        .columns
        .into_iter()
        .map(|c| ColumnFacts {
            kind: json!(c.kind).as_str().unwrap_or_default().to_string(),
            distinct: c.distinct.len(),
            capped: c.distinct_capped,
            missing: c.missing > 0,
            name: c.name,
        })
        .collect())
}

/// The `define.ignore` columns that have missing values in the data, sorted.
fn ignored_with_missing(db: &dyn salsa::Database, p: PlanInput) -> Result<Vec<String>, String> {
    let columns = columns(db, p)?;
    let define = slice_value(db, p, Step::Define)?;
    let mut ignored: Vec<String> = define["ignore"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| columns.iter().any(|c| c.name == *name && c.missing))
        .map(str::to_string)
        .collect();
    ignored.sort();
    Ok(ignored)
}

/// A step's key inputs (the object hashed into its key), as canonical JSON.
#[salsa::tracked]
#[allow(
    clippy::too_many_lines,
    reason = "a flat match: one arm per step, each listing the step's key fields"
)]
pub fn key_inputs(
    db: &dyn salsa::Database,
    p: PlanInput,
    step: Step,
    attempt: u32,
) -> Result<String, String> {
    let v = match step {
        Step::Define => {
            let columns = columns(db, p)?;
            let define = slice_value(db, p, Step::Define)?;
            let target = define["target"].as_str().unwrap_or_default();
            let column = columns
                .iter()
                .find(|c| c.name == target)
                .ok_or_else(|| format!("target column `{target}` is not in the data"))?;
            let target_type = json!({ "kind": column.kind, "distinct": column.distinct, "capped": column.capped });
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            key_fields(
                step,
                vec![
                    ("define", define),
                    ("columns", json!(names)),
                    ("target_type", target_type),
                ],
            )?
        }
        Step::Locate => key_fields(
            step,
            vec![
                ("locate", slice_value(db, p, Step::Locate)?),
                ("source", json!(p.source(db))),
            ],
        )?,
        Step::Prepare => {
            let problem = problem(db, p)?;
            let prepare = slice_value(db, p, Step::Prepare)?;
            let mut fields = vec![
                (
                    "snapshot",
                    recorded(db, p, Step::Locate, 1)?.output("snapshot")?,
                ),
                (
                    "problem",
                    json!({ "target": problem["target"], "problem": problem["problem"] }),
                ),
            ];
            // Word2Vec is fit on H2O: its result depends on the engine as execute's does. Only
            // then, so that a project without text columns keeps its prepare key.
            if prepare["text"].as_object().is_some_and(|t| !t.is_empty()) {
                fields.push((
                    "engine",
                    slice_value(db, p, Step::Execute)?["engine"].clone(),
                ));
            }
            fields.push(("prepare", prepare));
            key_fields(step, fields)?
        }
        Step::Confirm => {
            let mut fields = vec![
                ("confirm", slice_value(db, p, Step::Confirm)?),
                ("prepared", recorded(db, p, Step::Prepare, 1)?.outputs()),
                ("drift_reference", json!(p.drift_reference(db))),
            ];
            // The null-fraction rules skip `define.ignore`d columns. That changes a verdict only
            // when an ignored column has missing values, so only then does the key say which:
            // every other project keeps its confirm key.
            let ignored = ignored_with_missing(db, p)?;
            if !ignored.is_empty() {
                fields.push(("ignored_with_missing", json!(ignored)));
            }
            key_fields(step, fields)?
        }
        Step::Execute => {
            let s = slice_value(db, p, Step::Execute)?;
            let execute: config::Execute =
                serde_json::from_value(s["execute"].clone()).map_err(|e| e.to_string())?;
            let problem = problem(db, p)?;
            let sort = execute
                .sort_metric
                .clone()
                .map(Value::from)
                .unwrap_or(problem["metric"].clone());
            let mut params = crate::steps::modify::attempt_params(&execute, attempt);
            // The sort metric enters once, resolved (unset means define's metric).
            params.sort_metric = None;
            let problem = json!({
                "target": s["target"], "problem": problem["problem"], "ignore": s["ignore"], "sort_metric": sort,
            });
            key_fields(
                step,
                vec![
                    ("execute", json!(params)),
                    ("prepared", recorded(db, p, Step::Prepare, 1)?.outputs()),
                    ("problem", problem),
                    (
                        "confirm_verdict",
                        recorded(db, p, Step::Confirm, 1)?.result("verdict")?,
                    ),
                    ("engine", s["engine"].clone()),
                ],
            )?
        }
        Step::Monitor => {
            let s = slice_value(db, p, Step::Monitor)?;
            key_fields(
                step,
                vec![
                    ("threshold", s["threshold"].clone()),
                    ("metric", problem(db, p)?["metric"].clone()),
                    ("monitor", s["monitor"].clone()),
                    (
                        "execute",
                        recorded(db, p, Step::Execute, attempt)?.outputs(),
                    ),
                    ("baseline", json!(p.baseline(db))),
                ],
            )?
        }
        Step::Modify => {
            let mut attempts = Vec::new();
            for n in 1.. {
                let Ok(m) = recorded(db, p, Step::Monitor, n) else {
                    break;
                };
                attempts.push(json!({ "monitor": m.key, "verdict": m.result("verdict")?, "value": m.result("value")? }));
            }
            key_fields(
                step,
                vec![
                    ("modify", slice_value(db, p, Step::Modify)?),
                    ("attempts", json!(attempts)),
                ],
            )?
        }
        Step::Conclude => {
            let modify = recorded(db, p, Step::Modify, 1)?;
            // Conclude runs only after an attempt passed: modify names it.
            let chosen = modify.result("chosen_attempt")?;
            let chosen = chosen
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    format!("step `modify` chose no attempt (`chosen_attempt` is {chosen})")
                })?;
            key_fields(
                step,
                vec![
                    ("conclude", slice_value(db, p, Step::Conclude)?),
                    ("model", recorded(db, p, Step::Execute, chosen)?.outputs()),
                ],
            )?
        }
    };
    Ok(v.to_string())
}

/// A step's key.
#[salsa::tracked]
pub fn key(
    db: &dyn salsa::Database,
    p: PlanInput,
    step: Step,
    attempt: u32,
) -> Result<String, String> {
    let inputs: Value =
        serde_json::from_str(&key_inputs(db, p, step, attempt)?).map_err(|e| e.to_string())?;
    Ok(KeyInputs::new(step.as_str(), inputs).key())
}

/// The driver: owns the database and the input, and records steps as the run goes.
pub struct Planner {
    pub db: PlanDb,
    pub input: PlanInput,
}

impl Planner {
    /// A planner over `ml.toml` as loaded, with a run's `--set` overrides.
    pub fn for_config(loaded: &config::Loaded, overrides: &[String]) -> Planner {
        Planner::new(
            PlanDb::default(),
            loaded.path.display().to_string(),
            loaded.source.clone(),
            overrides.to_vec(),
        )
    }

    pub fn new(db: PlanDb, path: String, text: String, overrides: Vec<String>) -> Planner {
        let input = PlanInput::new(
            &db,
            path,
            text,
            overrides,
            String::new(),
            "{}".to_string(),
            None,
            None,
            Vec::new(),
        );
        Planner { db, input }
    }

    pub fn set_data(&mut self, source: String, profile: &crate::table::Profile) {
        use salsa::Setter;
        let profile = serde_json::to_string(profile).expect("profiles serialise");
        if *self.input.source(&self.db) != source {
            self.input.set_source(&mut self.db).to(source);
        }
        if *self.input.profile(&self.db) != profile {
            self.input.set_profile(&mut self.db).to(profile);
        }
    }

    pub fn set_baseline(&mut self, baseline: Option<String>) {
        use salsa::Setter;
        if *self.input.baseline(&self.db) != baseline {
            self.input.set_baseline(&mut self.db).to(baseline);
        }
    }

    pub fn set_drift_reference(&mut self, reference: Option<String>) {
        use salsa::Setter;
        if *self.input.drift_reference(&self.db) != reference {
            self.input.set_drift_reference(&mut self.db).to(reference);
        }
    }

    pub fn set_text(&mut self, text: String, overrides: Vec<String>) {
        use salsa::Setter;
        if *self.input.text(&self.db) != text {
            self.input.set_text(&mut self.db).to(text);
        }
        if *self.input.overrides(&self.db) != overrides {
            self.input.set_overrides(&mut self.db).to(overrides);
        }
    }

    /// Records what a step produced (its output digests as seen downstream, and its result).
    pub fn record(
        &mut self,
        step: Step,
        attempt: u32,
        key: &str,
        outputs: &std::collections::BTreeMap<String, String>,
        result: &Value,
    ) {
        use salsa::Setter;
        let name = slot(step, attempt);
        let value = json!({ "key": key, "outputs": outputs, "result": result }).to_string();
        let mut all = self.input.recorded(&self.db).clone();
        match all.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) if *v == value => return,
            Some((_, v)) => *v = value,
            None => all.push((name, value)),
        }
        self.input.set_recorded(&mut self.db).to(all);
    }

    /// Forgets everything recorded (a new walk starts, e.g. in `watch`).
    pub fn clear_records(&mut self) {
        use salsa::Setter;
        if !self.input.recorded(&self.db).is_empty() {
            self.input.set_recorded(&mut self.db).to(Vec::new());
        }
    }

    pub fn key_inputs(&self, step: Step, attempt: u32) -> Result<Value, String> {
        let text = key_inputs(&self.db, self.input, step, attempt)?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// The key recorded for a step in this walk, if it got that far.
    pub fn recorded_key(&self, step: Step, attempt: u32) -> Option<String> {
        recorded(&self.db, self.input, step, attempt)
            .ok()
            .map(|r| r.key)
    }
}

#[cfg(test)]
mod tests;

/// The engine as execute's key names it: declared, never discovered (a laptop and CI share
/// keys). Threads per node only for a cluster of more than one node, where H2O's results depend
/// on the cluster's shape.
pub fn engine_fingerprint(h2o: &crate::config::H2o) -> serde_json::Value {
    let mut engine = json!({ "version": h2o.version, "nodes": h2o.nodes });
    if h2o.nodes > 1 {
        engine["threads"] = json!(h2o.threads);
    }
    engine
}
