//! Step 3, prepare: declared column types and drops, then mlbuild's own seeded train/holdout
//! split (SplitMix64 per row index, see `table::in_holdout`), independent of H2O's chunking.
//!
//! Outputs: `train` and `holdout` CSVs (normalised: trimmed fields, minimal quoting) and a
//! `schema` JSON listing each kept column with the type H2O must parse it as. The target is
//! forced to `enum` for classification and `numeric` for regression.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{ColumnType, Problem};
use crate::error::Diagnostic;
use crate::pipeline::{Ctx, ProblemSpec, StepOutput};
use crate::table::{self, Kind};

/// What H2O is told about each column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub columns: Vec<(String, ColumnType)>,
}

fn unknown_column(key: &str, name: &str, names: &[String]) -> Diagnostic {
    let d = Diagnostic::new(format!(
        "`{key}` names column `{name}`, which is not in the data"
    ));
    match super::closest(name, names.iter()) {
        Some(c) => d.hint(format!("did you mean `{c}`?")),
        None => d.hint(format!("the data's columns are: {}", names.join(", "))),
    }
}

pub fn run(ctx: &mut Ctx<'_>, snapshot: &str, spec: &ProblemSpec) -> Result<StepOutput> {
    let prepare = &ctx.config.prepare;
    let input = ctx.store.verified_path(snapshot)?;
    let profile = super::locate::profile(ctx.store, &input, snapshot)?;
    let names = profile.names();
    for name in &prepare.drop {
        if !names.contains(name) {
            return Err(unknown_column("prepare.drop", name, &names).into());
        }
    }
    for name in prepare.types.keys() {
        if !names.contains(name) {
            return Err(unknown_column("prepare.types", name, &names).into());
        }
    }
    for name in &spec.ignore {
        if !names.contains(name) {
            return Err(unknown_column("define.ignore", name, &names).into());
        }
    }
    let keep: Vec<String> = names
        .iter()
        .filter(|n| !prepare.drop.contains(n))
        .cloned()
        .collect();
    let mut columns = Vec::with_capacity(keep.len());
    for name in &keep {
        let col = profile
            .column(name)
            .expect("kept columns come from the profile");
        let ty = if *name == spec.target {
            match spec.problem {
                Problem::Regression => ColumnType::Numeric,
                _ => ColumnType::Enum,
            }
        } else if let Some(t) = prepare.types.get(name) {
            *t
        } else if col.kind == Kind::Numeric {
            ColumnType::Numeric
        } else {
            ColumnType::Enum
        };
        if ty == ColumnType::Numeric && col.kind == Kind::Categorical {
            return Err(Diagnostic::new(format!(
                "column `{name}` is declared numeric but holds non-numeric values"
            ))
            .hint(format!(
                "remove `{name}` from `prepare.types` or clean the column"
            ))
            .into());
        }
        columns.push((name.clone(), ty));
    }
    let train = ctx.store.temp_file()?;
    let holdout = ctx.store.temp_file()?;
    let spec = table::SplitSpec {
        seed: prepare.seed,
        holdout: prepare.holdout,
        sample: prepare.sample,
    };
    let counts = table::split_csv(&input, &keep, spec, train.path(), holdout.path())?;
    if counts.holdout_rows == 0 || counts.train_rows == 0 {
        return Err(Diagnostic::new(format!(
            "the split left {} training and {} holdout rows",
            counts.train_rows, counts.holdout_rows
        ))
        .hint("use more data or a different `prepare.holdout`")
        .into());
    }
    let train_digest = crate::store::hash_file(train.path())?;
    ctx.store.commit(train, &train_digest)?;
    let holdout_digest = crate::store::hash_file(holdout.path())?;
    ctx.store.commit(holdout, &holdout_digest)?;
    let schema = ctx
        .store
        .put_bytes(&serde_json::to_vec(&Schema { columns })?)?;
    Ok(StepOutput {
        outputs: super::outputs([
            ("train", train_digest),
            ("holdout", holdout_digest),
            ("schema", schema),
        ]),
        output_digests: None,
        result: json!({ "train_rows": counts.train_rows, "holdout_rows": counts.holdout_rows, "columns": keep.len() }),
    })
}

pub fn summary(result: &Value) -> String {
    format!(
        "{} train / {} holdout rows, {} columns",
        result["train_rows"], result["holdout_rows"], result["columns"]
    )
}

/// Reads the schema output of a recorded prepare step.
pub fn schema(store: &crate::store::Store, digest: &str) -> Result<Schema> {
    Ok(serde_json::from_slice(&store.read_verified(digest)?)?)
}
