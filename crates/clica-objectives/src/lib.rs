//! Contrastive objectives of **clica** as fused CPU kernels: each returns the batch-mean loss
//! and writes its gradients with respect to both views' encodings, so an encoder can
//! back-propagate them without an autodiff graph over the B×B pairs.
//!
//! Inputs are h (B×d, the anchors' encodings f(g(z_i))) and h̃ (B×d, the positives'
//! encodings f(g(z̃_i))). The negatives of row i are the batch's own anchors h_0, …, h_(B−1),
//! which includes h_i itself; [`SelfTerm`] names whether that term is kept (the reference
//! code) or dropped.
//!
//! * [`SphereInfoNce`]: loss_i = −h_i·h̃_i/τ + logsumexp_j(h_i·h_j/τ, h_i·h̃_i/τ).
//! * [`LpInfoNce`] (p ∈ {1, 2, 3}): pos_i = ‖h_i − h̃_i‖_p^p, neg_ij = ‖h_i − h_j‖_p^p and
//!   loss_i = pos_i/τ + logsumexp_j(−neg_ij/τ, −pos_i/τ) ([`LpForm::SimClr`], the paper's)
//!   or pos_i/τ + log mean_j exp(−neg_ij/τ) ([`LpForm::Plain`]).
//! * [`AlignUniform`]: mean_i ‖h_i − h̃_i‖^α + λ·log mean_{i≠j} exp(−t‖h_i − h_j‖²).
//! * [`mse`] / [`mse_and_grad`]: the supervised baseline.
//! * [`Symmetric`] (½·[loss(h, h̃) + loss(h̃, h)], every pair used in both directions) and
//!   [`Grouped`] (negatives from groups of the batch) wrap any of the above.
//!
//! The InfoNCE kernels never build a B×B×d tensor. They evaluate each unordered pair's
//! logit and exponential once, under one shift for the whole batch (an upper bound on the
//! logits), and keep the exponentials of the upper triangle (about B²/2 floats, reused between
//! calls on the calling thread) for the gradient pass; rows whose normaliser would underflow
//! under that shift (possible only without the self term or with very unequal norms) send the
//! call to a two-pass engine that shifts each row by its own max and recomputes the logits.
//! The batch axis is innermost and contiguous so the loops vectorise; rayon runs fixed row
//! blocks. Results are bit-identical for every thread count and for the portable, AVX2 and
//! AVX-512 builds chosen at run time. Both `f32` and `f64` are supported ([`Real`]).
//!
//! # Example
//!
//! ```
//! use clica_objectives::{ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce};
//! use ndarray::Array2;
//!
//! let (b, d) = (5, 3);
//! let h = Array2::from_shape_fn((b, d), |(i, k)| ((i * d + k) as f64 * 0.618).sin());
//! let h_tilde = &h + 0.01;
//!
//! let loss = LpInfoNce::new(2, 1.0, LpForm::SimClr, SelfTerm::Keep)?;
//! let mut g = Array2::zeros((b, d));
//! let mut g_tilde = Array2::zeros((b, d));
//! let value = loss.loss_and_grad(h.view(), h_tilde.view(), g.view_mut(), g_tilde.view_mut());
//! assert_eq!(value, loss.loss(h.view(), h_tilde.view()));
//!
//! // The gradient agrees with a finite difference of the loss.
//! let eps = 1e-6;
//! let mut hp = h.clone();
//! hp[[2, 1]] += eps;
//! let mut hm = h.clone();
//! hm[[2, 1]] -= eps;
//! let fd = (loss.loss(hp.view(), h_tilde.view()) - loss.loss(hm.view(), h_tilde.view())) / (2.0 * eps);
//! assert!((fd - g[[2, 1]]).abs() < 1e-8);
//!
//! // A collapsed encoder (all rows equal) scores ln(B + 1) under the sphere loss.
//! let collapsed = Array2::<f32>::ones((b, d));
//! let sphere = SphereInfoNce::new(0.5, SelfTerm::Keep)?;
//! let value = sphere.loss(collapsed.view(), collapsed.view());
//! assert!((value - (b as f32 + 1.0).ln()).abs() < 1e-5);
//! # Ok::<(), clica_objectives::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod align_uniform;
mod compose;
mod infonce;
mod kernel;
mod mse;
mod multi;
mod real;

pub use align_uniform::{AlignUniform, UniformOn};
pub use clica_core::{Error, Result};
pub use compose::{Grouped, Symmetric};
pub use infonce::{LpForm, LpInfoNce, SphereInfoNce};
pub use mse::{mse, mse_and_grad};
pub use multi::{Correction, ExtraPositives, PairTerm};
pub use real::Real;

use ndarray::{ArrayView2, ArrayViewMut2};

/// Whether the negatives of row i include the anchor against itself (j = i).
///
/// The reference implementation takes the negatives as a roll of the anchors, which is the
/// same set of B rows, so it keeps the term: similarity ‖h_i‖²/τ for the sphere, distance 0
/// for the Lp losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SelfTerm {
    /// Keep the j = i negative (the reference code).
    #[default]
    Keep,
    /// Drop the j = i negative: B − 1 negatives per row.
    Exclude,
}

impl SelfTerm {
    fn as_str(self) -> &'static str {
        match self {
            SelfTerm::Keep => "keep",
            SelfTerm::Exclude => "exclude",
        }
    }
}

/// A contrastive loss over a batch of encoder outputs.
///
/// Implemented for `f32` and `f64` by every loss of this crate; object safe for a fixed `F`
/// (`Box<dyn ContrastiveLoss<f32>>`).
pub trait ContrastiveLoss<F: Real>: Send + Sync {
    /// A short name for result files.
    fn name(&self) -> String;

    /// The batch-mean loss.
    ///
    /// # Panics
    /// If `h` and `h_tilde` differ in shape, or the batch is smaller than the loss needs
    /// (1 row; 2 for [`AlignUniform`] and for [`LpForm::Plain`] with [`SelfTerm::Exclude`]).
    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F;

    /// The batch-mean loss, with its gradients with respect to `h` and `h_tilde` written into
    /// (overwriting) `grad_h` and `grad_h_tilde`. Returns the same value as
    /// [`loss`](ContrastiveLoss::loss).
    ///
    /// # Panics
    /// As [`loss`](ContrastiveLoss::loss), and if a gradient's shape differs from `h`'s.
    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F;
}

fn check_pair<F: Real>(h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>, min_batch: usize) {
    assert_eq!(
        h.dim(),
        h_tilde.dim(),
        "h is {:?} but h_tilde is {:?}",
        h.dim(),
        h_tilde.dim()
    );
    assert!(
        h.nrows() >= min_batch,
        "this loss needs a batch of at least {min_batch} rows, got {}",
        h.nrows()
    );
}

fn check_grads<F: Real>(
    h: ArrayView2<'_, F>,
    grad_h: &ArrayViewMut2<'_, F>,
    grad_h_tilde: &ArrayViewMut2<'_, F>,
) {
    assert_eq!(
        grad_h.dim(),
        h.dim(),
        "grad_h is {:?} but h is {:?}",
        grad_h.dim(),
        h.dim()
    );
    assert_eq!(
        grad_h_tilde.dim(),
        h.dim(),
        "grad_h_tilde is {:?} but h is {:?}",
        grad_h_tilde.dim(),
        h.dim()
    );
}

fn positive_finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::param(
            name,
            format!("must be finite and > 0, got {v}"),
        ))
    }
}
