//! One run at a time per project: an exclusive lock file in the cache dir.
//!
//! A second `mlbuild run` in the same project waits (and says so) instead of racing the first
//! over the same action-cache entries and `ml.lock`. The OS releases the lock when the holder
//! exits, even by SIGKILL, so a crashed run never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use super::StoreError;

pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock at `path`, calling `waiting` once if another process holds it.
    pub fn acquire(path: &Path, waiting: impl FnOnce(&str)) -> Result<RunLock, StoreError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                action: "create directory",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| StoreError::Io {
                action: "open lock file",
                path: path.to_path_buf(),
                source,
            })?;
        let free = FileExt::try_lock_exclusive(&file).unwrap_or(false);
        if !free {
            let holder = fs::read_to_string(path).unwrap_or_default();
            waiting(holder.trim());
            FileExt::lock_exclusive(&file).map_err(|source| StoreError::Io {
                action: "lock",
                path: path.to_path_buf(),
                source,
            })?;
        }
        let _ = file.set_len(0);
        let _ = write!(file, "pid {}", std::process::id());
        Ok(RunLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Who holds the lock at `path` now (`pid N`), without waiting; None when it is free or
    /// no run ever took it. Racy by nature: a run may take the lock right after.
    pub fn holder(path: &Path) -> Option<String> {
        let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        if FileExt::try_lock_exclusive(&file).unwrap_or(false) {
            let _ = FileExt::unlock(&file);
            return None;
        }
        let holder = fs::read_to_string(path).unwrap_or_default();
        Some(match holder.trim() {
            "" => "a process".to_string(),
            h => h.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}
