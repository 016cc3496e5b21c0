//! mlbuild: a declarative, build-system-style task runner for ML pipelines on H2O-3.
//!
//! See `docs/architecture.md` for how the modules fit together.

pub mod config;
pub mod error;
pub mod h2o;
pub mod metrics;
pub mod registry;
