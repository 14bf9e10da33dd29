//! Encoder configuration: architecture, output normalisation, optimiser and backend.

use clica_core::{Error, Result};
pub use clica_optim::AdamConfig;

/// What the encoder does to the last linear layer's output h.
///
/// The norm used by the sphere variants is `max(‖h‖₂, 1e-12)` (PyTorch's `F.normalize`
/// convention), so a zero row maps to zero instead of NaN.
///
/// With the `serde` feature: `{ kind = "none" }`, `{ kind = "sphere", radius = 1.0 }`,
/// `{ kind = "learnable_sphere", init_radius = 1.0 }` or `{ kind = "box", init_bound = 1.0 }`
/// (the learnable box); a missing field takes the value shown.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Normalization {
    /// Unbounded: the output is h.
    None,
    /// Fixed sphere: h / ‖h‖ · `radius`.
    Sphere {
        /// Radius r > 0 of the sphere.
        #[cfg_attr(feature = "serde", serde(default = "one"))]
        radius: f64,
    },
    /// Sphere with a learnable scalar radius r (parameter `norm.radius`, shape `[1]`).
    LearnableSphere {
        /// Initial radius (the reference uses 1).
        #[cfg_attr(feature = "serde", serde(default = "one"))]
        init_radius: f64,
    },
    /// Box: sigmoid(h) ⊙ b with a learnable per-coordinate bound b (parameter `norm.bound`,
    /// shape `[output_dim]`); outputs lie in (0, b).
    #[cfg_attr(feature = "serde", serde(rename = "box"))]
    LearnableBox {
        /// Initial value of every coordinate of b (the reference uses 1).
        #[cfg_attr(feature = "serde", serde(default = "one"))]
        init_bound: f64,
    },
}

/// The reference value of a normalisation's radius or bound, for fields a config leaves out.
#[cfg(feature = "serde")]
fn one() -> f64 {
    1.0
}

impl Normalization {
    /// Learnable sphere with the reference initial radius 1.
    pub const fn learnable_sphere() -> Self {
        Normalization::LearnableSphere { init_radius: 1.0 }
    }

    /// Learnable box with the reference initial bound 1.
    pub const fn learnable_box() -> Self {
        Normalization::LearnableBox { init_bound: 1.0 }
    }

    /// A short description for result files (e.g. `"sphere(r=1)"`).
    pub fn describe(&self) -> String {
        match self {
            Normalization::None => "none".to_string(),
            Normalization::Sphere { radius } => format!("sphere(r={radius})"),
            Normalization::LearnableSphere { init_radius } => {
                format!("learnable_sphere(r0={init_radius})")
            }
            Normalization::LearnableBox { init_bound } => format!("learnable_box(b0={init_bound})"),
        }
    }

    fn validate(&self) -> Result<()> {
        let (name, v) = match *self {
            Normalization::None => return Ok(()),
            Normalization::Sphere { radius } => ("normalization.radius", radius),
            Normalization::LearnableSphere { init_radius } => {
                ("normalization.init_radius", init_radius)
            }
            Normalization::LearnableBox { init_bound } => ("normalization.init_bound", init_bound),
        };
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::param(
                name,
                format!("must be finite and > 0, got {v}"),
            ));
        }
        Ok(())
    }
}

/// Which implementation computes the forward and backward passes (`"native"` or `"dfdx"`
/// with the `serde` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Backend {
    /// Hand-written forward/backward on faer's GEMM, data-parallel over row blocks, with
    /// preallocated buffers. The fast path (the default).
    #[default]
    Native,
    /// dfdx 0.13 tensors with runtime dimensions and dfdx's reverse-mode autodiff and Adam
    /// kernel. Slower; kept as an independent oracle and for comparison. Needs the crate
    /// feature `dfdx` (off by default).
    Dfdx,
}

/// The architecture and training set-up of an [`crate::MlpEncoder`].
///
/// Layers: `input_dim → hidden[0] → … → hidden[k-1] → output_dim`, each linear with bias,
/// LeakyReLU(`negative_slope`) after every hidden layer and none after the last, then
/// [`Normalization`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// Dimension of the observations x.
    pub input_dim: usize,
    /// Dimension of the representation.
    pub output_dim: usize,
    /// Widths of the hidden layers (may be empty: a single linear map).
    pub hidden: Vec<usize>,
    /// Slope of LeakyReLU for negative inputs, in [0, 1] (0.01 in the paper).
    pub negative_slope: f64,
    /// Output normalisation.
    pub normalization: Normalization,
    /// Implementation used for training and inference.
    pub backend: Backend,
    /// Adam hyper-parameters.
    pub adam: AdamConfig,
    /// Row blocks the native backend processes in parallel; `0` = one per rayon worker
    /// thread. Results are bitwise reproducible for a fixed value (and a fixed machine);
    /// another value changes rounding in the last bits. The dfdx backend ignores it.
    pub threads: usize,
}

impl EncoderConfig {
    /// The paper's encoder for n-dimensional data: n → 10n → 50n → 50n → 50n → 50n → 10n → n,
    /// LeakyReLU(0.01), no normalisation, native backend, PyTorch's Adam defaults.
    pub fn paper(n: usize) -> Self {
        EncoderConfig {
            input_dim: n,
            output_dim: n,
            hidden: vec![10 * n, 50 * n, 50 * n, 50 * n, 50 * n, 10 * n],
            negative_slope: 0.01,
            normalization: Normalization::None,
            backend: Backend::Native,
            adam: AdamConfig::default(),
            threads: 0,
        }
    }

    /// Sets the output normalisation.
    pub fn with_normalization(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// Sets the backend.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the hidden widths.
    pub fn with_hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }

    /// Sets the number of parallel row blocks of the native backend (`0` = automatic).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// - [`Error::InvalidParameter`] for a zero dimension or width, a slope outside [0, 1]
    ///   (the backward pass recovers LeakyReLU's derivative from the sign of its output,
    ///   which needs slope ≥ 0), a non-positive or non-finite radius/bound, or Adam betas
    ///   outside [0, 1) / eps ≤ 0.
    /// - [`Error::Unsupported`] for [`Backend::Dfdx`] when the crate was built without the
    ///   `dfdx` feature.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(Error::param("input_dim", "must be ≥ 1"));
        }
        if self.output_dim == 0 {
            return Err(Error::param("output_dim", "must be ≥ 1"));
        }
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            return Err(Error::param(
                format!("hidden[{i}]"),
                "every hidden width must be ≥ 1",
            ));
        }
        let s = self.negative_slope;
        if !(0.0..=1.0).contains(&s) {
            return Err(Error::param(
                "negative_slope",
                format!("must lie in [0, 1], got {s}"),
            ));
        }
        self.normalization.validate()?;
        self.adam.validate()?;
        if self.backend == Backend::Dfdx && !cfg!(feature = "dfdx") {
            return Err(Error::Unsupported(
                "Backend::Dfdx needs clica-encoders built with the `dfdx` feature".to_string(),
            ));
        }
        Ok(())
    }

    /// Layer widths including input and output: `[input_dim, hidden…, output_dim]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::with_capacity(self.hidden.len() + 2);
        w.push(self.input_dim);
        w.extend_from_slice(&self.hidden);
        w.push(self.output_dim);
        w
    }

    /// Number of linear layers (`hidden.len() + 1`).
    pub fn num_layers(&self) -> usize {
        self.hidden.len() + 1
    }

    /// Σ over linear layers of `in · out` (multiply-adds per row of a forward pass).
    pub fn macs_per_row(&self) -> usize {
        self.widths().windows(2).map(|w| w[0] * w[1]).sum()
    }

    /// Number of trainable parameters (weights, biases and learnable normalisation).
    pub fn num_parameters(&self) -> usize {
        let lin: usize = self.widths().windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        lin + match self.normalization {
            Normalization::LearnableSphere { .. } => 1,
            Normalization::LearnableBox { .. } => self.output_dim,
            _ => 0,
        }
    }

    /// A short description of the architecture for result files,
    /// e.g. `"mlp 10-100-500-500-500-500-100-10 leaky(0.01) none"`.
    pub fn describe(&self) -> String {
        let w: Vec<String> = self.widths().iter().map(|w| w.to_string()).collect();
        format!(
            "mlp {} leaky({}) {}",
            w.join("-"),
            self.negative_slope,
            self.normalization.describe()
        )
    }
}
