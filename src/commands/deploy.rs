//! `mlbuild deploy --mojo FILE --tag TAG`: registers a MOJO made elsewhere and points TAG at
//! it ([`crate::registry::deploy`] has the flow).

use std::path::Path;

use anyhow::Result;

use crate::error::Exit;
use crate::registry::deploy;
use crate::report::Printer;

pub(crate) async fn deploy(
    dir: &Path,
    printer: &Printer,
    file: &Path,
    tag: &str,
    reason: Option<&str>,
    json: bool,
) -> Result<Exit> {
    let checked = match deploy::check(file, tag)? {
        Ok(checked) => checked,
        Err(report) => {
            if json {
                printer.data(&serde_json::to_string_pretty(&report)?);
            } else {
                printer.data(&report.render());
            }
            return Err(deploy::refused(&report));
        }
    };
    let deployed = deploy::deploy(dir, printer, checked, tag, reason).await?;
    if json {
        printer.data(&serde_json::to_string_pretty(&deployed)?);
    }
    Ok(Exit::Ok)
}
