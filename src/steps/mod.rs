//! The eight steps' work. Each module has `run` (the side effects, given typed inputs) and
//! `summary` (one human line from its recorded result); `pipeline` does keys and caching.

pub mod conclude;
pub mod confirm;
pub mod define;
pub mod execute;
pub mod locate;
pub mod modify;
pub mod monitor;
pub mod prepare;
pub mod restored;

use std::collections::BTreeMap;

/// Suggests the closest of `candidates` to `name` (for "did you mean" hints).
pub fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a String>,
) -> Option<&'a String> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A one-output map, the common case.
pub fn outputs<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
