//! How failures reach the user: exit codes (DESIGN.md §3.3) and hints.
//!
//! Library modules return their own typed errors; each offers `hint()`. Command code wraps them
//! in `anyhow` with context. `main` renders the chain once (`error:`, `Caused by:`, `hint:`) and
//! picks the exit code by looking for an [`Exit`]-carrying [`Diagnostic`] in the chain.

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

/// Prints an error chain once (`error:`, `Caused by:`, `hint:`) and returns its exit code.
pub fn render(err: &anyhow::Error) -> Exit {
    // The reader of stdout went away (`mlbuild predict … | head`): what it wanted was written,
    // so end quietly, as `cat` would in a pipeline, instead of reporting an error.
    if is_broken_pipe(err) {
        return Exit::Ok;
    }
    let mut exit = Exit::Error;
    let mut hint = None;
    for cause in err.chain() {
        if let Some(d) = cause.downcast_ref::<Diagnostic>() {
            exit = d.exit;
            hint = hint.or_else(|| d.hint.clone());
        } else if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            hint = hint.or_else(|| e.hint());
        } else if let Some(e) = cause.downcast_ref::<crate::h2o::H2oError>() {
            hint = hint.or_else(|| e.hint());
        } else if let Some(e) = cause.downcast_ref::<crate::registry::RegistryError>() {
            hint = hint.or_else(|| e.hint());
        } else if let Some(e) = cause.downcast_ref::<crate::store::StoreError>() {
            hint = hint.or_else(|| e.hint());
        } else if let Some(e) = cause.downcast_ref::<crate::table::TableError>() {
            hint = hint.or_else(|| e.hint());
        }
    }
    let safe = |text: String| crate::report::sanitize(&text).into_owned();
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        eprintln!("error: {}", safe(top.to_string()));
    }
    for cause in chain {
        eprintln!("Caused by: {}", safe(cause.to_string()));
    }
    if let Some(h) = hint {
        eprintln!("hint: {}", safe(h));
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
