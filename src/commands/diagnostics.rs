//! How an error reaches the user: the chain rendered once — `error:`, a `Caused by:` per
//! cause, then every distinct hint found anywhere in the chain ([`crate::error::Hint`]) — on
//! stderr through the printer, and the exit code of the innermost
//! [`Diagnostic`] carrying one (DESIGN.md §3.3).

use crate::error::{Diagnostic, Exit};
use crate::report::Printer;

/// The lines an error chain is shown as — `error: …`, a `Caused by: …` per cause, then a
/// `hint: …` for every distinct hint found anywhere in the chain — and its exit code (the
/// innermost [`Diagnostic`]'s). User text is made safe for a terminal ([`crate::report::sanitize`]).
pub fn rendered(err: &anyhow::Error) -> (Vec<String>, Exit) {
    let mut exit = None;
    let mut hints: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(d) = cause.downcast_ref::<Diagnostic>() {
            exit = Some(d.exit);
        }
        if let Some(h) = crate::error::hint_of(cause) {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
    }
    let safe = |text: String| crate::report::sanitize(&text).into_owned();
    let mut lines = Vec::new();
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        lines.push(format!("error: {}", safe(top.to_string())));
    }
    for cause in chain {
        lines.push(format!("Caused by: {}", safe(cause.to_string())));
    }
    for h in hints {
        lines.push(format!("hint: {}", safe(h)));
    }
    (lines, exit.unwrap_or(Exit::Error))
}

/// Prints an error chain once (`error:`, `Caused by:`, `hint:`) through the printer (a live
/// progress bar is cleared first) and returns its exit code.
pub fn render(printer: &Printer, err: &anyhow::Error) -> Exit {
    // The reader of stdout went away (`mlbuild predict … | head`): what it wanted was written,
    // so end quietly, as `cat` would in a pipeline, instead of reporting an error.
    if is_broken_pipe(err) {
        return Exit::Ok;
    }
    let (lines, exit) = rendered(err);
    printer.error(&lines);
    exit
}

/// Whether `err` was caused by writing to a pipe whose reader has exited.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    fn show(err: anyhow::Error) -> (Vec<String>, Exit) {
        rendered(&err)
    }

    #[test]
    fn a_metrics_error_shows_its_hint() {
        let e = crate::metrics::MetricsError::MissingColumn {
            what: "holdout",
            column: "y".into(),
            available: vec!["a".into(), "b".into()],
        };
        let (lines, exit) = show(anyhow::Error::from(e).context("computing holdout metrics"));
        assert_eq!(
            lines,
            [
                "error: computing holdout metrics",
                "Caused by: column `y` not found in the holdout CSV (columns: a, b)",
                "hint: check the target column name against the holdout file's header",
            ]
        );
        assert_eq!(exit, Exit::Error);
    }

    #[test]
    fn a_remote_error_keeps_its_place_and_hint() {
        let e = crate::store::remote::RemoteError::Scheme {
            url: "ftp://x".into(),
        };
        let (lines, _) = show(e.into());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("error: the remote cache URL must start with"));
        assert!(
            lines[1].starts_with("hint: for example `https://"),
            "{lines:?}"
        );
    }

    #[test]
    fn hints_deep_in_a_chain_are_shown_and_a_diagnostic_sets_the_exit() {
        let store = crate::store::StoreError::Missing {
            digest: "ab".repeat(32),
        };
        let (lines, exit) = show(
            anyhow::Error::from(store)
                .context("reading the training rows")
                .context("step `confirm` failed"),
        );
        assert_eq!(lines[0], "error: step `confirm` failed");
        assert_eq!(lines[1], "Caused by: reading the training rows");
        assert!(lines[2].starts_with("Caused by: "), "{lines:?}");
        assert!(
            lines[3].starts_with("hint: `mlbuild run` makes it again"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(exit, Exit::Error);

        let gate = Diagnostic::new("data-quality gate failed")
            .hint("fix the data")
            .exit(Exit::GateFailed);
        let (lines, exit) = show(anyhow::Error::from(gate).context("run"));
        assert_eq!(
            lines,
            [
                "error: run",
                "Caused by: data-quality gate failed",
                "hint: fix the data"
            ]
        );
        assert_eq!(exit, Exit::GateFailed);
    }

    #[test]
    fn user_text_in_errors_is_escaped() {
        let (lines, _) = show(anyhow::anyhow!("tag `\u{1b}[31mred`").context("reading"));
        assert_eq!(lines[1], "Caused by: tag `\\x1b[31mred`");
    }

    /// Every error type with a `hint()` is listed in `error::hints!`, so rendering finds it.
    #[test]
    fn every_error_type_with_a_hint_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let listed = std::fs::read_to_string(src.join("error.rs")).unwrap();
        let mut stack = vec![src];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut current = None;
                for line in text.lines() {
                    if let Some(rest) = line.strip_prefix("impl ") {
                        current = rest.strip_suffix(" {").map(str::to_string);
                    }
                    if line.trim() == "pub fn hint(&self) -> Option<String> {" {
                        if let Some(t) = &current {
                            found.push(t.clone());
                        }
                    }
                }
            }
        }
        assert!(found.len() >= 7, "{found:?}");
        for t in &found {
            assert!(
                listed.contains(&format!("::{t},")),
                "`{t}` has a hint but is not listed in `hints!` (src/error.rs)"
            );
        }
    }

    #[test]
    fn each_error_type_shows_its_hint() {
        let hinted = |e: anyhow::Error, hint: &str| {
            let (lines, _) = show(e.context("doing it"));
            assert_eq!(lines.last().unwrap(), &format!("hint: {hint}"), "{lines:?}");
        };
        hinted(
            crate::config::ConfigError::NotFound { dir: "p".into() }.into(),
            "run `mlbuild init [DATA]` to create one, or pass `-C DIR`",
        );
        hinted(
            crate::registry::RegistryError::UnknownVersion("v9".into()).into(),
            "run `mlbuild versions` to list the registered versions",
        );
        hinted(
            crate::h2o::H2oError::JavaVersionUnknown {
                java: "java".into(),
                output: String::new(),
            }
            .into(),
            "point `JAVA_HOME` at a working Java 8–17 installation",
        );
        hinted(
            crate::table::TableError::Csv {
                path: "a.csv".into(),
                line: 3,
                message: "x".into(),
            }
            .into(),
            "every row must have as many fields as the header; quote fields that contain commas",
        );
    }
}
