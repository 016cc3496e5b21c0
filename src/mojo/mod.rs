//! MOJO archives: the canonical digest (and, later, native scoring).

mod canonical;

pub use canonical::{canonical_digest, MojoError};
