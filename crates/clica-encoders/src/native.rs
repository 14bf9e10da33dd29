//! The native backend: hand-written forward and backward passes on faer's GEMM.
//!
//! The batch is split into `T` row blocks ("chunks"), one per worker thread. Each chunk runs
//! the whole forward pass, and later the whole backward pass, on its own rows with
//! single-threaded GEMMs and its own buffers, so the threads never synchronise inside a
//! pass; the per-chunk weight gradients are summed once at the end. Bias addition and
//! LeakyReLU are fused into one pass after each forward GEMM; LeakyReLU's derivative
//! (recovered from the sign of the stored activation) and the bias gradient are fused into
//! one pass after each backward GEMM. Buffers grow to the largest batch seen and are reused,
//! so a training loop with a fixed batch size does not allocate after its first step.

use crate::adam::reduce_into;
use crate::config::{EncoderConfig, Normalization};
use crate::params::Layout;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::ArrayView2;

/// Rows below which a chunk is not split further (tiny batches run on one thread).
const MIN_CHUNK_ROWS: usize = 64;
/// Largest row count one call of the forward routine processes at once in `encode`.
pub(crate) const ENCODE_BLOCK: usize = 16_384;
/// Norm floor of the sphere normalisations (PyTorch's `F.normalize` default).
pub(crate) const NORM_EPS: f32 = 1e-12;

/// Buffers of one row block.
#[derive(Debug, Default, Clone)]
struct Chunk {
    rows: usize,
    /// Copy of the input rows, `rows × input_dim`.
    x: Vec<f32>,
    /// Output of every linear layer, after LeakyReLU for hidden layers; the last one is the
    /// raw output h before normalisation.
    acts: Vec<Vec<f32>>,
    /// 1 / max(‖h‖, eps) per row (sphere normalisations).
    inv_norm: Vec<f32>,
    /// Ping-pong buffers for the gradient with respect to pre-activations.
    delta: [Vec<f32>; 2],
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Buffers of a whole batch.
#[derive(Debug, Default, Clone)]
struct Work {
    rows: usize,
    chunks: Vec<Chunk>,
    /// Per-chunk gradients (flat layout); after `backward`, `grads[0]` holds the total.
    grads: Vec<Vec<f32>>,
    /// Normalised output, `rows × output_dim`.
    out: Vec<f32>,
}

/// Number of row blocks for `rows` rows: `threads` (0 ⇒ rayon's thread count), but no block
/// smaller than [`MIN_CHUNK_ROWS`] rows. The rows are split as evenly as possible.
fn num_chunks(rows: usize, threads: usize) -> usize {
    let t = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    t.min(rows / MIN_CHUNK_ROWS).max(1)
}

impl Work {
    /// Sizes the buffers for `rows` rows (growing only), `backward` adds gradient buffers.
    fn prepare(&mut self, net: &Net<'_>, rows: usize, threads: usize, backward: bool) {
        let t = num_chunks(rows, threads);
        self.chunks.resize_with(t, Chunk::default);
        let widths = &net.layout.widths;
        let layers = net.layout.num_layers();
        let max_w = widths.iter().copied().max().unwrap_or(0);
        let (base, rem) = (rows / t, rows % t);
        for (c, ch) in self.chunks.iter_mut().enumerate() {
            let r = base + usize::from(c < rem);
            ch.rows = r;
            grow(&mut ch.x, r * widths[0]);
            ch.acts.resize_with(layers, Vec::new);
            for (l, a) in ch.acts.iter_mut().enumerate() {
                grow(a, r * widths[l + 1]);
            }
            grow(&mut ch.inv_norm, r);
            if backward {
                for d in &mut ch.delta {
                    grow(d, r * max_w);
                }
            }
        }
        if backward {
            self.grads.resize_with(t, Vec::new);
            for g in &mut self.grads {
                grow(g, net.layout.total);
            }
        }
        grow(&mut self.out, rows * widths[layers]);
        self.rows = rows;
    }
}

/// Runs `f(chunk, grad, out_rows, first_row)` on every chunk in parallel (recursive
/// `rayon::join`, no allocation). `out` holds `width` values per row of all chunks;
/// `grads` is either empty (`grad = None`) or one buffer per chunk.
fn for_each_chunk<F>(
    chunks: &mut [Chunk],
    grads: &mut [Vec<f32>],
    out: &mut [f32],
    width: usize,
    row0: usize,
    f: &F,
) where
    F: Fn(&mut Chunk, Option<&mut Vec<f32>>, &mut [f32], usize) + Sync,
{
    match chunks.len() {
        0 => {}
        1 => f(&mut chunks[0], grads.first_mut(), out, row0),
        n => {
            let mid = n / 2;
            let left_rows: usize = chunks[..mid].iter().map(|c| c.rows).sum();
            let (cl, cr) = chunks.split_at_mut(mid);
            let (gl, gr) = grads.split_at_mut(mid.min(grads.len()));
            let (ol, or) = out.split_at_mut(left_rows * width);
            rayon::join(
                || for_each_chunk(cl, gl, ol, width, row0, f),
                || for_each_chunk(cr, gr, or, width, row0 + left_rows, f),
            );
        }
    }
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, single-threaded.
#[inline]
fn gemm(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    // faer's kernels leave the AVX upper state dirty, which makes every later libm call
    // (the box normalisation's exp, the samplers) pay a state-transition penalty.
    clica_core::simd::clear_upper_state();
}

/// `z ← leaky(z + b)` row by row.
fn bias_leaky(z: &mut [f32], b: &[f32], slope: f32) {
    for row in z.chunks_exact_mut(b.len()) {
        for (v, &bb) in row.iter_mut().zip(b) {
            let t = *v + bb;
            *v = if t > 0.0 { t } else { t * slope };
        }
    }
}

/// `z ← z + b` row by row.
fn bias_add(z: &mut [f32], b: &[f32]) {
    for row in z.chunks_exact_mut(b.len()) {
        for (v, &bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

/// `d ← d ⊙ leaky'(a)` (derivative from the sign of the activation `a`) and `db += Σ_rows d`.
fn leaky_backward(d: &mut [f32], a: &[f32], slope: f32, db: &mut [f32]) {
    let w = db.len();
    for (drow, arow) in d.chunks_exact_mut(w).zip(a.chunks_exact(w)) {
        for ((dv, &av), acc) in drow.iter_mut().zip(arow).zip(db.iter_mut()) {
            let g = if av > 0.0 { *dv } else { *dv * slope };
            *dv = g;
            *acc += g;
        }
    }
}

/// Above this input the f32 logistic `1 / (1 + e^−x)` is exactly 1: e^−20 ≈ 2.1·10⁻⁹ lies
/// below half an ulp of 1 (2⁻²⁴), so `1 + e^−x` rounds to 1.
const SIGMOID_ONE_ABOVE: f32 = 20.0;
/// Below this input the f32 logistic is exactly 0: e^−x overflows to +∞ for −x above
/// ln(f32::MAX) ≈ 88.72, and 1 / (1 + ∞) = 0.
const SIGMOID_ZERO_BELOW: f32 = -89.0;

/// The logistic function, bit for bit the f32 expression `1 / (1 + e^−x)`, with its
/// saturated ends returned without calling `exp`.
///
/// The box normalisation's inputs saturate during training, and there the system `expf`
/// takes its slow path (an overflowing or subnormal result raises floating-point flags and
/// sets errno): on Table 2 row 1 that path was a fifth of the step's time. The shortcut
/// returns exactly what the expression gives (tested over a sweep), so results stay
/// bit-identical. NaN stays NaN.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x > SIGMOID_ONE_ABOVE {
        1.0
    } else if x < SIGMOID_ZERO_BELOW {
        0.0
    } else {
        1.0 / (1.0 + (-x).exp())
    }
}

/// The read-only description of the network plus its parameters.
#[derive(Clone, Copy)]
struct Net<'a> {
    layout: &'a Layout,
    slope: f32,
    norm: Normalization,
    params: &'a [f32],
}

impl Net<'_> {
    fn weight(&self, l: usize) -> MatRef<'_, f32> {
        let w = &self.layout.widths;
        MatRef::from_row_major_slice(&self.params[self.layout.weight[l].clone()], w[l + 1], w[l])
    }

    fn bias(&self, l: usize) -> &[f32] {
        &self.params[self.layout.bias[l].clone()]
    }

    /// Forward pass of one chunk: `x` (its rows) → `ch.acts`, normalised output → `out`.
    fn forward_chunk(&self, ch: &mut Chunk, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let widths = &self.layout.widths;
        let layers = self.layout.num_layers();
        let rows = ch.rows;
        debug_assert_eq!(x.nrows(), rows);
        let n_in = widths[0];
        let xs = &mut ch.x[..rows * n_in];
        if let Some(s) = x.as_slice() {
            xs.copy_from_slice(s);
        } else {
            for (dst, src) in xs.chunks_exact_mut(n_in).zip(x.rows()) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s;
                }
            }
        }
        for l in 0..layers {
            let (din, dout) = (widths[l], widths[l + 1]);
            let (done, rest) = ch.acts.split_at_mut(l);
            let input = if l == 0 {
                &ch.x[..rows * din]
            } else {
                &done[l - 1][..rows * din]
            };
            let z = &mut rest[0][..rows * dout];
            gemm(
                MatMut::from_row_major_slice_mut(z, rows, dout),
                MatRef::from_row_major_slice(input, rows, din),
                self.weight(l).transpose(),
            );
            if l + 1 < layers {
                bias_leaky(z, self.bias(l), self.slope);
            } else {
                bias_add(z, self.bias(l));
            }
        }
        let n_out = widths[layers];
        let h = &ch.acts[layers - 1][..rows * n_out];
        let out = &mut out[..rows * n_out];
        match self.norm {
            Normalization::None => out.copy_from_slice(h),
            Normalization::Sphere { .. } | Normalization::LearnableSphere { .. } => {
                let r = self.radius();
                for ((hr, yr), inv) in h
                    .chunks_exact(n_out)
                    .zip(out.chunks_exact_mut(n_out))
                    .zip(&mut ch.inv_norm[..rows])
                {
                    let ss: f32 = hr.iter().map(|v| v * v).sum();
                    *inv = 1.0 / ss.sqrt().max(NORM_EPS);
                    let s = *inv * r;
                    for (y, v) in yr.iter_mut().zip(hr) {
                        *y = v * s;
                    }
                }
            }
            Normalization::LearnableBox { .. } => {
                let b = &self.params[self.layout.norm.clone()];
                for (hr, yr) in h.chunks_exact(n_out).zip(out.chunks_exact_mut(n_out)) {
                    for ((y, &v), &bb) in yr.iter_mut().zip(hr).zip(b) {
                        *y = sigmoid(v) * bb;
                    }
                }
            }
        }
    }

    /// The sphere radius (fixed or learned).
    fn radius(&self) -> f32 {
        match self.norm {
            Normalization::Sphere { radius } => radius as f32,
            Normalization::LearnableSphere { .. } => self.params[self.layout.norm.start],
            _ => 1.0,
        }
    }

    /// Backward pass of one chunk after its forward pass: `g` (its rows of d loss / d output)
    /// → this chunk's gradient of every parameter in `grad` (flat layout, overwritten).
    fn backward_chunk(&self, ch: &mut Chunk, g: ArrayView2<'_, f32>, grad: &mut [f32]) {
        let lay = self.layout;
        let widths = &lay.widths;
        let layers = lay.num_layers();
        let rows = ch.rows;
        let n_out = widths[layers];
        for r in &lay.bias {
            grad[r.clone()].fill(0.0);
        }
        grad[lay.norm.clone()].fill(0.0);

        let Chunk {
            x,
            acts,
            inv_norm,
            delta: [da, db],
            ..
        } = ch;
        // Through the normalisation: gh = d loss / d h into `da`, plus its parameters.
        {
            let h = &acts[layers - 1][..rows * n_out];
            let gh = &mut da[..rows * n_out];
            let rows_of_g = g.rows().into_iter();
            match self.norm {
                Normalization::None => {
                    for (dst, src) in gh.chunks_exact_mut(n_out).zip(rows_of_g) {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = *s;
                        }
                    }
                }
                Normalization::Sphere { .. } | Normalization::LearnableSphere { .. } => {
                    let r = self.radius();
                    let mut dr = 0.0f32;
                    for (((dst, src), hr), &inv) in gh
                        .chunks_exact_mut(n_out)
                        .zip(rows_of_g)
                        .zip(h.chunks_exact(n_out))
                        .zip(&inv_norm[..rows])
                    {
                        // y = r·h·inv; u = h·inv. dy/dh = r·inv·(I − u uᵀ) unless the norm
                        // was clamped at eps (then the map is linear: r·inv·I).
                        let ug: f32 = hr.iter().zip(src).map(|(hv, gv)| hv * inv * gv).sum();
                        dr += ug;
                        let proj = if inv < 1.0 / NORM_EPS { ug } else { 0.0 };
                        let s = r * inv;
                        for ((d, &gv), &hv) in dst.iter_mut().zip(src).zip(hr) {
                            *d = s * (gv - hv * inv * proj);
                        }
                    }
                    if matches!(self.norm, Normalization::LearnableSphere { .. }) {
                        grad[lay.norm.start] = dr;
                    }
                }
                Normalization::LearnableBox { .. } => {
                    let b = &self.params[lay.norm.clone()];
                    let gb = &mut grad[lay.norm.clone()];
                    for ((dst, src), hr) in gh
                        .chunks_exact_mut(n_out)
                        .zip(rows_of_g)
                        .zip(h.chunks_exact(n_out))
                    {
                        for ((((d, &gv), &hv), &bb), acc) in
                            dst.iter_mut().zip(src).zip(hr).zip(b).zip(gb.iter_mut())
                        {
                            let s = sigmoid(hv);
                            *d = gv * bb * s * (1.0 - s);
                            *acc += gv * s;
                        }
                    }
                }
            }
            let gb = &mut grad[lay.bias[layers - 1].clone()];
            for row in gh.chunks_exact(n_out) {
                for (acc, v) in gb.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        // Through the layers, last to first; `cur` holds d loss / d (pre-activation).
        let mut cur_in_a = true;
        for l in (0..layers).rev() {
            let (din, dout) = (widths[l], widths[l + 1]);
            let (cur, next) = if cur_in_a {
                (&da[..rows * dout], &mut db[..])
            } else {
                (&db[..rows * dout], &mut da[..])
            };
            let input = if l == 0 {
                &x[..rows * din]
            } else {
                &acts[l - 1][..rows * din]
            };
            let cur_m = MatRef::from_row_major_slice(cur, rows, dout);
            gemm(
                MatMut::from_row_major_slice_mut(&mut grad[lay.weight[l].clone()], dout, din),
                cur_m.transpose(),
                MatRef::from_row_major_slice(input, rows, din),
            );
            if l > 0 {
                let next = &mut next[..rows * din];
                gemm(
                    MatMut::from_row_major_slice_mut(next, rows, din),
                    cur_m,
                    self.weight(l),
                );
                leaky_backward(next, input, self.slope, &mut grad[lay.bias[l - 1].clone()]);
                cur_in_a = !cur_in_a;
            }
        }
    }
}

/// The native MLP: parameters and the training workspace (the optimiser is outside).
#[derive(Debug, Clone)]
pub(crate) struct NativeMlp {
    layout: Layout,
    slope: f32,
    norm: Normalization,
    threads: usize,
    params: Vec<f32>,
    work: Work,
    /// Rows of the last `forward_train` not yet back-propagated.
    forwarded: Option<usize>,
    /// Whether `work.grads[0]` holds the gradient of the last `backward`.
    has_grad: bool,
}

impl NativeMlp {
    pub fn new(cfg: &EncoderConfig, layout: Layout, params: Vec<f32>) -> Self {
        NativeMlp {
            layout,
            slope: cfg.negative_slope as f32,
            norm: cfg.normalization,
            threads: cfg.threads,
            params,
            work: Work::default(),
            forwarded: None,
            has_grad: false,
        }
    }

    fn net(&self) -> Net<'_> {
        Net {
            layout: &self.layout,
            slope: self.slope,
            norm: self.norm,
            params: &self.params,
        }
    }

    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Replaces the parameters and drops any pending pass.
    pub fn set_params(&mut self, p: Vec<f32>) {
        assert_eq!(p.len(), self.layout.total);
        self.params = p;
        self.forwarded = None;
        self.has_grad = false;
    }

    pub fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        let rows = x.nrows();
        let n_out = self.layout.widths[self.layout.num_layers()];
        let net = Net {
            layout: &self.layout,
            slope: self.slope,
            norm: self.norm,
            params: &self.params,
        };
        self.work.prepare(&net, rows, self.threads, true);
        let out = &mut self.work.out[..rows * n_out];
        for_each_chunk(
            &mut self.work.chunks,
            &mut [],
            out,
            n_out,
            0,
            &|ch, _, o, r0| {
                let xr = x.slice_axis(ndarray::Axis(0), (r0..r0 + ch.rows).into());
                net.forward_chunk(ch, xr, o);
            },
        );
        self.forwarded = Some(rows);
        self.has_grad = false;
        ArrayView2::from_shape((rows, n_out), &self.work.out[..rows * n_out])
            .expect("output buffer has rows × output_dim values")
    }

    pub fn backward(&mut self, g: ArrayView2<'_, f32>) {
        let rows = self
            .forwarded
            .take()
            .expect("backward needs a forward_train first (once per forward_train)");
        let n_out = self.layout.widths[self.layout.num_layers()];
        assert_eq!(
            g.dim(),
            (rows, n_out),
            "grad_out must have the shape of the last forward_train output"
        );
        let net = Net {
            layout: &self.layout,
            slope: self.slope,
            norm: self.norm,
            params: &self.params,
        };
        let work = &mut self.work;
        for_each_chunk(
            &mut work.chunks,
            &mut work.grads,
            &mut [],
            0,
            0,
            &|ch, grad, _, r0| {
                let gr = g.slice_axis(ndarray::Axis(0), (r0..r0 + ch.rows).into());
                let grad = grad.expect("one gradient buffer per chunk");
                net.backward_chunk(ch, gr, &mut grad[..net.layout.total]);
            },
        );
        let t = work.chunks.len();
        let (first, rest) = work.grads.split_at_mut(1);
        reduce_into(&mut first[0][..self.layout.total], &rest[..t - 1]);
        self.has_grad = true;
    }

    /// The gradient of the last `backward`, flat layout.
    pub fn grad(&self) -> Option<&[f32]> {
        self.has_grad
            .then(|| &self.work.grads[0][..self.layout.total])
    }

    /// The parameters (writable) and the pending gradient, flat layout; the gradient is
    /// consumed. `None` when there is no pending gradient.
    pub fn take_params_and_grad(&mut self) -> Option<(&mut [f32], &[f32])> {
        if !self.has_grad {
            return None;
        }
        self.has_grad = false;
        Some((&mut self.params, &self.work.grads[0][..self.layout.total]))
    }

    /// Inference: the same routine as `forward_train` on a private workspace, in blocks of at
    /// most [`ENCODE_BLOCK`] rows.
    pub fn encode(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let n_out = self.layout.widths[self.layout.num_layers()];
        let net = self.net();
        let mut work = Work::default();
        let mut start = 0;
        while start < x.nrows() {
            let end = (start + ENCODE_BLOCK).min(x.nrows());
            let rows = end - start;
            work.prepare(&net, rows, self.threads, false);
            let xb = x.slice_axis(ndarray::Axis(0), (start..end).into());
            for_each_chunk(
                &mut work.chunks,
                &mut [],
                &mut out[start * n_out..end * n_out],
                n_out,
                0,
                &|ch, _, o, r0| {
                    net.forward_chunk(
                        ch,
                        xb.slice_axis(ndarray::Axis(0), (r0..r0 + ch.rows).into()),
                        o,
                    );
                },
            );
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sigmoid;

    /// The plain expression the shortcut must reproduce bit for bit.
    fn logistic(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    fn same(x: f32) -> bool {
        let (a, b) = (sigmoid(x), logistic(x));
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every f32 in [lo, hi] (both finite, same sign), stepping through the bit patterns.
    fn every_float(lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        let (a, b) = if lo >= 0.0 {
            (lo.to_bits(), hi.to_bits())
        } else {
            (hi.to_bits(), lo.to_bits())
        };
        (a..=b).map(f32::from_bits)
    }

    #[test]
    fn sigmoid_is_the_plain_expression_bit_for_bit() {
        // Around both cut-offs, every float; these include the inputs where e^−x overflows
        // or is subnormal and where 1 + e^−x first rounds to 1.
        for x in every_float(10.0, 120.0).chain(every_float(-120.0, -80.0)) {
            assert!(same(x), "sigmoid({x:e}) differs from 1/(1+exp(-x))");
        }
        // Everything in between on a fine grid, and the special values.
        for i in -2_000_000..=2_000_000 {
            let x = i as f32 * 1e-4;
            assert!(same(x), "sigmoid({x:e}) differs from 1/(1+exp(-x))");
        }
        for x in [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
        ] {
            assert!(same(x), "sigmoid({x:e}) differs from 1/(1+exp(-x))");
        }
        assert_eq!(sigmoid(25.0), 1.0);
        assert_eq!(sigmoid(-95.0), 0.0);
    }
}
