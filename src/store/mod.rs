//! The content-addressed store, the action cache, the stat cache and the run lock.
//!
//! The layout of the cache dir is in [`layout`] (buckets with versioned names, the files beside
//! them, the engine's work dir and `state.db`); nothing outside this module builds a path in it.
//! Every write is temp-file-then-rename, so a killed process leaves either the old file or the
//! new one, never half of one. An action entry is written only after every blob it names is in
//! the CAS, so a cache hit can trust its outputs with a `stat`.
//!
//! A store may carry a [`remote::Remote`] (an HTTP cache behind the local one, see there);
//! [`maintenance`] holds what `mlbuild cache verify | gc` do to the store as a whole.

pub mod layout;
mod lock;
pub mod lockfile;
pub mod maintenance;
#[cfg(test)]
mod properties;
pub mod remote;
mod stat;

pub use layout::Bucket;
pub use lock::RunLock;
pub use stat::{FileStamp, StatCache};

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How long `cache gc` keeps a quarantined blob.
pub const QUARANTINE_DAYS: u64 = 7;

/// A blake3 digest as 64 lowercase hex characters.
pub type Digest = String;

/// Whether `s` is a digest as the store names blobs: 64 lowercase hex characters. Every path
/// built from a digest checks this first: a digest read from the registry, an action entry or
/// a remote cache is data, and `../../x` would otherwise name a file outside the store.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A digest as messages and pages show it: its first 12 characters (the whole value when
/// shorter). Never panics on a value from a damaged record, whatever its characters.
pub fn short_digest(digest: &str) -> &str {
    digest
        .char_indices()
        .nth(12)
        .map_or(digest, |(end, _)| &digest[..end])
}

/// The file name of `digest` in a bucket: the digest itself, or for a value that is not one a
/// name no blob is ever stored under (every write checks [`is_digest`]), so a lookup by a bad
/// digest finds nothing and no path leaves the bucket.
fn file_name(digest: &str) -> &str {
    if is_digest(digest) {
        digest
    } else {
        "not-a-digest"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("stored blob {digest} is corrupt (its bytes hash to {actual}); it was moved to `{}`", quarantined.display())]
    Corrupt {
        digest: Digest,
        actual: Digest,
        /// Where the bad bytes are now (`v1/quarantine/<digest>`).
        quarantined: PathBuf,
    },
    #[error("stored blob {digest} is missing")]
    Missing { digest: Digest },
    #[error("`{value}` is not a blob digest (64 lowercase hex characters)")]
    NotADigest { value: String },
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Corrupt { .. } | StoreError::Missing { .. } => Some(
                "`mlbuild run` makes it again (the step that made it reruns, or the remote cache restores it) and repairs the versions that use it; `mlbuild cache verify` lists every version whose bytes are damaged"
                    .into(),
            ),
            StoreError::NotADigest { .. } => Some(
                "the record that names it is damaged; `mlbuild cache verify` lists the damaged versions, and `mlbuild run` makes a good one"
                    .into(),
            ),
            StoreError::Io { .. } => None,
        }
    }
}

/// `Ok` when `digest` is one (see [`is_digest`]).
fn checked(digest: &str) -> Result<(), StoreError> {
    if is_digest(digest) {
        Ok(())
    } else {
        Err(StoreError::NotADigest {
            value: digest.to_string(),
        })
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What a finished step left behind: the digests of its outputs and a small JSON result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionEntry {
    pub step: String,
    pub key: String,
    /// The inputs that made the key, kept for `explain` and `-vv`.
    pub inputs: serde_json::Value,
    /// Output name → blake3 digest of a blob in the CAS.
    pub outputs: BTreeMap<String, Digest>,
    /// Digests that stand for the outputs downstream (canonical MOJO digest for MOJOs).
    pub output_digests: BTreeMap<String, Digest>,
    /// Step-specific result, including the verdict where the step has one.
    pub result: serde_json::Value,
    /// Output name → size in bytes, so that a remote cache's reply can be cut off at it
    /// (`remote`). Absent from entries written before it existed; never part of a key or ml.lock.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output_sizes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// The cache dir; every path in it comes from [`layout`].
    cache_dir: PathBuf,
    /// The remote cache behind this store, when one is configured (`run` only).
    remote: Option<Arc<remote::Remote>>,
    /// Blobs this process hashed (stored or verified) and the file they were then: a second
    /// use of the same unchanged file in one run needs no second read ([`Store::verified_path`]).
    hashed: Arc<std::sync::Mutex<HashMap<Digest, FileStamp>>>,
}

impl Store {
    /// Opens (creating when needed) the store inside `cache_dir`.
    pub fn open(cache_dir: &Path) -> Result<Store, StoreError> {
        let store = Store::existing(cache_dir);
        for bucket in [Bucket::Blobs, Bucket::Actions, Bucket::Tmp] {
            let dir = store.bucket(bucket);
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        Ok(store)
    }

    /// The store inside `cache_dir` as it is, creating nothing: for commands that only read
    /// (a missing store reads as an empty one).
    pub fn existing(cache_dir: &Path) -> Store {
        Store {
            cache_dir: cache_dir.to_path_buf(),
            remote: None,
            hashed: Arc::default(),
        }
    }

    /// This store with `remote` behind it.
    pub fn with_remote(mut self, remote: Option<Arc<remote::Remote>>) -> Store {
        self.remote = remote;
        self
    }

    pub fn remote(&self) -> Option<&remote::Remote> {
        self.remote.as_deref()
    }

    /// A bucket's directory.
    pub fn bucket(&self, bucket: Bucket) -> PathBuf {
        self.cache_dir.join(bucket.dir())
    }

    /// The project's run lock (`run`, `watch`, `cache gc`, `cache pull` hold it).
    pub fn run_lock_path(&self) -> PathBuf {
        layout::run_lock(&self.cache_dir)
    }

    /// The stat cache of data files' digests.
    pub fn stat_cache_path(&self) -> PathBuf {
        self.cache_dir.join(layout::STAT_CACHE)
    }

    /// The stat cache of the tags' files, `models/<TAG>.zip` (`registry::links`).
    pub fn models_stat_path(&self) -> PathBuf {
        self.cache_dir.join(layout::MODELS_STAT_CACHE)
    }

    /// A source's memo (`converted-<id>.json`, `incremental-<id>.json`).
    pub fn source_memo_path(&self, name: &str) -> PathBuf {
        self.bucket(Bucket::Sources).join(name)
    }

    /// The memo of user steps' tool versions (by program path, size, mtime and arguments).
    pub fn tool_memo_path(&self) -> PathBuf {
        self.bucket(Bucket::Sources).join("tool-versions.json")
    }

    /// A fresh directory for one run of a user step, in the temp bucket (removed on drop).
    pub fn step_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let dir = self.bucket(Bucket::Tmp);
        tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(&dir)
            .map_err(io_err("create a directory in", &dir))
    }

    /// Where the blob `digest` is kept; for a value that is not a digest, a path inside the
    /// store that never holds a blob.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let name = file_name(digest);
        self.bucket(Bucket::Blobs).join(&name[..2]).join(name)
    }

    pub fn contains(&self, digest: &str) -> bool {
        is_digest(digest) && self.blob_path(digest).is_file()
    }

    /// A new temporary file inside the store (same filesystem, so rename is atomic).
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.bucket(Bucket::Tmp);
        tempfile::NamedTempFile::new_in(&dir).map_err(io_err("create a temporary file in", &dir))
    }

    /// Stores bytes; returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut tmp = self.temp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.write_all(bytes).map_err(io_err("write", &tmp_path))?;
        self.commit(tmp, &digest)?;
        Ok(digest)
    }

    /// Stores a copy of a file (a reflink where the filesystem allows, else a copy, never a
    /// hardlink: an in-place edit of the user's file must not reach the store). The digest is
    /// computed from the copy, so the store never holds bytes under the wrong name.
    pub fn put_file(&self, path: &Path) -> Result<Digest, StoreError> {
        // A reserved temp name (removed on drop); the copy must create the file itself.
        let tmp = self.temp_file()?.into_temp_path();
        let _ = fs::remove_file(&tmp);
        reflink_copy::reflink_or_copy(path, &tmp).map_err(io_err("copy", path))?;
        let digest = hash_file(&tmp)?;
        if self.contains(&digest) {
            return Ok(digest);
        }
        let dest = self.blob_path(&digest);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            action: "move a blob into",
            path: dest.clone(),
            source: e.error,
        })?;
        self.note_hashed(&digest, &dest);
        Ok(digest)
    }

    /// Notes that the blob at `path` was hashed to `digest` by this process.
    fn note_hashed(&self, digest: &str, path: &Path) {
        if let (Some(stamp), Ok(mut hashed)) = (FileStamp::of_path(path), self.hashed.lock()) {
            hashed.insert(digest.to_string(), stamp);
        }
    }

    /// Whether this process hashed the blob at `path` to `digest` and the file is unchanged
    /// since (same size, modification time and inode).
    fn hashed_unchanged(&self, digest: &str, path: &Path) -> bool {
        let known = self.hashed.lock().ok().and_then(|h| h.get(digest).copied());
        known.is_some_and(|stamp| FileStamp::of_path(path) == Some(stamp))
    }

    /// Moves a finished temp file into the CAS under `digest`, the hash of its bytes (computed
    /// by the caller as it wrote or received them).
    pub fn commit(&self, tmp: tempfile::NamedTempFile, digest: &str) -> Result<(), StoreError> {
        // The path is removed when dropped, should the move fail.
        let (file, path) = tmp.into_parts();
        file.sync_all().ok();
        drop(file);
        self.move_in(&path, digest)?;
        // Moved: nothing left to remove.
        let _ = path.keep();
        Ok(())
    }

    /// [`commit`](Store::commit) of a temp file of this store named by its path (a converted or
    /// queried snapshot, whose digest was computed as it was written): moved, not copied.
    pub fn commit_path(&self, tmp: &Path, digest: &str) -> Result<(), StoreError> {
        if self.contains(digest) {
            return Ok(());
        }
        fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err("sync", tmp))?;
        self.move_in(tmp, digest)
    }

    fn move_in(&self, tmp: &Path, digest: &str) -> Result<(), StoreError> {
        checked(digest)?;
        let dest = self.blob_path(digest);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        fs::rename(tmp, &dest).map_err(|source| StoreError::Io {
            action: "move a blob into",
            path: dest.clone(),
            source,
        })?;
        self.note_hashed(digest, &dest);
        Ok(())
    }

    /// Where a corrupt blob of this digest is kept (for a value that is not a digest, a path
    /// inside the quarantine that never holds a blob).
    pub fn quarantine_path(&self, digest: &str) -> PathBuf {
        let name = file_name(digest);
        self.bucket(Bucket::Quarantine).join(name)
    }

    /// Whether a blob of this digest was found corrupt and moved to the quarantine.
    pub fn quarantined(&self, digest: &str) -> bool {
        is_digest(digest) && self.quarantine_path(digest).is_file()
    }

    /// Moves a blob whose bytes hash to `actual` out of the CAS into the quarantine (so the next
    /// run recreates it instead of tripping over it again, and the bytes stay for inspection).
    pub fn quarantine(&self, digest: &str, actual: &str) -> StoreError {
        if let Err(e) = checked(digest) {
            return e;
        }
        let from = self.blob_path(digest);
        let to = self.quarantine_path(digest);
        let moved = fs::create_dir_all(to.parent().expect("quarantine paths have a parent"))
            .and_then(|()| fs::rename(&from, &to))
            // `cache gc` ages the quarantine from the move, not from when the blob was written.
            .and_then(|()| {
                fs::File::options()
                    .write(true)
                    .open(&to)?
                    .set_modified(std::time::SystemTime::now())
            });
        if moved.is_err() && from.exists() {
            // Never leave bad bytes where a `stat` would take them for good ones.
            let _ = fs::remove_file(&from);
        }
        StoreError::Corrupt {
            digest: digest.to_string(),
            actual: actual.to_string(),
            quarantined: to,
        }
    }

    /// Reads a blob and checks its bytes against its name. A corrupt blob is moved to the
    /// quarantine ([`Store::quarantine`]).
    pub fn read_verified(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        checked(digest)?;
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    digest: digest.to_string(),
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if actual != digest {
            return Err(self.quarantine(digest, &actual));
        }
        Ok(bytes)
    }

    /// Verifies a blob in place and returns its path (for large blobs read by path). A blob
    /// this process stored or verified before, whose file is unchanged since (size,
    /// modification time, inode), is not read again: locate stores the snapshot and prepare
    /// reads it a moment later.
    pub fn verified_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        checked(digest)?;
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(StoreError::Missing {
                digest: digest.to_string(),
            });
        }
        if self.hashed_unchanged(digest, &path) {
            return Ok(path);
        }
        let actual = hash_file(&path)?;
        if actual != digest {
            return Err(self.quarantine(digest, &actual));
        }
        self.note_hashed(digest, &path);
        Ok(path)
    }

    /// Where the profile of the data whose digest is `digest` is kept (a sealed memo).
    pub fn profile_path(&self, digest: &str) -> PathBuf {
        let name = file_name(digest);
        self.bucket(Bucket::Profiles).join(format!("{name}.json"))
    }

    /// Where the action entry of `key` is kept.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.bucket(Bucket::Actions).join(format!("{key}.json"))
    }

    /// Whether the action cache may hold an entry of `step`: any entry that names it, or more
    /// entries than are worth reading (then it answers yes). Used to tell that a step cannot be
    /// a cache hit ([`crate::pipeline`] starts H2O early then).
    pub fn may_hold_entry_for(&self, step: &str) -> bool {
        const READ_AT_MOST: usize = 512;
        let Ok(dir) = fs::read_dir(self.bucket(Bucket::Actions)) else {
            return false;
        };
        /// Only the field this needs; the entry's seal is not checked (a damaged entry is
        /// read as "may hold", which only costs the early start).
        #[derive(Deserialize)]
        struct StepOf {
            step: String,
        }
        for (i, entry) in dir.flatten().enumerate() {
            if i >= READ_AT_MOST {
                return true;
            }
            let named = fs::read(entry.path())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<StepOf>(&bytes).ok());
            if named.is_none_or(|e| e.step == step) {
                return true;
            }
        }
        false
    }

    /// Looks a key up in the action cache. An entry that does not parse, is not for this key,
    /// or whose seal does not match its content is `Corrupt`; one whose outputs are not all
    /// present (a `stat` each) is `OutputMissing`.
    pub fn ac_get(&self, key: &str) -> AcLookup {
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return AcLookup::Miss,
        };
        let Some(entry) = unseal_entry(&bytes) else {
            return AcLookup::Corrupt;
        };
        if entry.key != key {
            return AcLookup::Corrupt;
        }
        if let Some(missing) = entry.outputs.values().find(|d| !self.contains(d)) {
            return AcLookup::OutputMissing(missing.clone());
        }
        AcLookup::Hit(Box::new(entry))
    }

    /// Records an entry, sealed (see [`seal_entry`]). Callers store every output first; this
    /// checks it once more.
    pub fn ac_put(&self, entry: &ActionEntry) -> Result<(), StoreError> {
        if let Some(missing) = entry.outputs.values().find(|d| !self.contains(d)) {
            return Err(StoreError::Missing {
                digest: missing.clone(),
            });
        }
        let text = seal_entry(entry);
        let mut tmp = self.temp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.write_all(&text).map_err(io_err("write", &tmp_path))?;
        let dest = self.entry_path(&entry.key);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            action: "write action cache entry",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// The field of a local action entry that seals it.
const SEAL: &str = "seal";

/// The fields an action entry may have (besides its seal).
const ENTRY_FIELDS: [&str; 7] = [
    "step",
    "key",
    "inputs",
    "outputs",
    "output_digests",
    "result",
    "output_sizes",
];

/// A local action entry's bytes: its JSON with one more field, `seal`, the blake3 of the
/// entry's compact JSON (keys sorted). The key covers only the step's inputs; the seal covers the outputs and
/// the result too, so a flipped digit in a recorded metric is caught when the entry is used.
fn seal_entry(entry: &ActionEntry) -> Vec<u8> {
    let compact = serde_json::to_vec(entry).expect("action entries serialise");
    // The seal is taken over the entry as a reader will parse it: serde_json's float parsing
    // may land one ulp off the printed value, so the reader's re-printed form is what we hash.
    let parsed: serde_json::Value = serde_json::from_slice(&compact).expect("our own JSON parses");
    let mut value = parsed.clone();
    value[SEAL] = serde_json::Value::String(seal_of(&parsed));
    serde_json::to_vec_pretty(&value).expect("action entries serialise")
}

fn seal_of(entry: &serde_json::Value) -> String {
    let compact = serde_json::to_vec(entry).expect("JSON values serialise");
    blake3::hash(&compact).to_hex().to_string()
}

/// The entry in a local action-cache file, when it is sound: it parses, has only an entry's
/// fields, and its seal (when it has one: entries written before seals existed have none)
/// matches its content.
fn unseal_entry(bytes: &[u8]) -> Option<ActionEntry> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let fields = value.as_object_mut()?;
    let seal = match fields.remove(SEAL) {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return None,
        None => None,
    };
    if fields.keys().any(|k| !ENTRY_FIELDS.contains(&k.as_str())) {
        return None;
    }
    if seal.is_some_and(|seal| seal != seal_of(&value)) {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The result of an action-cache lookup.
#[derive(Debug)]
pub enum AcLookup {
    Hit(Box<ActionEntry>),
    Miss,
    Corrupt,
    OutputMissing(Digest),
}

/// Hashes a file with blake3: memory-mapped and multi-threaded, one 64 MiB window at a time.
/// Mapped pages count as resident memory, so mapping a whole 1 GB file at once made the
/// process 1 GB "resident"; windows keep it bounded at the same speed.
pub fn hash_file(path: &Path) -> Result<Digest, StoreError> {
    // Mapped a window at a time: the mapped pages count in the process's RSS, so the window
    // bounds what hashing a large blob adds to it (`cache push` stays under 64 MB).
    const WINDOW: u64 = 16 << 20;
    let mut hasher = blake3::Hasher::new();
    let file = fs::File::open(path).map_err(io_err("hash", path))?;
    let len = file.metadata().map_err(io_err("hash", path))?.len();
    if len < 1 << 20 {
        hasher.update_reader(&file).map_err(io_err("hash", path))?;
    } else {
        let mut offset = 0;
        while offset < len {
            let n = (len - offset).min(WINDOW);
            // SAFETY: as with any map of a file, a concurrent truncation would fault; the
            // store's blobs are read-only and user files are hashed as `update_mmap_rayon` did.
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(offset)
                    .len(n as usize)
                    .map(&file)
            }
            .map_err(io_err("hash", path))?;
            hasher.update_rayon(&map);
            offset += n;
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// A memo on disk (a data profile): derived data sealed with the blake3 of its body's JSON, so a
/// damaged or edited file is never passed off as the truth. Memos can always be recomputed.
#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    blake3: String,
    body: T,
}

/// Reads a sealed memo; `None` when it is missing, does not parse, or its seal does not match
/// its body (the caller recomputes it).
pub fn read_sealed<T: serde::de::DeserializeOwned + Serialize>(path: &Path) -> Option<T> {
    unseal(&fs::read(path).ok()?)
}

/// The body of a sealed memo's bytes ([`write_sealed`]); `None` when they do not parse or the
/// seal does not match the body.
pub fn unseal<T: serde::de::DeserializeOwned + Serialize>(bytes: &[u8]) -> Option<T> {
    let sealed: Sealed<T> = serde_json::from_slice(bytes).ok()?;
    let body = serde_json::to_vec(&sealed.body).ok()?;
    (blake3::hash(&body).to_hex().as_str() == sealed.blake3).then_some(sealed.body)
}

/// Writes a sealed memo atomically.
pub fn write_sealed<T: Serialize>(path: &Path, body: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(body).expect("memos serialise");
    let blake3 = blake3::hash(&bytes).to_hex().to_string();
    let sealed = serde_json::to_vec(&Sealed { blake3, body }).expect("memos serialise");
    write_atomic(path, &sealed)
}

/// Writes `bytes` to `dest` atomically (temp file in the same directory, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("write", dest))?;
    // Temp files are created 0600; the files we replace are ordinary user files.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o644));
    }
    tmp.as_file().sync_all().ok();
    tmp.persist(dest).map_err(|e| StoreError::Io {
        action: "replace",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest is data (a registry row, an action entry): one that is not 64 lowercase hex
    /// characters names no file, so a damaged row cannot make a read-only command move, read
    /// or quarantine a file outside the store.
    #[test]
    fn a_value_that_is_not_a_digest_names_no_file_outside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let store = Store::open(&cache).unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        let bad = "../../victim.txt";
        assert_eq!(
            store
                .bucket(Bucket::Blobs)
                .join(&bad[..2])
                .join(bad)
                .canonicalize()
                .unwrap(),
            victim.canonicalize().unwrap(),
            "the path a digest-blind join would build"
        );
        assert!(!store.contains(bad) && !store.quarantined(bad));
        for found in [
            store.verified_path(bad).err(),
            store.read_verified(bad).err(),
            Some(store.quarantine(bad, &"0".repeat(64))),
        ] {
            assert!(
                matches!(found, Some(StoreError::NotADigest { ref value }) if value == bad),
                "{found:?}"
            );
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        for path in [
            store.blob_path(bad),
            store.quarantine_path(bad),
            store.profile_path(bad),
        ] {
            assert!(path.starts_with(&cache) && !path.components().any(|c| c.as_os_str() == ".."));
        }
        // A short or non-ASCII value must not panic either.
        for odd in ["", "a", "é", "ab/"] {
            assert!(!store.contains(odd));
            assert!(store.verified_path(odd).is_err());
        }
    }

    #[test]
    fn a_short_digest_never_splits_a_character() {
        assert_eq!(short_digest(&"ab".repeat(32)), "abababababab");
        assert_eq!(short_digest("abc"), "abc");
        assert_eq!(short_digest(&"é".repeat(20)), "é".repeat(12));
    }

    #[test]
    fn blobs_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        assert_eq!(d, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(store.read_verified(&d).unwrap(), b"hello");
        fs::write(store.blob_path(&d), b"tampered").unwrap();
        assert!(matches!(
            store.read_verified(&d),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(!store.contains(&d), "a corrupt blob leaves the CAS");
        assert!(store.quarantined(&d), "and is kept in the quarantine");
        assert_eq!(fs::read(store.quarantine_path(&d)).unwrap(), b"tampered");
    }

    #[test]
    fn a_blob_hashed_in_this_run_is_verified_again_once_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let src = dir.path().join("data.csv");
        fs::write(&src, b"a,b\n1,2\n").unwrap();
        let d = store.put_file(&src).unwrap();
        assert!(
            store.hashed_unchanged(&d, &store.blob_path(&d)),
            "stored: hashed"
        );
        assert_eq!(store.verified_path(&d).unwrap(), store.blob_path(&d));
        // Same size, other bytes, a later mtime: the stat differs, so the bytes are read.
        let path = store.blob_path(&d);
        fs::write(&path, b"a,b\n1,3\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(matches!(
            store.verified_path(&d),
            Err(StoreError::Corrupt { .. })
        ));
        // Another store of the same directory (another process) has hashed nothing.
        let d2 = store.put_bytes(b"x").unwrap();
        assert!(!Store::existing(dir.path()).hashed_unchanged(&d2, &store.blob_path(&d2)));
    }

    #[test]
    fn action_entry_requires_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"out").unwrap();
        let mut entry = ActionEntry {
            step: "locate".into(),
            key: "k".repeat(64),
            inputs: serde_json::json!({}),
            outputs: BTreeMap::from([("snapshot".to_string(), d.clone())]),
            output_digests: BTreeMap::new(),
            result: serde_json::json!({"rows": 1}),
            output_sizes: BTreeMap::new(),
        };
        store.ac_put(&entry).unwrap();
        assert!(matches!(store.ac_get(&entry.key), AcLookup::Hit(_)));
        fs::remove_file(store.blob_path(&d)).unwrap();
        assert!(matches!(
            store.ac_get(&entry.key),
            AcLookup::OutputMissing(_)
        ));
        entry.outputs.insert("x".into(), "0".repeat(64));
        assert!(
            store.ac_put(&entry).is_err(),
            "no entry without its outputs"
        );
    }

    #[test]
    fn may_hold_entry_for_reads_the_step_of_each_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(
            !store.may_hold_entry_for("execute"),
            "an empty cache holds nothing"
        );
        let entry = |step: &str, key: char| ActionEntry {
            step: step.into(),
            key: key.to_string().repeat(64),
            inputs: serde_json::json!({}),
            outputs: BTreeMap::new(),
            output_digests: BTreeMap::new(),
            result: serde_json::json!({}),
            output_sizes: BTreeMap::new(),
        };
        store.ac_put(&entry("prepare", 'b')).unwrap();
        assert!(!store.may_hold_entry_for("execute"));
        assert!(store.may_hold_entry_for("prepare"));
        store.ac_put(&entry("execute", 'c')).unwrap();
        assert!(store.may_hold_entry_for("execute"));
        // Something that is not an entry may be anything.
        fs::remove_file(store.entry_path(&"c".repeat(64))).unwrap();
        fs::write(store.entry_path(&"d".repeat(64)), b"{").unwrap();
        assert!(store.may_hold_entry_for("execute"));
    }

    #[test]
    fn a_sealed_entry_with_any_byte_changed_is_never_a_different_hit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"out").unwrap();
        let entry = ActionEntry {
            step: "execute".into(),
            key: "a".repeat(64),
            inputs: serde_json::json!({"config": {"max_models": 6}}),
            outputs: BTreeMap::from([("mojo".to_string(), d.clone())]),
            output_digests: BTreeMap::new(),
            result: serde_json::json!({"holdout": {"auc": 0.919}, "models": 6}),
            output_sizes: BTreeMap::from([("mojo".to_string(), 3)]),
        };
        store.ac_put(&entry).unwrap();
        let path = store.entry_path(&entry.key);
        let sealed = fs::read(&path).unwrap();
        // As read (serde_json may parse a float one ulp off how it was printed).
        let read = match store.ac_get(&entry.key) {
            AcLookup::Hit(e) => *e,
            other => panic!("a sealed entry is read back: {other:?}"),
        };
        assert_eq!(read.outputs, entry.outputs);

        // The one this test is for: a metric's digit flipped still parses, but is refused.
        let text = String::from_utf8(sealed.clone()).unwrap();
        assert!(text.contains("0.919"), "{text}");
        fs::write(&path, text.replace("0.919", "0.989")).unwrap();
        assert!(matches!(store.ac_get(&entry.key), AcLookup::Corrupt));

        // Every byte, replaced by each of a few others: a miss, corrupt, or the same entry.
        for at in 0..sealed.len() {
            for by in [b'0', b'9', b'"', b' ', b'x', sealed[at] ^ 1] {
                let mut bytes = sealed.clone();
                if bytes[at] == by {
                    continue;
                }
                bytes[at] = by;
                fs::write(&path, &bytes).unwrap();
                if let AcLookup::Hit(e) = store.ac_get(&entry.key) {
                    assert_eq!(*e, read, "byte {at} set to {by:?} gave another entry");
                }
            }
        }

        // An entry written before seals existed is still read; one with an unknown field is not.
        fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
        assert!(matches!(store.ac_get(&entry.key), AcLookup::Hit(e) if *e == read));
        let mut odd = serde_json::to_value(&entry).unwrap();
        odd["sael"] = serde_json::json!("0");
        fs::write(&path, serde_json::to_vec(&odd).unwrap()).unwrap();
        assert!(matches!(store.ac_get(&entry.key), AcLookup::Corrupt));
    }

    #[test]
    fn put_file_copies_not_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c")).unwrap();
        let src = dir.path().join("data.csv");
        fs::write(&src, "a,b\n1,2\n").unwrap();
        let d = store.put_file(&src).unwrap();
        fs::write(&src, "a,b\n9,9\n").unwrap();
        assert_eq!(store.read_verified(&d).unwrap(), b"a,b\n1,2\n");
    }
}
