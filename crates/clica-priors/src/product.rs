//! [`ProductPrior`]: a concatenation of independent priors.

use crate::{Error, Prior, Result};
use clica_core::LatentPrior;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Slice};
use rand::RngCore;

/// The product of independent [`Prior`]s: a latent is the concatenation of one draw per part,
/// columns in part order (used by the image experiments, e.g. positions in a box × a rotation
/// on a sphere).
///
/// Each part samples its own column block; the parts take their generators from the caller's
/// `rng` in order (one `u64` each), so a one-part product samples exactly like its part.
#[derive(Debug, Clone)]
pub struct ProductPrior {
    parts: Vec<Prior>,
    /// Column offset of each part, plus the total dimension at the end.
    offsets: Vec<usize>,
}

impl ProductPrior {
    /// The product of `parts`, in order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] (`parts`) when `parts` is empty.
    pub fn new(parts: Vec<Prior>) -> Result<ProductPrior> {
        if parts.is_empty() {
            return Err(Error::param(
                "parts",
                "a product prior needs at least one part",
            ));
        }
        let mut offsets = Vec::with_capacity(parts.len() + 1);
        let mut acc = 0;
        offsets.push(0);
        for p in &parts {
            acc += p.dim();
            offsets.push(acc);
        }
        Ok(ProductPrior { parts, offsets })
    }

    /// The parts, in column order.
    pub fn parts(&self) -> &[Prior] {
        &self.parts
    }

    /// The column range `[start, end)` of part `i`.
    ///
    /// # Panics
    /// If `i` is not a valid part index.
    pub fn columns(&self, i: usize) -> std::ops::Range<usize> {
        assert!(i < self.parts.len(), "part index {i} out of range");
        self.offsets[i]..self.offsets[i + 1]
    }
}

impl LatentPrior for ProductPrior {
    fn dim(&self) -> usize {
        *self.offsets.last().expect("non-empty")
    }

    /// Fills every row of `out` with an independent draw (each part independently).
    ///
    /// # Panics
    /// If `out` does not have `dim()` columns.
    fn sample_marginal(&self, rng: &mut dyn RngCore, mut out: ArrayViewMut2<'_, f64>) {
        assert_eq!(
            out.ncols(),
            self.dim(),
            "clica-priors: output has {} columns, product dimension is {}",
            out.ncols(),
            self.dim()
        );
        for (i, p) in self.parts.iter().enumerate() {
            let cols = self.columns(i);
            p.sample_marginal(rng, out.slice_axis_mut(Axis(1), Slice::from(cols)));
        }
    }

    /// Fills row i of `out` with a draw from the product conditional around `anchors[i]`.
    ///
    /// # Panics
    /// If `anchors` and `out` differ in shape or do not have `dim()` columns, or a part
    /// panics on its anchor block (see [`Prior`]'s `sample_conditional`).
    fn sample_conditional(
        &self,
        rng: &mut dyn RngCore,
        anchors: ArrayView2<'_, f64>,
        mut out: ArrayViewMut2<'_, f64>,
    ) {
        assert_eq!(
            anchors.ncols(),
            self.dim(),
            "clica-priors: anchors have {} columns, product dimension is {}",
            anchors.ncols(),
            self.dim()
        );
        assert_eq!(
            anchors.dim(),
            out.dim(),
            "clica-priors: anchors and output differ in shape"
        );
        for (i, p) in self.parts.iter().enumerate() {
            let cols = self.columns(i);
            p.sample_conditional(
                rng,
                anchors.slice_axis(Axis(1), Slice::from(cols.clone())),
                out.slice_axis_mut(Axis(1), Slice::from(cols)),
            );
        }
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.parts.iter().map(|p| p.describe()).collect();
        format!("product[{}]", parts.join("; "))
    }
}
