//! Text → Word2Vec features, applied by mlbuild itself from stored word vectors.
//!
//! Tokenizer (version [`TOKENIZER`]): lowercase the whole field (Unicode lowercase), then split
//! on every character that is not alphanumeric (Unicode `is_alphanumeric`); empty pieces are
//! dropped. So `"Great, GREAT value!"` → `great`, `great`, `value`. H2O is fed exactly these
//! tokens (one document per training row, tokens joined by single spaces, split again by H2O's
//! `tokenize` on a space), so H2O's vocabulary and mlbuild's tokens agree.
//!
//! Vectors artifact: CSV, header `word,v1,…,vN`, one row per word of the fitted model, sorted
//! by word; numbers as H2O gives them (single precision), written in Rust's shortest
//! round-trip form. Applying: a row's feature `i` is the mean of `v_i` over its tokens that are
//! in the vocabulary (repeated tokens count each time); a row with no known token (or a missing
//! field) gets missing features.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

/// The tokenizer's name, recorded in the transform manifest.
pub const TOKENIZER: &str = "lowercase-split-non-alphanumeric-v1";

/// Splits a field into tokens (see the module doc).
pub fn tokenize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fitted word vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    pub dim: usize,
    pub words: HashMap<String, Vec<f32>>,
}

impl Vectors {
    /// Reads H2O's `word2vec.to.frame` CSV (`"Word","V1",…`) or mlbuild's own artifact.
    pub fn from_csv(bytes: &[u8]) -> Result<Vectors> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let dim = rdr
            .headers()
            .context("reading the word vectors' header")?
            .len()
            .saturating_sub(1);
        if dim == 0 {
            bail!("the word vectors have no vector columns");
        }
        let mut words = HashMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.with_context(|| format!("reading word vector row {}", i + 1))?;
            let word = rec.get(0).unwrap_or("").to_string();
            let mut v = Vec::with_capacity(dim);
            for field in rec.iter().skip(1) {
                v.push(field.trim().parse::<f32>().with_context(|| {
                    format!("word vector of `{word}`: `{field}` is not a number")
                })?);
            }
            if v.len() != dim {
                bail!(
                    "word vector of `{word}` has {} values, expected {dim}",
                    v.len()
                );
            }
            words.insert(word, v);
        }
        Ok(Vectors { dim, words })
    }

    /// The artifact form: sorted by word, shortest round-trip numbers.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["word".to_string()];
        header.extend((1..=self.dim).map(|i| format!("v{i}")));
        w.write_record(&header).expect("writing to memory");
        let mut words: Vec<&String> = self.words.keys().collect();
        words.sort();
        for word in words {
            let mut rec = vec![word.clone()];
            rec.extend(self.words[word].iter().map(|x| format!("{x}")));
            w.write_record(&rec).expect("writing to memory");
        }
        w.into_inner().expect("writing to memory")
    }

    /// The averaged vector of a field's known tokens; `None` when it has none.
    pub fn average(&self, text: &str) -> Option<Vec<f64>> {
        let mut sum = vec![0f64; self.dim];
        let mut n = 0usize;
        for token in tokenize(text) {
            if let Some(v) = self.words.get(&token) {
                for (s, x) in sum.iter_mut().zip(v) {
                    *s += *x as f64;
                }
                n += 1;
            }
        }
        (n > 0).then(|| sum.into_iter().map(|s| s / n as f64).collect())
    }
}

/// Feature column names for text column `column`: `column_w2v_1..n`.
pub fn feature_names(column: &str, dim: usize) -> Vec<String> {
    (1..=dim).map(|i| format!("{column}_w2v_{i}")).collect()
}

/// A feature value as written into the prepared CSV (single precision is what the vectors
/// hold, so more digits would be noise).
pub fn format_feature(x: f64) -> String {
    format!("{}", x as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_and_splits_on_non_alphanumerics() {
        assert_eq!(tokenize("Great, GREAT value!"), ["great", "great", "value"]);
        assert_eq!(
            tokenize("  don't -- stop_it 2x "),
            ["don", "t", "stop", "it", "2x"]
        );
        assert_eq!(tokenize("Été très BIEN"), ["été", "très", "bien"]);
        assert!(tokenize(" ,;! ").is_empty());
    }

    #[test]
    fn vectors_round_trip_and_average_known_tokens() {
        let h2o = b"\"Word\",\"V1\",\"V2\"\n\"good\",0.5,1.0\n\"bad\",-0.5,0.25\n";
        let v = Vectors::from_csv(h2o).unwrap();
        assert_eq!(v.dim, 2);
        let csv = v.to_csv();
        assert_eq!(
            String::from_utf8(csv.clone()).unwrap(),
            "word,v1,v2\nbad,-0.5,0.25\ngood,0.5,1\n"
        );
        assert_eq!(Vectors::from_csv(&csv).unwrap(), v);
        assert_eq!(
            v.average("Good good BAD unknown"),
            Some(vec![0.5 / 3.0, 0.75])
        );
        assert_eq!(v.average("nothing known here"), None);
        assert_eq!(feature_names("review", 2), ["review_w2v_1", "review_w2v_2"]);
    }
}
