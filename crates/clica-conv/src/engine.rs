//! Forward and backward passes of one block of images: im2col + GEMM convolutions on NHWC
//! activations, ReLU, a linear head and the output layer.

use crate::config::{LayerShape, Shapes};
use clica_encoders::Normalization;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::ArrayView2;
use std::ops::Range;

/// Floats of one im2col block (256 KB): images are convolved a few at a time so that the
/// column matrix stays in L2 between being written and being read by the GEMM. (The
/// earlier 4,096 rows were 8–16 MB in the 64 × 64 net's middle layers; this budget made its
/// training step 25–30 % faster, as did doing the backward's per-layer work block by block.)
const COLS_FLOATS: usize = 1 << 16;
/// Fewest rows (output positions) of one block's GEMM, where the budget above would leave
/// small maps with many channels (ResNet-18's last stage: 2 × 2 maps, k = 4,608) a GEMM of
/// a dozen rows.
const MIN_GEMM_ROWS: usize = 128;
/// Norm floor of the sphere output layers (PyTorch's `F.normalize` default).
pub(crate) const NORM_EPS: f32 = 1e-12;

/// Where each parameter lives in the flat vector.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub conv_w: Vec<Range<usize>>,
    pub conv_b: Vec<Range<usize>>,
    pub head_w: Range<usize>,
    pub head_b: Range<usize>,
    /// `norm.bound` or `norm.radius`, if the output layer has one.
    pub norm: Option<Range<usize>>,
    pub total: usize,
}

/// The read-only state a pass needs.
pub(crate) struct Net<'a> {
    pub shapes: &'a Shapes,
    pub layout: &'a Layout,
    pub params: &'a [f32],
    /// Each convolution's weight in GEMM layout: `k() × out`, rows ordered (ky, kx, c).
    pub packed: &'a [Vec<f32>],
    pub normalization: Normalization,
    pub input_norm: Option<&'a (Vec<f32>, Vec<f32>)>,
    pub input: [usize; 3],
    pub output_dim: usize,
}

/// Buffers of one block of images.
#[derive(Debug, Default, Clone)]
pub(crate) struct Block {
    pub rows: usize,
    pub first_row: usize,
    /// `acts[0]`: the normalised input (HWC); `acts[l + 1]`: ReLU(conv l) (HWC).
    acts: Vec<Vec<f32>>,
    /// The head's output before the output layer, `rows × n`.
    h: Vec<f32>,
    /// The encoder's output, `rows × n`.
    pub out: Vec<f32>,
    /// 1 / max(‖h‖, eps) per row.
    inv_norm: Vec<f32>,
    cols: Vec<f32>,
    dcols: Vec<f32>,
    delta: [Vec<f32>; 2],
    dh: Vec<f32>,
    /// This block's gradient: the flat layout, except that convolution weights are kept in
    /// GEMM layout (`dpacked`) until the blocks are summed.
    pub grad: Vec<f32>,
    pub dpacked: Vec<Vec<f32>>,
}

pub(crate) fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

pub(crate) fn gemm(dst: MatMut<'_, f32>, accum: Accum, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    matmul(dst, accum, lhs, rhs, 1.0f32, Par::Seq);
    // faer's kernels leave the AVX upper state dirty (see `clica_core::simd`).
    clica_core::simd::clear_upper_state();
}

/// Row-major `rows × cols` view of a slice.
pub(crate) fn mat(s: &[f32], rows: usize, cols: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(&s[..rows * cols], rows, cols)
}

pub(crate) fn mat_mut(s: &mut [f32], rows: usize, cols: usize) -> MatMut<'_, f32> {
    MatMut::from_row_major_slice_mut(&mut s[..rows * cols], rows, cols)
}

/// Images per im2col block of layer `l`.
pub(crate) fn images_per_block(l: &LayerShape) -> usize {
    (COLS_FLOATS / (l.positions() * l.k()))
        .max(MIN_GEMM_ROWS.div_ceil(l.positions()))
        .max(1)
}

/// The kernel taps `kx` of output column `ox` that fall inside the image: `(first kx,
/// count, first input column)`.
#[inline]
fn taps(l: &LayerShape, ox: usize) -> (usize, usize, usize) {
    let (k, s, p) = (l.spec.kernel, l.spec.stride, l.spec.padding);
    let start = (ox * s) as isize - p as isize;
    let kx0 = (-start).max(0) as usize;
    let kx1 = (l.in_w as isize - start).clamp(0, k as isize) as usize;
    if kx1 <= kx0 {
        return (0, 0, 0);
    }
    (kx0, kx1 - kx0, (start + kx0 as isize) as usize)
}

/// im2col of `n` images of `input` (HWC each) into `cols` (`n·positions × k`, columns
/// ordered (ky, kx, c)); zero padding outside the image. The taps of one kernel row that
/// fall inside the image are one contiguous run of the input (HWC), copied at once.
pub(crate) fn im2col(l: &LayerShape, input: &[f32], n: usize, cols: &mut [f32]) {
    let (c, k, s, p) = (l.in_c, l.spec.kernel, l.spec.stride, l.spec.padding);
    let kk = l.k();
    let mut row = 0;
    for img in 0..n {
        let src = &input[img * l.in_len()..(img + 1) * l.in_len()];
        for oy in 0..l.out_h {
            for ox in 0..l.out_w {
                let (kx0, count, ix0) = taps(l, ox);
                let dst = &mut cols[row * kk..(row + 1) * kk];
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    let seg = &mut dst[ky * k * c..(ky + 1) * k * c];
                    if iy < 0 || iy >= l.in_h as isize || count == 0 {
                        seg.fill(0.0);
                        continue;
                    }
                    seg[..kx0 * c].fill(0.0);
                    seg[(kx0 + count) * c..].fill(0.0);
                    let at = (iy as usize * l.in_w + ix0) * c;
                    seg[kx0 * c..(kx0 + count) * c].copy_from_slice(&src[at..at + count * c]);
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `cols` back into `n` images of `out` (HWC each).
pub(crate) fn col2im_add(l: &LayerShape, cols: &[f32], n: usize, out: &mut [f32]) {
    let (c, k, s, p) = (l.in_c, l.spec.kernel, l.spec.stride, l.spec.padding);
    let kk = l.k();
    let mut row = 0;
    for img in 0..n {
        let dst = &mut out[img * l.in_len()..(img + 1) * l.in_len()];
        for oy in 0..l.out_h {
            for ox in 0..l.out_w {
                let (kx0, count, ix0) = taps(l, ox);
                let src = &cols[row * kk..(row + 1) * kk];
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= l.in_h as isize || count == 0 {
                        continue;
                    }
                    let at = (iy as usize * l.in_w + ix0) * c;
                    let from = &src[(ky * k + kx0) * c..(ky * k + kx0 + count) * c];
                    for (d, &v) in dst[at..at + count * c].iter_mut().zip(from) {
                        *d += v;
                    }
                }
                row += 1;
            }
        }
    }
}

impl Block {
    /// Sizes the buffers for `rows` images (growing only).
    pub fn prepare(&mut self, net: &Net<'_>, rows: usize, first_row: usize, backward: bool) {
        self.rows = rows;
        self.first_row = first_row;
        let layers = &net.shapes.layers;
        self.acts.resize_with(layers.len() + 1, Vec::new);
        grow(&mut self.acts[0], rows * layers[0].in_len());
        let mut max_cols = 0;
        let mut max_act = layers[0].in_len();
        for (l, shape) in layers.iter().enumerate() {
            grow(&mut self.acts[l + 1], rows * shape.out_len());
            let n = images_per_block(shape).min(rows.max(1));
            max_cols = max_cols.max(n * shape.positions() * shape.k());
            max_act = max_act.max(shape.out_len());
        }
        let n = net.output_dim;
        grow(&mut self.h, rows * n);
        grow(&mut self.out, rows * n);
        grow(&mut self.inv_norm, rows);
        grow(&mut self.cols, max_cols);
        if backward {
            grow(&mut self.dcols, max_cols);
            for d in &mut self.delta {
                grow(d, rows * max_act);
            }
            grow(&mut self.dh, rows * n);
            grow(&mut self.grad, net.layout.total);
            self.dpacked.resize_with(layers.len(), Vec::new);
            for (d, shape) in self.dpacked.iter_mut().zip(layers) {
                grow(d, shape.k() * shape.spec.out);
            }
        }
    }

    /// Forward pass of this block's rows of `x` (channel-first observations).
    pub fn forward(&mut self, net: &Net<'_>, x: ArrayView2<'_, f32>) {
        let rows = self.rows;
        let [c, hh, ww] = net.input;
        let plane = hh * ww;
        let first = self.first_row;
        // Input: CHW rows → HWC, normalised.
        let a0 = &mut self.acts[0];
        for r in 0..rows {
            let src = x.row(first + r);
            let src = src.as_slice().expect("observation rows are contiguous");
            let dst = &mut a0[r * c * plane..(r + 1) * c * plane];
            crate::named::to_hwc(src, dst, c, plane, net.input_norm);
        }
        // Convolutions.
        for (l, shape) in net.shapes.layers.iter().enumerate() {
            let (before, after) = self.acts.split_at_mut(l + 1);
            let (input, output) = (&before[l], &mut after[0]);
            let per = images_per_block(shape);
            let (o, kk, pos) = (shape.spec.out, shape.k(), shape.positions());
            let bias = &net.params[net.layout.conv_b[l].clone()];
            let mut img = 0;
            while img < rows {
                let n = per.min(rows - img);
                im2col(shape, &input[img * shape.in_len()..], n, &mut self.cols);
                let dst = &mut output[img * shape.out_len()..(img + n) * shape.out_len()];
                gemm(
                    mat_mut(dst, n * pos, o),
                    Accum::Replace,
                    mat(&self.cols, n * pos, kk),
                    mat(&net.packed[l], kk, o),
                );
                for row in dst.chunks_exact_mut(o) {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v = (*v + b).max(0.0);
                    }
                }
                img += n;
            }
        }
        // Linear head.
        let f = net.shapes.features;
        let n = net.output_dim;
        let feats = &self.acts[net.shapes.layers.len()];
        gemm(
            mat_mut(&mut self.h, rows, n),
            Accum::Replace,
            mat(feats, rows, f),
            mat(&net.params[net.layout.head_w.clone()], n, f).transpose(),
        );
        let hb = &net.params[net.layout.head_b.clone()];
        for row in self.h[..rows * n].chunks_exact_mut(n) {
            for (v, &b) in row.iter_mut().zip(hb) {
                *v += b;
            }
        }
        // Output layer.
        let norm_p = net.layout.norm.clone().map(|r| &net.params[r]);
        for r in 0..rows {
            self.inv_norm[r] = crate::output::forward_row(
                net.normalization,
                norm_p,
                &self.h[r * n..(r + 1) * n],
                &mut self.out[r * n..(r + 1) * n],
            );
        }
    }

    /// Backward pass of the last forward: `g` is d loss / d output for this block's rows.
    /// Fills `grad` (head, biases, norm) and `dpacked` (convolution weights, GEMM layout).
    pub fn backward(&mut self, net: &Net<'_>, g: ArrayView2<'_, f32>) {
        let rows = self.rows;
        let n = net.output_dim;
        let lay = net.layout;
        self.grad[..lay.total].fill(0.0);
        // Output layer → dh.
        let norm_p = lay.norm.clone().map(|r| &net.params[r]);
        let mut dnorm = vec![0.0f32; lay.norm.as_ref().map_or(0, |r| r.len())];
        for r in 0..rows {
            let gr = g.row(self.first_row + r);
            crate::output::backward_row(
                net.normalization,
                norm_p,
                &self.h[r * n..(r + 1) * n],
                self.inv_norm[r],
                gr.iter(),
                &mut self.dh[r * n..(r + 1) * n],
                &mut dnorm,
            );
        }
        if let Some(r) = lay.norm.clone() {
            self.grad[r].copy_from_slice(&dnorm);
        }
        // Head.
        let f = net.shapes.features;
        let layers = net.shapes.layers.len();
        let feats = &self.acts[layers];
        gemm(
            mat_mut(&mut self.grad[lay.head_w.clone()], n, f),
            Accum::Replace,
            mat(&self.dh, rows, n).transpose(),
            mat(feats, rows, f),
        );
        {
            let hb = &mut self.grad[lay.head_b.clone()];
            for row in self.dh[..rows * n].chunks_exact(n) {
                for (acc, &v) in hb.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        let [d_cur, d_next] = &mut self.delta;
        gemm(
            mat_mut(d_cur, rows, f),
            Accum::Replace,
            mat(&self.dh, rows, n),
            mat(&net.params[lay.head_w.clone()], n, f),
        );
        relu_mask(&mut d_cur[..rows * f], &feats[..rows * f]);
        // Convolutions, last first. `d_cur` holds d loss / d (pre-ReLU output) of layer l.
        let (mut cur, mut next) = (d_cur, d_next);
        for l in (0..layers).rev() {
            let shape = &net.shapes.layers[l];
            let (o, kk, pos) = (shape.spec.out, shape.k(), shape.positions());
            // Everything per image block, while the block's rows are in cache: the bias
            // gradient (rows in order, as one pass would sum them), the weight gradient, and
            // the input gradient with the ReLU's mask of the layer below.
            let input = &self.acts[l];
            let gb = &mut self.grad[lay.conv_b[l].clone()];
            let per = images_per_block(shape);
            let mut img = 0;
            let mut first = true;
            while img < rows {
                let nimg = per.min(rows - img);
                let dout = &cur[img * shape.out_len()..(img + nimg) * shape.out_len()];
                for row in dout.chunks_exact(o) {
                    for (acc, &v) in gb.iter_mut().zip(row) {
                        *acc += v;
                    }
                }
                im2col(shape, &input[img * shape.in_len()..], nimg, &mut self.cols);
                gemm(
                    mat_mut(&mut self.dpacked[l], kk, o),
                    if first { Accum::Replace } else { Accum::Add },
                    mat(&self.cols, nimg * pos, kk).transpose(),
                    mat(dout, nimg * pos, o),
                );
                first = false;
                if l > 0 {
                    gemm(
                        mat_mut(&mut self.dcols, nimg * pos, kk),
                        Accum::Replace,
                        mat(dout, nimg * pos, o),
                        mat(&net.packed[l], kk, o).transpose(),
                    );
                    let span = img * shape.in_len()..(img + nimg) * shape.in_len();
                    let dnext = &mut next[span.clone()];
                    dnext.fill(0.0);
                    col2im_add(shape, &self.dcols, nimg, dnext);
                    relu_mask(dnext, &input[span]);
                }
                img += nimg;
            }
            if l > 0 {
                std::mem::swap(&mut cur, &mut next);
            }
        }
    }
}

/// `d ← d ⊙ [a > 0]` (the ReLU's derivative from its output).
pub(crate) fn relu_mask(d: &mut [f32], a: &[f32]) {
    // A select, not a branch: the branch mispredicted on half the elements (perf: 8 % of
    // a training step).
    assert_eq!(d.len(), a.len(), "relu_mask lengths");
    for (dv, &av) in d.iter_mut().zip(a) {
        *dv = if av <= 0.0 { 0.0 } else { *dv };
    }
}

/// Packs a PyTorch-layout convolution weight `[out, c, k, k]` into GEMM layout
/// (`k·k·c × out`, rows ordered (ky, kx, c)).
pub(crate) fn pack(l: &LayerShape, w: &[f32], packed: &mut Vec<f32>) {
    let (o, c, k) = (l.spec.out, l.in_c, l.spec.kernel);
    let kk = l.k();
    packed.resize(kk * o, 0.0);
    // In tiles of 16 output channels: 16 sequential read streams and full-line writes (a
    // plain loop wrote one value per cache line; 9 % of a ResNet-18 step).
    for o0 in (0..o).step_by(16) {
        let o1 = (o0 + 16).min(o);
        for cc in 0..c {
            for t in 0..k * k {
                let dst = &mut packed[(t * c + cc) * o + o0..(t * c + cc) * o + o1];
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = w[((o0 + j) * c + cc) * k * k + t];
                }
            }
        }
    }
}

/// The inverse of [`pack`], adding into `w`.
pub(crate) fn unpack_add(l: &LayerShape, packed: &[f32], w: &mut [f32]) {
    let (o, c, k) = (l.spec.out, l.in_c, l.spec.kernel);
    for o0 in (0..o).step_by(16) {
        let o1 = (o0 + 16).min(o);
        for cc in 0..c {
            for t in 0..k * k {
                let src = &packed[(t * c + cc) * o + o0..(t * c + cc) * o + o1];
                for (j, &v) in src.iter().enumerate() {
                    w[((o0 + j) * c + cc) * k * k + t] += v;
                }
            }
        }
    }
}
