//! Losses built from other losses: negatives drawn from groups of the batch, and the
//! symmetric (both-direction) form.

use crate::{ContrastiveLoss, Real};
use clica_core::{Error, Result};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};

/// Any boxed loss is a loss (so the wrappers below compose with `Box<dyn ContrastiveLoss<F>>`).
impl<F: Real, L: ContrastiveLoss<F> + ?Sized> ContrastiveLoss<F> for Box<L> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        (**self).loss(h, h_tilde)
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        (**self).loss_and_grad(h, h_tilde, grad_h, grad_h_tilde)
    }
}

/// A loss whose negatives come from a group of the batch rather than the whole batch.
///
/// The batch is cut into consecutive groups of `group` rows (the last one holds the remainder)
/// and the inner loss runs on each group alone: row i is contrasted with the anchors of its
/// own group only. The result is the mean over rows, Σ_g (|g|/B)·loss(g). The cost of a
/// pairwise loss falls from B² to B·`group` pairs; the number of positive pairs per step is
/// unchanged.
///
/// Fewer negatives are not free: on vMF(κ = 1) data (docs/protocol.md, issue 3) 256 negatives
/// per anchor instead of 2,048 cost about 10 points of R² at an equal number of pairs, and the
/// time saved roughly buys that back (512 negatives with the symmetric loss).
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped<L> {
    inner: L,
    group: usize,
}

impl<L> Grouped<L> {
    /// `inner` applied to groups of `group` rows.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] (`negatives`) if `group` is 0.
    pub fn new(inner: L, group: usize) -> Result<Self> {
        if group == 0 {
            return Err(Error::param("negatives", "must be at least 1, got 0"));
        }
        Ok(Grouped { inner, group })
    }

    /// Rows per group.
    pub fn group(&self) -> usize {
        self.group
    }

    /// The wrapped loss.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The groups of a batch of `b` rows, as (first row, end, weight |g|/B in the mean).
    fn groups(&self, b: usize) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..b).step_by(self.group).map(move |start| {
            let end = (start + self.group).min(b);
            (start, end, (end - start) as f64 / b as f64)
        })
    }
}

impl<F: Real, L: ContrastiveLoss<F>> ContrastiveLoss<F> for Grouped<L> {
    fn name(&self) -> String {
        format!("{}[groups of {}]", self.inner.name(), self.group)
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        crate::check_pair(h, h_tilde, 1);
        let mut total = 0.0f64;
        for (start, end, w) in self.groups(h.nrows()) {
            let rows = s![start..end, ..];
            total += self
                .inner
                .loss(h.slice(rows), h_tilde.slice(rows))
                .to_f64_lossless()
                * w;
        }
        F::from_f64(total)
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        mut grad_h: ArrayViewMut2<'_, F>,
        mut grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        crate::check_pair(h, h_tilde, 1);
        crate::check_grads(h, &grad_h, &grad_h_tilde);
        let mut total = 0.0f64;
        for (start, end, w) in self.groups(h.nrows()) {
            let rows = s![start..end, ..];
            let mut gh = grad_h.slice_mut(rows);
            let mut gt = grad_h_tilde.slice_mut(rows);
            let v = self.inner.loss_and_grad(
                h.slice(rows),
                h_tilde.slice(rows),
                gh.view_mut(),
                gt.view_mut(),
            );
            // The group's loss is a mean over its rows; its weight in the batch mean is |g|/B.
            let wf = F::from_f64(w);
            gh.mapv_inplace(|g| g * wf);
            gt.mapv_inplace(|g| g * wf);
            total += v.to_f64_lossless() * w;
        }
        F::from_f64(total)
    }
}

/// The symmetric loss ½·[loss(h, h̃) + loss(h̃, h)]: each view serves once as the anchors
/// (and their negatives) and once as the positives, so every pair is used in both directions.
///
/// This is the form of CLIP and of SimCLR's two-sided NT-Xent (without cross-view negatives).
/// It costs the inner loss twice; the encoder passes are unchanged. The two directions run
/// side by side (`rayon::join`), so one direction's serial stretches and stragglers overlap
/// the other's parallel work; each is computed exactly as alone, so the result does not
/// depend on how they are scheduled. (Two of the cached InfoNCE engine's B²/2 buffers are
/// then live at once; the engine keeps two between calls.)
#[derive(Debug, Clone, PartialEq)]
pub struct Symmetric<L> {
    inner: L,
}

impl<L> Symmetric<L> {
    /// The symmetric form of `inner`.
    pub fn new(inner: L) -> Self {
        Symmetric { inner }
    }

    /// The wrapped loss.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<F: Real, L: ContrastiveLoss<F>> ContrastiveLoss<F> for Symmetric<L> {
    fn name(&self) -> String {
        format!("symmetric[{}]", self.inner.name())
    }

    fn loss(&self, h: ArrayView2<'_, F>, h_tilde: ArrayView2<'_, F>) -> F {
        crate::check_pair(h, h_tilde, 1);
        let half = F::from_f64(0.5);
        (self.inner.loss(h, h_tilde) + self.inner.loss(h_tilde, h)) * half
    }

    fn loss_and_grad(
        &self,
        h: ArrayView2<'_, F>,
        h_tilde: ArrayView2<'_, F>,
        mut grad_h: ArrayViewMut2<'_, F>,
        mut grad_h_tilde: ArrayViewMut2<'_, F>,
    ) -> F {
        crate::check_pair(h, h_tilde, 1);
        crate::check_grads(h, &grad_h, &grad_h_tilde);
        // Reverse direction: h̃ are the anchors; its gradients land in swapped slots.
        let mut rev_t = Array2::<F>::zeros(h.dim());
        let mut rev_h = Array2::<F>::zeros(h.dim());
        let (forward, backward) = rayon::join(
            || {
                self.inner
                    .loss_and_grad(h, h_tilde, grad_h.view_mut(), grad_h_tilde.view_mut())
            },
            || {
                self.inner
                    .loss_and_grad(h_tilde, h, rev_t.view_mut(), rev_h.view_mut())
            },
        );
        let half = F::from_f64(0.5);
        Zip::from(&mut grad_h)
            .and(&rev_h)
            .for_each(|g, &r| *g = (*g + r) * half);
        Zip::from(&mut grad_h_tilde)
            .and(&rev_t)
            .for_each(|g, &r| *g = (*g + r) * half);
        (forward + backward) * half
    }
}
