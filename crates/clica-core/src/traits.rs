//! The traits through which the clica crates compose.
//!
//! Runtime dimensions, `f64` data, rows are samples. Randomness is passed as
//! `&mut dyn RngCore` so the traits stay object-safe (`Box<dyn LatentPrior>`).

use crate::{Fingerprint, Mirror, NamedTensor, ParamGrad, Reflection, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::RngCore;

/// A distribution over latents: a marginal p(z) and a conditional p(z̃ | z).
pub trait LatentPrior: Send + Sync {
    /// Dimension n of a latent vector.
    fn dim(&self) -> usize;

    /// Fills every row of `out` (shape `k × dim`) with an independent draw from p(z).
    ///
    /// # Panics
    /// If `out` does not have `dim()` columns.
    fn sample_marginal(&self, rng: &mut dyn RngCore, out: ArrayViewMut2<'_, f64>);

    /// Fills row i of `out` with a draw from p(z̃ | z = `anchors[i]`).
    ///
    /// # Panics
    /// If `anchors` and `out` differ in shape or do not have `dim()` columns.
    fn sample_conditional(
        &self,
        rng: &mut dyn RngCore,
        anchors: ArrayView2<'_, f64>,
        out: ArrayViewMut2<'_, f64>,
    );

    /// A short human-readable description (recorded in result files).
    fn describe(&self) -> String;

    /// Allocating convenience wrapper around [`LatentPrior::sample_marginal`].
    fn marginal(&self, rng: &mut dyn RngCore, k: usize) -> Array2<f64> {
        let mut out = Array2::zeros((k, self.dim()));
        self.sample_marginal(rng, out.view_mut());
        out
    }

    /// Allocating convenience wrapper around [`LatentPrior::sample_conditional`].
    fn conditional(&self, rng: &mut dyn RngCore, anchors: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = Array2::zeros(anchors.raw_dim());
        self.sample_conditional(rng, anchors, out.view_mut());
        out
    }

    /// A reflection that fixes each anchor and leaves p(z̃ | z) unchanged, when the
    /// conditional has one: the mirror image of an exact draw is then an exact draw too
    /// (antithetic positives). `None`, the default, when it has none.
    fn conditional_mirror(&self) -> Option<Mirror> {
        None
    }

    /// A fixed reflection r of the latent space with p(r(z)) = p(z) and
    /// p(r(z̃) | r(z)) = p(z̃ | z), when the prior has one: an anchor drawn with its positives,
    /// reflected as a whole, is then an exact anchor with exact positives (antithetic
    /// anchors). `None`, the default, when it has none.
    fn anchor_reflection(&self) -> Option<Reflection> {
        None
    }
}

/// A fixed generator g: Z → X ("the mixing"), built once per run.
pub trait Generator: Send + Sync {
    /// Dimension of z.
    fn input_dim(&self) -> usize;
    /// Dimension of x.
    fn output_dim(&self) -> usize;
    /// Maps a batch of latents (rows) to observations. Each output row must depend on its
    /// own input row alone, to the bit (callers map row blocks separately, in parallel).
    ///
    /// # Panics
    /// If `z` does not have `input_dim()` columns.
    fn forward(&self, z: ArrayView2<'_, f64>) -> Array2<f64>;
    /// A stable identity of the generator (hash of its weights and structure).
    fn fingerprint(&self) -> Fingerprint;

    /// Shape of one observation, outermost first: `[output_dim]` for vectors (the
    /// default), `[channels, height, width]` for images. Its product is `output_dim()`.
    fn output_shape(&self) -> Vec<usize> {
        vec![self.output_dim()]
    }

    /// [`forward`](Self::forward) rounded to `f32`, into `out` (rows × `output_dim()`).
    /// Generators that produce `f32` natively (images) override it to skip the `f64` copy.
    ///
    /// # Panics
    /// As `forward`, or if `out` has the wrong shape.
    fn forward_f32(&self, z: ArrayView2<'_, f64>, mut out: ArrayViewMut2<'_, f32>) {
        let x = self.forward(z);
        assert_eq!(out.dim(), x.dim(), "output buffer shape");
        out.zip_mut_with(&x, |o, &v| *o = v as f32);
    }
}

/// The inference face of an encoder f: X → representation ĥ.
pub trait Encoder {
    /// Dimension of x.
    fn input_dim(&self) -> usize;
    /// Dimension of ĥ.
    fn output_dim(&self) -> usize;
    /// Encodes a batch of observations (rows).
    ///
    /// # Panics
    /// If `x` does not have `input_dim()` columns.
    fn encode(&self, x: ArrayView2<'_, f64>) -> Array2<f64>;
}

/// A score of how well a representation ĥ recovers latents z (higher is better).
pub trait Metric {
    /// Name used in result files (e.g. `"r2"`, `"mcc_pearson"`).
    fn name(&self) -> &str;
    /// Scores ĥ (rows are samples) against z (same number of rows).
    fn score(&self, z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64>;
}

/// The training face of an encoder f: a forward pass that keeps what the backward pass
/// needs, a backward pass from the loss's gradient with respect to the output, and its
/// parameters as named tensors for optimisers and checkpoints.
///
/// Observations enter as rows of `f32`: sample i is row i, its values flattened row-major
/// from [`TrainableEncoder::input_shape`] (a vector `[d]`, or an image `[channels, height,
/// width]`). The optimiser is not part of the encoder: any [`ParamGrad`]-based optimiser
/// (e.g. `clica_optim::Adam`) updates any encoder through
/// [`TrainableEncoder::update_parameters`].
pub trait TrainableEncoder: Send {
    /// Shape of one observation; a row of `x` holds its product of values.
    fn input_shape(&self) -> Vec<usize>;

    /// Number of values in one observation (the product of [`input_shape`](Self::input_shape)).
    fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Dimension of the representation.
    fn output_dim(&self) -> usize;

    /// A short description recorded in result files (architecture and output layer).
    fn describe(&self) -> String;

    /// Forward pass of a training step on `x` (rows × [`input_len`](Self::input_len));
    /// keeps what [`backward`](Self::backward) needs and returns the output
    /// (rows × [`output_dim`](Self::output_dim)).
    ///
    /// # Panics
    /// If `x` has no rows or the wrong number of columns.
    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32>;

    /// Back-propagates `grad_out` (d loss / d output of the last
    /// [`forward_train`](Self::forward_train), same shape) and stores the gradient of every
    /// parameter until the next [`update_parameters`](Self::update_parameters).
    ///
    /// # Panics
    /// If there was no `forward_train` since the last `backward`, or the shape differs.
    fn backward(&mut self, grad_out: ArrayView2<'_, f32>);

    /// Inference in `f32` on rows of observations (same routine as training).
    ///
    /// # Panics
    /// If `x` has the wrong number of columns.
    fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32>;

    /// Copies of all parameters, in a fixed order.
    fn parameters(&self) -> Vec<NamedTensor>;

    /// Replaces all parameters (any pending pass is dropped).
    ///
    /// # Errors
    /// [`crate::Error::Shape`] naming the tensor when a name is missing, unexpected or
    /// repeated, or a shape differs.
    fn set_parameters(&mut self, tensors: &[NamedTensor]) -> Result<()>;

    /// The pending gradient of the last [`backward`](Self::backward), named like the
    /// parameters; `None` when there is none.
    fn gradients(&self) -> Option<Vec<NamedTensor>>;

    /// Lends every parameter with its pending gradient to `update`, one call per parameter
    /// in the order of [`parameters`](Self::parameters), then drops the gradient: one
    /// optimiser step. Implementations should not allocate here (it runs every step).
    ///
    /// # Errors
    /// [`crate::Error::Unsupported`] when there is no pending gradient; the first error
    /// `update` returns.
    fn update_parameters(
        &mut self,
        update: &mut dyn FnMut(ParamGrad<'_>) -> Result<()>,
    ) -> Result<()>;

    /// The first parameter entry that is NaN or ±∞, as (tensor name, row-major index).
    fn first_non_finite_parameter(&self) -> Option<(String, usize)> {
        first_non_finite(&self.parameters())
    }

    /// The first entry of the pending gradient that is NaN or ±∞.
    fn first_non_finite_gradient(&self) -> Option<(String, usize)> {
        first_non_finite(&self.gradients()?)
    }

    /// The parameters as safetensors bytes (what `encoder.safetensors` holds).
    ///
    /// # Errors
    /// [`crate::Error::Numerical`] when serialisation fails.
    fn to_safetensors(&self) -> Result<Vec<u8>>;
}

fn first_non_finite(t: &[NamedTensor]) -> Option<(String, usize)> {
    t.iter()
        .find_map(|t| t.first_non_finite().map(|i| (t.name.clone(), i)))
}

/// Observations of an evaluation sample, in the precision the source produces them.
#[derive(Debug, Clone, PartialEq)]
pub enum Observations {
    /// Vector observations computed in `f64` (e.g. x = g(z) of the latent pipeline).
    F64(Array2<f64>),
    /// Observations stored in `f32` (e.g. images).
    F32(Array2<f32>),
}

impl Observations {
    /// The observations rounded to `f32` (what an encoder consumes).
    pub fn to_f32(&self) -> Array2<f32> {
        match self {
            Observations::F64(x) => x.mapv(|v| v as f32),
            Observations::F32(x) => x.clone(),
        }
    }

    /// The observations widened to `f64` (for scoring them directly).
    pub fn to_f64(&self) -> Array2<f64> {
        match self {
            Observations::F64(x) => x.clone(),
            Observations::F32(x) => x.mapv(f64::from),
        }
    }
}

/// Latents and their observations, row i of each belonging together.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Latents (rows × [`PairSource::latent_dim`]).
    pub z: Array2<f64>,
    /// Observations (rows × the product of [`PairSource::observation_shape`]).
    pub x: Observations,
}

/// A data-generating process seen by a trainer: it draws batches of anchor and positive
/// observations with their latents, and independent evaluation samples.
///
/// The latent pipeline (a [`LatentPrior`] followed by a [`Generator`]) is the first; a
/// renderer over a fixed data set is another. A source is built once per run; its
/// [`fingerprint`](Self::fingerprint) identifies it in every result file.
pub trait PairSource: Send + Sync {
    /// Shape of one observation (`[d]` for vectors, `[c, h, w]` for images).
    fn observation_shape(&self) -> Vec<usize>;

    /// Values in one observation.
    fn observation_len(&self) -> usize {
        self.observation_shape().iter().product()
    }

    /// Dimension of the latents.
    fn latent_dim(&self) -> usize;

    /// Fills `x` and `z` with `anchors` anchors followed by `positives` blocks of as many
    /// positives: rows `0..anchors` hold the anchors, rows `(j+1)·anchors + i` the j-th
    /// positive of anchor i. `x` and `z` have `(1 + positives) · anchors` rows.
    ///
    /// # Panics
    /// If the buffers' shapes do not match.
    fn draw_pairs(
        &self,
        rng: &mut dyn RngCore,
        positives: usize,
        x: ArrayViewMut2<'_, f32>,
        z: ArrayViewMut2<'_, f64>,
    );

    /// Fills every row of `x` and `z` with an independent draw from the marginal.
    ///
    /// # Panics
    /// If the buffers' shapes do not match.
    fn draw_marginal(
        &self,
        rng: &mut dyn RngCore,
        x: ArrayViewMut2<'_, f32>,
        z: ArrayViewMut2<'_, f64>,
    );

    /// An evaluation sample of `n` independent draws from the marginal.
    fn sample(&self, rng: &mut dyn RngCore, n: usize) -> Sample;

    /// A short description of the latent distribution (recorded in result files).
    fn describe(&self) -> String;

    /// A stable identity of the data-generating process (its generator's weights, or its
    /// rendered set).
    fn fingerprint(&self) -> Fingerprint;
}
