//! Finding, or downloading once, the pinned H2O jar.
//!
//! Order: an explicit jar (`MLBUILD_H2O_JAR` / `[h2o] jar`, used as is) → the tool cache
//! (`<tool_cache>/h2o/3.46.0.11/h2o.jar`) → an installed `h2o` Python package of exactly the
//! pinned version (copied into the tool cache) → `pip download` of the wheel (a zip), from which
//! `h2o/backend/bin/h2o.jar` is streamed into the tool cache.
//!
//! Every jar that enters the tool cache is checked against [`JAR_SHA256`] and written
//! temp-then-rename. Hashing 279 MB takes about a second, so after a successful check a marker
//! (`h2o.jar.verified`: size, mtime in ns, sha256) is written beside it; the hash is recomputed
//! only when size or mtime no longer match. Provisioning holds an exclusive lock on
//! `<tool_cache>/h2o/3.46.0.11/.lock`, so two concurrent mlbuild processes download once.
//!
//! Limits: the explicit jar is not checksummed (it may be any version; the fingerprint check on
//! connect catches a version other than the declared one).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{H2oError, PINNED_VERSION};

/// sha256 of `h2o/backend/bin/h2o.jar` in the PyPI wheel `h2o==3.46.0.11`.
pub const JAR_SHA256: &str = "727bab12d915b8b42dcbdb3b59595311e61382a0f8f66d25b546ad5a4497914e";

const JAR_IN_WHEEL: &str = "h2o/backend/bin/h2o.jar";
const MARKER: &str = "h2o.jar.verified";

/// `$XDG_CACHE_HOME/mlbuild`, else `~/.cache/mlbuild` (else a temp dir when there is no HOME).
pub fn default_tool_cache() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            return x.join("mlbuild");
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("mlbuild"),
        None => std::env::temp_dir().join("mlbuild-cache"),
    }
}

/// The jar path inside the tool cache (it may not exist yet).
pub fn cached_jar_path(tool_cache: &Path) -> PathBuf {
    tool_cache.join("h2o").join(PINNED_VERSION).join("h2o.jar")
}

/// Returns a usable jar, provisioning it into `tool_cache` when needed. Blocking (file I/O,
/// hashing, pip); `log` receives one-line progress messages.
pub fn locate_or_provision_jar(
    explicit: Option<&Path>,
    tool_cache: &Path,
    log: &dyn Fn(&str),
) -> Result<PathBuf, H2oError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(H2oError::JarNotFound {
                path: p.to_path_buf(),
            })
        };
    }
    let jar = cached_jar_path(tool_cache);
    if verified_cached(&jar)? {
        return Ok(jar);
    }

    let dir = jar.parent().expect("jar path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| H2oError::io("could not create", dir, e))?;
    let lock_path = dir.join(".lock");
    let lock =
        File::create(&lock_path).map_err(|e| H2oError::io("could not open", &lock_path, e))?;
    use fs4::fs_std::FileExt;
    if !lock
        .try_lock_exclusive()
        .map_err(|e| H2oError::io("could not lock", &lock_path, e))?
    {
        log("waiting for another mlbuild process to finish provisioning the H2O jar …");
        FileExt::lock_exclusive(&lock)
            .map_err(|e| H2oError::io("could not lock", &lock_path, e))?;
    }
    // Someone else may have provisioned it while we waited.
    if verified_cached(&jar)? {
        return Ok(jar);
    }
    remove_leftovers(dir);

    if let Some(pkg_jar) = python_package_jar() {
        log(&format!(
            "copying the H2O {PINNED_VERSION} jar from the installed h2o Python package ({})",
            pkg_jar.display()
        ));
        let mut src =
            File::open(&pkg_jar).map_err(|e| H2oError::io("could not open", &pkg_jar, e))?;
        match install_from_reader(&mut src, &pkg_jar, &jar) {
            Ok(()) => return Ok(jar),
            // A modified package jar: fall through to a clean download.
            Err(H2oError::JarChecksum { .. }) => {
                log("the package's jar has the wrong checksum; downloading instead")
            }
            Err(e) => return Err(e),
        }
    }

    log(&format!(
        "downloading H2O {PINNED_VERSION} (one time, ~266 MB) into `{}` …",
        dir.display()
    ));
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .map_err(|e| H2oError::io("could not create a temp dir in", dir, e))?;
    pip_download(tmp.path())?;
    let wheel = find_wheel(tmp.path())?;
    log("extracting h2o.jar from the wheel …");
    let file = File::open(&wheel).map_err(|e| H2oError::io("could not open", &wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| H2oError::Provision {
        message: format!("`{}` is not a readable wheel: {e}", wheel.display()),
        stderr_tail: None,
    })?;
    let mut entry = zip.by_name(JAR_IN_WHEEL).map_err(|e| H2oError::Provision {
        message: format!("`{}` has no `{JAR_IN_WHEEL}`: {e}", wheel.display()),
        stderr_tail: None,
    })?;
    install_from_reader(&mut entry, &wheel, &jar)?;
    drop(entry);
    log(&format!(
        "H2O {PINNED_VERSION} jar ready: `{}`",
        jar.display()
    ));
    Ok(jar)
}

/// Temp files of a provisioning that was killed. Only the lock holder creates them, so under the
/// lock any that exist are stale.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(".download-") {
            let _ = std::fs::remove_dir_all(e.path());
        } else if name.starts_with(".h2o.jar.") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// True when the cached jar exists and is verified (by marker, or by hashing it now).
/// A jar with a wrong hash is removed, so that it gets provisioned again.
fn verified_cached(jar: &Path) -> Result<bool, H2oError> {
    let Ok(meta) = std::fs::metadata(jar) else {
        return Ok(false);
    };
    let stamp = stamp_of(&meta);
    let marker = jar.with_file_name(MARKER);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if text.trim() == format!("{stamp} {JAR_SHA256}") {
            return Ok(true);
        }
    }
    let found = sha256_file(jar)?;
    if found != JAR_SHA256 {
        let _ = std::fs::remove_file(jar);
        let _ = std::fs::remove_file(&marker);
        return Ok(false);
    }
    write_marker(jar)?;
    Ok(true)
}

pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    format!("{} {}", meta.len(), ns)
}

fn write_marker(jar: &Path) -> Result<(), H2oError> {
    let meta = std::fs::metadata(jar).map_err(|e| H2oError::io("could not stat", jar, e))?;
    let marker = jar.with_file_name(MARKER);
    let dir = jar.parent().unwrap();
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| H2oError::io("could not create a temp file in", dir, e))?;
    writeln!(tmp, "{} {JAR_SHA256}", stamp_of(&meta))
        .map_err(|e| H2oError::io("could not write", tmp.path().to_path_buf(), e))?;
    tmp.persist(&marker)
        .map_err(|e| H2oError::io("could not write", &marker, e.error))?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, H2oError> {
    let mut f = File::open(path).map_err(|e| H2oError::io("could not open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| H2oError::io("could not read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams `src` into a temp file next to `dest`, hashing as it goes; renames it into place
/// (and writes the marker) only if the hash is the pinned one.
fn install_from_reader(src: &mut dyn Read, src_path: &Path, dest: &Path) -> Result<(), H2oError> {
    let dir = dest.parent().unwrap();
    let mut tmp = tempfile::Builder::new()
        .prefix(".h2o.jar.")
        .tempfile_in(dir)
        .map_err(|e| H2oError::io("could not create a temp file in", dir, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| H2oError::io("could not read", src_path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| H2oError::io("could not write", tmp.path().to_path_buf(), e))?;
    }
    let found = hex(&h.finalize());
    if found != JAR_SHA256 {
        return Err(H2oError::JarChecksum {
            path: src_path.to_path_buf(),
            expected: JAR_SHA256.into(),
            found,
        });
    }
    // tempfile creates 0600; the jar is not secret, and others may share the cache.
    use std::os::unix::fs::PermissionsExt;
    let _ = tmp
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644));
    tmp.as_file()
        .sync_all()
        .map_err(|e| H2oError::io("could not sync", tmp.path().to_path_buf(), e))?;
    tmp.persist(dest)
        .map_err(|e| H2oError::io("could not write", dest, e.error))?;
    write_marker(dest)
}

/// The jar of an installed `h2o` Python package of exactly the pinned version, if any.
/// Silent when python3 or the package is absent.
fn python_package_jar() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, h2o; print(h2o.__version__); print(os.path.dirname(h2o.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next()?.trim();
    let dir = lines.next()?.trim();
    if version != PINNED_VERSION {
        return None;
    }
    let jar = Path::new(dir).join("backend").join("bin").join("h2o.jar");
    jar.is_file().then_some(jar)
}

fn pip_download(dest: &Path) -> Result<(), H2oError> {
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(format!("h2o=={PINNED_VERSION}"))
        .arg("-d")
        .arg(dest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| H2oError::Provision {
            message: format!("could not run `python3 -m pip`: {e}"),
            stderr_tail: None,
        })?;
    if !out.status.success() {
        return Err(H2oError::Provision {
            message: format!(
                "`python3 -m pip download h2o=={PINNED_VERSION}` failed ({})",
                out.status
            ),
            stderr_tail: Some(tail_lines(&String::from_utf8_lossy(&out.stderr), 15)),
        });
    }
    Ok(())
}

fn find_wheel(dir: &Path) -> Result<PathBuf, H2oError> {
    let entries = std::fs::read_dir(dir).map_err(|e| H2oError::io("could not read", dir, e))?;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "whl") {
            return Ok(p);
        }
    }
    Err(H2oError::Provision {
        message: format!(
            "pip reported success but left no wheel in `{}`",
            dir.display()
        ),
        stderr_tail: None,
    })
}

/// The last `n` lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_jar_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jar");
        let e = locate_or_provision_jar(Some(&missing), dir.path(), &|_| {}).unwrap_err();
        assert!(matches!(e, H2oError::JarNotFound { .. }));
        let present = dir.path().join("h2o.jar");
        std::fs::write(&present, b"x").unwrap();
        assert_eq!(
            locate_or_provision_jar(Some(&present), dir.path(), &|_| {}).unwrap(),
            present
        );
    }

    #[test]
    fn wrong_checksum_is_refused_and_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("h2o.jar");
        let e =
            install_from_reader(&mut &b"not a jar"[..], Path::new("src.jar"), &dest).unwrap_err();
        assert!(matches!(e, H2oError::JarChecksum { .. }), "{e}");
        assert!(!dest.exists());
        // A bad jar already in the cache is removed and not reported as verified.
        std::fs::write(&dest, b"bad").unwrap();
        assert!(!verified_cached(&dest).unwrap());
        assert!(!dest.exists());
    }

    #[test]
    fn tool_cache_location() {
        let c = default_tool_cache();
        assert!(c.ends_with("mlbuild") || c.ends_with("mlbuild-cache"));
    }

    #[test]
    fn tails() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
