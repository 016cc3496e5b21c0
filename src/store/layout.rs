//! Where everything lives in a project's cache dir (`cache/`, or `MLBUILD_CACHE_DIR`): the one
//! place that names a directory or file in it. Everything else asks [`Store`](super::Store)
//! (or, for what lives beside the store, the functions here) for a path.
//!
//! ```text
//! cache/
//!   v1/cas/ab/abcdef…          Bucket::Blobs       blobs by blake3 digest (immutable)
//!   v1/ac/<key>.json           Bucket::Actions     action cache: step key → outputs, key inputs, result (sealed)
//!   v1/profiles/<digest>.json  Bucket::Profiles    profile of a data snapshot (sealed)
//!   v1/sources/<memo>.json     Bucket::Sources     memos of file conversions, incremental SQL state
//!   v1/tmp/                    Bucket::Tmp         in-flight writes (garbage after a crash)
//!   v1/quarantine/<digest>     Bucket::Quarantine  blobs found corrupt (kept QUARANTINE_DAYS)
//!   v1/stat.json               stat cache: path → (size, mtime, inode, digest)
//!   v1/stat-models.json        the same for the tags' files `models/<TAG>.zip`
//!   v1/run.lock                one run at a time per project
//!   h2o/                       the engine's work dir (engine_dir)
//!     mlbuild-<pid>-<id>/        a managed node's logs, ice_root and flatfile
//!     mlbuild-warm-<id>/         the warm node's (`mlbuild h2o start`)
//!     warm-node-v1.json          the warm node's record: pid, port, URL, `[h2o]` it fits
//!     warm-node.lock             held while a warm node starts or stops
//!   state.db                   the registry (SQLite), unless MLBUILD_STATE_URL says otherwise
//! ```
//!
//! Like uv's `CacheBucket`, each bucket's name carries the version of its format (`v1/` for
//! every bucket today): a bucket whose format changes incompatibly moves to the next version's
//! directory alone, and an older mlbuild never misreads it.

use std::path::{Path, PathBuf};

/// A directory of the store, each named with its format's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `v1/cas/`: blobs by blake3 digest, fanned out by the digest's first two characters.
    Blobs,
    /// `v1/ac/`: one sealed action entry per step key.
    Actions,
    /// `v1/profiles/`: one sealed profile per data snapshot.
    Profiles,
    /// `v1/sources/`: memos of a source's conversion and incremental state, and of user
    /// steps' tool versions.
    Sources,
    /// `v1/tmp/`: temporary files, renamed into the other buckets when complete.
    Tmp,
    /// `v1/quarantine/`: blobs whose bytes did not match their name.
    Quarantine,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 6] = [
        Bucket::Blobs,
        Bucket::Actions,
        Bucket::Profiles,
        Bucket::Sources,
        Bucket::Tmp,
        Bucket::Quarantine,
    ];

    /// The bucket's directory, relative to the cache dir.
    pub fn dir(self) -> &'static str {
        match self {
            Bucket::Blobs => "v1/cas",
            Bucket::Actions => "v1/ac",
            Bucket::Profiles => "v1/profiles",
            Bucket::Sources => "v1/sources",
            Bucket::Tmp => "v1/tmp",
            Bucket::Quarantine => "v1/quarantine",
        }
    }
}

/// The stat cache, relative to the cache dir.
pub(super) const STAT_CACHE: &str = "v1/stat.json";

/// The stat cache of the tags' files (`models/<TAG>.zip`), relative to the cache dir.
pub(super) const MODELS_STAT_CACHE: &str = "v1/stat-models.json";

/// The run lock, relative to the cache dir.
pub(super) const RUN_LOCK: &str = "v1/run.lock";

/// The engine's work dir: managed and warm nodes' directories and the warm node's record.
pub fn engine_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("h2o")
}

/// The project's run lock (see [`super::RunLock`]).
pub fn run_lock(cache_dir: &Path) -> PathBuf {
    cache_dir.join(RUN_LOCK)
}

/// The registry's SQLite file, when `MLBUILD_STATE_URL` names no other database.
pub fn state_db(cache_dir: &Path) -> PathBuf {
    cache_dir.join("state.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_versioned_and_distinct() {
        let dirs: Vec<&str> = Bucket::ALL.iter().map(|b| b.dir()).collect();
        for d in &dirs {
            assert!(d.starts_with("v1/"), "{d}");
        }
        let mut unique = dirs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), dirs.len());
    }
}
