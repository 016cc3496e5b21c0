//! Step 2, locate: snapshot the data source into the content-addressed store.
//!
//! The source is read before planning ([`materialize`], see `source/`): its digest enters
//! locate's key, its profile define's. For a plain CSV file the digest comes from the stat cache,
//! so an unchanged file costs a `stat`, and a touched-but-identical file hashes to the same
//! digest: nothing reruns. Other sources (SQL, Parquet, globs, CSV options) become a canonical
//! CSV. When the step runs it stores the snapshot (reflink where possible); a profile of each
//! snapshot (columns, kinds, distinct values) is kept beside the store under its digest, since it
//! is a pure function of the bytes.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, StepOutput, StepResult};
use crate::project::Step;
use crate::source::{self, Snapshot};
use crate::store::Store;
use crate::table::{self, Profile};

/// Reads `[locate]`'s source into a snapshot (not yet stored: see [`run`]).
/// The snapshot of the source; `overrides` are the run's `--set`s (to place a SQL error in
/// `ml.toml`), `full_refresh` is `run --full-refresh`.
pub async fn materialize(
    ctx: &Ctx<'_>,
    overrides: &[String],
    full_refresh: bool,
) -> Result<Snapshot> {
    let project = &ctx.paths.project;
    let place_of = |key: &str| {
        let text = std::fs::read_to_string(project.join(crate::config::FILE_NAME)).ok()?;
        crate::config::value_place(
            Path::new(crate::config::FILE_NAME),
            &text,
            overrides,
            &["locate", key],
        )
    };
    source::materialize(&source::Request {
        project,
        locate: &ctx.config.locate,
        store: ctx.store,
        printer: ctx.printer,
        full_refresh,
        place_of: &place_of,
    })
    .await
}

/// The profile of the data whose digest is `digest`, computed once and remembered.
pub fn profile(store: &Store, file: &Path, digest: &str) -> Result<Profile> {
    if let Some(p) = remembered_profile(store, digest) {
        return Ok(p);
    }
    let profile = table::profile_csv(file)?;
    remember_profile(store, digest, &profile)?;
    Ok(profile)
}

/// [`profile`], and when it must read the data, what prepare needs of these bytes from the
/// same pass (`table::Collected`: the rows by class of column `target` for its stratified
/// split, the values of the columns its fit reads).
pub fn profile_collecting(
    store: &Store,
    file: &Path,
    digest: &str,
    target: &str,
    prepare: &crate::config::Prepare,
) -> Result<(Profile, table::Collected)> {
    if let Some(p) = remembered_profile(store, digest) {
        return Ok((p, table::Collected::default()));
    }
    let (profile, collected) = table::profile_collecting(file, Some(target), |header| {
        crate::transform::held_columns(prepare, header)
    })?;
    remember_profile(store, digest, &profile)?;
    Ok((profile, collected))
}

/// The remembered profile of the data whose digest is `digest`, if there is a sound one (its
/// seal matches: a damaged or edited profile is recomputed, never believed).
pub fn remembered_profile(store: &Store, digest: &str) -> Option<Profile> {
    crate::store::read_sealed(&store.profile_path(digest))
}

/// Records the profile of the CSV whose digest is `digest` (computed by whoever wrote it), for
/// [`profile`] to find.
pub fn remember_profile(store: &Store, digest: &str, profile: &Profile) -> Result<()> {
    crate::store::write_sealed(&store.profile_path(digest), profile)?;
    Ok(())
}

pub fn run(store: &Store, source: &Snapshot, profile: &Profile) -> Result<StepOutput> {
    source.commit(store)?;
    let snapshot = source.digest.clone();
    let bytes = std::fs::metadata(store.blob_path(&snapshot))
        .map(|m| m.len())
        .unwrap_or(0);
    let result = LocateResult {
        rows: profile.rows,
        columns: profile.columns.len(),
        bytes,
        // Plain files keep today's result; other sources say how they were read.
        extraction: (source.detail["source"] != "file").then(|| source.detail.clone()),
    };
    Ok(StepOutput {
        outputs: super::outputs([("snapshot", snapshot)]),
        output_digests: None,
        result: result.to_value(),
    })
}

/// What locate found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocateResult {
    pub rows: u64,
    pub columns: usize,
    /// The snapshot's size.
    pub bytes: u64,
    /// How a source other than one plain file was read (docs/sources.md): `mode`, `files`,
    /// `appended`, … Absent for a plain file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<Value>,
}

impl StepResult for LocateResult {
    const STEP: Step = Step::Locate;

    fn summary(&self) -> String {
        let base = format!("{} rows × {} columns", self.rows, self.columns);
        let Some(x) = &self.extraction else {
            return base;
        };
        match x["mode"].as_str() {
            Some("append") => match x["appended"].as_u64() {
                Some(1) => format!("{base} (1 row appended past the watermark)"),
                n => format!(
                    "{base} ({} rows appended past the watermark)",
                    n.unwrap_or(0)
                ),
            },
            Some("full") => format!("{base} (query result)"),
            _ if x["files"].as_u64().is_some_and(|n| n > 1) => {
                format!("{base} from {} files", x["files"])
            }
            _ => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_edited_profile_is_recomputed_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let csv = dir.path().join("data.csv");
        std::fs::write(&csv, "a,b\n1,x\n2,y\n3,\n").unwrap();
        let digest = crate::store::hash_file(&csv).unwrap();
        let first = profile(&store, &csv, &digest).unwrap();
        assert_eq!(first.rows, 3);
        assert_eq!(remembered_profile(&store, &digest), Some(first.clone()));

        // Edited to other valid JSON (3 rows become 9): the seal no longer matches.
        let path = store.profile_path(&digest);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"rows\":3"), "{text}");
        std::fs::write(&path, text.replace("\"rows\":3", "\"rows\":9")).unwrap();
        assert_eq!(remembered_profile(&store, &digest), None);
        assert_eq!(profile(&store, &csv, &digest).unwrap().rows, 3);

        // Truncated, or a profile of an older mlbuild (no seal): recomputed and rewritten.
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert_eq!(profile(&store, &csv, &digest).unwrap(), first);
        std::fs::write(&path, serde_json::to_vec(&first).unwrap()).unwrap();
        assert_eq!(remembered_profile(&store, &digest), None);
        assert_eq!(profile(&store, &csv, &digest).unwrap(), first);
        assert_eq!(remembered_profile(&store, &digest), Some(first));
    }
}
