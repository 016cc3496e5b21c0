//! The registry's side of `mlbuild cache verify | gc`: which registered versions lost bytes
//! that matter (and the command that repairs each), and which keys and blobs the registry keeps
//! alive.

use std::collections::BTreeSet;

use super::{Registry, RegistryError, Version};
use crate::store::maintenance::{digests_in, Keep};
use crate::store::Store;

/// What [`damaged_versions`] found.
#[derive(Debug, Default)]
pub struct VersionCheck {
    pub checked: usize,
    /// One line per damaged blob of a version, with the command that repairs it.
    pub problems: Vec<String>,
    /// How many versions those lines are about (a version may have several damaged blobs).
    pub damaged: usize,
    /// Untagged versions whose blobs are simply gone (collected by `cache gc`).
    pub collected: usize,
}

/// Every registered version whose MOJO, card or plots are not in this store: a problem when
/// the blob was found corrupt (it is in the quarantine) or a tag points at the version;
/// otherwise `cache gc` collected it, by design. `locked` is the canonical MOJO digest the
/// committed `ml.lock` concludes (`mlbuild run` rebuilds that one).
pub async fn damaged_versions(
    registry: &Registry,
    store: &Store,
    locked: Option<&str>,
) -> Result<VersionCheck, RegistryError> {
    let tags = registry.tags().await?;
    let versions = registry.versions().await?;
    let mut out = VersionCheck {
        checked: versions.len(),
        ..VersionCheck::default()
    };
    for v in &versions {
        let tagged: Vec<&str> = tags
            .iter()
            .filter(|(_, id)| **id == v.id)
            .map(|(t, _)| t.as_str())
            .collect();
        let mut gone = false;
        let before = out.problems.len();
        for (what, digest) in served_blobs(v, store) {
            if store.contains(&digest) {
                continue;
            }
            let corrupt = store.quarantined(&digest);
            if !corrupt && tagged.is_empty() {
                gone = true;
                continue;
            }
            out.problems.push(format!(
                "version {}{}: its {} {} is {}; repair: {}",
                v.id,
                if tagged.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", tagged.join(", "))
                },
                what,
                crate::store::short_digest(&digest),
                if corrupt {
                    format!(
                        "corrupt (moved to `{}`)",
                        store.quarantine_path(&digest).display()
                    )
                } else {
                    "missing".to_string()
                },
                repair_command(v, locked, tagged.first().copied()),
            ));
        }
        if out.problems.len() > before {
            out.damaged += 1;
        } else if gone {
            out.collected += 1;
        }
    }
    Ok(out)
}

/// What of a version must be in the store, described for messages: its MOJO, card and plots,
/// and its transform with the artifacts the transform names (what predict and serve replay).
fn served_blobs(v: &Version, store: &Store) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .blobs()
        .into_iter()
        .map(|(blob, digest)| (blob.describe(), digest))
        .collect();
    if let Some(transform) = v.provenance["transform"].as_str() {
        out.push(("transform".into(), transform.to_string()));
        let named = transform_artifacts(v, store);
        out.extend(named.into_iter().map(|d| ("transform artifact".into(), d)));
    }
    out
}

/// The digests a version's transform names (its `transform.json`: the Word2Vec vectors and the
/// like), read as they are: a missing or damaged transform names nothing (`cache verify`
/// reports the transform itself).
fn transform_artifacts(v: &Version, store: &Store) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let manifest = v.provenance["transform"]
        .as_str()
        .and_then(|t| store.read_verified(t).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    if let Some(manifest) = manifest {
        digests_in(&manifest, &mut named);
    }
    named
}

/// The command that puts a version's bytes back.
fn repair_command(v: &Version, locked: Option<&str>, tag: Option<&str>) -> String {
    if locked == Some(v.canonical.as_str()) {
        return "`mlbuild run` (it rebuilds the model, or restores it from the remote cache)"
            .into();
    }
    if v.provenance["source"] == "deploy" {
        return format!(
            "`mlbuild deploy --mojo {} --tag {}` with the same MOJO file",
            v.provenance["file"].as_str().unwrap_or("FILE.zip"),
            tag.unwrap_or("TAG")
        );
    }
    match v.provenance["git_commit"].as_str() {
        Some(commit) => {
            format!("`mlbuild run` with the configuration that trained it (git commit {commit})")
        }
        None => "`mlbuild run` with the configuration that trained it".into(),
    }
}

/// What the registry keeps alive in the store: the step keys of the last `keep_runs` runs, and
/// the blobs of the versions tags point at (MOJO, card, every digest in their provenance, and
/// every digest their transform names: the Word2Vec artifacts predict and serve replay, which
/// only the transform's `transform.json` in `store` refers to).
pub async fn gc_roots(
    registry: &Registry,
    store: &Store,
    keep_runs: u32,
) -> Result<Keep, RegistryError> {
    let mut keys = BTreeSet::new();
    let mut blobs = BTreeSet::new();
    for run in registry.recent_runs(keep_runs).await? {
        keys.extend(registry.steps(run.id).await?.into_iter().map(|s| s.key));
    }
    for id in registry.tags().await?.values() {
        if let Some(v) = registry.get(id).await? {
            blobs.insert(v.model.clone());
            blobs.insert(v.card.clone());
            digests_in(&v.provenance, &mut blobs);
            blobs.extend(transform_artifacts(&v, store));
        }
    }
    Ok(Keep { keys, blobs })
}
