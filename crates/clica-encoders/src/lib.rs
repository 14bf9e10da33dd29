//! MLP encoders f: X → ĥ for contrastive training, fast on a few CPU cores.
//!
//! The architecture is the paper's (n → 10n → 50n → 50n → 50n → 50n → 10n → n by default,
//! widths configurable): linear layers with bias, LeakyReLU(0.01) after every hidden layer,
//! then an output [`Normalization`] — none, a fixed sphere h/‖h‖·r, a sphere with learnable
//! radius, or a box sigmoid(h) ⊙ b with learnable per-coordinate bound. Parameters are f32,
//! initialised like PyTorch (`Uniform(±1/√fan_in)`, drawn from the caller's generator); any
//! optimiser over its named tensors trains it (`clica_optim::Adam`, PyTorch semantics).
//!
//! Two [`Backend`]s compute the passes:
//! - [`Backend::Native`] (default): hand-written forward/backward on faer's GEMM, each
//!   thread running whole passes on its own block of rows, bias and activation fused into
//!   one pass per layer, buffers reused across steps.
//! - [`Backend::Dfdx`] (feature `dfdx`, off by default): dfdx 0.13 tensors and autodiff, an
//!   independent implementation used as a test oracle and for comparison. Without the
//!   feature, [`EncoderConfig::validate`] rejects it with [`clica_core::Error::Unsupported`].
//!
//! The loss lives elsewhere and needs no autodiff: [`MlpEncoder::forward_train`] returns
//! the output, the loss kernel returns d loss / d output, [`MlpEncoder::backward`]
//! back-propagates it, and an optimiser updates the parameters the encoder lends through
//! [`clica_core::TrainableEncoder::update_parameters`] (`clica_optim::Adam::step(&mut
//! encoder, lr)`, as `clica train` does). [`MlpEncoder::step`] and
//! [`MlpEncoder::backward_and_step`] are shortcuts over an Adam the encoder keeps for
//! hand-written loops. Inference goes through [`clica_core::Encoder`]. Weights are saved as safetensors with PyTorch's names
//! and layouts (`layers.0.weight` is `[out, in]`).
//!
//! `examples/step_timing.rs` times a training step of both backends (dfdx with
//! `--features dfdx`) against the machine's GEMM throughput (on 2 Zen 4 cores the native
//! step of the paper encoder at n = 10 with 2·6144 rows runs at ≈ 185 GFLOP/s, about
//! 0.34 s, near the 2-thread GEMM peak).
//!
//! # Example
//!
//! ```
//! use clica_core::{Encoder, RunSeed};
//! use clica_encoders::{EncoderConfig, MlpEncoder, Normalization};
//! use ndarray::Array2;
//!
//! let config = EncoderConfig::paper(3).with_normalization(Normalization::learnable_sphere());
//! let mut f = MlpEncoder::new(config, &mut RunSeed::new(1).stream("encoder"))?;
//!
//! // One training step on a stacked batch (2 anchors, then their 2 positives) with a toy
//! // loss L = Σ ĥ_anchor · ĥ_positive, whose gradient a loss kernel would return.
//! let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - 1.5) * 0.3 + j as f32 * 0.1);
//! let h = f.forward_train(x.view()).to_owned();
//! let mut grad = Array2::zeros(h.dim());
//! for i in 0..2 {
//!     grad.row_mut(i).assign(&h.row(i + 2));
//!     grad.row_mut(i + 2).assign(&h.row(i));
//! }
//! f.backward_and_step(grad.view(), 1e-3);
//! assert_eq!(f.adam_steps(), 1);
//!
//! // Inference: outputs lie on the sphere of the learned radius.
//! let z = f.encode(x.mapv(f64::from).view());
//! let r = f.parameters().iter().find(|t| t.name == "norm.radius").unwrap().data[0];
//! for row in z.rows() {
//!     let norm = row.dot(&row).sqrt();
//!     assert!((norm - f64::from(r)).abs() < 1e-5);
//! }
//!
//! // Save and reload the weights.
//! let bytes = f.to_safetensors()?;
//! let mut g = MlpEncoder::new(f.config().clone(), &mut RunSeed::new(2).stream("encoder"))?;
//! g.load_safetensors(&bytes)?;
//! assert_eq!(g.encode(x.mapv(f64::from).view()), z);
//! # Ok::<(), clica_core::Error>(())
//! ```
// No `s!` here: ndarray's macro expands to an `unsafe` block that `forbid` rejects.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adam;
mod config;
#[cfg(feature = "dfdx")]
mod dfdx_backend;
mod encoder;
mod io;
mod native;
mod params;
mod standardize;

pub use clica_optim::OptimizerState;
pub use config::{AdamConfig, Backend, EncoderConfig, Normalization};
pub use encoder::MlpEncoder;
pub use native::sigmoid;
pub use params::NamedTensor;
pub use standardize::{describe_input_norm, Standardized};

/// Serialises named `f32` tensors with string metadata as safetensors bytes, with the
/// metadata keys sorted (equal contents give equal bytes): the format of
/// `encoder.safetensors`, for other encoder crates.
///
/// # Errors
/// A tensor whose data length does not match its shape; a failed serialisation.
pub fn safetensors_bytes(
    tensors: &[NamedTensor],
    metadata: std::collections::HashMap<String, String>,
) -> clica_core::Result<Vec<u8>> {
    io::serialize(tensors, metadata)
}

/// Loads safetensors bytes (as [`safetensors_bytes`] writes them, e.g. a run's
/// `encoder.safetensors`) into any encoder through `TrainableEncoder::set_parameters`, as
/// [`MlpEncoder::load_safetensors`] does for the MLP.
///
/// # Errors
/// [`clica_core::Error::InvalidParameter`] (`safetensors`) if the bytes are not a valid
/// safetensors file or a tensor is not `f32`; [`clica_core::Error::Shape`] naming the tensor
/// (and the architecture the file was saved from, when recorded) if they do not fit.
pub fn load_safetensors(
    encoder: &mut dyn clica_core::TrainableEncoder,
    bytes: &[u8],
) -> clica_core::Result<()> {
    io::load(bytes, |t| encoder.set_parameters(t))
}
