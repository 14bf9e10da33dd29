//! The InfoNCE losses: sphere (vMF model) and Lp (Laplace, Normal, generalised Normal).

use crate::kernel::{self, Dot, InfoNceSpec, L1, L2, L3};
use crate::{check_pair, positive_finite, ContrastiveLoss, Real, SelfTerm};
use clica_core::{Error, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

/// InfoNCE with a dot-product similarity (the conditional von Mises–Fisher model on the sphere).
///
/// With s_ij = h_i·h_j / τ over the negatives j (every anchor of the batch, see [`SelfTerm`])
/// and the positive logit q_i = h_i·h̃_i / τ:
///
/// loss = mean_i [ −q_i + logsumexp(s_i0, …, s_i(B−1), q_i) ].
///
/// The loss does not normalise h: the encoder's output layer puts it on the sphere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SphereInfoNce {
    tau: f64,
    self_term: SelfTerm,
}

impl SphereInfoNce {
    /// A sphere InfoNCE with temperature `tau`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `tau` is finite and > 0.
    pub fn new(tau: f64, self_term: SelfTerm) -> Result<Self> {
        positive_finite("tau", tau)?;
        Ok(SphereInfoNce { tau, self_term })
    }

    /// The temperature τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// Whether the anchor-against-itself negative is kept.
    pub fn self_term(&self) -> SelfTerm {
        self.self_term
    }

    /// A short name for result files, e.g. `sphere_infonce(tau=1,self=keep)`.
    pub fn name(&self) -> String {
        format!(
            "sphere_infonce(tau={},self={})",
            self.tau,
            self.self_term.as_str()
        )
    }

    fn spec<F: Real>(&self) -> InfoNceSpec<F> {
        InfoNceSpec {
            kappa: F::from_f64(1.0 / self.tau),
            exclude_self: self.self_term == SelfTerm::Exclude,
            include_pos: true,
            offset: F::zero(),
        }
    }
}

impl<F: Real> ContrastiveLoss<F> for SphereInfoNce {
    fn name(&self) -> String {
        SphereInfoNce::name(self)
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        check_pair(h, h_tilde, 1);
        kernel::infonce::<F, Dot<F>>(self.spec(), h, h_tilde, None)
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        check_pair(h, h_tilde, 1);
        crate::check_grads(h, &grad_h, &grad_h_tilde);
        kernel::infonce::<F, Dot<F>>(self.spec(), h, h_tilde, Some((grad_h, grad_h_tilde)))
    }
}

/// How the Lp InfoNCE treats the positive in the normaliser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LpForm {
    /// The paper's "SimCLR-compatible" form: the positive joins the negatives in the
    /// logsumexp, loss_i = pos_i/τ + logsumexp(−neg_i0/τ, …, −neg_i(B−1)/τ, −pos_i/τ).
    /// On a collapsed encoder it equals ln(B + 1) with [`SelfTerm::Keep`].
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "simclr"))]
    SimClr,
    /// The log-mean-exp over the negatives only,
    /// loss_i = pos_i/τ + log(mean_j exp(−neg_ij/τ)).
    Plain,
}

impl LpForm {
    fn as_str(self) -> &'static str {
        match self {
            LpForm::SimClr => "simclr",
            LpForm::Plain => "plain",
        }
    }
}

/// InfoNCE with a negative Lp distance raised to the p-th power as similarity (the conditional
/// Laplace model for p = 1, Normal for p = 2, generalised Normal for p = 3).
///
/// pos_i = Σ_k |h_ik − h̃_ik|^p, neg_ij = Σ_k |h_ik − h_jk|^p over the negatives j (every anchor
/// of the batch, see [`SelfTerm`]); the loss is the batch mean of the per-row loss of the chosen
/// [`LpForm`]. For p = 1 the gradient at a tie h_ik = h_jk uses the subgradient 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LpInfoNce {
    p: u32,
    tau: f64,
    form: LpForm,
    self_term: SelfTerm,
}

impl LpInfoNce {
    /// An Lp InfoNCE with exponent `p` ∈ {1, 2, 3} and temperature `tau`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `p` ∉ {1, 2, 3} or `tau` is not finite and > 0.
    pub fn new(p: u32, tau: f64, form: LpForm, self_term: SelfTerm) -> Result<Self> {
        if !(1..=3).contains(&p) {
            return Err(Error::param("p", format!("must be 1, 2 or 3, got {p}")));
        }
        positive_finite("tau", tau)?;
        Ok(LpInfoNce {
            p,
            tau,
            form,
            self_term,
        })
    }

    /// The exponent p.
    pub fn p(&self) -> u32 {
        self.p
    }

    /// The temperature τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// The form of the normaliser.
    pub fn form(&self) -> LpForm {
        self.form
    }

    /// Whether the anchor-against-itself negative is kept.
    pub fn self_term(&self) -> SelfTerm {
        self.self_term
    }

    /// A short name for result files, e.g. `l2_infonce_simclr(tau=1,self=keep)`.
    pub fn name(&self) -> String {
        format!(
            "l{}_infonce_{}(tau={},self={})",
            self.p,
            self.form.as_str(),
            self.tau,
            self.self_term.as_str()
        )
    }

    fn min_batch(&self) -> usize {
        // The plain form without the self term needs at least one negative.
        if self.form == LpForm::Plain && self.self_term == SelfTerm::Exclude {
            2
        } else {
            1
        }
    }

    fn spec<F: Real>(&self, b: usize) -> InfoNceSpec<F> {
        let exclude_self = self.self_term == SelfTerm::Exclude;
        let offset = match self.form {
            LpForm::SimClr => 0.0,
            LpForm::Plain => ((b - usize::from(exclude_self)) as f64).ln(),
        };
        InfoNceSpec {
            kappa: F::from_f64(-1.0 / self.tau),
            exclude_self,
            include_pos: self.form == LpForm::SimClr,
            offset: F::from_f64(offset),
        }
    }

    fn run<F: Real>(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grads: Option<(ArrayViewMut2<'_, F>, ArrayViewMut2<'_, F>)>,
    ) -> F {
        let spec = self.spec(h.nrows());
        match self.p {
            1 => kernel::infonce::<F, L1<F>>(spec, h, h_tilde, grads),
            2 => kernel::infonce::<F, L2<F>>(spec, h, h_tilde, grads),
            3 => kernel::infonce::<F, L3<F>>(spec, h, h_tilde, grads),
            _ => unreachable!("p is validated by the constructor"),
        }
    }
}

impl<F: Real> ContrastiveLoss<F> for LpInfoNce {
    fn name(&self) -> String {
        LpInfoNce::name(self)
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        check_pair(h, h_tilde, self.min_batch());
        self.run(h, h_tilde, None)
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        check_pair(h, h_tilde, self.min_batch());
        crate::check_grads(h, &grad_h, &grad_h_tilde);
        self.run(h, h_tilde, Some((grad_h, grad_h_tilde)))
    }
}
