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
    let file = if dir.join(&data).is_file() {
        dir.join(&data)
    } else {
        data.clone()
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
        crate::config::scaffold::render(&name, &data.display().to_string(), &target, &survey);
    crate::store::write_atomic(&path, text.as_bytes())?;
    printer.status(
        "Created",
        &format!("`{}` with target `{target}`", path.display()),
    );
    for note in notes {
        printer.status("Note", &note);
    }
    Ok(Exit::Ok)
}
