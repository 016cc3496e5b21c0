//! Step 2, locate: snapshot the data source into the content-addressed store.
//!
//! The snapshot is an immutable copy (reflink where possible) named by the blake3 of its bytes.
//! The source's digest comes from the stat cache, so an unchanged file costs a `stat`, and a
//! touched-but-identical file hashes to the same digest: nothing reruns. A profile of each
//! snapshot (columns, kinds, distinct values) is kept beside the store under its digest, since
//! it is a pure function of the bytes.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::error::Diagnostic;
use crate::pipeline::StepOutput;
use crate::store::{write_atomic, Store};
use crate::table::{self, Profile};

/// The profile of the data whose digest is `digest`, computed once and remembered.
pub fn profile(store: &Store, file: &Path, digest: &str) -> Result<Profile> {
    let path = store.root().join("profiles").join(format!("{digest}.json"));
    if let Some(p) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        return Ok(p);
    }
    let profile = table::profile_csv(file)?;
    write_atomic(&path, &serde_json::to_vec(&profile)?)?;
    Ok(profile)
}

pub fn run(store: &Store, source: &Path, expected: &str, profile: &Profile) -> Result<StepOutput> {
    let snapshot = store
        .put_file(source)
        .with_context(|| format!("snapshotting `{}`", source.display()))?;
    if snapshot != expected {
        return Err(Diagnostic::new(format!(
            "`{}` changed while mlbuild was reading it",
            source.display()
        ))
        .hint("run again once the file is no longer being written")
        .into());
    }
    let bytes = std::fs::metadata(store.blob_path(&snapshot))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(StepOutput {
        outputs: super::outputs([("snapshot", snapshot)]),
        output_digests: None,
        result: json!({ "rows": profile.rows, "columns": profile.columns.len(), "bytes": bytes }),
    })
}

pub fn summary(result: &Value) -> String {
    format!("{} rows × {} columns", result["rows"], result["columns"])
}
