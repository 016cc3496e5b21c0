//! The store as a whole: what `mlbuild cache verify` checks and what `mlbuild cache gc` removes.
//! The registry's part (which versions are damaged, which blobs tags keep) is in
//! `registry::integrity`; the command prints.
//!
//! gc keeps what is reachable: the entries of the given keys (from `ml.lock` and recent runs),
//! every blob those entries name, the blobs the caller names (what tags point at), and the
//! digests the stat cache and the source memos refer to. Everything else in the action cache
//! and the CAS goes, `tmp/` files older than [`TMP_GRACE`], and quarantined blobs older than
//! [`QUARANTINE_DAYS`](super::QUARANTINE_DAYS) days.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::is_digest;
use super::{hash_file, AcLookup, ActionEntry, Bucket, Store, StoreError, QUARANTINE_DAYS};

/// `tmp/` files younger than this may belong to a writer; gc leaves them.
pub const TMP_GRACE: Duration = Duration::from_secs(3600);

/// What [`verify`] found in the blobs and entries.
#[derive(Debug, Default)]
pub struct Verified {
    pub blobs: u64,
    pub bytes: u64,
    pub entries: u64,
    /// One line per problem (a corrupt blob, now quarantined; a damaged entry; a missing output).
    pub problems: Vec<String>,
    /// How many of those lines are about blobs (the rest are about entries).
    pub blob_problems: usize,
}

/// Re-hashes every blob (a corrupt one is moved to the quarantine) and checks every entry's
/// seal and outputs.
pub fn verify(store: &Store) -> Result<Verified, StoreError> {
    let mut out = Verified::default();
    for path in files(&store.bucket(Bucket::Blobs), true) {
        let name = name_of(&path);
        out.blobs += 1;
        out.bytes += size(&path);
        let actual = hash_file(&path)?;
        if actual != name {
            out.problems
                .push(store.quarantine(&name, &actual).to_string());
        }
    }
    out.blob_problems = out.problems.len();
    for path in files(&store.bucket(Bucket::Actions), false) {
        let Some(key) = name_of(&path).strip_suffix(".json").map(str::to_string) else {
            continue;
        };
        out.entries += 1;
        match store.ac_get(&key) {
            AcLookup::Hit(_) | AcLookup::Miss => {}
            AcLookup::Corrupt => out.problems.push(format!(
                "entry {key} is damaged (it does not parse, or its seal does not match its content)"
            )),
            AcLookup::OutputMissing(d) => out
                .problems
                .push(format!("entry {key} names blob {d}, which is missing")),
        }
    }
    Ok(out)
}

/// A file gc would remove: what it is (`entry KEY`, `blob D`, `tmp NAME`, `quarantined D`), its
/// path and size.
#[derive(Debug)]
pub struct Doomed {
    pub what: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What gc keeps: these entries, and these blobs plus every blob the kept entries and the
/// memos name (added by [`collectable`]).
#[derive(Debug, Default)]
pub struct Keep {
    pub keys: BTreeSet<String>,
    pub blobs: BTreeSet<String>,
}

/// Everything gc removes given `keep` (completed with the kept entries' outputs and the memos'
/// digests), as of `now`.
pub fn collectable(store: &Store, keep: &mut Keep, now: SystemTime) -> Vec<Doomed> {
    for key in &keep.keys {
        if let Ok(bytes) = fs::read(store.entry_path(key)) {
            // Parsed as is (seal unchecked): a damaged entry's blobs are kept until it is replaced.
            if let Ok(entry) = serde_json::from_slice::<ActionEntry>(&bytes) {
                keep.blobs.extend(entry.outputs.into_values());
            }
        }
    }
    // The stat cache and the source memos name snapshots a later run may rely on.
    let mut memos = vec![store.stat_cache_path()];
    memos.extend(files(&store.bucket(Bucket::Sources), false));
    for memo in memos {
        if let Ok(bytes) = fs::read(&memo) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                digests_in(&v, &mut keep.blobs);
            }
        }
    }
    let mut doomed = Vec::new();
    let mut add = |what: String, path: PathBuf| {
        let bytes = size(&path);
        doomed.push(Doomed { what, path, bytes });
    };
    for path in files(&store.bucket(Bucket::Actions), false) {
        let name = name_of(&path);
        let key = name.strip_suffix(".json").unwrap_or(&name);
        if !keep.keys.contains(key) {
            add(format!("entry {key}"), path.clone());
        }
    }
    for path in files(&store.bucket(Bucket::Blobs), true) {
        let name = name_of(&path);
        if !keep.blobs.contains(&name) {
            add(format!("blob {name}"), path);
        }
    }
    let older = |path: &Path, than: Duration| {
        path.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > than)
    };
    for path in files(&store.bucket(Bucket::Tmp), false) {
        if older(&path, TMP_GRACE) {
            add(format!("tmp {}", name_of(&path)), path);
        }
    }
    let keep_quarantine = Duration::from_secs(QUARANTINE_DAYS * 24 * 3600);
    for path in files(&store.bucket(Bucket::Quarantine), false) {
        if older(&path, keep_quarantine) {
            add(format!("quarantined {}", name_of(&path)), path);
        }
    }
    // A user step's directory left by a killed run (`Store::step_dir`).
    for entry in fs::read_dir(store.bucket(Bucket::Tmp))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() && name_of(&path).starts_with("step-") && older(&path, TMP_GRACE) {
            let bytes = walk_size(&path);
            doomed.push(Doomed {
                what: format!("step dir {}", name_of(&path)),
                path,
                bytes,
            });
        }
    }
    doomed
}

/// Every 64-hex string anywhere in `v`.
pub fn digests_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if is_digest(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| digests_in(v, out)),
        Value::Object(o) => o.values().for_each(|v| digests_in(v, out)),
        _ => {}
    }
}

/// Every file directly inside `dir/*/` (the CAS fan-out) or `dir` itself, sorted.
fn files(dir: &Path, nested: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = fs::read_dir(dir) else {
        return out;
    };
    for entry in read.flatten() {
        let path = entry.path();
        if nested && path.is_dir() {
            out.extend(files(&path, false));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn walk_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_size(&p)
            } else {
                size(&p)
            }
        })
        .sum()
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn size(path: &Path) -> u64 {
    path.metadata().map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_found_anywhere_in_json() {
        let d = "a".repeat(64);
        let v = serde_json::json!({"x": [{"y": d}], "z": "short", "n": 1});
        let mut out = BTreeSet::new();
        digests_in(&v, &mut out);
        assert_eq!(out, BTreeSet::from([d]));
    }

    #[test]
    fn gc_keeps_what_is_named_and_what_kept_entries_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = store.put_bytes(b"kept").unwrap();
        let gone = store.put_bytes(b"gone").unwrap();
        let mut keep = Keep {
            keys: BTreeSet::new(),
            blobs: BTreeSet::from([kept.clone()]),
        };
        let doomed = collectable(&store, &mut keep, SystemTime::now());
        let what: Vec<&str> = doomed.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(what, [format!("blob {gone}")]);
        assert_eq!(doomed[0].bytes, 4);
    }

    /// A user step's directory that a killed run left is swept once it is older than the grace
    /// period, with the bytes inside it counted; a fresh one is left to its run.
    #[test]
    fn gc_sweeps_a_killed_runs_step_dir_after_the_grace() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let left = store.step_dir().unwrap().keep();
        std::fs::create_dir_all(left.join("sub")).unwrap();
        std::fs::write(left.join("sub").join("out.csv"), b"12345").unwrap();
        let now = SystemTime::now();
        let fresh = collectable(&store, &mut Keep::default(), now);
        assert!(fresh.iter().all(|d| !d.what.starts_with("step dir")));
        let later = now + TMP_GRACE + Duration::from_secs(60);
        let doomed = collectable(&store, &mut Keep::default(), later);
        let swept: Vec<_> = doomed
            .iter()
            .filter(|d| d.what.starts_with("step dir"))
            .collect();
        assert_eq!(swept.len(), 1, "{doomed:?}");
        assert_eq!(swept[0].path, left);
        assert_eq!(swept[0].bytes, 5);
    }
}
