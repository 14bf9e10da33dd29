//! Parameter layout, PyTorch-compatible names, and initialisation.

use crate::config::{EncoderConfig, Normalization};
use clica_core::{Error, Result};
use rand::RngCore;
use std::ops::Range;

pub use clica_core::NamedTensor;

/// Where each parameter lives in the flat parameter vector
/// `[W0, b0, W1, b1, …, norm]`, weights row-major `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `[input_dim, hidden…, output_dim]`.
    pub widths: Vec<usize>,
    pub weight: Vec<Range<usize>>,
    pub bias: Vec<Range<usize>>,
    /// Learnable normalisation parameters (empty when there are none).
    pub norm: Range<usize>,
    pub total: usize,
}

impl Layout {
    pub fn new(cfg: &EncoderConfig) -> Self {
        let widths = cfg.widths();
        let mut weight = Vec::new();
        let mut bias = Vec::new();
        let mut off = 0;
        for w in widths.windows(2) {
            weight.push(off..off + w[0] * w[1]);
            off += w[0] * w[1];
            bias.push(off..off + w[1]);
            off += w[1];
        }
        let norm_len = match cfg.normalization {
            Normalization::LearnableSphere { .. } => 1,
            Normalization::LearnableBox { .. } => cfg.output_dim,
            _ => 0,
        };
        let norm = off..off + norm_len;
        Layout {
            widths,
            weight,
            bias,
            norm: norm.clone(),
            total: norm.end,
        }
    }

    pub fn num_layers(&self) -> usize {
        self.weight.len()
    }

    /// Names, shapes and flat ranges of every parameter, in file order.
    pub fn entries(
        &self,
        normalization: &Normalization,
    ) -> Vec<(String, Vec<usize>, Range<usize>)> {
        let mut v = Vec::with_capacity(2 * self.num_layers() + 1);
        for l in 0..self.num_layers() {
            let (i, o) = (self.widths[l], self.widths[l + 1]);
            v.push((
                format!("layers.{l}.weight"),
                vec![o, i],
                self.weight[l].clone(),
            ));
            v.push((format!("layers.{l}.bias"), vec![o], self.bias[l].clone()));
        }
        match normalization {
            Normalization::LearnableSphere { .. } => {
                v.push(("norm.radius".to_string(), vec![1], self.norm.clone()))
            }
            Normalization::LearnableBox { .. } => v.push((
                "norm.bound".to_string(),
                vec![self.norm.len()],
                self.norm.clone(),
            )),
            _ => {}
        }
        v
    }

    /// Splits a flat vector into named tensors.
    pub fn to_named(&self, normalization: &Normalization, flat: &[f32]) -> Vec<NamedTensor> {
        self.entries(normalization)
            .into_iter()
            .map(|(name, shape, r)| NamedTensor {
                name,
                shape,
                data: flat[r].to_vec(),
            })
            .collect()
    }

    /// The tensor name and the row-major index within that tensor of flat index `i`.
    pub fn locate(&self, normalization: &Normalization, i: usize) -> (String, usize) {
        self.entries(normalization)
            .into_iter()
            .find(|(_, _, r)| r.contains(&i))
            .map(|(name, _, r)| (name, i - r.start))
            .unwrap_or_else(|| ("(out of range)".to_string(), i))
    }

    /// Assembles a flat vector from named tensors, checking that the set of names and every
    /// shape match this layout exactly.
    pub fn assemble(
        &self,
        normalization: &Normalization,
        tensors: &[NamedTensor],
        arch: &str,
    ) -> Result<Vec<f32>> {
        let mut flat = vec![0.0f32; self.total];
        let expected = self.entries(normalization);
        // Checked in this encoder's layer order, so the first reported problem is the
        // earliest layer that differs.
        for (name, shape, r) in &expected {
            let mut found = tensors.iter().filter(|t| t.name == *name);
            let Some(t) = found.next() else {
                return Err(Error::Shape(format!(
                    "missing tensor `{name}` (shape {shape:?}) for encoder `{arch}`"
                )));
            };
            if found.next().is_some() {
                return Err(Error::Shape(format!("tensor `{name}` given twice")));
            }
            if *shape != t.shape {
                return Err(Error::Shape(format!(
                    "tensor `{name}` has shape {:?} but encoder `{arch}` expects {shape:?}",
                    t.shape
                )));
            }
            if t.data.len() != r.len() {
                return Err(Error::Shape(format!(
                    "tensor `{name}` holds {} values but its shape {shape:?} needs {}",
                    t.data.len(),
                    r.len()
                )));
            }
            flat[r.clone()].copy_from_slice(&t.data);
        }
        if let Some(t) = tensors
            .iter()
            .find(|t| !expected.iter().any(|(n, _, _)| *n == t.name))
        {
            return Err(Error::Shape(format!(
                "unexpected tensor `{}` (shape {:?}) for encoder `{arch}`",
                t.name, t.shape
            )));
        }
        Ok(flat)
    }
}

/// A uniform draw in [0, 1) from the top 53 bits of one `u64` (portable and value-stable).
#[inline]
fn unit(rng: &mut dyn RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// PyTorch's default `nn.Linear` initialisation drawn from `rng`: for each layer in order,
/// the weight (row-major `[out, in]`) and then the bias, every entry Uniform(±1/√fan_in).
/// Learnable normalisation parameters start at their configured initial values.
pub(crate) fn init_params(layout: &Layout, cfg: &EncoderConfig, rng: &mut dyn RngCore) -> Vec<f32> {
    let mut p = vec![0.0f32; layout.total];
    for l in 0..layout.num_layers() {
        let bound = 1.0 / (layout.widths[l] as f64).sqrt();
        for r in [layout.weight[l].clone(), layout.bias[l].clone()] {
            for v in &mut p[r] {
                *v = (bound * (2.0 * unit(rng) - 1.0)) as f32;
            }
        }
    }
    let init = match cfg.normalization {
        Normalization::LearnableSphere { init_radius } => init_radius,
        Normalization::LearnableBox { init_bound } => init_bound,
        _ => 0.0,
    };
    p[layout.norm.clone()].fill(init as f32);
    p
}
