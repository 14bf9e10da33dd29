//! [`ConvEncoder`]: the trainable-encoder face of the engine.

use crate::config::{ConvEncoderConfig, Shapes};
use crate::engine::{pack, unpack_add, Block, Layout, Net};
use crate::named::{check_input, spans, Entries};
use clica_core::{Error, NamedTensor, ParamGrad, Result, TrainableEncoder};
use clica_encoders::Normalization;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, RngCore};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;

/// Images below which a block is not split further.
const MIN_BLOCK_ROWS: usize = 8;
/// Images one inference call processes at once.
const ENCODE_ROWS: usize = 1024;

/// A convolutional encoder (see [`ConvEncoderConfig`]) with a hand-written backward pass.
///
/// The batch is split into blocks of images, one per worker thread; each block runs the
/// forward and backward passes on its own buffers with single-threaded GEMMs, and the blocks'
/// gradients are summed in a fixed order, so results are bitwise reproducible for a fixed
/// `threads` value.
#[derive(Debug, Clone)]
pub struct ConvEncoder {
    config: ConvEncoderConfig,
    shapes: Shapes,
    layout: Layout,
    entries: Entries,
    params: Vec<f32>,
    packed: Vec<Vec<f32>>,
    blocks: Vec<Block>,
    out: Vec<f32>,
    rows: usize,
    /// The gradient of the last backward (flat, PyTorch layouts); `None` when there is none.
    grad: Option<Vec<f32>>,
    forward_pending: bool,
}

impl ConvEncoder {
    /// Validates `config` and draws the initial weights from `rng` (PyTorch's default
    /// initialisation: weights and biases uniform in ±1/√fan_in).
    pub fn new(config: ConvEncoderConfig, rng: &mut dyn RngCore) -> Result<Self> {
        let shapes = config.validate()?;
        let mut entries = Entries::default();
        let mut push = |name: String, shape: Vec<usize>| entries.push(name, shape);
        let (mut conv_w, mut conv_b) = (Vec::new(), Vec::new());
        for (i, l) in shapes.layers.iter().enumerate() {
            let k = l.spec.kernel;
            conv_w.push(push(
                format!("convs.{i}.weight"),
                vec![l.spec.out, l.in_c, k, k],
            ));
            conv_b.push(push(format!("convs.{i}.bias"), vec![l.spec.out]));
        }
        let n = config.output_dim;
        let head_w = push("head.weight".into(), vec![n, shapes.features]);
        let head_b = push("head.bias".into(), vec![n]);
        let norm = match config.normalization {
            Normalization::LearnableBox { .. } => Some(push("norm.bound".into(), vec![n])),
            Normalization::LearnableSphere { .. } => Some(push("norm.radius".into(), vec![1])),
            _ => None,
        };
        let layout = Layout {
            conv_w,
            conv_b,
            head_w,
            head_b,
            norm,
            total: entries.total(),
        };
        let mut params = vec![0.0f32; layout.total];
        let mut fill = |r: &Range<usize>, fan_in: usize, params: &mut [f32]| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            for v in &mut params[r.clone()] {
                *v = rng.random_range(-bound..bound) as f32;
            }
        };
        for (i, l) in shapes.layers.iter().enumerate() {
            fill(&layout.conv_w[i], l.k(), &mut params);
            fill(&layout.conv_b[i], l.k(), &mut params);
        }
        fill(&layout.head_w, shapes.features, &mut params);
        fill(&layout.head_b, shapes.features, &mut params);
        if let Some(r) = &layout.norm {
            let init = match config.normalization {
                Normalization::LearnableBox { init_bound } => init_bound,
                Normalization::LearnableSphere { init_radius } => init_radius,
                _ => unreachable!("only learnable output layers have a parameter"),
            };
            params[r.clone()].fill(init as f32);
        }
        let mut enc = ConvEncoder {
            config,
            shapes,
            layout,
            entries,
            params,
            packed: Vec::new(),
            blocks: Vec::new(),
            out: Vec::new(),
            rows: 0,
            grad: None,
            forward_pending: false,
        };
        enc.repack();
        Ok(enc)
    }

    /// The configuration.
    pub fn config(&self) -> &ConvEncoderConfig {
        &self.config
    }

    /// Multiply-adds of one image's forward pass (convolutions and head).
    pub fn macs_per_image(&self) -> usize {
        self.shapes.layers.iter().map(|l| l.macs()).sum::<usize>()
            + self.shapes.features * self.config.output_dim
    }

    /// Number of parameters.
    pub fn num_parameters(&self) -> usize {
        self.layout.total
    }

    fn repack(&mut self) {
        self.packed.resize_with(self.shapes.layers.len(), Vec::new);
        for (l, shape) in self.shapes.layers.iter().enumerate() {
            pack(
                shape,
                &self.params[self.layout.conv_w[l].clone()],
                &mut self.packed[l],
            );
        }
    }

    fn blocks_for(&self, rows: usize) -> Vec<(usize, usize)> {
        spans(rows, self.config.threads, rows / MIN_BLOCK_ROWS)
    }

    fn net(&self) -> Net<'_> {
        Net {
            shapes: &self.shapes,
            layout: &self.layout,
            params: &self.params,
            packed: &self.packed,
            normalization: self.config.normalization,
            input_norm: self.config.input_norm.as_ref(),
            input: self.config.input,
            output_dim: self.config.output_dim,
        }
    }
}

impl TrainableEncoder for ConvEncoder {
    fn input_shape(&self) -> Vec<usize> {
        self.config.input.to_vec()
    }

    fn output_dim(&self) -> usize {
        self.config.output_dim
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        assert!(x.nrows() > 0, "x has no rows");
        check_input(self.config.input, &x);
        let rows = x.nrows();
        let spans = self.blocks_for(rows);
        let mut blocks = std::mem::take(&mut self.blocks);
        blocks.resize_with(spans.len(), Block::default);
        blocks.truncate(spans.len());
        {
            let net = self.net();
            blocks
                .par_iter_mut()
                .zip(&spans)
                .for_each(|(b, &(first, r))| {
                    b.prepare(&net, r, first, true);
                    b.forward(&net, x);
                });
        }
        let n = self.config.output_dim;
        self.out.resize(rows * n, 0.0);
        for b in &blocks {
            self.out[b.first_row * n..(b.first_row + b.rows) * n]
                .copy_from_slice(&b.out[..b.rows * n]);
        }
        self.blocks = blocks;
        self.rows = rows;
        self.forward_pending = true;
        self.grad = None;
        ArrayView2::from_shape((rows, n), &self.out[..rows * n]).expect("output buffer shape")
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) {
        assert!(self.forward_pending, "backward needs a forward_train first");
        assert_eq!(
            grad_out.dim(),
            (self.rows, self.config.output_dim),
            "grad_out has the wrong shape"
        );
        let mut blocks = std::mem::take(&mut self.blocks);
        {
            let net = self.net();
            blocks
                .par_iter_mut()
                .for_each(|b| b.backward(&net, grad_out));
        }
        // Sum the blocks' gradients in block order (deterministic).
        let mut grad = vec![0.0f32; self.layout.total];
        for b in &blocks {
            for (g, &v) in grad.iter_mut().zip(&b.grad[..self.layout.total]) {
                *g += v;
            }
            for (l, shape) in self.shapes.layers.iter().enumerate() {
                unpack_add(
                    shape,
                    &b.dpacked[l],
                    &mut grad[self.layout.conv_w[l].clone()],
                );
            }
        }
        self.blocks = blocks;
        self.grad = Some(grad);
        self.forward_pending = false;
    }

    fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        check_input(self.config.input, &x);
        let n = self.config.output_dim;
        let mut out = Array2::zeros((x.nrows(), n));
        let net = self.net();
        let mut start = 0;
        while start < x.nrows() {
            let end = (start + ENCODE_ROWS).min(x.nrows());
            let part = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end));
            let spans = self.blocks_for(end - start);
            let outs: Vec<Vec<f32>> = spans
                .par_iter()
                .map(|&(first, r)| {
                    let mut b = Block::default();
                    b.prepare(&net, r, first, false);
                    b.forward(&net, part);
                    b.out.truncate(r * n);
                    b.out
                })
                .collect();
            for (&(first, r), o) in spans.iter().zip(&outs) {
                for i in 0..r {
                    for k in 0..n {
                        out[[start + first + i, k]] = o[i * n + k];
                    }
                }
            }
            start = end;
        }
        out
    }

    fn parameters(&self) -> Vec<NamedTensor> {
        self.entries.named(&self.params)
    }

    fn set_parameters(&mut self, tensors: &[NamedTensor]) -> Result<()> {
        let next = self.entries.assign(&self.params, tensors)?;
        self.params = next;
        self.repack();
        self.grad = None;
        self.forward_pending = false;
        Ok(())
    }

    fn gradients(&self) -> Option<Vec<NamedTensor>> {
        self.grad.as_ref().map(|g| self.entries.named(g))
    }

    fn update_parameters(
        &mut self,
        update: &mut dyn FnMut(ParamGrad<'_>) -> Result<()>,
    ) -> Result<()> {
        let grad = self.grad.take().ok_or_else(|| {
            Error::Unsupported("an optimiser step needs a backward pass first".into())
        })?;
        let result = self.entries.lend(&mut self.params, &grad, update);
        self.repack();
        result
    }

    fn to_safetensors(&self) -> Result<Vec<u8>> {
        let meta = HashMap::from([
            ("encoder".to_string(), self.describe()),
            (
                "format".to_string(),
                "clica-conv/v1: convolution weights [out, in, k, k]; features flattened (h, w, c)"
                    .to_string(),
            ),
        ]);
        clica_encoders::safetensors_bytes(&self.parameters(), meta)
    }
}
