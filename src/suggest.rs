//! "Did you mean …?": one algorithm for every suggestion mlbuild makes (keys, tables,
//! algorithms, metrics, column names).
//!
//! A candidate is suggested when, ignoring case, it is within a Damerau-Levenshtein distance
//! (`strsim`) of a third of its length (at least 1), or one of the two begins with the other
//! (three characters at least: `VOL` for `VOLUME`); the closest wins, the first of equals.

/// The candidate closest to `word`, if it is close enough to be what the user meant.
pub fn closest<'a, S>(word: &str, candidates: impl IntoIterator<Item = &'a S>) -> Option<&'a S>
where
    S: AsRef<str> + ?Sized + 'a,
{
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let text = c.as_ref().to_lowercase();
            let distance = strsim::damerau_levenshtein(&word, &text);
            let near = distance <= (text.chars().count() / 3).max(1);
            let (short, long) = if word.len() < text.len() {
                (&word, &text)
            } else {
                (&text, &word)
            };
            let prefix = short.chars().count() >= 3 && long.starts_with(short.as_str());
            (near || prefix).then_some((distance, c))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn close_words_are_suggested_far_ones_are_not() {
        let columns = [
            "AGE".to_string(),
            "RACE".into(),
            "ID".into(),
            "GLEASON".into(),
        ];
        assert_eq!(closest("AGEE", &columns).unwrap(), "AGE");
        assert_eq!(closest("age", &columns).unwrap(), "AGE");
        assert_eq!(closest("IDX", &columns).unwrap(), "ID");
        assert_eq!(
            closest("GLAESON", &columns).unwrap(),
            "GLEASON",
            "a transposition is one edit"
        );
        assert_eq!(closest("PSA", &columns), None);
        let columns = ["VOL".to_string(), "DPROS".into()];
        assert_eq!(closest("VOLUME", &columns).unwrap(), "VOL");
        let keys: [&str; 3] = ["max_models", "seed", "nfolds"];
        assert_eq!(closest("max_model", &keys), Some(&"max_models"));
        assert_eq!(closest("zzz", &keys), None);
    }
}
