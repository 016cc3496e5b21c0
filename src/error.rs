//! How failures reach the user: exit codes (DESIGN.md §3.3) and hints.
//!
//! Library modules return their own typed errors; each with a hint implements [`Hint`] and is
//! listed in `hints!` below (a test checks that none is missing). Command code wraps them in
//! `anyhow` with context; the command layer renders the chain once (`commands::diagnostics`:
//! `error:`, `Caused by:`, then every hint of the chain) and picks the exit code from the
//! innermost [`Exit`]-carrying [`Diagnostic`] in the chain.

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
        pub fn hint_of(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
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
