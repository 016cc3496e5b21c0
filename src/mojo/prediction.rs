//! genmodel's shared post-processing: `correctProbabilities`, `getPrediction` (with its
//! tie-break, which draws from `java.util.Random` seeded by a hash of the row), `GBM_rescale`.

/// `GenModel.correctProbabilities`: undo over/under-sampling of classes.
pub(crate) fn correct_probabilities(preds: &mut [f64], prior: &[f64], model: &[f64]) {
    let mut sum = 0.0;
    for c in 1..preds.len() {
        let (original, sampled) = (prior[c - 1], model[c - 1]);
        if original != 0.0 && sampled != 0.0 {
            preds[c] *= original / sampled;
        }
        sum += preds[c];
    }
    if sum > 0.0 {
        for p in &mut preds[1..] {
            *p /= sum;
        }
    }
}

/// `GenModel.getPrediction`: binomial by threshold, multinomial by the first maximum, ties
/// broken at random with the prior class distribution as weights.
pub(crate) fn label(preds: &[f64], prior: Option<&[f64]>, row: &[f64], threshold: f64) -> usize {
    if preds.len() == 3 {
        return usize::from(preds[2] >= threshold);
    }
    let mut ties = vec![0usize];
    let (mut best, mut tie_count) = (1usize, 0usize);
    for c in 2..preds.len() {
        if preds[best] < preds[c] {
            best = c;
            tie_count = 0;
        } else if preds[best] == preds[c] {
            tie_count += 1;
            ties.push(c - 1);
        }
    }
    if tie_count == 0 {
        return best - 1;
    }
    let mut hash: i64 = 0;
    for d in row {
        hash ^= (d.to_bits() as i64) >> 6;
    }
    if let Some(prior) = prior {
        let sum: f64 = ties.iter().map(|&i| prior[i]).sum();
        let tie = JavaRandom::new(hash).next_double();
        let mut partial = 0.0;
        for &i in &ties {
            partial += prior[i] / sum;
            if tie <= partial {
                return i;
            }
        }
    }
    // genmodel's fallback: `(int) hash % (tieCnt + 1)`.
    let res = preds[best];
    let mut idx = (hash as i32) % (tie_count as i32 + 1);
    for (b, p) in preds.iter().enumerate().skip(1) {
        if *p == res {
            idx -= 1;
            if idx < 0 {
                return b - 1;
            }
        }
    }
    best - 1
}

/// `GenModel.GBM_rescale`: softmax over `preds[1..]` after subtracting the maximum.
pub(crate) fn gbm_rescale(preds: &mut [f64]) {
    let max = preds[1..].iter().fold(f64::NEG_INFINITY, |m, &p| m.max(p));
    let mut sum = 0.0;
    for p in &mut preds[1..] {
        *p = (*p - max).exp();
        sum += *p;
    }
    for p in &mut preds[1..] {
        *p /= sum;
    }
}

/// `java.util.Random`'s 48-bit linear congruential generator, as far as `nextDouble`.
struct JavaRandom(u64);

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom((seed as u64 ^ Self::MULTIPLIER) & Self::MASK)
    }

    fn next(&mut self, bits: u32) -> u64 {
        self.0 = (self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        self.0 >> (48 - bits)
    }

    fn next_double(&mut self) -> f64 {
        let hi = self.next(26);
        let lo = self.next(27);
        ((hi << 27) + lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_matches_the_jdk() {
        // `new java.util.Random(seed).nextDouble()`, printed by jshell (JDK 17).
        assert_eq!(JavaRandom::new(42).next_double(), 0.7275636800328681);
        assert_eq!(
            JavaRandom::new(-123456789012345).next_double(),
            0.33067479762881935
        );
    }

    #[test]
    fn binomial_label_uses_the_threshold() {
        assert_eq!(label(&[0.0, 0.6, 0.4], None, &[], 0.4), 1);
        assert_eq!(label(&[0.0, 0.6, 0.4], None, &[], 0.41), 0);
    }

    #[test]
    fn ties_break_like_genmodel() {
        // `GenModel.getPredictionMultinomial(preds, prior, row)` from the 3.46.0.11 jar (jshell).
        let prior = [0.2, 0.3, 0.5];
        let cases: [(&[f64], &[f64], usize); 4] = [
            (&[0.0, 0.25, 0.375, 0.375], &[1.5, f64::NAN, 3.0], 2),
            (&[0.0, 0.5, 0.5, 0.0], &[5.1, 3.5, 1.4, 0.2], 1),
            (
                &[0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
                &[-7.25, 0.0, 1e300],
                2,
            ),
            (&[0.0, 0.2, 0.4, 0.4], &[], 2),
        ];
        for (preds, row, want) in cases {
            assert_eq!(
                label(preds, Some(&prior), row, 0.5),
                want,
                "{preds:?} {row:?}"
            );
        }
        // Without priors: genmodel's `(int) hash % (ties + 1)` fallback.
        assert_eq!(label(&[0.0, 0.5, 0.5, 0.0], None, &[5.1, 3.5], 0.5), 0);
    }

    #[test]
    fn multinomial_label_is_the_first_strict_maximum() {
        assert_eq!(label(&[0.0, 0.2, 0.5, 0.3], None, &[], 0.5), 1);
    }
}
