//! DeepLearning (genmodel's `DeeplearningMojoModel` and `NeuralNetwork`), not autoencoders.
//!
//! Input: categoricals one-hot with NA as the extra level; numerics standardized
//! `(x − sub)·mul`, NaN becoming 0 (the mean). Each layer sums `w·x` with weights stored as text,
//! parsed as double then rounded to f32 (as genmodel does), inputs and sums in f64, in
//! genmodel's order: eight interleaved partial sums over blocks of eight, added as
//! `(ps0+ps1+ps2+ps3)` then `(ps4+…+ps7)`, then the remaining columns, then the bias. Hidden
//! layers apply the activation (dropout layers scale by `1 − ratio`); the output layer is a
//! softmax for classifiers, linear for regression (then de-standardized and the link inverse).

use super::ini::Ini;
use super::model::{one_hot_layout_ok, Meta, Refuse};
use super::row::one_hot_index;
use super::{Category, MojoError};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Activation {
    Linear,
    Softmax,
    Rectifier,
    Tanh,
    ExpRectifier,
    Maxout,
}

#[derive(Debug)]
struct Layer {
    activation: Activation,
    dropout: f64,
    weights: Vec<f32>,
    bias: Vec<f64>,
    inputs: usize,
    outputs: usize,
    /// Maxout's number of pieces per unit (1 otherwise).
    k: usize,
}

#[derive(Debug, Clone, Copy)]
enum Link {
    Identity,
    Logit,
    Exp,
}

#[derive(Debug)]
pub(crate) struct DeepLearning {
    cats: usize,
    nums: usize,
    cat_offsets: Vec<usize>,
    norm_mul: Vec<f64>,
    norm_sub: Vec<f64>,
    resp_mul: Option<f64>,
    resp_sub: Option<f64>,
    use_all_levels: bool,
    layers: Vec<Layer>,
    link: Link,
}

impl DeepLearning {
    #[allow(
        clippy::too_many_lines,
        reason = "reads model.ini's fields in genmodel's order, a few lines each"
    )]
    pub fn load(ini: &Ini, meta: &Meta, refuse: Refuse) -> Result<DeepLearning, MojoError> {
        let distribution = ini.str("distribution")?;
        let link = match distribution {
            "bernoulli" | "quasibinomial" | "ordinal" => Link::Logit,
            "modified_huber" => return Err(refuse("DeepLearning with modified_huber")),
            "multinomial" | "poisson" | "gamma" | "tweedie" => Link::Exp,
            _ => Link::Identity,
        };
        let hidden = match ini.str("activation")? {
            "Rectifier" | "RectifierWithDropout" => Activation::Rectifier,
            "Tanh" | "TanhWithDropout" => Activation::Tanh,
            "ExpRectifier" | "ExpRectifierWithDropout" => Activation::ExpRectifier,
            "Maxout" | "MaxoutWithDropout" => Activation::Maxout,
            other => return Err(refuse(&format!("DeepLearning activation `{other}`"))),
        };
        let with_dropout = ini.str("activation")?.ends_with("WithDropout");
        let units = ini.usizes("neural_network_sizes")?;
        if units.len() < 2 || units.contains(&0) {
            return Err(MojoError::Format(
                "DeepLearning: fewer than two layers, or an empty one".into(),
            ));
        }
        let outputs = units[units.len() - 1];
        if (meta.category == Category::Regression && outputs != 1)
            || (meta.category != Category::Regression && outputs != meta.nclasses)
        {
            return Err(MojoError::Format(format!(
                "DeepLearning: an output layer of {outputs} units for {} classes",
                meta.nclasses
            )));
        }
        let dropouts = ini.opt_f64s("hidden_dropout_ratios")?.unwrap_or_default();
        let n = units.len() - 1;
        let mut layers = Vec::with_capacity(n);
        for l in 0..n {
            let activation = if l + 1 < n {
                hidden
            } else if meta.category == Category::Regression {
                Activation::Linear
            } else {
                Activation::Softmax
            };
            let weights: Vec<f32> = ini
                .f64s(&format!("weight_layer{l}"))?
                .into_iter()
                .map(|w| w as f32)
                .collect();
            let bias = ini.f64s(&format!("bias_layer{l}"))?;
            let (inputs, outputs) = (units[l], units[l + 1]);
            let k = if activation == Activation::Maxout {
                bias.len() / outputs
            } else {
                1
            };
            // Sizes come from the file: checked arithmetic, so a lie is an error.
            let sized = |n: usize, of: &[usize]| {
                of.iter().try_fold(1usize, |a, &b| a.checked_mul(b)) == Some(n)
            };
            if k == 0
                || !sized(weights.len(), &[inputs, outputs, k])
                || !sized(bias.len(), &[outputs, k])
            {
                return Err(MojoError::Format(format!(
                    "DeepLearning: layer {l} has {} weights and {} biases for {inputs}×{outputs}",
                    weights.len(),
                    bias.len()
                )));
            }
            let dropout = dropouts.get(l).copied().unwrap_or(0.0);
            layers.push(Layer {
                activation,
                // genmodel applies the ratio only in the `…WithDropout` activations.
                dropout: if with_dropout && l + 1 < n {
                    dropout
                } else {
                    0.0
                },
                weights,
                bias,
                inputs,
                outputs,
                k,
            });
        }
        let cats = ini.usize("cats")?;
        let nums = ini.usize("nums")?;
        let cat_offsets = ini.usizes("cat_offsets")?;
        if !one_hot_layout_ok(cats, nums, &cat_offsets, meta.nfeatures)
            || cat_offsets[cats] + nums != units[0]
        {
            return Err(MojoError::Format(
                "DeepLearning: `cat_offsets`, `cats` and `nums` disagree with the input layer"
                    .into(),
            ));
        }
        let norm_mul = ini.opt_f64s("norm_mul")?.unwrap_or_default();
        let norm_sub = ini.opt_f64s("norm_sub")?.unwrap_or_default();
        if !norm_mul.is_empty() && (norm_mul.len() != nums || norm_sub.len() != nums) {
            return Err(MojoError::Format(
                "DeepLearning: normalization lengths".into(),
            ));
        }
        let first = |key: &str| -> Result<Option<f64>, MojoError> {
            Ok(ini.opt_f64s(key)?.and_then(|v| v.first().copied()))
        };
        Ok(DeepLearning {
            cats,
            nums,
            cat_offsets,
            norm_mul,
            norm_sub,
            resp_mul: first("norm_resp_mul")?,
            resp_sub: first("norm_resp_sub")?,
            use_all_levels: ini.bool_or("use_all_factor_levels", true)?,
            layers,
            link,
        })
    }

    fn input(&self, row: &[f64]) -> Vec<f64> {
        let start = self.cat_offsets[self.cats];
        let mut x = vec![0.0; start + self.nums];
        for (i, &d) in row[..self.cats].iter().enumerate() {
            let (lo, hi) = (self.cat_offsets[i], self.cat_offsets[i + 1]);
            if let Some(h) = one_hot_index(d, lo, hi, self.use_all_levels) {
                x[h] = 1.0;
            }
        }
        for i in 0..self.nums {
            let mut d = row[self.cats + i];
            if !self.norm_mul.is_empty() {
                d = (d - self.norm_sub[i]) * self.norm_mul[i];
            }
            x[start + i] = if d.is_nan() { 0.0 } else { d };
        }
        x
    }

    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        let mut x = self.input(row);
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        match meta.category {
            Category::Regression => {
                let mut v = x[0];
                if let (Some(mul), Some(sub)) = (self.resp_mul, self.resp_sub) {
                    v = v / mul + sub;
                }
                preds[0] = match self.link {
                    Link::Identity => v,
                    Link::Logit => 1.0 / (1.0 + (-v).exp().min(1e19)),
                    Link::Exp => v.exp().min(1e19),
                };
            }
            _ => {
                preds[1..].copy_from_slice(&x[..meta.nclasses]);
                meta.finish_classification(row, preds);
            }
        }
    }
}

impl Layer {
    fn forward(&self, input: &[f64]) -> Vec<f64> {
        let a = if self.k == 1 {
            self.affine(input)
        } else {
            self.affine_maxout(input)
        };
        let mut out = match self.activation {
            Activation::Linear => a,
            Activation::Softmax => {
                let max = a.iter().fold(a[0], |m, &v| if m < v { v } else { m });
                let mut out: Vec<f64> = a.iter().map(|v| (v - max).exp()).collect();
                let scale: f64 = out.iter().fold(0.0, |s, v| s + v);
                for v in &mut out {
                    *v /= scale;
                }
                out
            }
            Activation::Rectifier => a.iter().map(|&v| 0.5 * (v + v.abs())).collect(),
            Activation::Tanh => a
                .iter()
                .map(|&v| 1.0 - 2.0 / (1.0 + (2.0 * v).exp()))
                .collect(),
            Activation::ExpRectifier => a
                .iter()
                .map(|&v| if v >= 0.0 { v } else { v.exp() - 1.0 })
                .collect(),
            Activation::Maxout => (0..self.outputs)
                .map(|u| {
                    // genmodel's loop advances its index by 0, 1, 2, … (a running sum).
                    let mut at = u * self.k;
                    let mut best = a[at];
                    for j in 0..self.k {
                        at += j;
                        if let Some(&v) = a.get(at) {
                            best = if best > v { best } else { v };
                        }
                    }
                    best
                })
                .collect(),
        };
        if self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            for v in &mut out {
                *v *= keep;
            }
        }
        out
    }

    /// `NeuralNetwork.formNNInputs`, in its exact order of additions.
    fn affine(&self, x: &[f64]) -> Vec<f64> {
        let cols = self.inputs;
        let extra = cols - cols % 8;
        let multiple = (cols / 8 * 8) as isize - 1;
        let w = &self.weights;
        (0..self.outputs)
            .map(|row| {
                let idx = row * cols;
                let mut ps = [0.0f64; 8];
                let mut col = 0isize;
                while col < multiple {
                    let c = col as usize;
                    for (j, p) in ps.iter_mut().enumerate() {
                        *p += w[idx + c + j] as f64 * x[c + j];
                    }
                    col += 8;
                }
                let mut acc = 0.0;
                acc += ps[0] + ps[1] + ps[2] + ps[3];
                acc += ps[4] + ps[5] + ps[6] + ps[7];
                for c in extra..cols {
                    acc += w[idx + c] as f64 * x[c];
                }
                acc + self.bias[row]
            })
            .collect()
    }

    /// `NeuralNetwork.formNNInputsMaxOut`.
    fn affine_maxout(&self, x: &[f64]) -> Vec<f64> {
        let (k, n) = (self.k, self.inputs);
        let mut out = vec![0.0; self.outputs * k];
        for piece in 0..k {
            for row in 0..self.outputs {
                let at = k * row + piece;
                for (col, xv) in x.iter().enumerate().take(n) {
                    out[at] += xv * self.weights[k * (row * n + col) + piece] as f64;
                }
                out[at] += self.bias[at];
            }
        }
        out
    }
}
