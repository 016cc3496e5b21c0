//! A class-data-sharing archive for the pinned jar: the classes H2O loads at start, parsed and
//! laid out once, mapped by every later JVM instead of read from the jar again (measured: a
//! node answers `/3/Cloud` in 2.45 s with it against 3.0 s without; docs/h2o.md).
//!
//! The archive lives in the tool cache beside the jar, at
//! `<tool cache>/h2o/<version>/cds/h2o-<key>.jsa`, where the key is a digest of the jar's
//! sha256, its path and the Java that runs it (a JVM maps an archive only for the same JVM build
//! and class path). It is built once, in a launch of its own ([`build`]): a node started with
//! `-XX:ArchiveClassesAtExit`, waited for until healthy, given a small job that loads the
//! classes a run uses (parse, AutoML, scoring, SHAP, MOJO export), ended with SIGTERM (the dynamic archive
//! is written only on a clean exit), then verified and renamed into place with a blake3 sidecar
//! (`.jsa.blake3`). A truncated archive crashes the JVM rather than being ignored (measured
//! here), so [`usable`] rehashes it before every launch (37 MB, ~20 ms). Each launch logs the
//! JVM's `-Xlog:cds` to `cds.log` in the node's directory; an archive the JVM did not map
//! ([`mapped`]) is removed, so the next launch builds a fresh one. `MLBUILD_H2O_CDS=0` turns it
//! all off.

use std::path::{Path, PathBuf};

use super::node::{ClassData, LaunchSpec, LocalNode};
use super::H2oError;

/// The environment variable that turns the archive off (`0`).
pub const ENV: &str = "MLBUILD_H2O_CDS";

/// Whether archives are used at all (`MLBUILD_H2O_CDS=0` turns them off).
pub fn enabled() -> bool {
    std::env::var(ENV).map_or(true, |v| v != "0")
}

/// Where the archive for this jar and Java lives.
pub fn archive_path(tool_cache: &Path, jar_sha256: &str, jar: &Path, java: &Path) -> PathBuf {
    let mut h = blake3::Hasher::new();
    for part in [
        jar_sha256.as_bytes(),
        jar.as_os_str().as_encoded_bytes(),
        java.as_os_str().as_encoded_bytes(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let key = h.finalize().to_hex();
    tool_cache
        .join("h2o")
        .join(super::PINNED_VERSION)
        .join("cds")
        .join(format!("h2o-{}.jsa", &key[..16]))
}

fn sidecar(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".blake3");
    PathBuf::from(s)
}

/// The archive, if it exists and its bytes match the digest recorded when it was built; a
/// damaged one is removed.
pub fn usable(archive: &Path) -> Option<PathBuf> {
    let recorded = std::fs::read_to_string(sidecar(archive)).ok()?;
    if crate::store::hash_file(archive).ok()? == recorded.trim() {
        return Some(archive.to_path_buf());
    }
    discard(archive);
    None
}

/// Removes the archive and its sidecar (the next launch builds a new one).
pub fn discard(archive: &Path) {
    let _ = std::fs::remove_file(sidecar(archive));
    let _ = std::fs::remove_file(archive);
}

/// Whether the JVM whose `-Xlog:cds` output is `log` mapped the dynamic archive: `None` when
/// the log cannot be read.
pub fn mapped(log: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(log).ok()?;
    Some(
        text.contains("Mapped dynamic region")
            && !text.contains("Unable to use shared archive")
            && !text.contains("mismatch"),
    )
}

/// The class data a launch of `spec` should use: the archive for the provisioned pinned jar
/// (`explicit_jar` false), built first if there is none yet; nothing for an explicit jar (whose
/// digest is not known without reading it), when turned off, or when the build fails (`log`
/// says why; the launch goes on without).
pub async fn prepare(
    spec: &LaunchSpec,
    tool_cache: &Path,
    explicit_jar: bool,
    log: &(dyn Fn(&str) + Sync),
) -> ClassData {
    if explicit_jar || !enabled() {
        return ClassData::None;
    }
    let archive = archive_path(tool_cache, super::JAR_SHA256, &spec.jar, &spec.java);
    if let Some(found) = usable(&archive) {
        return ClassData::Use(found);
    }
    log("building a class-data archive for the H2O jar (once; later starts map it) …");
    let started = std::time::Instant::now();
    match build(spec, &archive).await {
        Ok(()) => {
            log(&format!(
                "class-data archive ready ({:.1} s)",
                started.elapsed().as_secs_f64()
            ));
            ClassData::Use(archive)
        }
        Err(e) => {
            log(&format!("starting without a class-data archive: {e}"));
            ClassData::None
        }
    }
}

/// Launches `spec`, and when its archive made the launch fail or was not mapped, removes the
/// archive (the next launch builds a new one) — relaunching without it after a failure.
pub async fn launch(spec: &LaunchSpec, log: &(dyn Fn(&str) + Sync)) -> Result<LocalNode, H2oError> {
    let ClassData::Use(archive) = &spec.class_data else {
        return LocalNode::launch(spec).await;
    };
    match LocalNode::launch(spec).await {
        Ok(node) => {
            if node.class_data_mapped() == Some(false) {
                log("the JVM did not map the class-data archive; it is rebuilt on the next start");
                discard(archive);
            }
            Ok(node)
        }
        Err(e) => {
            log(&format!(
                "H2O failed to start with the class-data archive ({e}); starting without it"
            ));
            discard(archive);
            LocalNode::launch(&LaunchSpec {
                class_data: ClassData::None,
                ..spec.clone()
            })
            .await
        }
    }
}

/// Builds the archive for `spec`'s jar and Java at `archive` in a launch of its own (a single
/// node), unless another process built it meanwhile. Holds `<archive>.lock` while it works.
pub async fn build(spec: &LaunchSpec, archive: &Path) -> Result<(), H2oError> {
    let dir = archive.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| H2oError::io("could not create", dir, e))?;
    let locked = dir.to_path_buf();
    let lock = tokio::task::spawn_blocking(move || super::lock_dir(&locked))
        .await
        .map_err(|e| H2oError::io("could not lock", dir, std::io::Error::other(e)))??;
    if usable(archive).is_some() {
        return Ok(());
    }
    let tmp = dir.join(format!("building-{}.jsa", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let node = LocalNode::launch(&LaunchSpec {
        nodes: 1,
        class_data: ClassData::Dump(tmp.clone()),
        ..spec.clone()
    })
    .await?;
    // The classes a run loads later (parse, AutoML's algorithms, scoring, SHAP, MOJO export)
    // belong in the archive too: a small job loads them (measured: a cold demo run 0.4 s
    // faster than with the classes of the start alone). It is best effort: the archive is
    // written at exit whatever the job did.
    if let Ok(client) = super::Client::new(&node.url()) {
        let client = client.with_hand_over(super::HandOver::LocalPath);
        let _ = rehearse(&client, dir).await;
    }
    node.shutdown_within(std::time::Duration::from_secs(120))
        .await?;
    let digest = crate::store::hash_file(&tmp).map_err(|e| {
        H2oError::io(
            "the JVM wrote no archive at",
            &tmp,
            std::io::Error::other(e.to_string()),
        )
    })?;
    std::fs::write(sidecar(archive), digest)
        .map_err(|e| H2oError::io("could not write", sidecar(archive), e))?;
    std::fs::rename(&tmp, archive)
        .map_err(|e| H2oError::io("could not move into place", archive, e))?;
    drop(lock);
    Ok(())
}

/// A small binary job on synthetic rows (deterministic): parse, AutoML with every default
/// algorithm but deep learning, predictions, contributions, MOJO.
async fn rehearse(client: &super::Client, dir: &Path) -> Result<(), H2oError> {
    use super::ColumnKind::{Enum, Numeric};
    let csv = dir.join(format!("rehearsal-{}.csv", std::process::id()));
    let mut text = String::from("x1,x2,c,y\n");
    for i in 0..300u32 {
        let (a, b) = (f64::from(i % 17) / 3.0, f64::from((i * 7) % 23) / 5.0);
        let c = ["a", "b", "c"][(i % 3) as usize];
        let y = u32::from(a + b + f64::from(i % 3) > 6.0 || i % 11 == 0);
        text.push_str(&format!("{a},{b},{c},{y}\n"));
    }
    std::fs::write(&csv, text).map_err(|e| H2oError::io("could not write", &csv, e))?;
    let columns = [
        ("x1".to_string(), Numeric),
        ("x2".to_string(), Numeric),
        ("c".to_string(), Enum),
        ("y".to_string(), Enum),
    ];
    let result = async {
        client.load_csv(&csv, "cds_rows", &columns).await?;
        let run = client
            .automl(
                &super::AutoMlSpec {
                    project_name: "cds_rehearsal".into(),
                    training_frame: "cds_rows".into(),
                    leaderboard_frame: Some("cds_rows".into()),
                    response_column: "y".into(),
                    ignored_columns: Vec::new(),
                    seed: 1,
                    max_models: 4,
                    nfolds: 2,
                    include_algos: Vec::new(),
                    exclude_algos: vec!["DeepLearning".into()],
                    sort_metric: "AUC".into(),
                },
                &|_, _| {},
            )
            .await?;
        for row in run.leaderboard.rows.iter().take(2) {
            let _ = client.download_mojo(&row.model_id).await;
            let _ = client.predict(&row.model_id, "cds_rows", "cds_pred").await;
            let _ = client
                .predict_contributions(
                    &row.model_id,
                    "cds_rows",
                    "cds_shap",
                    Some("cds_rows"),
                    false,
                )
                .await;
            let _ = client.download_frame_csv("cds_shap").await;
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&csv);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_used_only_when_its_bytes_match_the_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("h2o-0123.jsa");
        assert_eq!(usable(&archive), None, "absent");
        std::fs::write(&archive, b"classes").unwrap();
        assert_eq!(usable(&archive), None, "no sidecar: not a finished build");
        std::fs::write(
            sidecar(&archive),
            blake3::hash(b"classes").to_hex().as_str(),
        )
        .unwrap();
        assert_eq!(usable(&archive), Some(archive.clone()));
        // A truncated archive would crash the JVM: it is removed instead of used.
        std::fs::write(&archive, b"class").unwrap();
        assert_eq!(usable(&archive), None);
        assert!(!archive.exists() && !sidecar(&archive).exists());
    }

    #[test]
    fn the_key_follows_the_jar_and_the_java() {
        let key = |sha: &str, jar: &str, java: &str| {
            archive_path(Path::new("/c"), sha, Path::new(jar), Path::new(java))
        };
        let base = key("ab", "/j/h2o.jar", "/usr/bin/java");
        assert!(base.starts_with("/c/h2o"));
        assert_eq!(base, key("ab", "/j/h2o.jar", "/usr/bin/java"));
        assert_ne!(base, key("ac", "/j/h2o.jar", "/usr/bin/java"));
        assert_ne!(base, key("ab", "/k/h2o.jar", "/usr/bin/java"));
        assert_ne!(base, key("ab", "/j/h2o.jar", "/opt/java"));
    }

    #[test]
    fn mapped_reads_the_jvms_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cds.log");
        assert_eq!(mapped(&log), None);
        std::fs::write(
            &log,
            "[0.02s][info][cds] Mapped dynamic region #0 at base 0x7f\n",
        )
        .unwrap();
        assert_eq!(mapped(&log), Some(true));
        std::fs::write(
            &log,
            "[0.01s][info][cds] Mapped dynamic region #0 at base 0x7f\n[0.03s][info][cds] UseSharedSpaces: shared class paths mismatch\n[0.03s][warning][cds,dynamic] Unable to use shared archive.\n",
        )
        .unwrap();
        assert_eq!(mapped(&log), Some(false));
    }
}
