//! The canonical MOJO digest: equal for two downloads of the same model, and across retrains
//! that produce the same scoring payload.
//!
//! H2O writes a new zip every time (entry mtimes, `model.ini` `timestamp`/`uuid`, AutoML run ids
//! in names and contents, `experimental/` details), so the raw bytes' hash changes on every
//! download (h2o-rest.md G2, §9). This digest follows the verified recipe of
//! `reference/canonical_mojo_digest.py`, with blake3 in place of sha256:
//! 1. skip `experimental/` and `*/experimental/*` entries;
//! 2. in every `model.ini`, drop the lines starting with `uuid = ` and `timestamp = `;
//! 3. in names and contents, replace `AutoML_\d+_\d{8}_\d+` with `AMLID`;
//! 4. sort by name; hash (len, name, len, data) per entry, lengths as u64 little-endian.

use std::io::Cursor;
use std::sync::OnceLock;

use regex::bytes::Regex;

#[derive(Debug, thiserror::Error)]
pub enum MojoError {
    #[error("not a MOJO archive: {0}")]
    NotZip(String),
    #[error("MOJO archive has no `model.ini`")]
    NoModelIni,
}

fn automl_run_id() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"AutoML_\d+_\d{8}_\d+").expect("valid regex"))
}

pub fn canonical_digest(zip_bytes: &[u8]) -> Result<String, MojoError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes))
        .map_err(|e| MojoError::NotZip(e.to_string()))?;
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> =
        Vec::with_capacity(archive.len().min(super::validate::MAX_ENTRIES));
    let mut has_ini = false;
    let mut budget = super::validate::MAX_UNCOMPRESSED;
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| MojoError::NotZip(e.to_string()))?;
        let name = file.name().to_string();
        if file.is_dir() || name.starts_with("experimental/") || name.contains("/experimental/") {
            continue;
        }
        let mut data = super::read_entry(&mut file, &mut budget)
            .map_err(|e| MojoError::NotZip(format!("`{name}`: {e}")))?;
        if name.ends_with("model.ini") {
            has_ini |= name == "model.ini";
            data = data
                .split(|&b| b == b'\n')
                .filter(|line| !(line.starts_with(b"uuid = ") || line.starts_with(b"timestamp = ")))
                .collect::<Vec<_>>()
                .join(&b'\n');
        }
        let re = automl_run_id();
        entries.push((
            re.replace_all(name.as_bytes(), &b"AMLID"[..]).into_owned(),
            re.replace_all(&data, &b"AMLID"[..]).into_owned(),
        ));
    }
    if !has_ini {
        return Err(MojoError::NoModelIni);
    }
    entries.sort();
    let mut hasher = blake3::Hasher::new();
    for (name, data) in &entries {
        for part in [name, data] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn mojo(ini: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            w.start_file("model.ini", opts).unwrap();
            w.write_all(ini.as_bytes()).unwrap();
            for (name, data) in extra {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap();
        }
        buf.into_inner()
    }

    #[test]
    fn ignores_what_changes_between_downloads() {
        let a = mojo(
            "[info]\nalgo = gbm\nuuid = 1\ntimestamp = 2026\nid = GBM_1_AutoML_1_20261126_40641\n",
            &[
                ("trees/t00_000.bin", b"xyz"),
                ("experimental/modelDetails.json", b"{\"t\":1}"),
            ],
        );
        let b = mojo(
            "[info]\nalgo = gbm\nuuid = 2\ntimestamp = 2027\nid = GBM_1_AutoML_7_20261127_11111\n",
            &[
                ("trees/t00_000.bin", b"xyz"),
                ("experimental/modelDetails.json", b"{\"t\":2}"),
            ],
        );
        assert_eq!(canonical_digest(&a).unwrap(), canonical_digest(&b).unwrap());
        let c = mojo(
            "[info]\nalgo = gbm\nuuid = 1\n",
            &[("trees/t00_000.bin", b"xyw")],
        );
        assert_ne!(canonical_digest(&a).unwrap(), canonical_digest(&c).unwrap());
    }

    #[test]
    fn refuses_non_zip() {
        assert!(canonical_digest(b"not a zip").is_err());
    }
}
