//! `mlbuild mojo validate FILE`: the report on stdout (JSON or fields, warnings on stderr); an
//! invalid MOJO exits 1 with every error listed.

use std::path::Path;

use anyhow::Result;

use crate::error::{Diagnostic, Exit};
use crate::report::Printer;

pub(crate) fn validate(printer: &Printer, file: &Path, json: bool) -> Result<Exit> {
    let bytes = crate::mojo::validate::read(file)?;
    let mut report = crate::mojo::validate::validate(&bytes);
    report.file = Some(file.display().to_string());
    if json {
        printer.data(&serde_json::to_string_pretty(&report)?);
    } else {
        printer.data(&report.render());
        for warning in &report.warnings {
            printer.warn(&warning.to_string());
        }
    }
    if report.valid {
        return Ok(Exit::Ok);
    }
    Err(Diagnostic::new(report.refusal())
        .hint("each code is explained in docs/mojo.md (\"Validating a MOJO\")")
        .into())
}
