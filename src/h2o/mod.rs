//! The H2O engine.
pub const PINNED_VERSION: &str = "3.46.0.11";
