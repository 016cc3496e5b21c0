//! Tabular data as mlbuild reads it: CSV profiling, column kinds and the seeded split.
//!
//! Everything here streams row by row, so memory stays bounded by the number of columns (and
//! the capped set of distinct values kept per column), not by the file size.
//! A field is missing when it is empty or `NA` (after trimming), as H2O's parser treats them.

mod chunks;
mod csv_io;
mod error;
mod field;
mod held;
mod profile;
mod row;
mod split;

pub use chunks::*;
pub use csv_io::*;
pub use error::*;
pub use field::*;
pub use held::*;
pub use profile::*;
pub use row::*;
pub use split::*;

#[cfg(test)]
mod tests;
