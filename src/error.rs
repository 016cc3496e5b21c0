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
}

/// An error meant for the user as is: its message, an optional hint, and the exit code.
#[derive(Debug)]
pub struct Diagnostic {
    pub message: String,
    pub hint: Option<String>,
    pub exit: Exit,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), hint: None, exit: Exit::Error }
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
