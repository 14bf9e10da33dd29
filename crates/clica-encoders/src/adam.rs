//! Adam on a flat parameter vector, PyTorch semantics.

use crate::config::AdamConfig;
use rayon::prelude::*;

/// Elements per parallel piece of the element-wise passes (Adam, gradient reduction).
const PIECE: usize = 1 << 15;

/// Adam state for a flat parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    cfg: AdamConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: u64,
}

impl Adam {
    pub fn new(cfg: AdamConfig, len: usize) -> Self {
        Adam {
            cfg,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    /// Forgets the moments and the step count.
    pub fn reset(&mut self) {
        self.m.fill(0.0);
        self.v.fill(0.0);
        self.t = 0;
    }

    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The first and second moments (flat layout).
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// Replaces the moments and the step count (lengths checked by the caller).
    pub fn set_state(&mut self, m: Vec<f32>, v: Vec<f32>, t: u64) {
        assert_eq!(m.len(), self.m.len(), "first moment length changed");
        assert_eq!(v.len(), self.v.len(), "second moment length changed");
        self.m = m;
        self.v = v;
        self.t = t;
    }

    /// One Adam step with gradient `grad` and learning rate `lr`, exactly PyTorch's
    /// single-tensor update: `m ← m + (1−β₁)(g − m)`, `v ← β₂v + (1−β₂)g²`,
    /// `p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`, the scalars in f64.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        assert_eq!(params.len(), self.m.len(), "parameter count changed");
        assert_eq!(
            grad.len(),
            self.m.len(),
            "gradient length differs from parameters"
        );
        self.t += 1;
        let t = self.t.min(i32::MAX as u64) as i32;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let step_size = (f64::from(lr) / bc1) as f32;
        let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
        let (w1, b2, w2, eps) = (
            (1.0 - c.beta1) as f32,
            c.beta2 as f32,
            (1.0 - c.beta2) as f32,
            c.eps as f32,
        );
        params
            .par_chunks_mut(PIECE)
            .zip(self.m.par_chunks_mut(PIECE))
            .zip(self.v.par_chunks_mut(PIECE))
            .zip(grad.par_chunks(PIECE))
            .for_each(|(((p, m), v), g)| {
                for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                    *m += w1 * (g - *m);
                    *v = b2 * *v + w2 * g * g;
                    let denom = v.sqrt() * inv_bc2_sqrt + eps;
                    *p -= step_size * (*m / denom);
                }
            });
    }
}

/// `acc += Σ others`, element-wise, in parallel pieces.
pub(crate) fn reduce_into(acc: &mut [f32], others: &[Vec<f32>]) {
    if others.is_empty() {
        return;
    }
    acc.par_chunks_mut(PIECE).enumerate().for_each(|(i, a)| {
        let off = i * PIECE;
        let len = a.len();
        for o in others {
            for (x, y) in a.iter_mut().zip(&o[off..off + len]) {
                *x += *y;
            }
        }
    });
}
