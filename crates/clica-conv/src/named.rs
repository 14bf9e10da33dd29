//! What both encoders share around their parameters: one flat `f32` vector cut into named
//! tensors (PyTorch layouts), validated replacement, lending to an optimiser, and the split
//! of a batch into parallel spans.

use clica_core::{Error, NamedTensor, ParamGrad, Result};
use ndarray::ArrayView2;
use std::ops::Range;

/// The named tensors of a flat parameter vector, in order: name, shape, range.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entries(Vec<(String, Vec<usize>, Range<usize>)>);

impl Entries {
    /// Appends a tensor of `shape` after the last one and returns its range.
    pub fn push(&mut self, name: String, shape: Vec<usize>) -> Range<usize> {
        let at = self.total();
        let r = at..at + shape.iter().product::<usize>();
        self.0.push((name, shape, r.clone()));
        r
    }

    /// Values of all tensors together.
    pub fn total(&self) -> usize {
        self.0.last().map_or(0, |e| e.2.end)
    }

    /// Copies of the tensors held in `data` (the flat layout).
    pub fn named(&self, data: &[f32]) -> Vec<NamedTensor> {
        self.0
            .iter()
            .map(|(name, shape, r)| NamedTensor {
                name: name.clone(),
                shape: shape.clone(),
                data: data[r.clone()].to_vec(),
            })
            .collect()
    }

    /// `current` with every tensor replaced by the one of the same name in `tensors`.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the tensor when a name is missing, unexpected or repeated, or
    /// a shape differs.
    pub fn assign(&self, current: &[f32], tensors: &[NamedTensor]) -> Result<Vec<f32>> {
        let mut seen = vec![false; self.0.len()];
        let mut next = current.to_vec();
        for t in tensors {
            let Some(i) = self.0.iter().position(|(n, _, _)| *n == t.name) else {
                return Err(Error::Shape(format!("unexpected tensor `{}`", t.name)));
            };
            if seen[i] {
                return Err(Error::Shape(format!("tensor `{}` given twice", t.name)));
            }
            seen[i] = true;
            let (_, shape, r) = &self.0[i];
            if *shape != t.shape || t.data.len() != r.len() {
                return Err(Error::Shape(format!(
                    "tensor `{}` has shape {:?}, expected {shape:?}",
                    t.name, t.shape
                )));
            }
            next[r.clone()].copy_from_slice(&t.data);
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(Error::Shape(format!("tensor `{}` is missing", self.0[i].0)));
        }
        Ok(next)
    }

    /// Lends every tensor of `values` with its part of `grad` to `update`, in order; stops
    /// at the first error.
    pub fn lend(
        &self,
        values: &mut [f32],
        grad: &[f32],
        update: &mut dyn FnMut(ParamGrad<'_>) -> Result<()>,
    ) -> Result<()> {
        clica_core::lend_flat(&self.0, values, grad, update)
    }
}

/// `rows` split into `min(threads, max_parts)` (at least one) contiguous spans
/// `(first row, rows)` of near-equal size; `threads = 0` means rayon's thread count.
pub(crate) fn spans(rows: usize, threads: usize, max_parts: usize) -> Vec<(usize, usize)> {
    let t = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    let nb = t.min(max_parts).max(1);
    let (base, rem) = (rows / nb, rows % nb);
    let mut at = 0;
    (0..nb)
        .map(|b| {
            let r = base + usize::from(b < rem);
            let span = (at, r);
            at += r;
            span
        })
        .collect()
}

/// Panics unless `x` has one column per value of an `input` (channels, height, width) image.
pub(crate) fn check_input(input: [usize; 3], x: &ArrayView2<'_, f32>) {
    let want: usize = input.iter().product();
    assert_eq!(
        x.ncols(),
        want,
        "x must have {want} columns (channels × height × width)"
    );
}

/// One channel-first observation row → HWC, normalised by the per-channel `(mean, std)`.
pub(crate) fn to_hwc(
    src: &[f32],
    dst: &mut [f32],
    c: usize,
    plane: usize,
    norm: Option<&(Vec<f32>, Vec<f32>)>,
) {
    for ch in 0..c {
        let (m, inv_s) = match norm {
            Some((mean, std)) => (mean[ch], 1.0 / std[ch]),
            None => (0.0, 1.0),
        };
        for (p, &v) in src[ch * plane..(ch + 1) * plane].iter().enumerate() {
            dst[p * c + ch] = (v - m) * inv_s;
        }
    }
}
