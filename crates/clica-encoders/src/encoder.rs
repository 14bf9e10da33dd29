//! [`MlpEncoder`]: one type over both backends.

use crate::config::{Backend, EncoderConfig};
#[cfg(feature = "dfdx")]
use crate::dfdx_backend::DfdxMlp;
use crate::native::NativeMlp;
use crate::params::{init_params, Layout, NamedTensor};
use clica_core::{lend_flat, Encoder, Error, ParamGrad, Result, TrainableEncoder};
use clica_optim::{Adam, OptimizerState};
use ndarray::{Array2, ArrayView2};
use rand::RngCore;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

#[derive(Debug)]
enum Inner {
    Native(Box<NativeMlp>),
    #[cfg(feature = "dfdx")]
    Dfdx(Box<DfdxMlp>),
}

/// A trainable MLP encoder (see [`EncoderConfig`]) with f32 parameters.
///
/// A training step is three calls: [`forward_train`](Self::forward_train) on the stacked
/// batch (rows `0..B` anchors' observations, `B..2B` positives'), the loss kernel on the
/// output (it returns d loss / d output), then [`backward`](Self::backward) with that
/// gradient and an optimiser step. The optimiser is `clica_optim::Adam`, which works on
/// any [`TrainableEncoder`]: the trainer owns one. For loops of your own,
/// [`step`](Self::step) and [`backward_and_step`](Self::backward_and_step) use an Adam
/// the encoder keeps for convenience (its [`optimizer_state`](Self::optimizer_state)).
///
/// Inference ([`Encoder::encode`], [`MlpEncoder::encode_f32`]) runs the same f32 forward
/// routine as training on private buffers.
#[derive(Debug)]
pub struct MlpEncoder {
    config: EncoderConfig,
    layout: Layout,
    /// Name, shape and flat range of every parameter, in file order.
    entries: Vec<(String, Vec<usize>, Range<usize>)>,
    inner: Inner,
    /// The convenience optimiser of [`MlpEncoder::step`] (native backend).
    adam: Adam,
}

impl MlpEncoder {
    /// Builds an encoder with PyTorch's default initialisation drawn from `rng` (for each
    /// layer in order: the weight row by row, then the bias, each Uniform(±1/√fan_in)), and
    /// learnable normalisation parameters at their configured initial values.
    ///
    /// # Errors
    /// Whatever [`EncoderConfig::validate`] reports.
    pub fn new(config: EncoderConfig, rng: &mut dyn RngCore) -> Result<Self> {
        config.validate()?;
        let layout = Layout::new(&config);
        let params = init_params(&layout, &config, rng);
        Ok(Self::from_flat(config, layout, params))
    }

    fn from_flat(config: EncoderConfig, layout: Layout, params: Vec<f32>) -> Self {
        let inner = match config.backend {
            Backend::Native => {
                Inner::Native(Box::new(NativeMlp::new(&config, layout.clone(), params)))
            }
            #[cfg(feature = "dfdx")]
            Backend::Dfdx => Inner::Dfdx(Box::new(DfdxMlp::new(&config, &layout, &params))),
            #[cfg(not(feature = "dfdx"))]
            Backend::Dfdx => unreachable!("validate() rejects Backend::Dfdx without the feature"),
        };
        let entries = layout.entries(&config.normalization);
        let adam = Adam::new(config.adam).expect("validated with the configuration");
        MlpEncoder {
            config,
            layout,
            entries,
            inner,
            adam,
        }
    }

    /// A copy of this encoder's parameters on another backend (fresh Adam state).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for [`Backend::Dfdx`] without the `dfdx` feature.
    pub fn to_backend(&self, backend: Backend) -> Result<Self> {
        let config = self.config.clone().with_backend(backend);
        config.validate()?;
        Ok(Self::from_flat(
            config,
            self.layout.clone(),
            self.flat_params(),
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Steps of the convenience optimiser since construction or the last parameter load.
    pub fn adam_steps(&self) -> u64 {
        match &self.inner {
            Inner::Native(_) => self.adam.steps(),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.adam_steps(),
        }
    }

    fn check_cols(&self, what: &str, cols: usize, expected: usize) {
        assert_eq!(
            cols,
            expected,
            "{what} has {cols} columns but the encoder `{}` expects {expected}",
            self.config.describe()
        );
    }

    /// Forward pass of a training step; keeps what the backward pass needs and returns the
    /// output (rows × `output_dim`), valid until the next call on `self`.
    ///
    /// # Panics
    /// If `x` has no rows or does not have `input_dim` columns.
    pub fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        self.check_cols("x", x.ncols(), self.config.input_dim);
        assert!(x.nrows() > 0, "forward_train needs at least one row");
        match &mut self.inner {
            Inner::Native(m) => m.forward_train(x),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.forward_train(x),
        }
    }

    /// Back-propagates `grad_out` (d loss / d output of the last
    /// [`forward_train`](Self::forward_train), same shape) through the normalisation and the
    /// MLP, storing the gradient of every parameter (see [`gradients`](Self::gradients)).
    ///
    /// # Panics
    /// If there was no `forward_train` since the last `backward`, or `grad_out`'s shape
    /// differs from that output's.
    pub fn backward(&mut self, grad_out: ArrayView2<'_, f32>) {
        match &mut self.inner {
            Inner::Native(m) => m.backward(grad_out),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.backward(grad_out),
        }
    }

    /// One step of the encoder's own Adam with the gradient of the last
    /// [`backward`](Self::backward) and learning rate `lr` (PyTorch semantics; see
    /// [`crate::AdamConfig`]). On the native backend this is `clica_optim::Adam::step` on
    /// this encoder; on the dfdx backend it is dfdx's own Adam kernel (`clica train` uses
    /// `clica_optim::Adam` on both).
    ///
    /// # Panics
    /// If there was no `backward` since the last step.
    pub fn step(&mut self, lr: f32) {
        match &mut self.inner {
            Inner::Native(m) => {
                let (values, grad) = m
                    .take_params_and_grad()
                    .expect("step needs a backward first (once per backward)");
                let entries = &self.entries;
                self.adam
                    .step_with(lr, &mut |visit| lend_flat(entries, values, grad, visit))
                    .expect("the parameters keep their layout");
            }
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.step(lr),
        }
    }

    /// [`backward`](Self::backward) then [`step`](Self::step).
    ///
    /// # Panics
    /// As [`backward`](Self::backward).
    pub fn backward_and_step(&mut self, grad_out: ArrayView2<'_, f32>, lr: f32) {
        self.backward(grad_out);
        self.step(lr);
    }

    fn flat_params(&self) -> Vec<f32> {
        match &self.inner {
            Inner::Native(m) => m.params().to_vec(),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.params(&self.layout),
        }
    }

    /// The gradient of the last [`backward`](Self::backward), named like the parameters;
    /// `None` before the first `backward` or after a [`step`](Self::step) consumed it.
    pub fn gradients(&self) -> Option<Vec<NamedTensor>> {
        let flat = match &self.inner {
            Inner::Native(m) => m.grad()?.to_vec(),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.grad(&self.layout)?,
        };
        Some(self.layout.to_named(&self.config.normalization, &flat))
    }

    /// A copy of the convenience optimiser's state (moments and step count). Together
    /// with [`parameters`](Self::parameters) it determines every later
    /// [`step`](Self::step) exactly.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on the dfdx backend (it steps with dfdx's own Adam kernel).
    pub fn optimizer_state(&self) -> Result<OptimizerState> {
        match &self.inner {
            Inner::Native(_) => Ok(self.adam.state()),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(_) => Err(Error::Unsupported(
                "optimizer state (checkpoints) on the dfdx backend".into(),
            )),
        }
    }

    /// Restores the convenience optimiser's state saved by
    /// [`optimizer_state`](Self::optimizer_state); call it after
    /// [`set_parameters`](Self::set_parameters), which resets it.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the offending tensor, [`Error::Unsupported`] on the dfdx
    /// backend.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        match &self.inner {
            Inner::Native(_) => {
                let params = self.parameters();
                self.adam.set_state(state, &params)
            }
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(_) => Err(Error::Unsupported(
                "optimizer state (checkpoints) on the dfdx backend".into(),
            )),
        }
    }

    /// The first parameter entry that is NaN or ±∞, as (tensor name, row-major index in
    /// that tensor); `None` when all are finite.
    pub fn first_non_finite_parameter(&self) -> Option<(String, usize)> {
        let i = match &self.inner {
            Inner::Native(m) => m.params().iter().position(|v| !v.is_finite()),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.params(&self.layout).iter().position(|v| !v.is_finite()),
        }?;
        Some(self.layout.locate(&self.config.normalization, i))
    }

    /// The first entry of the last [`backward`](Self::backward)'s gradient that is NaN or
    /// ±∞, as (tensor name, row-major index in that tensor); `None` when all are finite or
    /// there is no pending gradient.
    pub fn first_non_finite_gradient(&self) -> Option<(String, usize)> {
        let i = match &self.inner {
            Inner::Native(m) => m.grad()?.iter().position(|v| !v.is_finite()),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.grad(&self.layout)?.iter().position(|v| !v.is_finite()),
        }?;
        Some(self.layout.locate(&self.config.normalization, i))
    }

    /// Copies of all parameters in PyTorch's layout and naming: `layers.{i}.weight`
    /// (`[out, in]`), `layers.{i}.bias`, then `norm.radius` / `norm.bound` if learnable.
    pub fn parameters(&self) -> Vec<NamedTensor> {
        self.layout
            .to_named(&self.config.normalization, &self.flat_params())
    }

    /// Replaces all parameters (the convenience optimiser and any pending training pass are
    /// reset).
    ///
    /// # Errors
    /// [`Error::Shape`] naming the offending tensor if a name is missing, unexpected or
    /// repeated, or a shape differs from this architecture's.
    pub fn set_parameters(&mut self, tensors: &[NamedTensor]) -> Result<()> {
        let flat =
            self.layout
                .assemble(&self.config.normalization, tensors, &self.config.describe())?;
        match &mut self.inner {
            Inner::Native(m) => m.set_params(flat),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.set_params(&self.layout, &flat),
        }
        self.adam.reset();
        Ok(())
    }

    /// The parameters as safetensors bytes (f32, names as in
    /// [`parameters`](Self::parameters)); the header metadata records
    /// `clica.architecture` ([`EncoderConfig::describe`]).
    ///
    /// # Errors
    /// [`Error::Numerical`] if serialisation fails.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let meta = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("clica.architecture".to_string(), self.config.describe()),
        ]);
        crate::io::serialize(&self.parameters(), meta)
    }

    /// Loads parameters from safetensors bytes (see
    /// [`set_parameters`](Self::set_parameters)).
    ///
    /// # Errors
    /// - [`Error::InvalidParameter`] (`safetensors`) for bytes that are not a valid
    ///   safetensors file or hold a non-f32 tensor.
    /// - [`Error::Shape`] if the file's tensors do not match this architecture (the message
    ///   names the tensor, both shapes, and the architecture the file was saved from when
    ///   recorded).
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        crate::io::load(bytes, |t| self.set_parameters(t))
    }

    /// Writes [`to_safetensors`](Self::to_safetensors) to `path`.
    ///
    /// # Errors
    /// As `to_safetensors`, and [`Error::InvalidParameter`] (`path`) if the file cannot be
    /// written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_safetensors()?)
            .map_err(|e| Error::param("path", format!("cannot write {}: {e}", path.display())))
    }

    /// Reads a safetensors file into this encoder (see
    /// [`load_safetensors`](Self::load_safetensors)).
    ///
    /// # Errors
    /// As `load_safetensors`, and [`Error::InvalidParameter`] (`path`) if the file cannot be
    /// read.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::param("path", format!("cannot read {}: {e}", path.display())))?;
        self.load_safetensors(&bytes)
    }

    /// Inference in f32: the training forward routine on private buffers. The result equals
    /// [`forward_train`](Self::forward_train)'s output on the same rows bit for bit; the
    /// native backend processes more than 16 384 rows in blocks of 16 384, which can change
    /// the last bits of later rows (the GEMM's blocking depends on the row count).
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns.
    pub fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.check_cols("x", x.ncols(), self.config.input_dim);
        let mut out = Array2::zeros((x.nrows(), self.config.output_dim));
        if x.nrows() == 0 {
            return out;
        }
        let buf = out
            .as_slice_mut()
            .expect("a fresh array is in standard layout");
        match &self.inner {
            Inner::Native(m) => m.encode(x, buf),
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => m.encode(x, buf),
        }
        out
    }
}

impl Encoder for MlpEncoder {
    fn input_dim(&self) -> usize {
        self.config.input_dim
    }

    fn output_dim(&self) -> usize {
        self.config.output_dim
    }

    /// Rounds `x` to f32, runs [`MlpEncoder::encode_f32`], widens the result to f64.
    fn encode(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        self.check_cols("x", x.ncols(), self.config.input_dim);
        let xf = x.mapv(|v| v as f32);
        self.encode_f32(xf.view()).mapv(f64::from)
    }
}

impl TrainableEncoder for MlpEncoder {
    fn input_shape(&self) -> Vec<usize> {
        vec![self.config.input_dim]
    }

    fn output_dim(&self) -> usize {
        self.config.output_dim
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        MlpEncoder::forward_train(self, x)
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) {
        MlpEncoder::backward(self, grad_out)
    }

    fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        MlpEncoder::encode_f32(self, x)
    }

    fn parameters(&self) -> Vec<NamedTensor> {
        MlpEncoder::parameters(self)
    }

    fn set_parameters(&mut self, tensors: &[NamedTensor]) -> Result<()> {
        MlpEncoder::set_parameters(self, tensors)
    }

    fn gradients(&self) -> Option<Vec<NamedTensor>> {
        MlpEncoder::gradients(self)
    }

    fn update_parameters(
        &mut self,
        update: &mut dyn FnMut(ParamGrad<'_>) -> Result<()>,
    ) -> Result<()> {
        let none = || Error::Unsupported("an optimiser step needs a backward pass first".into());
        match &mut self.inner {
            Inner::Native(m) => {
                let (values, grad) = m.take_params_and_grad().ok_or_else(none)?;
                lend_flat(&self.entries, values, grad, update)
            }
            #[cfg(feature = "dfdx")]
            Inner::Dfdx(m) => {
                let grad = m.grad(&self.layout).ok_or_else(none)?;
                let mut values = m.params(&self.layout);
                lend_flat(&self.entries, &mut values, &grad, update)?;
                m.set_params(&self.layout, &values);
                Ok(())
            }
        }
    }

    fn first_non_finite_parameter(&self) -> Option<(String, usize)> {
        MlpEncoder::first_non_finite_parameter(self)
    }

    fn first_non_finite_gradient(&self) -> Option<(String, usize)> {
        MlpEncoder::first_non_finite_gradient(self)
    }

    fn to_safetensors(&self) -> Result<Vec<u8>> {
        MlpEncoder::to_safetensors(self)
    }
}
