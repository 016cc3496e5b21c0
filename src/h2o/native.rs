//! XGBoost's native libraries, unpacked from the pinned jar once instead of at every start.
//!
//! H2O's XGBoost extension loads `xgboost4j_gpu` (else `xgboost4j_minimal`) at start: it asks
//! `System.loadLibrary` first and, when that fails, inflates the library from the jar
//! (`lib/linux_64/libxgboost4j_gpu.so`, 157 MB) into the JVM's temp dir and loads the copy.
//! That inflation is on the path of every cold start (measured with the class-data archive, 5
//! pairs: a node answered `/3/Cloud` in 1.54–1.85 s with the libraries on the library path
//! against 2.87–2.93 s without; docs/performance.md). mlbuild unpacks them once into the tool cache, at
//! `<tool cache>/h2o/<version>/native/<jar sha256, 16 hex>/`, and puts that directory first on
//! the node's `LD_LIBRARY_PATH` (which the JVM prepends to `java.library.path`).
//!
//! The directory is written under `native/.lock` into a temp dir beside it and renamed into
//! place; `libs.verified` lists each file's size and mtime and is written last, so a directory
//! without it, or with a file that changed, is unpacked again. A library the JVM still cannot
//! load costs nothing but the old path: H2O falls back to inflating from the jar. Only the
//! provisioned pinned jar on x86-64 Linux gets this (an explicit jar's contents are not known
//! without reading it); `MLBUILD_H2O_NATIVE_LIBS=0` turns it off.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::H2oError;

/// The environment variable that turns the unpacked libraries off (`0`).
pub const ENV: &str = "MLBUILD_H2O_NATIVE_LIBS";

/// The folder of the jar that holds this platform's libraries (`Platform.getPlatform()` in
/// H2O's loader); `None` where mlbuild leaves the loading to H2O.
const PLATFORM: Option<&str> = if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
    Some("linux_64")
} else {
    None
};

const MANIFEST: &str = "libs.verified";

/// Whether unpacked libraries are used at all.
pub fn enabled() -> bool {
    std::env::var(ENV).map_or(true, |v| v != "0")
}

/// Where the libraries of the jar whose sha256 is `jar_sha256` are unpacked.
pub fn dir_for(tool_cache: &Path, jar_sha256: &str) -> PathBuf {
    tool_cache
        .join("h2o")
        .join(super::PINNED_VERSION)
        .join("native")
        .join(&jar_sha256[..16.min(jar_sha256.len())])
}

/// The directory to put on the library path of a node running `jar`: unpacked now when it is
/// not there yet; `None` for an explicit jar, when turned off, on another platform, or when
/// unpacking fails (`log` says why; H2O then unpacks as it always did).
pub fn prepare(
    jar: &Path,
    tool_cache: &Path,
    explicit_jar: bool,
    log: &(dyn Fn(&str) + Sync),
) -> Option<PathBuf> {
    let platform = PLATFORM?;
    if explicit_jar || !enabled() {
        return None;
    }
    let dir = dir_for(tool_cache, super::JAR_SHA256);
    if verified(&dir) {
        return Some(dir);
    }
    match unpack(jar, platform, &dir) {
        Ok(true) => Some(dir),
        Ok(false) => None,
        Err(e) => {
            log(&format!("leaving XGBoost's native library to H2O: {e}"));
            None
        }
    }
}

/// The `LD_LIBRARY_PATH` for a JVM that should find `dir` first: `dir`, then what the
/// environment already had.
pub fn library_path(dir: &Path) -> std::ffi::OsString {
    let mut value = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        value.push(":");
        value.push(old);
    }
    value
}

/// Whether `dir` holds a complete unpacking: its manifest lists at least one file, and every
/// listed file has the size and mtime recorded when it was written.
fn verified(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST)) else {
        return false;
    };
    let mut any = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, stamp)) = line.split_once(' ') else {
            return false;
        };
        match std::fs::metadata(dir.join(name)) {
            Ok(meta) if super::provision::stamp_of(&meta) == stamp => any = true,
            _ => return false,
        }
    }
    any
}

/// Unpacks `lib/<platform>/*.so` of `jar` into `dir` (replacing whatever is there); false
/// when the jar bundles none.
fn unpack(jar: &Path, platform: &str, dir: &Path) -> Result<bool, H2oError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| H2oError::io("could not create", parent, e))?;
    let _lock = super::lock_dir(parent)?;
    if verified(dir) {
        return Ok(true);
    }
    let file = std::fs::File::open(jar).map_err(|e| H2oError::io("could not open", jar, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| H2oError::io("could not read", jar, std::io::Error::other(e)))?;
    let incoming = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempdir_in(parent)
        .map_err(|e| H2oError::io("could not create a temp dir in", parent, e))?;
    let prefix = format!("lib/{platform}/");
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| H2oError::io("could not read", jar, std::io::Error::other(e)))?;
        let Some(name) = entry.name().strip_prefix(&prefix).map(str::to_string) else {
            continue;
        };
        if !entry.is_file() || name.contains('/') || !name.ends_with(".so") {
            continue;
        }
        let dest = incoming.path().join(&name);
        let mut out =
            std::fs::File::create(&dest).map_err(|e| H2oError::io("could not create", &dest, e))?;
        std::io::copy(&mut entry, &mut out)
            .and_then(|_| out.sync_all())
            .map_err(|e| H2oError::io("could not write", &dest, e))?;
        names.push(name);
    }
    if names.is_empty() {
        return Ok(false);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| H2oError::io("could not remove", dir, e))?;
    }
    let unpacked = incoming.keep();
    std::fs::rename(&unpacked, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&unpacked);
        H2oError::io("could not move into place", dir, e)
    })?;
    let mut manifest = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| H2oError::io("could not create a temp file in", dir, e))?;
    for name in &names {
        let path = dir.join(name);
        let meta =
            std::fs::metadata(&path).map_err(|e| H2oError::io("could not stat", &path, e))?;
        writeln!(manifest, "{name} {}", super::provision::stamp_of(&meta))
            .map_err(|e| H2oError::io("could not write", manifest.path().to_path_buf(), e))?;
    }
    let manifest_path = dir.join(MANIFEST);
    manifest
        .persist(&manifest_path)
        .map_err(|e| H2oError::io("could not write", &manifest_path, e.error))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar_with(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("h2o.jar");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    #[test]
    fn unpacks_the_platforms_libraries_once_and_again_when_one_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let jar = jar_with(
            tmp.path(),
            &[
                ("lib/linux_64/libxgboost4j_gpu.so", b"gpu"),
                ("lib/linux_64/libxgboost4j_minimal.so", b"minimal"),
                ("lib/osx_64/libxgboost4j_minimal.dylib", b"other"),
                ("water/H2O.class", b"class"),
            ],
        );
        let dir = tmp.path().join("native").join("abc");
        assert!(!verified(&dir));
        assert!(unpack(&jar, "linux_64", &dir).unwrap());
        assert!(verified(&dir));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "libs.verified",
                "libxgboost4j_gpu.so",
                "libxgboost4j_minimal.so"
            ]
        );
        assert_eq!(
            std::fs::read(dir.join("libxgboost4j_gpu.so")).unwrap(),
            b"gpu"
        );
        // A library cut short is noticed by its size, and unpacked again.
        std::fs::write(dir.join("libxgboost4j_gpu.so"), b"g").unwrap();
        assert!(!verified(&dir));
        assert!(unpack(&jar, "linux_64", &dir).unwrap());
        assert_eq!(
            std::fs::read(dir.join("libxgboost4j_gpu.so")).unwrap(),
            b"gpu"
        );
        // No temp dirs are left beside it.
        let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".incoming-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_jar_without_libraries_for_the_platform_unpacks_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let jar = jar_with(tmp.path(), &[("lib/osx_64/libx.dylib", b"x")]);
        let dir = tmp.path().join("native").join("abc");
        assert!(!unpack(&jar, "linux_64", &dir).unwrap());
        assert!(!dir.exists());
    }

    #[test]
    fn the_library_path_puts_the_dir_first() {
        let p = library_path(Path::new("/x/native"));
        assert!(p.to_string_lossy().starts_with("/x/native"));
    }
}
