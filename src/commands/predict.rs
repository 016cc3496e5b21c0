//! `mlbuild predict MODEL INPUT [-o OUT] [--explain]`: scores (and explains) a CSV natively
//! ([`crate::predict`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;

use crate::error::{Diagnostic, Exit};
use crate::predict::{predict_csv, predict_to_file, Scorer, Summary};
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
        Some(path) => to_file(scorer, input, path).await?,
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

/// How long an interrupted predict waits for its scoring to unwind.
const UNWIND: std::time::Duration = std::time::Duration::from_secs(5);

/// Scores into OUT on a blocking thread while Ctrl-C (or SIGTERM) is watched: an interrupted
/// predict stops at its next batch, removes its temporary file and leaves OUT as it was (exit
/// 130). Without `-o` nothing needs undoing, and the signal's default ends the process.
async fn to_file(scorer: Scorer, input: &Path, path: &Path) -> Result<Summary> {
    let stop = Arc::new(AtomicBool::new(false));
    let (input, path) = (input.to_path_buf(), path.to_path_buf());
    let work = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || predict_to_file(&scorer, &input, &path, &stop))
    };
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done?,
        () = crate::signal::interrupted() => {}
    }
    stop.store(true, Ordering::Relaxed);
    // The scoring unwinds at its next batch (the temporary file is removed as it drops) before
    // the exit. An input that stalls (a FIFO nobody writes) keeps its reader from unwinding:
    // then the exit waits no longer than this.
    let _ = tokio::time::timeout(UNWIND, work).await;
    Err(Diagnostic::new("interrupted")
        .hint("run predict again: OUT is replaced only once every row is scored")
        .exit(Exit::Interrupted)
        .into())
}
