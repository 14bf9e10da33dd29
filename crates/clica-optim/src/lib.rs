//! Optimisers over named tensors, for any [`TrainableEncoder`].
//!
//! [`Adam`] follows PyTorch's single-tensor Adam exactly (bias-corrected moments, `eps`
//! added to `√v̂`, no weight decay, scalars in `f64`), so a run can be compared with a
//! PyTorch one step for step. Its moments are kept per parameter name; [`Adam::state`]
//! exports them (with the step count) for checkpoints and [`Adam::set_state`] restores
//! them, after which every later step is bit-identical to an uninterrupted run.
//!
//! The update is element-wise, so it gives the same bits on any number of threads.
//!
//! # Example
//!
//! ```
//! use clica_core::ParamGrad;
//! use clica_optim::{Adam, AdamConfig};
//!
//! // Minimise f(w) = ½‖w − 3‖² by hand: the gradient is w − 3.
//! let mut w = vec![0.0f32; 4];
//! let mut adam = Adam::new(AdamConfig::default())?;
//! for _ in 0..2000 {
//!     let g: Vec<f32> = w.iter().map(|v| v - 3.0).collect();
//!     let mut p = [ParamGrad { name: "w", shape: &[4], value: &mut w, grad: &g }];
//!     adam.update(&mut p, 0.01)?;
//! }
//! assert!(w.iter().all(|v| (v - 3.0).abs() < 1e-2), "{w:?}");
//! assert_eq!(adam.steps(), 2000);
//! // The state names every moment like its parameter.
//! assert_eq!(adam.state().first_moment[0].name, "w");
//! # Ok::<(), clica_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use clica_core::{Error, NamedTensor, ParamGrad, Result, TrainableEncoder};
use rayon::prelude::*;

/// What a lender calls once per parameter (see [`Adam::step_with`]).
pub type Visitor<'v> = &'v mut dyn FnMut(ParamGrad<'_>) -> Result<()>;

/// Elements per parallel piece of the element-wise update.
const PIECE: usize = 1 << 15;

/// Adam hyper-parameters, PyTorch semantics (bias-corrected moments, `eps` added to
/// `sqrt(v̂)`, no weight decay). The learning rate is passed to every step instead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Decay of the first moment, in [0, 1). PyTorch default 0.9.
    pub beta1: f64,
    /// Decay of the second moment, in [0, 1). PyTorch default 0.999.
    pub beta2: f64,
    /// Added to the denominator, > 0. PyTorch default 1e-8.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `adam.beta1`, `adam.beta2` or `adam.eps`.
    pub fn validate(&self) -> Result<()> {
        for (name, b) in [("adam.beta1", self.beta1), ("adam.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::param(name, format!("must lie in [0, 1), got {b}")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::param(
                "adam.eps",
                format!("must be finite and > 0, got {}", self.eps),
            ));
        }
        Ok(())
    }
}

/// Adam's state: the step count and both moments, one tensor per parameter, named like it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    /// Adam steps taken (the `t` of the bias corrections).
    pub steps: u64,
    /// First moments.
    pub first_moment: Vec<NamedTensor>,
    /// Second moments.
    pub second_moment: Vec<NamedTensor>,
}

/// Adam over named tensors.
#[derive(Debug, Clone)]
pub struct Adam {
    cfg: AdamConfig,
    t: u64,
    /// One entry per parameter, in the model's order; empty before the first step.
    m: Vec<NamedTensor>,
    v: Vec<NamedTensor>,
}

impl Adam {
    /// A fresh optimiser (moments are created at the first step, zero).
    ///
    /// # Errors
    /// As [`AdamConfig::validate`].
    pub fn new(cfg: AdamConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Adam {
            cfg,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Forgets the moments and the step count.
    pub fn reset(&mut self) {
        self.t = 0;
        self.m.clear();
        self.v.clear();
    }

    /// One step on `model`'s pending gradient with learning rate `lr`.
    ///
    /// # Errors
    /// As [`TrainableEncoder::update_parameters`] and [`Adam::step_with`].
    pub fn step(&mut self, model: &mut dyn TrainableEncoder, lr: f32) -> Result<()> {
        self.step_with(lr, &mut |visit| model.update_parameters(visit))
    }

    /// One step on explicit parameters and gradients (see [`Adam::step_with`]).
    ///
    /// # Errors
    /// As [`Adam::step_with`].
    pub fn update(&mut self, params: &mut [ParamGrad<'_>], lr: f32) -> Result<()> {
        self.step_with(lr, &mut |visit| {
            for p in params.iter_mut() {
                visit(ParamGrad {
                    name: p.name,
                    shape: p.shape,
                    value: &mut *p.value,
                    grad: p.grad,
                })?;
            }
            Ok(())
        })
    }

    /// One step over the parameters that `lend` passes to its visitor, one call each and
    /// always in the same order: exactly PyTorch's single-tensor update
    /// `m ← m + (1−β₁)(g − m)`, `v ← β₂v + (1−β₂)g²`,
    /// `p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`, the scalars in `f64`. Moments
    /// are created (zero) at the first step; later steps allocate nothing.
    ///
    /// # Errors
    /// [`Error::Shape`] when the parameters differ (in name, order or size) from those of
    /// earlier steps or of a restored state, or a gradient's length differs from its
    /// parameter's; whatever `lend` returns. The step count advances only on success;
    /// parameters (and their moments) lent before a mismatch are already updated when the
    /// error returns.
    pub fn step_with(
        &mut self,
        lr: f32,
        lend: &mut dyn FnMut(Visitor<'_>) -> Result<()>,
    ) -> Result<()> {
        let t = (self.t + 1).min(i32::MAX as u64) as i32;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let k = Coefficients {
            step_size: (f64::from(lr) / bc1) as f32,
            inv_bc2_sqrt: (1.0 / bc2.sqrt()) as f32,
            w1: (1.0 - c.beta1) as f32,
            b2: c.beta2 as f32,
            w2: (1.0 - c.beta2) as f32,
            eps: c.eps as f32,
        };
        let fresh = self.m.is_empty();
        let mut i = 0;
        let (m, v) = (&mut self.m, &mut self.v);
        let result = lend(&mut |p| {
            if p.grad.len() != p.value.len() {
                return Err(Error::Shape(format!(
                    "gradient of `{}` has {} values, the parameter {}",
                    p.name,
                    p.grad.len(),
                    p.value.len()
                )));
            }
            if fresh {
                let zeros = || NamedTensor {
                    name: p.name.to_string(),
                    shape: p.shape.to_vec(),
                    data: vec![0.0; p.value.len()],
                };
                m.push(zeros());
                v.push(zeros());
            }
            let (Some(mi), Some(vi)) = (m.get_mut(i), v.get_mut(i)) else {
                return Err(Error::Shape(format!(
                    "Adam holds moments for {} parameters but was given more (`{}`)",
                    i, p.name
                )));
            };
            if mi.name != p.name || mi.data.len() != p.value.len() {
                return Err(Error::Shape(format!(
                    "Adam holds moments for `{}` ({} values) where `{}` ({} values) was given",
                    mi.name,
                    mi.data.len(),
                    p.name,
                    p.value.len()
                )));
            }
            k.apply(p.value, &mut mi.data, &mut vi.data, p.grad);
            i += 1;
            Ok(())
        });
        if let Err(e) = result {
            if fresh {
                self.reset();
            }
            return Err(e);
        }
        if i != self.m.len() {
            return Err(Error::Shape(format!(
                "Adam holds moments for {} parameters but was given {i}",
                self.m.len()
            )));
        }
        self.t += 1;
        Ok(())
    }

    /// A copy of the state, for checkpoints. Before the first step there are no moments
    /// yet (the state is empty, and restoring it gives a fresh optimiser).
    pub fn state(&self) -> OptimizerState {
        OptimizerState {
            steps: self.t,
            first_moment: self.m.clone(),
            second_moment: self.v.clone(),
        }
    }

    /// Restores a state saved by [`state`](Self::state) for a model with `parameters`
    /// (names and shapes are checked against them; an empty state is a fresh optimiser).
    ///
    /// # Errors
    /// [`Error::Shape`] naming the first tensor that is missing, unexpected or shaped
    /// differently.
    pub fn set_state(&mut self, state: &OptimizerState, parameters: &[NamedTensor]) -> Result<()> {
        if state.first_moment.is_empty() && state.second_moment.is_empty() {
            self.reset();
            self.t = state.steps;
            return Ok(());
        }
        let order = |moments: &[NamedTensor], what: &str| -> Result<Vec<NamedTensor>> {
            let mut out = Vec::with_capacity(parameters.len());
            for p in parameters {
                let mut found = moments.iter().filter(|t| t.name == p.name);
                let t = found.next().ok_or_else(|| {
                    Error::Shape(format!(
                        "{what}: missing tensor `{}` (shape {:?})",
                        p.name, p.shape
                    ))
                })?;
                if found.next().is_some() {
                    return Err(Error::Shape(format!(
                        "{what}: tensor `{}` given twice",
                        p.name
                    )));
                }
                if t.shape != p.shape || t.data.len() != p.data.len() {
                    return Err(Error::Shape(format!(
                        "{what}: tensor `{}` has shape {:?} but the parameter has {:?}",
                        p.name, t.shape, p.shape
                    )));
                }
                out.push(t.clone());
            }
            if let Some(t) = moments
                .iter()
                .find(|t| !parameters.iter().any(|p| p.name == t.name))
            {
                return Err(Error::Shape(format!(
                    "{what}: unexpected tensor `{}` (shape {:?})",
                    t.name, t.shape
                )));
            }
            Ok(out)
        };
        let m = order(&state.first_moment, "Adam first moment")?;
        let v = order(&state.second_moment, "Adam second moment")?;
        self.m = m;
        self.v = v;
        self.t = state.steps;
        Ok(())
    }
}

/// The scalars of one Adam step.
#[derive(Clone, Copy)]
struct Coefficients {
    step_size: f32,
    inv_bc2_sqrt: f32,
    w1: f32,
    b2: f32,
    w2: f32,
    eps: f32,
}

impl Coefficients {
    /// The element-wise update of one parameter tensor, in parallel pieces.
    fn apply(self, value: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        let Coefficients {
            step_size,
            inv_bc2_sqrt,
            w1,
            b2,
            w2,
            eps,
        } = self;
        value
            .par_chunks_mut(PIECE)
            .zip(m.par_chunks_mut(PIECE))
            .zip(v.par_chunks_mut(PIECE))
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
