//! The eight steps' work. Each module has `run` (the side effects, given typed inputs) and
//! `summary` (one human line from its recorded result); `pipeline` does keys and caching.
//! What every step is given and gives back is in [`contract`].

pub mod conclude;
pub mod confirm;
pub mod contract;
pub mod define;
pub mod execute;
pub mod locate;
pub mod modify;
pub mod monitor;
pub mod prepare;
pub mod restored;
#[cfg(test)]
mod results_tests;
pub mod user;

use std::collections::BTreeMap;

pub use contract::{summary, Ctx, EngineSlot, Mode, ProblemSpec, StepOutput, StepResult, Verdict};

/// A one-output map, the common case.
pub fn outputs<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
