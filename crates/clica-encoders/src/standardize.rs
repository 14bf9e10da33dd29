//! A fixed per-feature standardisation in front of any trainable encoder: x ↦ (x − μ) / σ,
//! with μ and σ measured once on the data (not trained, not a parameter).

use clica_core::{Error, NamedTensor, ParamGrad, Result, TrainableEncoder};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Rows per parallel task of the standardisation.
const STANDARDIZE_ROWS: usize = 1024;

/// `inner` applied to standardised observations (x − μ) / σ, feature by feature.
///
/// The map is fixed at construction (typically from the data's own mean and standard
/// deviation, which the caller measures and records); it is not among the parameters, so
/// optimisers, checkpoints and `encoder.safetensors` see only `inner`'s. Its description
/// is `inner`'s with the map appended.
pub struct Standardized {
    inner: Box<dyn TrainableEncoder>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    std: Vec<f32>,
    /// The standardised rows of the last training forward pass.
    buf: Array2<f32>,
}

impl Standardized {
    /// Wraps `inner` with the standardisation by `mean` and `std` (one entry per input
    /// feature).
    ///
    /// # Errors
    /// [`Error::Shape`] when the lengths differ from the encoder's input length;
    /// [`Error::InvalidParameter`] (`input_norm`) for a non-finite mean or a standard
    /// deviation that is not finite and positive.
    pub fn new(inner: Box<dyn TrainableEncoder>, mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let d = inner.input_len();
        if mean.len() != d || std.len() != d {
            return Err(Error::Shape(format!(
                "input_norm: {} means and {} standard deviations for {d} input features",
                mean.len(),
                std.len()
            )));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(Error::param(
                "input_norm",
                format!("mean {m} is not finite"),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::param(
                "input_norm",
                format!("standard deviation {s} must be finite and positive"),
            ));
        }
        let inv_std = std.iter().map(|s| 1.0 / s).collect();
        Ok(Standardized {
            inner,
            mean,
            inv_std,
            std,
            buf: Array2::zeros((0, d)),
        })
    }

    /// The means μ.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The standard deviations σ.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    fn standardize_into(&self, x: ArrayView2<'_, f32>, out: &mut Array2<f32>) {
        assert_eq!(
            x.ncols(),
            self.mean.len(),
            "x has {} columns but the encoder expects {}",
            x.ncols(),
            self.mean.len()
        );
        if out.dim() != x.dim() {
            *out = Array2::zeros(x.dim());
        }
        let d = self.mean.len();
        if d == 0 {
            return;
        }
        // Element-wise, so the row blocks run in parallel with the same results; a view that
        // is not row-major is copied into row order first.
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let o = out
            .as_slice_mut()
            .expect("the buffer is always made by Array2::zeros");
        let (mean, inv_std) = (&self.mean[..], &self.inv_std[..]);
        o.par_chunks_mut(STANDARDIZE_ROWS * d)
            .zip(xs.par_chunks(STANDARDIZE_ROWS * d))
            .for_each(|(o, xs)| {
                for (o, r) in o.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
                    for (((o, &v), &m), &s) in o.iter_mut().zip(r).zip(mean).zip(inv_std) {
                        *o = (v - m) * s;
                    }
                }
            });
    }
}

/// `input_norm(mean=[…], std=[…])` with four significant digits, as result files record it.
pub fn describe_input_norm(mean: &[f32], std: &[f32]) -> String {
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.4e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("input_norm(mean=[{}], std=[{}])", list(mean), list(std))
}

impl TrainableEncoder for Standardized {
    fn input_shape(&self) -> Vec<usize> {
        self.inner.input_shape()
    }

    fn output_dim(&self) -> usize {
        self.inner.output_dim()
    }

    fn describe(&self) -> String {
        format!(
            "{} {}",
            self.inner.describe(),
            describe_input_norm(&self.mean, &self.std)
        )
    }

    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        let mut buf = std::mem::take(&mut self.buf);
        self.standardize_into(x, &mut buf);
        self.buf = buf;
        self.inner.forward_train(self.buf.view())
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) {
        self.inner.backward(grad_out)
    }

    fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut buf = Array2::zeros((0, 0));
        self.standardize_into(x, &mut buf);
        self.inner.encode_f32(buf.view())
    }

    fn parameters(&self) -> Vec<NamedTensor> {
        self.inner.parameters()
    }

    fn set_parameters(&mut self, tensors: &[NamedTensor]) -> Result<()> {
        self.inner.set_parameters(tensors)
    }

    fn gradients(&self) -> Option<Vec<NamedTensor>> {
        self.inner.gradients()
    }

    fn update_parameters(
        &mut self,
        update: &mut dyn FnMut(ParamGrad<'_>) -> Result<()>,
    ) -> Result<()> {
        self.inner.update_parameters(update)
    }

    fn first_non_finite_parameter(&self) -> Option<(String, usize)> {
        self.inner.first_non_finite_parameter()
    }

    fn first_non_finite_gradient(&self) -> Option<(String, usize)> {
        self.inner.first_non_finite_gradient()
    }

    fn to_safetensors(&self) -> Result<Vec<u8>> {
        self.inner.to_safetensors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderConfig, MlpEncoder};
    use clica_core::RunSeed;
    use ndarray::array;

    fn mlp() -> MlpEncoder {
        let cfg = EncoderConfig::paper(2).with_hidden(vec![4]).with_threads(1);
        MlpEncoder::new(cfg, &mut RunSeed::new(3).stream("enc")).unwrap()
    }

    #[test]
    fn it_is_the_inner_encoder_on_standardised_rows() {
        let x = array![[1.0f32, 10.0], [3.0, -10.0], [2.0, 0.0]];
        let (mean, std) = (vec![2.0f32, 0.0], vec![0.5f32, 10.0]);
        let mut s = Standardized::new(Box::new(mlp()), mean, std).unwrap();
        let z = array![[-2.0f32, 1.0], [2.0, -1.0], [0.0, 0.0]];
        let mut plain = mlp();
        assert_eq!(s.encode_f32(x.view()), plain.encode_f32(z.view()));
        let a = s.forward_train(x.view()).to_owned();
        assert_eq!(a, plain.forward_train(z.view()).to_owned());
        // Gradients are the inner encoder's on the standardised rows.
        let g = Array2::from_elem(a.raw_dim(), 0.5f32);
        s.backward(g.view());
        plain.backward(g.view());
        let (gs, gp) = (s.gradients().unwrap(), plain.gradients().unwrap());
        assert_eq!(gs.len(), gp.len());
        for (a, b) in gs.iter().zip(&gp) {
            assert_eq!((&a.name, &a.data), (&b.name, &b.data));
        }
        assert!(s
            .describe()
            .ends_with("input_norm(mean=[2.0000e0, 0.0000e0], std=[5.0000e-1, 1.0000e1])"));
        assert_eq!(s.parameters().len(), plain.parameters().len());
    }

    #[test]
    fn rows_are_standardised_alike_in_parallel_blocks_and_any_layout() {
        // Several parallel blocks and a partial one, from a row-major and a column-major x.
        let rows = 2 * STANDARDIZE_ROWS + 7;
        let x = Array2::from_shape_fn((rows, 2), |(i, j)| {
            ((i * 7 + j * 3) as f32 * 0.37).sin() * 5.0
        });
        let s = Standardized::new(Box::new(mlp()), vec![0.25, -1.0], vec![2.0, 0.3]).unwrap();
        let want =
            Array2::from_shape_fn((rows, 2), |(i, j)| (x[[i, j]] - s.mean[j]) * s.inv_std[j]);
        let column_major = x.t().as_standard_layout().into_owned().reversed_axes();
        assert!(column_major.as_slice().is_none());
        for input in [x.view(), column_major.view()] {
            let mut out = Array2::zeros((0, 0));
            s.standardize_into(input, &mut out);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn bad_maps_are_refused_by_name() {
        for (mean, std, want) in [
            (vec![0.0f32], vec![1.0f32, 1.0], "input_norm: 1 means"),
            (vec![f32::NAN, 0.0], vec![1.0, 1.0], "not finite"),
            (vec![0.0, 0.0], vec![1.0, 0.0], "finite and positive"),
            (
                vec![0.0, 0.0],
                vec![1.0, f32::INFINITY],
                "finite and positive",
            ),
        ] {
            let e = Standardized::new(Box::new(mlp()), mean, std)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
