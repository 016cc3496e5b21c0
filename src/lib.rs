//! mlbuild: a declarative, build-system-style task runner for ML pipelines on H2O-3.
//!
//! See `docs/architecture.md` for how the modules fit together.

// Unit tests and the property harness report what they tried; the product prints through
// `report::Printer` (the lint stays on for the library itself).
#![cfg_attr(
    test,
    allow(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "tests report seeds and what they compared"
    )
)]

pub mod commands;
pub mod config;
pub mod drift;
pub mod error;
pub mod faultpoint;
pub mod fingerprint;
pub mod h2o;
#[cfg(test)]
mod hostile;
pub mod metrics;
pub mod mojo;
pub mod panic_boundary;
pub mod pipeline;
pub mod plan;
pub mod predict;
pub mod project;
pub mod redact;
pub mod registry;
pub mod report;
pub mod serve;
pub mod signal;
pub mod source;
pub mod status;
pub mod steps;
pub mod store;
pub mod suggest;
pub mod table;
pub mod transform;
pub mod ui;
pub mod user_config;
pub mod watch;
