//! The stat cache: (path, size, mtime, ctime, inode) → digest, so an unchanged data file costs
//! a `stat`, not a read.
//!
//! The change time (`ctime`) is in the stamp because no program can set it: a rewrite in place
//! that puts the old mtime back (`cp -p` onto the file, `touch -r`, an archive extracted over
//! it) keeps size, mtime and inode, and was taken for the old bytes.
//!
//! Racy timestamps (as git handles them): a file changed within the same second as the moment
//! its digest was recorded could be changed again without its timestamps moving (coarse
//! timestamps). Such entries are not trusted: the file is hashed again until its last change
//! (its ctime, never older than its mtime) is safely older than the recording time. Nothing here
//! enters a key; it only saves hashing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{hash_file, write_atomic, Digest, StoreError};

/// A file as `stat` sees it: size, modification and change times (ns) and inode. Two equal
/// stamps of a path mean an unchanged file, unless it was rewritten with the same size within
/// the filesystem's timestamp granularity (the stat cache's racy rule below guards that case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            inode: meta.ino(),
        }
    }

    /// The stamp of the file at `path`, if it can be read.
    pub fn of_path(path: &Path) -> Option<FileStamp> {
        fs::metadata(path).ok().as_ref().map(FileStamp::of)
    }
}

/// A file's stamp, written field by field (serde's `flatten` cannot read an `i128` back).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    /// 0 in an entry written before the ctime was recorded: it never matches, so such a file
    /// is hashed once more.
    #[serde(default)]
    ctime_ns: i128,
    inode: u64,
    digest: Digest,
    recorded_ns: i128,
}

impl Entry {
    fn stamp(&self) -> FileStamp {
        FileStamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            inode: self.inode,
        }
    }
}

/// Path → entry. Hashed, not ordered: a source of 10,000 files looks each up once a run
/// (written sorted, see [`StatCache::save`]).
type Entries = std::collections::HashMap<String, Entry, crate::table::FastHash>;

#[derive(Debug, Default)]
pub struct StatCache {
    path: PathBuf,
    entries: Entries,
    dirty: bool,
}

/// How long after the recording an mtime must lie before the entry is trusted.
const RACY_NS: i128 = 2_000_000_000;

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl StatCache {
    pub fn load(path: &Path) -> StatCache {
        let entries = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path: path.to_path_buf(),
            entries,
            dirty: false,
        }
    }

    /// The digest of `file`, from the cache when its stat matches and is not racy.
    pub fn digest(&mut self, file: &Path) -> Result<Digest, StoreError> {
        let meta = fs::metadata(file).map_err(|source| StoreError::Io {
            action: "read metadata of",
            path: file.to_path_buf(),
            source,
        })?;
        self.digest_of(file, &meta)
    }

    /// [`StatCache::digest`] of a file whose metadata the caller has just read.
    pub fn digest_of(&mut self, file: &Path, meta: &fs::Metadata) -> Result<Digest, StoreError> {
        let stamp = FileStamp::of(meta);
        let key = file.to_string_lossy().into_owned();
        if let Some(e) = self.entries.get(&key) {
            let racy = e.recorded_ns - stamp.mtime_ns.max(stamp.ctime_ns) < RACY_NS;
            if e.stamp() == stamp && !racy {
                return Ok(e.digest.clone());
            }
        }
        let recorded_ns = now_ns();
        let digest = hash_file(file)?;
        self.entries.insert(
            key,
            Entry {
                size: stamp.size,
                mtime_ns: stamp.mtime_ns,
                ctime_ns: stamp.ctime_ns,
                inode: stamp.inode,
                digest: digest.clone(),
                recorded_ns,
            },
        );
        self.dirty = true;
        Ok(digest)
    }

    pub fn save(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        let sorted: BTreeMap<&String, &Entry> = self.entries.iter().collect();
        let bytes = serde_json::to_vec(&sorted).expect("stat entries serialise");
        write_atomic(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets a file's mtime (seconds since the epoch, whole seconds) like a coarse filesystem would.
    fn set_mtime(path: &Path, secs: i64) {
        let c = std::ffi::CString::new(path.as_os_str().to_string_lossy().as_bytes()).unwrap();
        let t = libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let times = [t, t];
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) },
            0
        );
    }

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn same_second_edits_are_not_missed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.csv");
        let mut cache = StatCache::load(&dir.path().join("stat.json"));
        // Recorded in the same second as the file's (whole-second) mtime: racy.
        let t = now_secs();
        fs::write(&f, "a\n1\n").unwrap();
        set_mtime(&f, t);
        let d1 = cache.digest(&f).unwrap();
        // An edit with the same size, inode and mtime: a stat alone cannot see it.
        fs::write(&f, "a\n2\n").unwrap();
        set_mtime(&f, t);
        let d2 = cache.digest(&f).unwrap();
        assert_ne!(d1, d2, "a racy entry is rehashed");
    }

    #[test]
    fn settled_entries_cost_a_stat_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.csv");
        let store = dir.path().join("stat.json");
        fs::write(&f, "a\n1\n").unwrap();
        set_mtime(&f, now_secs() - 60);
        let mut cache = StatCache::load(&store);
        let d1 = cache.digest(&f).unwrap();
        settle(&mut cache);
        cache.save().unwrap();
        // Same stat: a settled entry is trusted, without a read (a file whose bytes it does
        // not hold proves it).
        let mut reloaded = StatCache::load(&store);
        let key = f.to_string_lossy().into_owned();
        reloaded.entries.get_mut(&key).unwrap().digest = "0".repeat(64);
        assert_eq!(reloaded.digest(&f).unwrap(), "0".repeat(64));
        // A touch (new mtime) is seen, and the file is hashed again.
        set_mtime(&f, now_secs() - 30);
        assert_eq!(reloaded.digest(&f).unwrap(), d1);
    }

    /// Makes every entry look recorded long after its file last changed (not racy).
    fn settle(cache: &mut StatCache) {
        for e in cache.entries.values_mut() {
            e.recorded_ns += 3_600 * 1_000_000_000;
        }
    }

    /// A rewrite in place that puts the old mtime back (`cp -p` onto the file) keeps size,
    /// mtime and inode; its change time moves, and the file is hashed again (it was taken for
    /// the old bytes).
    #[test]
    fn a_rewrite_that_restores_the_mtime_is_seen_by_its_ctime() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.csv");
        let old = now_secs() - 600;
        fs::write(&f, "a\n1\n").unwrap();
        set_mtime(&f, old);
        let mut cache = StatCache::load(&dir.path().join("stat.json"));
        let d1 = cache.digest(&f).unwrap();
        settle(&mut cache);
        let before = FileStamp::of_path(&f).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&f, "a\n2\n").unwrap();
        set_mtime(&f, old);
        let after = FileStamp::of_path(&f).unwrap();
        assert_eq!(
            (before.size, before.mtime_ns, before.inode),
            (after.size, after.mtime_ns, after.inode)
        );
        let d2 = cache.digest(&f).unwrap();
        assert_ne!(d1, d2, "the rewrite was taken for the old bytes");
        assert_eq!(d2, hash_file(&f).unwrap());
    }
}
