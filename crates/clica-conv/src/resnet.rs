//! [`ResNetEncoder`]: ResNet-18 (torchvision's architecture and parameter names) followed by
//! the paper's head, LeakyReLU → Linear(hidden, n) → output layer.
//!
//! Batch normalisation couples the images of a batch, so unlike [`crate::ConvEncoder`]
//! (which runs each block of images through the whole net) this engine runs the batch layer
//! by layer: every layer's work is split into `threads` spans of images processed in
//! parallel, and every reduction over the batch (batch-norm statistics and their gradients,
//! weight gradients) sums the spans' partial results in span order, so results are bitwise
//! reproducible for a fixed `threads` value.

use crate::config::{ConvSpec, LayerShape};
use crate::engine::{
    col2im_add, gemm, im2col, images_per_block, mat, mat_mut, pack, relu_mask, unpack_add,
};
use crate::named::{check_input, spans, Entries};
use crate::output;
use clica_core::{Error, NamedTensor, ParamGrad, Result, TrainableEncoder};
use clica_encoders::{AdamConfig, Normalization};
use faer::Accum;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;

/// Images one inference call processes at once.
const ENCODE_ROWS: usize = 128;

/// ResNet-18 for `input` images and an `output_dim`-dimensional representation: a 7 × 7
/// stride-2 convolution with batch norm and ReLU, a 3 × 3 stride-2 max-pool, four stages of
/// basic blocks (two 3 × 3 convolutions with batch norm; a 1 × 1 stride-2 convolution with
/// batch norm on the shortcut where the shape changes), global average pooling, a linear
/// layer to `hidden` (torchvision's `fc`), LeakyReLU, a linear layer to `output_dim` and an
/// output layer. The paper's encoder for 3DIdent is `resnet18(input, n)`, with `hidden = 10 n`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    /// Shape of one observation: channels, height, width (rows hold it channel-first).
    pub input: [usize; 3],
    /// Channels of the four stages (ResNet-18: 64, 128, 256, 512; the stem has the first).
    pub widths: [usize; 4],
    /// Basic blocks per stage (ResNet-18: 2, 2, 2, 2).
    pub blocks: [usize; 4],
    /// Width of torchvision's `fc` layer, the LeakyReLU's input (the paper: 10 n).
    pub hidden: usize,
    /// Dimension of the representation.
    pub output_dim: usize,
    /// Output layer (as the MLP encoder's).
    pub normalization: Normalization,
    /// Per-channel mean and standard deviation of the input; `None` feeds values as they are.
    pub input_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Slope of the LeakyReLU after `fc` (PyTorch's default, 0.01).
    pub negative_slope: f32,
    /// Batch norm's running-average momentum (PyTorch: 0.1) and variance floor (1e-5).
    pub bn_momentum: f32,
    #[allow(missing_docs)]
    pub bn_eps: f32,
    /// Adam hyper-parameters.
    pub adam: AdamConfig,
    /// Spans of images processed in parallel; `0` = one per rayon worker thread. Results
    /// are bitwise reproducible for a fixed value.
    pub threads: usize,
}

impl ResNetConfig {
    /// The paper's 3DIdent encoder: ResNet-18, `fc` to `10 · output_dim`, LeakyReLU, linear
    /// to `output_dim`; unbounded output.
    pub fn resnet18(input: [usize; 3], output_dim: usize) -> Self {
        ResNetConfig {
            input,
            widths: [64, 128, 256, 512],
            blocks: [2, 2, 2, 2],
            hidden: 10 * output_dim,
            output_dim,
            normalization: Normalization::None,
            input_norm: None,
            negative_slope: 0.01,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
            adam: AdamConfig::default(),
            threads: 0,
        }
    }

    /// Sets the stage widths (e.g. narrower nets for tests and quick studies).
    pub fn with_widths(mut self, widths: [usize; 4]) -> Self {
        self.widths = widths;
        self
    }

    /// Sets the output layer.
    pub fn with_normalization(mut self, n: Normalization) -> Self {
        self.normalization = n;
        self
    }

    /// Sets the input normalisation (per-channel mean and std).
    pub fn with_input_norm(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.input_norm = Some((mean, std));
        self
    }

    /// Sets the number of parallel spans of images.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Checks the configuration and returns the network it implies.
    pub fn validate(&self) -> Result<Plan> {
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::param(
                "input",
                format!("every dimension must be positive, got {:?}", self.input),
            ));
        }
        if self.output_dim == 0 {
            return Err(Error::param("output_dim", "must be at least 1"));
        }
        if self.hidden == 0 {
            return Err(Error::param("hidden", "must be at least 1"));
        }
        if let Some(i) = self.widths.iter().position(|&v| v == 0) {
            return Err(Error::param(format!("widths[{i}]"), "must be at least 1"));
        }
        if let Some(i) = self.blocks.iter().position(|&v| v == 0) {
            return Err(Error::param(format!("blocks[{i}]"), "must be at least 1"));
        }
        if !(self.negative_slope.is_finite()) {
            return Err(Error::param("negative_slope", "must be finite"));
        }
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return Err(Error::param(
                "bn_momentum",
                format!("must lie in (0, 1], got {}", self.bn_momentum),
            ));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err(Error::param("bn_eps", "must be finite and positive"));
        }
        crate::config::check_input_norm(self.input_norm.as_ref(), c)?;
        crate::config::check_normalization(self.normalization)?;
        let conv = |in_c: usize, in_h: usize, in_w: usize, spec: ConvSpec| {
            let out_h = (in_h + 2 * spec.padding - spec.kernel) / spec.stride + 1;
            let out_w = (in_w + 2 * spec.padding - spec.kernel) / spec.stride + 1;
            LayerShape {
                spec,
                in_c,
                in_h,
                in_w,
                out_h,
                out_w,
            }
        };
        let spec = |out, kernel, stride, padding| ConvSpec {
            out,
            kernel,
            stride,
            padding,
        };
        let stem = conv(c, h, w, spec(self.widths[0], 7, 2, 3));
        // Max-pool 3 × 3, stride 2, padding 1.
        let pool = Pool {
            c: self.widths[0],
            in_h: stem.out_h,
            in_w: stem.out_w,
            out_h: (stem.out_h - 1) / 2 + 1,
            out_w: (stem.out_w - 1) / 2 + 1,
        };
        let mut units = vec![stem];
        let mut blocks = Vec::new();
        let (mut ch, mut hh, mut ww) = (pool.c, pool.out_h, pool.out_w);
        for (s, (&width, &n)) in self.widths.iter().zip(&self.blocks).enumerate() {
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let c1 = conv(ch, hh, ww, spec(width, 3, stride, 1));
                let c2 = conv(width, c1.out_h, c1.out_w, spec(width, 3, 1, 1));
                let down = (stride != 1 || ch != width)
                    .then(|| conv(ch, hh, ww, spec(width, 1, stride, 0)));
                let at = units.len();
                units.push(c1);
                units.push(c2);
                if let Some(d) = down {
                    units.push(d);
                }
                blocks.push(BasicBlock {
                    name: format!("layer{}.{b}", s + 1),
                    c1: at,
                    c2: at + 1,
                    down: down.map(|_| at + 2),
                });
                (ch, hh, ww) = (width, c2.out_h, c2.out_w);
            }
        }
        Ok(Plan {
            units,
            pool,
            blocks,
            features: ch,
            final_positions: hh * ww,
        })
    }

    /// A one-line description recorded in result files.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "resnet18 [{}x{}x{}] widths {:?} blocks {:?} -> fc {} -> leaky_relu({}) -> linear {} ({:?})",
            self.input[0],
            self.input[1],
            self.input[2],
            self.widths,
            self.blocks,
            self.hidden,
            self.negative_slope,
            self.output_dim,
            self.normalization
        );
        if let Some((m, sd)) = &self.input_norm {
            s.push_str(&format!("; input (x - {m:?}) / {sd:?}"));
        }
        s
    }
}

/// The max-pool's shape (3 × 3, stride 2, padding 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Channels.
    pub c: usize,
    #[allow(missing_docs)]
    pub in_h: usize,
    #[allow(missing_docs)]
    pub in_w: usize,
    #[allow(missing_docs)]
    pub out_h: usize,
    #[allow(missing_docs)]
    pub out_w: usize,
}

/// One basic block: indices of its convolutions in [`Plan::units`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicBlock {
    /// Its torchvision name, e.g. `layer2.0`.
    pub name: String,
    #[allow(missing_docs)]
    pub c1: usize,
    #[allow(missing_docs)]
    pub c2: usize,
    /// The shortcut's 1 × 1 convolution, where the shape changes.
    pub down: Option<usize>,
}

/// The network a valid [`ResNetConfig`] implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every convolution (each followed by batch norm): the stem first, then each block's.
    pub units: Vec<LayerShape>,
    /// The stem's max-pool.
    pub pool: Pool,
    /// The basic blocks, in order.
    pub blocks: Vec<BasicBlock>,
    /// Channels of the last stage (the width of the pooled features).
    pub features: usize,
    /// Positions the average pool averages over.
    pub final_positions: usize,
}

/// Where a convolution-with-batch-norm's parameters live.
#[derive(Debug, Clone)]
struct UnitParams {
    w: Range<usize>,
    gamma: Range<usize>,
    beta: Range<usize>,
    mean: Range<usize>,
    var: Range<usize>,
}

/// Everything one forward pass keeps for the backward.
#[derive(Debug, Default, Clone)]
struct Acts {
    rows: usize,
    x0: Vec<f32>,
    /// Each unit's convolution output, before batch norm.
    y: Vec<Vec<f32>>,
    /// Each unit's normalisation: mean and 1/√(var + eps) per channel.
    mean: Vec<Vec<f32>>,
    inv_std: Vec<Vec<f32>>,
    stem: Vec<f32>,
    pool: Vec<f32>,
    pool_arg: Vec<u32>,
    /// Each block's ReLU(bn1(conv1)) and its output.
    a1: Vec<Vec<f32>>,
    outs: Vec<Vec<f32>>,
    shortcut: Vec<f32>,
    feats: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
    h: Vec<f32>,
    out: Vec<f32>,
    inv_norm: Vec<f32>,
}

/// ResNet-18 (see [`ResNetConfig`]) with a hand-written backward pass, trained through
/// [`TrainableEncoder`]. Batch norm uses the batch's statistics in
/// [`forward_train`](TrainableEncoder::forward_train), which also updates the running
/// averages as PyTorch does (unbiased variance), and the running averages in
/// [`encode_f32`](TrainableEncoder::encode_f32). The running averages are named tensors
/// (`…running_mean`, `…running_var`, as in torchvision's state dict), so checkpoints hold
/// them; they are lent to the optimiser with a zero gradient, which leaves them unchanged
/// under Adam (its moments stay zero).
#[derive(Debug, Clone)]
pub struct ResNetEncoder {
    config: ResNetConfig,
    plan: Plan,
    units: Vec<UnitParams>,
    fc_w: Range<usize>,
    fc_b: Range<usize>,
    head_w: Range<usize>,
    head_b: Range<usize>,
    norm: Option<Range<usize>>,
    total: usize,
    entries: Entries,
    params: Vec<f32>,
    packed: Vec<Vec<f32>>,
    acts: Acts,
    grad: Option<Vec<f32>>,
    forward_pending: bool,
}

/// Splits `buf` into the spans' rows (`per_row` values each).
fn split_rows<'a>(
    buf: &'a mut [f32],
    spans: &[(usize, usize)],
    per_row: usize,
) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(spans.len());
    let mut rest = buf;
    for &(_, r) in spans {
        let (a, b) = rest.split_at_mut(r * per_row);
        out.push(a);
        rest = b;
    }
    out
}

fn resize(v: &mut Vec<f32>, len: usize) {
    v.resize(len, 0.0);
}

/// Convolution of every image (no bias): `out = conv(input)`.
fn conv_forward(
    l: &LayerShape,
    packed: &[f32],
    input: &[f32],
    out: &mut [f32],
    spans: &[(usize, usize)],
) {
    let (o, kk, pos) = (l.spec.out, l.k(), l.positions());
    let per = images_per_block(l);
    split_rows(out, spans, l.out_len())
        .into_par_iter()
        .zip(spans)
        .for_each(|(dst, &(first, r))| {
            let mut cols = vec![0.0f32; per.min(r) * pos * kk];
            let mut img = 0;
            while img < r {
                let n = per.min(r - img);
                im2col(l, &input[(first + img) * l.in_len()..], n, &mut cols);
                gemm(
                    mat_mut(&mut dst[img * l.out_len()..], n * pos, o),
                    Accum::Replace,
                    mat(&cols, n * pos, kk),
                    mat(packed, kk, o),
                );
                img += n;
            }
        });
}

/// The convolution's backward: returns the weight gradient (GEMM layout, the spans' parts
/// summed in order) and, if `din` is given, writes d loss / d input into it.
fn conv_backward(
    l: &LayerShape,
    packed: &[f32],
    input: &[f32],
    dy: &[f32],
    din: Option<&mut [f32]>,
    spans: &[(usize, usize)],
) -> Vec<f32> {
    let (o, kk, pos) = (l.spec.out, l.k(), l.positions());
    let per = images_per_block(l);
    let want_din = din.is_some();
    let mut din_parts: Vec<Option<&mut [f32]>> = match din {
        Some(d) => split_rows(d, spans, l.in_len())
            .into_iter()
            .map(Some)
            .collect(),
        None => spans.iter().map(|_| None).collect(),
    };
    let parts: Vec<Vec<f32>> = din_parts
        .par_iter_mut()
        .zip(spans)
        .map(|(dpart, &(first, r))| {
            let mut dw = vec![0.0f32; kk * o];
            let mut cols = vec![0.0f32; per.min(r) * pos * kk];
            let mut dcols = if want_din { cols.clone() } else { Vec::new() };
            let mut img = 0;
            while img < r {
                let n = per.min(r - img);
                let at = first + img;
                im2col(l, &input[at * l.in_len()..], n, &mut cols);
                let d = &dy[at * l.out_len()..(at + n) * l.out_len()];
                gemm(
                    mat_mut(&mut dw, kk, o),
                    if img == 0 { Accum::Replace } else { Accum::Add },
                    mat(&cols, n * pos, kk).transpose(),
                    mat(d, n * pos, o),
                );
                if let Some(dp) = dpart.as_deref_mut() {
                    gemm(
                        mat_mut(&mut dcols, n * pos, kk),
                        Accum::Replace,
                        mat(d, n * pos, o),
                        mat(packed, kk, o).transpose(),
                    );
                    let dst = &mut dp[img * l.in_len()..(img + n) * l.in_len()];
                    dst.fill(0.0);
                    col2im_add(l, &dcols, n, dst);
                }
                img += n;
            }
            dw
        })
        .collect();
    let mut sum = vec![0.0f32; kk * o];
    for p in &parts {
        for (s, &v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    sum
}

/// Per-channel sums over the spans' rows of `f(row values)`, each span's in f64, the spans
/// added in order.
fn channel_sums(
    c: usize,
    spans: &[(usize, usize)],
    per_image: usize,
    f: impl Fn(usize, &mut [f64]) + Sync,
) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = spans
        .par_iter()
        .map(|&(first, r)| {
            let mut acc = vec![0.0f64; c];
            for row in first * per_image..(first + r) * per_image {
                f(row, &mut acc);
            }
            acc
        })
        .collect();
    let mut sum = vec![0.0f64; c];
    for p in &parts {
        for (s, &v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    sum
}

/// Batch statistics of `y` (rows of `c` channels, `positions` rows per image): the mean and
/// the biased variance (two passes).
fn batch_stats(
    y: &[f32],
    c: usize,
    positions: usize,
    spans: &[(usize, usize)],
) -> (Vec<f64>, Vec<f64>) {
    let m = (spans.iter().map(|s| s.1).sum::<usize>() * positions) as f64;
    let sum = channel_sums(c, spans, positions, |row, acc| {
        for (a, &v) in acc.iter_mut().zip(&y[row * c..(row + 1) * c]) {
            *a += f64::from(v);
        }
    });
    let mean: Vec<f64> = sum.iter().map(|s| s / m).collect();
    let sq = channel_sums(c, spans, positions, |row, acc| {
        for ((a, &v), &mu) in acc.iter_mut().zip(&y[row * c..(row + 1) * c]).zip(&mean) {
            let d = f64::from(v) - mu;
            *a += d * d;
        }
    });
    let var = sq.iter().map(|s| s / m).collect();
    (mean, var)
}

/// `out = [ReLU](γ (y − μ) / σ + β [+ residual])`, every image in parallel.
#[allow(clippy::too_many_arguments)]
fn bn_apply(
    y: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
    residual: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let c = mean.len();
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    const CHUNK: usize = 1 << 14;
    let chunk = CHUNK - CHUNK % c;
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, dst)| {
        let at = i * chunk;
        for (r, row) in dst.chunks_exact_mut(c).enumerate() {
            let src = &y[at + r * c..at + (r + 1) * c];
            let terms = src.iter().zip(mean).zip(&scale).zip(beta);
            match (residual, relu) {
                (Some(res), true) => {
                    let res = &res[at + r * c..at + (r + 1) * c];
                    for ((o, (((&v, &m), &sc), &b)), &q) in row.iter_mut().zip(terms).zip(res) {
                        *o = ((v - m) * sc + b + q).max(0.0);
                    }
                }
                (Some(res), false) => {
                    let res = &res[at + r * c..at + (r + 1) * c];
                    for ((o, (((&v, &m), &sc), &b)), &q) in row.iter_mut().zip(terms).zip(res) {
                        *o = (v - m) * sc + b + q;
                    }
                }
                (None, true) => {
                    for (o, (((&v, &m), &sc), &b)) in row.iter_mut().zip(terms) {
                        *o = ((v - m) * sc + b).max(0.0);
                    }
                }
                (None, false) => {
                    for (o, (((&v, &m), &sc), &b)) in row.iter_mut().zip(terms) {
                        *o = (v - m) * sc + b;
                    }
                }
            }
        }
    });
}

/// Batch norm's backward in training mode: from d loss / d out (`dz`) to d loss / d y
/// (written over `dz`), returning dγ and dβ.
fn bn_backward(
    y: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    dz: &mut [f32],
    positions: usize,
    spans: &[(usize, usize)],
) -> (Vec<f32>, Vec<f32>) {
    let c = mean.len();
    let m = (spans.iter().map(|s| s.1).sum::<usize>() * positions) as f64;
    let dz_read: &[f32] = dz;
    let dbeta = channel_sums(c, spans, positions, |row, acc| {
        for (a, &v) in acc.iter_mut().zip(&dz_read[row * c..(row + 1) * c]) {
            *a += f64::from(v);
        }
    });
    let dgamma = channel_sums(c, spans, positions, |row, acc| {
        let (yr, dr) = (&y[row * c..(row + 1) * c], &dz_read[row * c..(row + 1) * c]);
        for ((((a, &yv), &d), &m), &is) in acc.iter_mut().zip(yr).zip(dr).zip(mean).zip(inv_std) {
            let xh = (yv - m) * is;
            *a += f64::from(d) * f64::from(xh);
        }
    });
    let db: Vec<f32> = dbeta.iter().map(|&v| (v / m) as f32).collect();
    let dg: Vec<f32> = dgamma.iter().map(|&v| (v / m) as f32).collect();
    let k1: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    const CHUNK: usize = 1 << 14;
    let chunk = CHUNK - CHUNK % c;
    dz.par_chunks_mut(chunk).enumerate().for_each(|(i, d)| {
        let at = i * chunk;
        for (r, row) in d.chunks_exact_mut(c).enumerate() {
            let yr = &y[at + r * c..at + (r + 1) * c];
            let terms = yr.iter().zip(mean).zip(inv_std).zip(&k1).zip(&db).zip(&dg);
            for (o, (((((&yv, &m), &is), &k), &b), &g)) in row.iter_mut().zip(terms) {
                let xh = (yv - m) * is;
                *o = k * (*o - b - xh * g);
            }
        }
    });
    (
        dgamma.iter().map(|&v| v as f32).collect(),
        dbeta.iter().map(|&v| v as f32).collect(),
    )
}

/// Max-pool 3 × 3, stride 2, padding 1 of every image (HWC), with the input index of each
/// output's maximum (the first in scan order among ties, as PyTorch's CPU kernel).
fn maxpool(p: &Pool, input: &[f32], out: &mut [f32], arg: &mut [u32]) {
    let (c, in_len, out_len) = (p.c, p.c * p.in_h * p.in_w, p.c * p.out_h * p.out_w);
    out.par_chunks_mut(out_len)
        .zip(arg.par_chunks_mut(out_len))
        .enumerate()
        .for_each(|(img, (dst, idx))| {
            let src = &input[img * in_len..(img + 1) * in_len];
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let o = (oy * p.out_w + ox) * c;
                    dst[o..o + c].fill(f32::NEG_INFINITY);
                    for ky in 0..3 {
                        let iy = (oy * 2 + ky) as isize - 1;
                        if iy < 0 || iy >= p.in_h as isize {
                            continue;
                        }
                        for kx in 0..3 {
                            let ix = (ox * 2 + kx) as isize - 1;
                            if ix < 0 || ix >= p.in_w as isize {
                                continue;
                            }
                            let i = (iy as usize * p.in_w + ix as usize) * c;
                            for k in 0..c {
                                let v = src[i + k];
                                if v > dst[o + k] {
                                    dst[o + k] = v;
                                    idx[o + k] = (i + k) as u32;
                                }
                            }
                        }
                    }
                }
            }
        });
}

impl ResNetEncoder {
    /// Validates `config` and draws the initial weights from `rng` as torchvision does:
    /// convolutions Kaiming-normal (fan-out, ReLU gain), batch norm γ = 1, β = 0, running
    /// mean 0 and variance 1, linear layers uniform in ±1/√fan_in.
    pub fn new(config: ResNetConfig, rng: &mut dyn RngCore) -> Result<Self> {
        let plan = config.validate()?;
        let mut entries = Entries::default();
        let mut push = |name: String, shape: Vec<usize>| entries.push(name, shape);
        let mut names = vec![("conv1".to_string(), "bn1".to_string())];
        for b in &plan.blocks {
            names.push((format!("{}.conv1", b.name), format!("{}.bn1", b.name)));
            names.push((format!("{}.conv2", b.name), format!("{}.bn2", b.name)));
            if b.down.is_some() {
                names.push((
                    format!("{}.downsample.0", b.name),
                    format!("{}.downsample.1", b.name),
                ));
            }
        }
        let units: Vec<UnitParams> = plan
            .units
            .iter()
            .zip(&names)
            .map(|(l, (conv, bn))| {
                let k = l.spec.kernel;
                let o = l.spec.out;
                UnitParams {
                    w: push(format!("{conv}.weight"), vec![o, l.in_c, k, k]),
                    gamma: push(format!("{bn}.weight"), vec![o]),
                    beta: push(format!("{bn}.bias"), vec![o]),
                    mean: push(format!("{bn}.running_mean"), vec![o]),
                    var: push(format!("{bn}.running_var"), vec![o]),
                }
            })
            .collect();
        let n = config.output_dim;
        let fc_w = push("fc.weight".into(), vec![config.hidden, plan.features]);
        let fc_b = push("fc.bias".into(), vec![config.hidden]);
        let head_w = push("head.weight".into(), vec![n, config.hidden]);
        let head_b = push("head.bias".into(), vec![n]);
        let norm = match config.normalization {
            Normalization::LearnableBox { .. } => Some(push("norm.bound".into(), vec![n])),
            Normalization::LearnableSphere { .. } => Some(push("norm.radius".into(), vec![1])),
            _ => None,
        };
        let total = entries.total();
        let mut params = vec![0.0f32; total];
        for (l, u) in plan.units.iter().zip(&units) {
            let fan_out = l.spec.out * l.spec.kernel * l.spec.kernel;
            let std = (2.0 / fan_out as f64).sqrt();
            for v in &mut params[u.w.clone()] {
                let z: f64 = rng.sample(StandardNormal);
                *v = (z * std) as f32;
            }
            params[u.gamma.clone()].fill(1.0);
            params[u.var.clone()].fill(1.0);
        }
        let mut uniform = |r: &Range<usize>, fan_in: usize, params: &mut [f32]| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            for v in &mut params[r.clone()] {
                *v = rng.random_range(-bound..bound) as f32;
            }
        };
        uniform(&fc_w, plan.features, &mut params);
        uniform(&fc_b, plan.features, &mut params);
        uniform(&head_w, config.hidden, &mut params);
        uniform(&head_b, config.hidden, &mut params);
        if let Some(r) = &norm {
            let init = match config.normalization {
                Normalization::LearnableBox { init_bound } => init_bound,
                Normalization::LearnableSphere { init_radius } => init_radius,
                _ => unreachable!("only learnable output layers have a parameter"),
            };
            params[r.clone()].fill(init as f32);
        }
        let mut enc = ResNetEncoder {
            config,
            plan,
            units,
            fc_w,
            fc_b,
            head_w,
            head_b,
            norm,
            total,
            entries,
            params,
            packed: Vec::new(),
            acts: Acts::default(),
            grad: None,
            forward_pending: false,
        };
        enc.repack();
        Ok(enc)
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The network's shapes.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Multiply-adds of one image's forward pass (convolutions and linear layers).
    pub fn macs_per_image(&self) -> usize {
        self.plan.units.iter().map(|l| l.macs()).sum::<usize>()
            + self.plan.features * self.config.hidden
            + self.config.hidden * self.config.output_dim
    }

    /// Number of values in the named tensors (parameters and running averages).
    pub fn num_parameters(&self) -> usize {
        self.total
    }

    fn repack(&mut self) {
        self.packed.resize_with(self.plan.units.len(), Vec::new);
        for (i, l) in self.plan.units.iter().enumerate() {
            pack(
                l,
                &self.params[self.units[i].w.clone()],
                &mut self.packed[i],
            );
        }
    }

    fn spans(&self, rows: usize) -> Vec<(usize, usize)> {
        spans(rows, self.config.threads, rows)
    }

    /// Normalises unit `u`'s convolution output in place of `a.mean`/`a.inv_std` (batch
    /// statistics when `train`, the running averages otherwise); returns the batch mean and
    /// unbiased variance for the running averages when `train`.
    fn unit_stats(
        &self,
        u: usize,
        a: &mut Acts,
        spans: &[(usize, usize)],
        train: bool,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let l = &self.plan.units[u];
        let c = l.spec.out;
        let eps = f64::from(self.config.bn_eps);
        let p = &self.units[u];
        if train {
            let (mean, var) = batch_stats(&a.y[u], c, l.positions(), spans);
            a.mean[u] = mean.iter().map(|&v| v as f32).collect();
            a.inv_std[u] = var
                .iter()
                .map(|&v| (1.0 / (v + eps).sqrt()) as f32)
                .collect();
            let m = (a.rows * l.positions()) as f64;
            assert!(
                m > 1.0,
                "batch norm in training needs more than one value per channel (a batch of one 1 × 1 feature map)"
            );
            let unbiased = var.iter().map(|&v| v * m / (m - 1.0)).collect();
            Some((mean, unbiased))
        } else {
            a.mean[u] = self.params[p.mean.clone()].to_vec();
            a.inv_std[u] = self.params[p.var.clone()]
                .iter()
                .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
                .collect();
            None
        }
    }

    /// The forward pass of `x` into `a`; in training, returns every unit's batch mean and
    /// unbiased variance.
    fn run_forward(
        &self,
        x: ArrayView2<'_, f32>,
        train: bool,
        a: &mut Acts,
    ) -> Vec<(Vec<f64>, Vec<f64>)> {
        let rows = x.nrows();
        let spans = self.spans(rows);
        let plan = &self.plan;
        let units = plan.units.len();
        a.rows = rows;
        a.y.resize_with(units, Vec::new);
        a.mean.resize_with(units, Vec::new);
        a.inv_std.resize_with(units, Vec::new);
        a.a1.resize_with(plan.blocks.len(), Vec::new);
        a.outs.resize_with(plan.blocks.len(), Vec::new);
        let mut stats = Vec::new();
        // Input: CHW rows → HWC, normalised.
        let [c, hh, ww] = self.config.input;
        let plane = hh * ww;
        resize(&mut a.x0, rows * c * plane);
        let norm = self.config.input_norm.as_ref();
        a.x0.par_chunks_mut(c * plane)
            .enumerate()
            .for_each(|(r, dst)| {
                let src = x.row(r);
                let src = src.as_slice().expect("observation rows are contiguous");
                crate::named::to_hwc(src, dst, c, plane, norm);
            });
        let mut conv_bn = |this: &Self, u: usize, input: &[f32], a: &mut Acts| {
            let l = &plan.units[u];
            resize(&mut a.y[u], rows * l.out_len());
            conv_forward(l, &this.packed[u], input, &mut a.y[u], &spans);
            if let Some(s) = this.unit_stats(u, a, &spans, train) {
                stats.push(s);
            }
        };
        // Stem.
        let x0 = std::mem::take(&mut a.x0);
        conv_bn(self, 0, &x0, a);
        a.x0 = x0;
        let p0 = &self.units[0];
        resize(&mut a.stem, rows * plan.units[0].out_len());
        bn_apply(
            &a.y[0],
            &a.mean[0],
            &a.inv_std[0],
            &self.params[p0.gamma.clone()],
            &self.params[p0.beta.clone()],
            None,
            true,
            &mut a.stem,
        );
        let pl = plan.pool;
        let pool_len = pl.c * pl.out_h * pl.out_w;
        resize(&mut a.pool, rows * pool_len);
        a.pool_arg.resize(rows * pool_len, 0);
        maxpool(&pl, &a.stem, &mut a.pool, &mut a.pool_arg);
        // Blocks.
        // The blocks' inputs (the pool, then each block's output) are taken out of `a` so
        // they can be read while `a` is written.
        let pool = std::mem::take(&mut a.pool);
        let mut outs = std::mem::take(&mut a.outs);
        for (b, blk) in plan.blocks.iter().enumerate() {
            let (done, rest) = outs.split_at_mut(b);
            let input: &[f32] = if b == 0 { &pool } else { &done[b - 1] };
            conv_bn(self, blk.c1, input, a);
            let (l1, q1) = (&plan.units[blk.c1], &self.units[blk.c1]);
            let mut a1 = std::mem::take(&mut a.a1[b]);
            resize(&mut a1, rows * l1.out_len());
            bn_apply(
                &a.y[blk.c1],
                &a.mean[blk.c1],
                &a.inv_std[blk.c1],
                &self.params[q1.gamma.clone()],
                &self.params[q1.beta.clone()],
                None,
                true,
                &mut a1,
            );
            conv_bn(self, blk.c2, &a1, a);
            a.a1[b] = a1;
            let l2 = &plan.units[blk.c2];
            let mut shortcut = std::mem::take(&mut a.shortcut);
            let residual: &[f32] = match blk.down {
                Some(d) => {
                    conv_bn(self, d, input, a);
                    let qd = &self.units[d];
                    resize(&mut shortcut, rows * l2.out_len());
                    bn_apply(
                        &a.y[d],
                        &a.mean[d],
                        &a.inv_std[d],
                        &self.params[qd.gamma.clone()],
                        &self.params[qd.beta.clone()],
                        None,
                        false,
                        &mut shortcut,
                    );
                    &shortcut
                }
                None => input,
            };
            let q2 = &self.units[blk.c2];
            let out = &mut rest[0];
            resize(out, rows * l2.out_len());
            bn_apply(
                &a.y[blk.c2],
                &a.mean[blk.c2],
                &a.inv_std[blk.c2],
                &self.params[q2.gamma.clone()],
                &self.params[q2.beta.clone()],
                Some(residual),
                true,
                out,
            );
            a.shortcut = shortcut;
        }
        a.outs = outs;
        a.pool = pool;
        // Average pool, fc, LeakyReLU, head, output layer.
        let (f, p) = (plan.features, plan.final_positions);
        let last = a.outs.last().expect("at least one block");
        resize(&mut a.feats, rows * f);
        for r in 0..rows {
            let dst = &mut a.feats[r * f..(r + 1) * f];
            dst.fill(0.0);
            for pos in 0..p {
                for (d, &v) in dst
                    .iter_mut()
                    .zip(&last[(r * p + pos) * f..(r * p + pos + 1) * f])
                {
                    *d += v;
                }
            }
            let inv = 1.0 / p as f32;
            for d in dst.iter_mut() {
                *d *= inv;
            }
        }
        let (hd, n) = (self.config.hidden, self.config.output_dim);
        resize(&mut a.u, rows * hd);
        linear(
            &mut a.u,
            &a.feats,
            &self.params[self.fc_w.clone()],
            &self.params[self.fc_b.clone()],
            rows,
            f,
            hd,
        );
        let slope = self.config.negative_slope;
        a.v.clear();
        a.v.extend(a.u.iter().map(|&v| if v > 0.0 { v } else { v * slope }));
        resize(&mut a.h, rows * n);
        linear(
            &mut a.h,
            &a.v,
            &self.params[self.head_w.clone()],
            &self.params[self.head_b.clone()],
            rows,
            hd,
            n,
        );
        resize(&mut a.out, rows * n);
        resize(&mut a.inv_norm, rows);
        let norm_p = self.norm.clone().map(|r| &self.params[r]);
        for r in 0..rows {
            a.inv_norm[r] = output::forward_row(
                self.config.normalization,
                norm_p,
                &a.h[r * n..(r + 1) * n],
                &mut a.out[r * n..(r + 1) * n],
            );
        }
        stats
    }
}

/// `out = x · wᵀ + b` (`x`: rows × fin, `w`: fout × fin).
fn linear(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], rows: usize, fin: usize, fout: usize) {
    gemm(
        mat_mut(out, rows, fout),
        Accum::Replace,
        mat(x, rows, fin),
        mat(w, fout, fin).transpose(),
    );
    for row in out[..rows * fout].chunks_exact_mut(fout) {
        for (v, &bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// The gradients of [`linear`]: `dw = dyᵀ x`, `db = Σ dy`, and `dx = dy w` if wanted.
fn linear_backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    fin: usize,
    fout: usize,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    gemm(
        mat_mut(dw, fout, fin),
        Accum::Replace,
        mat(dy, rows, fout).transpose(),
        mat(x, rows, fin),
    );
    db.fill(0.0);
    for row in dy[..rows * fout].chunks_exact(fout) {
        for (acc, &v) in db.iter_mut().zip(row) {
            *acc += v;
        }
    }
    if let Some(dx) = dx {
        gemm(
            mat_mut(dx, rows, fin),
            Accum::Replace,
            mat(dy, rows, fout),
            mat(w, fout, fin),
        );
    }
}

impl TrainableEncoder for ResNetEncoder {
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
        let mut a = std::mem::take(&mut self.acts);
        let stats = self.run_forward(x, true, &mut a);
        // Running averages, as PyTorch: r ← (1 − m) r + m · batch value.
        let mom = self.config.bn_momentum;
        for (u, (mean, var)) in stats.iter().enumerate() {
            let p = &self.units[u];
            for (r, &v) in self.params[p.mean.clone()].iter_mut().zip(mean) {
                *r = (1.0 - mom) * *r + mom * v as f32;
            }
            for (r, &v) in self.params[p.var.clone()].iter_mut().zip(var) {
                *r = (1.0 - mom) * *r + mom * v as f32;
            }
        }
        self.acts = a;
        self.forward_pending = true;
        self.grad = None;
        let (rows, n) = (x.nrows(), self.config.output_dim);
        ArrayView2::from_shape((rows, n), &self.acts.out[..rows * n]).expect("output buffer shape")
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) {
        assert!(self.forward_pending, "backward needs a forward_train first");
        let a = &self.acts;
        let rows = a.rows;
        let (n, hd) = (self.config.output_dim, self.config.hidden);
        assert_eq!(grad_out.dim(), (rows, n), "grad_out has the wrong shape");
        let spans = self.spans(rows);
        let plan = &self.plan;
        let mut grad = vec![0.0f32; self.total];
        // Output layer → dh.
        let norm_p = self.norm.clone().map(|r| &self.params[r]);
        let mut dnorm = vec![0.0f32; self.norm.as_ref().map_or(0, |r| r.len())];
        let mut dh = vec![0.0f32; rows * n];
        for r in 0..rows {
            output::backward_row(
                self.config.normalization,
                norm_p,
                &a.h[r * n..(r + 1) * n],
                a.inv_norm[r],
                grad_out.row(r).iter(),
                &mut dh[r * n..(r + 1) * n],
                &mut dnorm,
            );
        }
        if let Some(r) = self.norm.clone() {
            grad[r].copy_from_slice(&dnorm);
        }
        // Head, LeakyReLU, fc.
        let mut dv = vec![0.0f32; rows * hd];
        {
            let (mut gw, mut gb) = (vec![0.0; n * hd], vec![0.0; n]);
            linear_backward(
                &dh,
                &a.v,
                &self.params[self.head_w.clone()],
                rows,
                hd,
                n,
                &mut gw,
                &mut gb,
                Some(&mut dv),
            );
            grad[self.head_w.clone()].copy_from_slice(&gw);
            grad[self.head_b.clone()].copy_from_slice(&gb);
        }
        let slope = self.config.negative_slope;
        for (d, &u) in dv.iter_mut().zip(&a.u) {
            if u <= 0.0 {
                *d *= slope;
            }
        }
        let f = plan.features;
        let mut dfeats = vec![0.0f32; rows * f];
        {
            let (mut gw, mut gb) = (vec![0.0; hd * f], vec![0.0; hd]);
            linear_backward(
                &dv,
                &a.feats,
                &self.params[self.fc_w.clone()],
                rows,
                f,
                hd,
                &mut gw,
                &mut gb,
                Some(&mut dfeats),
            );
            grad[self.fc_w.clone()].copy_from_slice(&gw);
            grad[self.fc_b.clone()].copy_from_slice(&gb);
        }
        // Average pool.
        let p = plan.final_positions;
        let mut dcur = vec![0.0f32; rows * p * f];
        let inv = 1.0 / p as f32;
        for r in 0..rows {
            for pos in 0..p {
                for k in 0..f {
                    dcur[(r * p + pos) * f + k] = dfeats[r * f + k] * inv;
                }
            }
        }
        let unit_grad =
            |u: usize, dy: &mut [f32], input: &[f32], din: Option<&mut [f32]>, grad: &mut [f32]| {
                let l = &plan.units[u];
                let q = &self.units[u];
                let (dg, db) = bn_backward(
                    &a.y[u],
                    &a.mean[u],
                    &a.inv_std[u],
                    &self.params[q.gamma.clone()],
                    dy,
                    l.positions(),
                    &spans,
                );
                grad[q.gamma.clone()].copy_from_slice(&dg);
                grad[q.beta.clone()].copy_from_slice(&db);
                let dw = conv_backward(l, &self.packed[u], input, dy, din, &spans);
                unpack_add(l, &dw, &mut grad[q.w.clone()]);
            };
        // Blocks, last first. `dcur` holds d loss / d (block output).
        for (b, blk) in plan.blocks.iter().enumerate().rev() {
            let input: &[f32] = if b == 0 { &a.pool } else { &a.outs[b - 1] };
            // Through the output ReLU: d (bn2 + shortcut).
            let len = dcur.len();
            relu_mask(&mut dcur, &a.outs[b][..len]);
            let l1 = &plan.units[blk.c1];
            let mut dx = vec![0.0f32; rows * l1.in_len()];
            match blk.down {
                Some(d) => {
                    let mut dyd = dcur.clone();
                    unit_grad(d, &mut dyd, input, Some(&mut dx), &mut grad);
                }
                None => dx.copy_from_slice(&dcur),
            }
            let mut da1 = vec![0.0f32; rows * l1.out_len()];
            unit_grad(blk.c2, &mut dcur, &a.a1[b], Some(&mut da1), &mut grad);
            relu_mask(&mut da1, &a.a1[b]);
            let mut dxi = vec![0.0f32; rows * l1.in_len()];
            unit_grad(blk.c1, &mut da1, input, Some(&mut dxi), &mut grad);
            for (d, &v) in dx.iter_mut().zip(&dxi) {
                *d += v;
            }
            dcur = dx;
        }
        // Max-pool: each output's gradient to its maximum.
        let l0 = &plan.units[0];
        let mut dstem = vec![0.0f32; rows * l0.out_len()];
        let (pool_len, stem_len) = (dcur.len() / rows, l0.out_len());
        dstem
            .par_chunks_mut(stem_len)
            .enumerate()
            .for_each(|(r, dst)| {
                for (&i, &g) in a.pool_arg[r * pool_len..(r + 1) * pool_len]
                    .iter()
                    .zip(&dcur[r * pool_len..(r + 1) * pool_len])
                {
                    dst[i as usize] += g;
                }
            });
        relu_mask(&mut dstem, &a.stem);
        unit_grad(0, &mut dstem, &a.x0, None, &mut grad);
        self.grad = Some(grad);
        self.forward_pending = false;
    }

    fn encode_f32(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        check_input(self.config.input, &x);
        let n = self.config.output_dim;
        let mut out = Array2::zeros((x.nrows(), n));
        let mut a = Acts::default();
        let mut start = 0;
        while start < x.nrows() {
            let end = (start + ENCODE_ROWS).min(x.nrows());
            let part = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end));
            self.run_forward(part, false, &mut a);
            for i in 0..end - start {
                for k in 0..n {
                    out[[start + i, k]] = a.out[i * n + k];
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
                "clica-conv/resnet18/v1: torchvision's ResNet-18 names and layouts (convolution weights [out, in, k, k]), then head.* and norm.*"
                    .to_string(),
            ),
        ]);
        clica_encoders::safetensors_bytes(&self.parameters(), meta)
    }
}
