//! ml.toml
pub mod schema;
pub use schema::*;
