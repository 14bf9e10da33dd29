//! Named parameter tensors: the currency between trainable models, optimisers and
//! checkpoints.

/// One named tensor (a parameter, a gradient or an optimiser moment) in row-major layout.
///
/// Names follow PyTorch's module paths (`layers.0.weight` is `[out, in]`), so weights
/// exchange with PyTorch through safetensors unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name, unique within a model (e.g. `layers.0.weight`, `norm.radius`).
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// The index of the first entry that is NaN or ±∞.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.data.iter().position(|v| !v.is_finite())
    }
}

/// A parameter lent to an optimiser for one update: its values, writable, beside the
/// gradient of the last backward pass.
#[derive(Debug)]
pub struct ParamGrad<'a> {
    /// The parameter's name (as in [`NamedTensor::name`]).
    pub name: &'a str,
    /// The parameter's shape.
    pub shape: &'a [usize],
    /// Its values, to be updated in place.
    pub value: &'a mut [f32],
    /// d loss / d value from the last backward pass (same length).
    pub grad: &'a [f32],
}

/// Lends flat `values` and their `grad` (same length) to `update` as one [`ParamGrad`] per
/// entry `(name, shape, range)`, in order and without allocating; stops at the first error.
/// The entries' ranges must tile `values` contiguously from 0 (asserted).
pub fn lend_flat(
    entries: &[(String, Vec<usize>, std::ops::Range<usize>)],
    mut values: &mut [f32],
    grad: &[f32],
    update: &mut dyn FnMut(ParamGrad<'_>) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut at = 0;
    for (name, shape, r) in entries {
        assert_eq!(r.start, at, "parameter layout is contiguous");
        let (head, tail) = std::mem::take(&mut values).split_at_mut(r.len());
        values = tail;
        update(ParamGrad {
            name,
            shape,
            value: head,
            grad: &grad[r.clone()],
        })?;
        at = r.end;
    }
    Ok(())
}
