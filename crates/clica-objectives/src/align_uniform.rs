//! Wang & Isola's (2020) alignment and uniformity loss.

use crate::kernel;
use crate::{check_pair, positive_finite, ContrastiveLoss, Real};
use clica_core::{Error, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Which views the uniformity term is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum UniformOn {
    /// On the anchors h only: uniform(h).
    #[default]
    Anchors,
    /// On both views, averaged: (uniform(h) + uniform(h̃)) / 2, as in Wang & Isola's code.
    Both,
}

/// Alignment plus λ·uniformity (Wang & Isola, 2020):
///
/// * align = mean_i ‖h_i − h̃_i‖₂^α,
/// * uniform(h) = log mean_{i≠j} exp(−t·‖h_i − h_j‖₂²),
/// * loss = align + λ·uniform (uniform on the views chosen by [`UniformOn`]).
///
/// Defaults: α = 2, t = 2, λ = 1, uniformity on the anchors. Needs a batch of at least 2.
/// The alignment gradient at h_i = h̃_i is taken as 0 (a subgradient for α ≤ 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlignUniform {
    alpha: f64,
    t: f64,
    lambda: f64,
    on: UniformOn,
}

impl Default for AlignUniform {
    fn default() -> Self {
        AlignUniform {
            alpha: 2.0,
            t: 2.0,
            lambda: 1.0,
            on: UniformOn::Anchors,
        }
    }
}

impl AlignUniform {
    /// Alignment exponent `alpha` > 0, uniformity temperature `t` > 0 and weight `lambda` ≥ 0,
    /// uniformity on the anchors.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if a parameter is not finite or out of range.
    pub fn new(alpha: f64, t: f64, lambda: f64) -> Result<Self> {
        positive_finite("alpha", alpha)?;
        positive_finite("t", t)?;
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(Error::param(
                "lambda",
                format!("must be finite and >= 0, got {lambda}"),
            ));
        }
        Ok(AlignUniform {
            alpha,
            t,
            lambda,
            on: UniformOn::Anchors,
        })
    }

    /// The same loss with the uniformity term on the views `on`.
    pub fn with_uniform_on(self, on: UniformOn) -> Self {
        AlignUniform { on, ..self }
    }

    /// The alignment exponent α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The uniformity temperature t.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// The weight λ of the uniformity term.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The views the uniformity term is computed on.
    pub fn uniform_on(&self) -> UniformOn {
        self.on
    }

    /// A short name for result files, e.g. `align_uniform(alpha=2,t=2,lambda=1,on=anchors)`.
    pub fn name(&self) -> String {
        let on = match self.on {
            UniformOn::Anchors => "anchors",
            UniformOn::Both => "both",
        };
        format!(
            "align_uniform(alpha={},t={},lambda={},on={on})",
            self.alpha, self.t, self.lambda
        )
    }

    fn run<F: Real>(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grads: Option<(ArrayViewMut2<'_, F>, ArrayViewMut2<'_, F>)>,
    ) -> F {
        let (b, d) = h.dim();
        let t = F::from_f64(self.t);
        let (lambda_h, lambda_t) = match self.on {
            UniformOn::Anchors => (self.lambda, 0.0),
            UniformOn::Both => (0.5 * self.lambda, 0.5 * self.lambda),
        };
        let ha = kernel::to_rows(h);
        let hb = kernel::to_rows(h_tilde);
        let half_alpha = F::from_f64(0.5 * self.alpha);
        let alpha = F::from_f64(self.alpha);
        let inv_b = F::one() / F::from_f64(b as f64);

        // Alignment: value and, per row, the coefficient of δ_i = h_i − h̃_i in the gradient.
        let mut align = 0.0f64;
        let mut coef = Vec::with_capacity(b);
        for i in 0..b {
            let n2 = ha[i * d..(i + 1) * d]
                .iter()
                .zip(&hb[i * d..(i + 1) * d])
                .fold(F::zero(), |a, (&x, &y)| a + (x - y) * (x - y));
            align += n2.powf(half_alpha).to_f64_lossless();
            // ∂‖δ‖^α/∂δ = α·‖δ‖^(α−2)·δ.
            // At δ = 0 the gradient is 0 (it is for α > 1; a subgradient choice for α ≤ 1).
            let c = if n2 > F::zero() {
                alpha * n2.powf(half_alpha - F::one()) * inv_b
            } else {
                F::zero()
            };
            coef.push(c);
        }
        align /= b as f64;

        match grads {
            None => {
                let mut u = 0.0;
                if lambda_h > 0.0 {
                    u += kernel::uniformity(t, h, None).to_f64_lossless() * lambda_h;
                }
                if lambda_t > 0.0 {
                    u += kernel::uniformity(t, h_tilde, None).to_f64_lossless() * lambda_t;
                }
                F::from_f64(align + u)
            }
            Some((mut grad_h, mut grad_h_tilde)) => {
                let mut u = 0.0;
                if lambda_h > 0.0 {
                    let w = F::from_f64(lambda_h);
                    let uh = kernel::uniformity(t, h, Some((grad_h.view_mut(), w)));
                    u += uh.to_f64_lossless() * lambda_h;
                } else {
                    grad_h.fill(F::zero());
                }
                if lambda_t > 0.0 {
                    let ut = kernel::uniformity(
                        t,
                        h_tilde,
                        Some((grad_h_tilde.view_mut(), F::from_f64(lambda_t))),
                    );
                    u += ut.to_f64_lossless() * lambda_t;
                } else {
                    grad_h_tilde.fill(F::zero());
                }
                for i in 0..b {
                    for l in 0..d {
                        let g = coef[i] * (ha[i * d + l] - hb[i * d + l]);
                        grad_h[[i, l]] = grad_h[[i, l]] + g;
                        grad_h_tilde[[i, l]] = grad_h_tilde[[i, l]] - g;
                    }
                }
                F::from_f64(align + u)
            }
        }
    }
}

impl<F: Real> ContrastiveLoss<F> for AlignUniform {
    fn name(&self) -> String {
        AlignUniform::name(self)
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        check_pair(h, h_tilde, 2);
        self.run(h, h_tilde, None)
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        check_pair(h, h_tilde, 2);
        crate::check_grads(h, &grad_h, &grad_h_tilde);
        self.run(h, h_tilde, Some((grad_h, grad_h_tilde)))
    }
}
