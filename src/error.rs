//! How failures reach the user: exit codes (DESIGN.md §3.3) and hints.
//!
//! Library modules return their own typed errors; each with a hint implements [`Hint`]. Command
//! code wraps them in `anyhow` with context. `main` renders the chain once (`error:`, `Caused
//! by:`, then every hint of the chain) and picks the exit code from the innermost
//! [`Exit`]-carrying [`Diagnostic`] in the chain.

use std::fmt;

/// Process exit codes, a public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    Escalated = 3,
    GateFailed = 4,
    Interrupted = 130,
}

/// An error meant for the user as is: its message, an optional hint, and the exit code.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub hint: Option<String>,
    pub exit: Exit,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            hint: None,
            exit: Exit::Error,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// An error that can say what to do about it. Every error type with a hint implements it, and
/// is listed in [`hint_of`], so that rendering finds its hint wherever it sits in a chain.
pub trait Hint {
    fn hint(&self) -> Option<String>;
}

impl Hint for Diagnostic {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Implements [`Hint`] by each type's own `hint()`, and [`hint_of`] over all of them.
macro_rules! hints {
    ($($t:ty),* $(,)?) => {
        $(impl Hint for $t {
            fn hint(&self) -> Option<String> {
                <$t>::hint(self)
            }
        })*

        /// The hint of one error of a chain, whatever its type.
        fn hint_of(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
            if let Some(d) = cause.downcast_ref::<Diagnostic>() {
                return Hint::hint(d);
            }
            $(if let Some(e) = cause.downcast_ref::<$t>() {
                return Hint::hint(e);
            })*
            None
        }
    };
}

hints!(
    crate::config::ConfigError,
    crate::h2o::H2oError,
    crate::registry::RegistryError,
    crate::store::StoreError,
    crate::store::remote::RemoteError,
    crate::table::TableError,
    crate::metrics::MetricsError,
);

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
        if let Some(h) = hint_of(cause) {
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

/// Prints an error chain once (`error:`, `Caused by:`, `hint:`) and returns its exit code.
pub fn render(err: &anyhow::Error) -> Exit {
    // The reader of stdout went away (`mlbuild predict … | head`): what it wanted was written,
    // so end quietly, as `cat` would in a pipeline, instead of reporting an error.
    if is_broken_pipe(err) {
        return Exit::Ok;
    }
    let (lines, exit) = rendered(err);
    for line in lines {
        eprintln!("{line}");
    }
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
}
