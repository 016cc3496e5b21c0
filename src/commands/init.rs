//! `mlbuild init DATA [--target COLUMN]`: a first `ml.toml` from a data file (see
//! [`crate::config::scaffold`] for what it infers).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Diagnostic, Exit};
use crate::report::Printer;

pub(crate) fn init(
    dir: &Path,
    printer: &Printer,
    data: Option<PathBuf>,
    target: Option<String>,
) -> Result<Exit> {
    let path = dir.join("ml.toml");
    if path.exists() {
        return Err(
            Diagnostic::new(format!("`{}` already exists", path.display()))
                .hint("edit it, or remove it to start over")
                .into(),
        );
    }
    let Some(data) = data else {
        return Err(
            Diagnostic::new("`mlbuild init` needs a data file to describe")
                .hint("run `mlbuild init data/train.csv`")
                .exit(Exit::Usage)
                .into(),
        );
    };
    // DATA as typed names a file in the project (`-C DIR`), or else one relative to where
    // mlbuild runs; `ml.toml` needs it relative to the project either way.
    let (file, written) = if data.is_relative() && dir.join(&data).is_file() {
        (dir.join(&data), data.clone())
    } else {
        let written = relative_to(dir, &data).unwrap_or_else(|| data.clone());
        (data.clone(), written)
    };
    let header = crate::table::read_header(&file)?;
    let target = match target {
        Some(t) if header.contains(&t) => t,
        Some(t) => {
            return Err(
                Diagnostic::new(format!("column `{t}` is not in `{}`", data.display()))
                    .hint(format!(
                        "the columns are: {}",
                        crate::report::list_names(&header)
                    ))
                    .into(),
            )
        }
        None => header
            .last()
            .cloned()
            .context("the data file has no columns")?,
    };
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into());
    // A project that runs on the data it was made from: identifiers and free text ignored, the
    // gate's null limit above what the data has (config::scaffold).
    let survey = crate::config::scaffold::survey(&file)?;
    let (text, notes) =
        crate::config::scaffold::render(&name, &written.to_string_lossy(), &target, &survey);
    crate::store::write_atomic(&path, text.as_bytes())?;
    printer.status(
        "Created",
        &format!("`{}` with target `{target}`", path.display()),
    );
    if written != data {
        printer.status(
            "Note",
            &format!(
                "`[locate] path` is `{}`: `{}` as seen from the project directory",
                written.display(),
                data.display()
            ),
        );
    }
    for note in notes {
        printer.status("Note", &note);
    }
    Ok(Exit::Ok)
}

/// `file` as a path relative to `dir` (`../data/x.csv` when it is outside), both resolved;
/// `None` when either cannot be resolved.
fn relative_to(dir: &Path, file: &Path) -> Option<PathBuf> {
    let (dir, file) = (dir.canonicalize().ok()?, file.canonicalize().ok()?);
    let (from, to): (Vec<_>, Vec<_>) = (dir.components().collect(), file.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part);
    }
    Some(out)
}
