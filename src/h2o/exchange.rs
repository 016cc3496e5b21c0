//! `[h2o] exchange_dir`: a directory that mlbuild and every node of a cluster read at the same
//! path (an NFS mount, a volume shared by containers). A file the cluster must load is lent
//! there under its content digest and imported with `ImportFiles`, H2O's parallel reader,
//! instead of going through one node as a `PostFile` upload.
//!
//! Layout (versioned, so a later layout never misreads this one):
//!
//! | path under `exchange_dir` | what |
//! |---|---|
//! | `mlbuild-exchange-v1/DIGEST.csv` | a lent file, named by the blake3 digest of its bytes |
//! | `mlbuild-exchange-v1/leases/DIGEST.HOST.PID.NONCE` | one per load that needs the file |
//! | `mlbuild-exchange-v1/incoming/` | copies being written (renamed into place when complete) |
//! | `mlbuild-exchange-v1/.lock` | `flock`ed while leases and files are added or removed |
//!
//! A file lives while a lease names it: [`Exchange::lend`] takes a lease before it looks for the
//! file, dropping the [`Lease`] (after H2O has parsed the data into memory) removes it, and the
//! load that drops the last lease removes the file. A process killed with SIGKILL leaves its
//! lease; [`Exchange::sweep`] (run by every lend and by `cache gc`) removes leases of processes
//! that no longer exist on this host and leases older than [`STALE_LEASE`] from other hosts,
//! then every file no lease names. An existing file is verified (digest) before it is lent.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::H2oError;

/// The layout's directory inside `exchange_dir`.
pub const LAYOUT: &str = "mlbuild-exchange-v1";

/// Where copies are written before they are renamed into place.
const INCOMING: &str = "incoming";

/// A lease from another host (whose processes mlbuild cannot check) older than this is
/// abandoned: no load holds a file for a day.
pub const STALE_LEASE: Duration = Duration::from_secs(24 * 3600);

/// A temporary copy older than this belongs to a process that died while writing it.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// The exchange directory of one cluster.
#[derive(Debug, Clone)]
pub struct Exchange {
    root: PathBuf,
}

/// A file lent to the cluster; dropping it gives the file back.
#[derive(Debug)]
pub struct Lease {
    root: PathBuf,
    digest: String,
    lease: PathBuf,
    path: PathBuf,
}

/// What [`Exchange::sweep`] removed (or would remove).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub files: usize,
    pub bytes: u64,
    pub leases: usize,
}

impl Exchange {
    /// The exchange under `dir` (nothing is created until something is lent).
    pub fn new(dir: &Path) -> Exchange {
        Exchange {
            root: dir.join(LAYOUT),
        }
    }

    /// The directory the layout lives in.
    pub fn layout_dir(&self) -> &Path {
        &self.root
    }

    /// Puts `src`'s bytes at `DIGEST.csv` in the exchange (copied only when no verified copy is
    /// there) and leases it until the returned [`Lease`] is dropped.
    pub fn lend(&self, src: &Path) -> Result<Lease, H2oError> {
        // The shared directory itself is never created: a missing mount must not become a
        // local directory the nodes cannot see.
        let shared = self.root.parent().unwrap_or(&self.root);
        if !shared.is_dir() {
            return Err(H2oError::ExchangeUnreadable {
                path: shared.to_path_buf(),
                detail: "the directory does not exist here".into(),
            });
        }
        for dir in [self.root.join("leases"), self.root.join(INCOMING)] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| H2oError::io("could not create the exchange directory", &dir, e))?;
        }
        // Leftovers of killed runs go first, so a dead lease never keeps a file forever.
        self.sweep(SystemTime::now(), false)?;
        let digest = digest_of(src)?;
        let path = self.root.join(format!("{digest}.csv"));
        let lease = self.root.join("leases").join(format!(
            "{digest}.{}.{}.{:08x}",
            crate::registry::host_name().replace('.', "_"),
            std::process::id(),
            super::node::random_u64() as u32
        ));
        let present = {
            let _lock = self.lock()?;
            File::create(&lease)
                .map_err(|e| H2oError::io("could not write the lease", &lease, e))?;
            path.is_file()
        };
        let lease = Lease {
            root: self.root.clone(),
            digest: digest.clone(),
            lease,
            path,
        };
        // Our lease exists, so no release removes the file while we check or copy it.
        if !(present && digest_of(&lease.path)? == digest) {
            let tmp = tempfile::NamedTempFile::new_in(self.root.join(INCOMING))
                .map_err(|e| H2oError::io("could not create a file in", &self.root, e))?;
            copy_verified(src, tmp.as_file(), &digest)?;
            tmp.persist(&lease.path)
                .map_err(|e| H2oError::io("could not move into place", &lease.path, e.error))?;
        }
        Ok(lease)
    }

    /// Removes stale leases, abandoned temporary copies and every file no lease names; with
    /// `dry_run`, only counts them.
    pub fn sweep(&self, now: SystemTime, dry_run: bool) -> Result<Swept, H2oError> {
        let mut swept = Swept::default();
        if !self.root.is_dir() {
            return Ok(swept);
        }
        let _lock = self.lock()?;
        let me = crate::registry::host_name().replace('.', "_");
        let mut held = std::collections::BTreeSet::new();
        for (name, age) in entries(&self.root.join("leases"), now) {
            let mut parts = name.splitn(4, '.');
            let (digest, host, pid) = (parts.next(), parts.next(), parts.next());
            let pid = pid.and_then(|p| p.parse::<i64>().ok());
            let dead = match (host, pid) {
                (Some(h), Some(pid)) if h == me => !crate::registry::process_exists(pid),
                _ => age > STALE_LEASE,
            };
            if dead {
                swept.leases += 1;
                if !dry_run {
                    let _ = std::fs::remove_file(self.root.join("leases").join(&name));
                }
            } else if let Some(d) = digest {
                held.insert(d.to_string());
            }
        }
        for (name, age) in entries(&self.root.join(INCOMING), now) {
            if age > STALE_TMP && !dry_run {
                let _ = std::fs::remove_file(self.root.join(INCOMING).join(name));
            }
        }
        for (name, _) in entries(&self.root, now) {
            let Some(digest) = name.strip_suffix(".csv") else {
                continue;
            };
            if held.contains(digest) {
                continue;
            }
            let path = self.root.join(&name);
            swept.files += 1;
            swept.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
            if !dry_run {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(swept)
    }

    fn lock(&self) -> Result<File, H2oError> {
        super::lock_dir(&self.root)
    }
}

impl Lease {
    /// Where the cluster reads the lent file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Ok(_lock) = super::lock_dir(&self.root) else {
            // The lease stays; the next sweep removes it once this process is gone.
            return;
        };
        let _ = std::fs::remove_file(&self.lease);
        let prefix = format!("{}.", self.digest);
        let still_needed = std::fs::read_dir(self.root.join("leases"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or(true);
        if !still_needed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Names and ages of the plain files directly in `dir` (none when it cannot be read).
fn entries(dir: &Path, now: SystemTime) -> Vec<(String, Duration)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            Some((e.file_name().to_string_lossy().into_owned(), age))
        })
        .collect()
}

/// The blake3 digest of a file, as the store computes it ([`crate::store::hash_file`]).
fn digest_of(path: &Path) -> Result<String, H2oError> {
    crate::store::hash_file(path)
        .map_err(|e| H2oError::io("could not hash", path, std::io::Error::other(e.to_string())))
}

/// Copies `src` into `dst`, failing if the bytes copied do not have `digest` (the source
/// changed between hashing and copying).
fn copy_verified(src: &Path, mut dst: &File, digest: &str) -> Result<(), H2oError> {
    let mut file = File::open(src).map_err(|e| H2oError::io("could not read", src, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| H2oError::io("could not read", src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(|e| H2oError::io("could not write into the exchange for", src, e))?;
    }
    dst.sync_all()
        .map_err(|e| H2oError::io("could not write into the exchange for", src, e))?;
    let got = hasher.finalize().to_hex().to_string();
    if got != digest {
        return Err(H2oError::io(
            "changed while it was copied into the exchange",
            src,
            std::io::Error::other(format!("digest {digest} became {got}")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn csv_files(ex: &Exchange) -> Vec<String> {
        let mut v: Vec<String> = entries(ex.layout_dir(), SystemTime::now())
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.ends_with(".csv"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_lent_file_is_named_by_its_digest_and_leaves_with_the_last_lease() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exchange::new(&dir.path().join("exchange"));
        let src = data(dir.path(), "train.csv", "a,b\n1,2\n");
        let missing = ex.lend(&src).unwrap_err();
        assert!(
            matches!(missing, H2oError::ExchangeUnreadable { .. }),
            "a missing mount is never created: {missing}"
        );
        std::fs::create_dir(dir.path().join("exchange")).unwrap();
        let digest = blake3::hash(b"a,b\n1,2\n").to_hex().to_string();
        let first = ex.lend(&src).unwrap();
        assert_eq!(first.path(), ex.layout_dir().join(format!("{digest}.csv")));
        assert_eq!(std::fs::read(first.path()).unwrap(), b"a,b\n1,2\n");
        let second = ex.lend(&src).unwrap();
        assert_eq!(second.path(), first.path());
        drop(first);
        assert!(second.path().is_file(), "another load still holds it");
        let path = second.path().to_path_buf();
        drop(second);
        assert!(!path.exists(), "the last lease takes the file with it");
        assert!(entries(&ex.layout_dir().join("leases"), SystemTime::now()).is_empty());
    }

    #[test]
    fn a_damaged_copy_in_the_exchange_is_replaced_before_it_is_lent() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exchange::new(dir.path());
        let src = data(dir.path(), "train.csv", "x\n1\n2\n");
        let held = ex.lend(&src).unwrap();
        std::fs::write(held.path(), "x\n1\n3\n").unwrap();
        let again = ex.lend(&src).unwrap();
        assert_eq!(std::fs::read(again.path()).unwrap(), b"x\n1\n2\n");
    }

    #[test]
    fn sweep_removes_dead_leases_and_unleased_files_but_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exchange::new(dir.path());
        let live = ex.lend(&data(dir.path(), "a.csv", "a\n1\n")).unwrap();
        let dead = ex.lend(&data(dir.path(), "b.csv", "b\n2\n")).unwrap();
        // A process killed with SIGKILL: its lease stays, naming a pid that no longer exists.
        let killed = dead.lease.with_file_name(format!(
            "{}.{}.{}.0",
            dead.digest,
            crate::registry::host_name().replace('.', "_"),
            i32::MAX
        ));
        std::fs::rename(&dead.lease, &killed).unwrap();
        let dead_path = dead.path().to_path_buf();
        std::mem::forget(dead);
        // A file no lease names (left by a crash between release steps).
        std::fs::write(
            ex.layout_dir().join(format!("{}.csv", "0".repeat(64))),
            "z\n",
        )
        .unwrap();
        let before = csv_files(&ex).len();
        let counted = ex.sweep(SystemTime::now(), true).unwrap();
        assert_eq!(
            counted,
            Swept {
                files: 2,
                bytes: 6,
                leases: 1
            }
        );
        assert_eq!(csv_files(&ex).len(), before, "a dry run removes nothing");
        assert_eq!(ex.sweep(SystemTime::now(), false).unwrap(), counted);
        assert!(!dead_path.exists());
        assert!(live.path().is_file());
        assert_eq!(csv_files(&ex).len(), 1);
        // Leases from another host are trusted for a day.
        let other = ex
            .layout_dir()
            .join("leases")
            .join(format!("{}.elsewhere.1.0", "1".repeat(64)));
        std::fs::write(&other, "").unwrap();
        std::fs::write(
            ex.layout_dir().join(format!("{}.csv", "1".repeat(64))),
            "y\n",
        )
        .unwrap();
        assert_eq!(ex.sweep(SystemTime::now(), false).unwrap().files, 0);
        let later = SystemTime::now() + STALE_LEASE + Duration::from_secs(60);
        assert_eq!(ex.sweep(later, false).unwrap().leases, 1);
        assert!(
            live.path().is_file(),
            "a live lease of this host never ages out"
        );
    }
}
