//! `mlbuild predict MODEL INPUT [-o OUT] [--explain]`: scores (and explains) a CSV natively
//! ([`crate::predict`]).

use std::path::Path;

use anyhow::Result;

use crate::error::Exit;
use crate::predict::{predict_csv, predict_to_file, Scorer};
use crate::report::Printer;

pub(crate) async fn predict(
    dir: &Path,
    printer: &Printer,
    model: &str,
    input: &Path,
    output: Option<&Path>,
    explain: bool,
) -> Result<Exit> {
    let scorer = Scorer::open(dir, model).await?.explaining(explain)?;
    let summary = match output {
        Some(path) => predict_to_file(&scorer, input, path)?,
        None => predict_csv(&scorer, input, std::io::stdout().lock())?,
    };
    printer.status(
        "Predicted",
        &format!(
            "{} rows with {}",
            summary.rows,
            summary.version.as_deref().unwrap_or(model)
        ),
    );
    Ok(Exit::Ok)
}
