//! The fused pairwise engine shared by every contrastive loss.
//!
//! A batch h (B×d) is packed twice: row-major (`rows`) and transposed with the batch axis
//! padded to a multiple of [`LANES`] (`cols`, d rows of bp columns, spaced one cache line
//! further apart). The logits of row i against every
//! anchor j, `s_ij = κ·Σ_l term(h_il, h_jl)`, are computed into a length-bp buffer with the
//! j axis innermost and contiguous, in fixed-width lane accumulators that the compiler
//! vectorises (no B×B×d tensor). Padded columns get logit −∞, so every later
//! loop runs over whole lanes and the padding contributes exact zeros.
//!
//! InfoNCE runs on the cached engine ([`cached`]: one logit and one exponential per
//! unordered pair, kept between its passes) and falls back to the two-pass engine below when
//! the cached one declines. The two-pass engine: pass 1 computes each row's logsumexp (max,
//! then a sum of exponentials); pass 2 recomputes the row's logits, turns them into the
//! symmetric coefficients ∂loss/∂s_kj + ∂loss/∂s_jk (two exponentials per pair) and
//! accumulates `Σ_j c_kj·∂s_kj/∂h_k` — every gradient row is owned by one task, nothing is
//! scattered. The uniformity of [`crate::AlignUniform`] uses the two-pass scheme.
//!
//! Rows are processed in fixed blocks of [`BLOCK_ROWS`] by rayon; each row's outputs depend
//! only on that row's own arithmetic, and batch sums are taken sequentially afterwards, so
//! results are bit-identical for every thread count. On x86-64 the block functions run an
//! AVX-512F or AVX2 build of the same code when the CPU has it (see `multiversion!`), also
//! bit-identical; with AVX-512's 32 registers some loops keep twice the accumulators
//! ([`wide_registers`]), each seeing the same operations in the same order. Memory of the
//! two-pass engine is O(B·d) plus a length-bp buffer per block in flight; the cached engine
//! adds its B²/2 triangle.

use crate::Real;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use std::marker::PhantomData;

/// Width of the lane accumulators (and of the padding of the batch axis).
pub(crate) const LANES: usize = 32;
const _: () = assert!(LANES == 32, "sum_lanes is written for 32 lanes");
/// Rows per rayon task.
pub(crate) const BLOCK_ROWS: usize = 16;

/// A symmetric pairwise term, summed over coordinates to give a logit.
pub(crate) trait Term<F: Real>: Send + Sync {
    /// The per-coordinate term t(x, y) = t(y, x).
    fn term(x: F, y: F) -> F;
    /// ∂t(x, y)/∂x.
    fn dterm(x: F, y: F) -> F;
    /// An upper bound on the logit κ·Σ_l t(x_l, y_l) of any two rows whose squared norms are
    /// at most `max_sq_norm`; +∞ when none is known.
    fn logit_bound(kappa: F, max_sq_norm: F) -> F {
        let _ = max_sq_norm;
        // The distance terms are ≥ 0, so a non-positive κ bounds their logits by 0.
        if kappa <= F::zero() {
            F::zero()
        } else {
            F::infinity()
        }
    }
}

/// t(x, y) = x·y (similarity of the sphere loss).
pub(crate) struct Dot<F>(PhantomData<F>);
/// t(x, y) = |x − y|.
pub(crate) struct L1<F>(PhantomData<F>);
/// t(x, y) = (x − y)².
pub(crate) struct L2<F>(PhantomData<F>);
/// t(x, y) = |x − y|³.
pub(crate) struct L3<F>(PhantomData<F>);

impl<F: Real> Term<F> for Dot<F> {
    #[inline(always)]
    fn term(x: F, y: F) -> F {
        x * y
    }
    #[inline(always)]
    fn dterm(_x: F, y: F) -> F {
        y
    }
    fn logit_bound(kappa: F, max_sq_norm: F) -> F {
        // Cauchy–Schwarz: |κ·x·y| ≤ |κ|·‖x‖·‖y‖.
        kappa.abs() * max_sq_norm
    }
}

impl<F: Real> Term<F> for L1<F> {
    #[inline(always)]
    fn term(x: F, y: F) -> F {
        (x - y).abs()
    }
    #[inline(always)]
    fn dterm(x: F, y: F) -> F {
        // sign(x − y), with the subgradient 0 at a tie (as PyTorch's `abs`).
        let z = x - y;
        let pos = if z > F::zero() { F::one() } else { F::zero() };
        let neg = if z < F::zero() { F::one() } else { F::zero() };
        pos - neg
    }
}

impl<F: Real> Term<F> for L2<F> {
    #[inline(always)]
    fn term(x: F, y: F) -> F {
        let z = x - y;
        z * z
    }
    #[inline(always)]
    fn dterm(x: F, y: F) -> F {
        let z = x - y;
        z + z
    }
}

impl<F: Real> Term<F> for L3<F> {
    #[inline(always)]
    fn term(x: F, y: F) -> F {
        let z = x - y;
        z * z * z.abs()
    }
    #[inline(always)]
    fn dterm(x: F, y: F) -> F {
        let z = x - y;
        F::from_f64(3.0) * z * z.abs()
    }
}

/// A batch packed for the kernels.
pub(crate) struct Packed<F> {
    /// Batch size B.
    pub b: usize,
    /// Dimension d.
    pub d: usize,
    /// B rounded up to a multiple of [`LANES`].
    pub bp: usize,
    /// h, row-major B×d.
    pub rows: Vec<F>,
    /// Distance between the coordinates' rows of `cols`: bp plus one cache line, so that the
    /// same columns of different coordinates fall into different L1 sets. (At cs = bp, a
    /// multiple of 4 KiB for B = 2048 or 6144, the d rows of a column group all map to the
    /// same sets, more lines than the cache's ways, and the logit loops missed L1.)
    pub cs: usize,
    /// hᵀ, row-major d×cs, zero padded (columns b..cs of each row are zero).
    pub cols: Vec<F>,
}

impl<F: Real> Packed<F> {
    pub(crate) fn new(h: ArrayView2<'_, F>) -> Self {
        let (b, d) = h.dim();
        let bp = b.div_ceil(LANES) * LANES;
        let cs = bp + 64 / std::mem::size_of::<F>();
        let rows = to_rows(h);
        let mut cols = vec![F::zero(); d * cs];
        for (i, row) in rows.chunks_exact(d.max(1)).enumerate() {
            for (l, &v) in row.iter().enumerate() {
                cols[l * cs + i] = v;
            }
        }
        Packed {
            b,
            d,
            bp,
            cs,
            rows,
            cols,
        }
    }

    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &[F] {
        &self.rows[i * self.d..(i + 1) * self.d]
    }
}

/// Row-major contiguous copy of a view.
pub(crate) fn to_rows<F: Real>(a: ArrayView2<'_, F>) -> Vec<F> {
    match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().copied().collect(),
    }
}

/// Writes a row-major B×d buffer into a view of that shape.
pub(crate) fn write_rows<F: Real>(src: &[F], mut dst: ArrayViewMut2<'_, F>) {
    let (b, d) = dst.dim();
    if let Some(out) = dst.as_slice_mut() {
        out.copy_from_slice(src);
        return;
    }
    let src = ArrayView2::from_shape((b, d), src).expect("buffer matches the view's shape");
    dst.assign(&src);
}

/// `out[j] = κ·Σ_l term(hi[l], h_jl)` for j < B, −∞ for the padding.
#[inline(always)]
fn logits_row<F: Real, K: Term<F>>(kappa: F, hi: &[F], p: &Packed<F>, out: &mut [F]) {
    debug_assert_eq!(out.len(), p.bp);
    logits_from::<F, K>(kappa, hi, p, 0, out);
    for o in &mut out[p.b..] {
        *o = F::neg_infinity();
    }
}

/// Columns of one [`group_sums`] call with four chunks of [`LANES`].
pub(crate) const GROUP: usize = 4 * LANES;

/// Σ_l term(h_il, h_jl) for the N·LANES columns j from `base` on (N = 4: a [`GROUP`]), as N
/// LANES-wide accumulators: N independent add chains instead of one (whose latency bounded
/// the loop). Every sum runs over l in order, as a single chunk's would, whatever N is.
#[inline(always)]
pub(crate) fn group_sums<F: Real, K: Term<F>, const N: usize>(
    hi: &[F],
    p: &Packed<F>,
    base: usize,
) -> [[F; LANES]; N] {
    let cs = p.cs;
    let mut acc = [[F::zero(); LANES]; N];
    for (l, &x) in hi.iter().enumerate() {
        let start = l * cs + base;
        let col = &p.cols[start..start + N * LANES];
        for (a, ch) in acc.iter_mut().zip(col.chunks_exact(LANES)) {
            let ch: &[F; LANES] = ch.try_into().expect("LANES-wide chunk");
            for t in 0..LANES {
                a[t] = a[t] + K::term(x, ch[t]);
            }
        }
    }
    acc
}

/// `out[j − first] = κ·Σ_l term(hi[l], h_jl)` for the columns j = `first`..bp (`first` a
/// multiple of [`LANES`]); the padding columns get the logit against a zero row.
#[inline(always)]
pub(crate) fn logits_from<F: Real, K: Term<F>>(
    kappa: F,
    hi: &[F],
    p: &Packed<F>,
    first: usize,
    out: &mut [F],
) {
    let bp = p.bp;
    debug_assert_eq!(out.len(), bp - first);
    let grouped = out.len() / GROUP * GROUP;
    let (head, tail) = out.split_at_mut(grouped);
    for (jg, o) in head.chunks_exact_mut(GROUP).enumerate() {
        let base = first + jg * GROUP;
        for (o, a) in o
            .chunks_exact_mut(LANES)
            .zip(group_sums::<F, K, 4>(hi, p, base))
        {
            for (o, &a) in o.iter_mut().zip(&a) {
                *o = kappa * a;
            }
        }
    }
    for (jc, o) in tail.chunks_exact_mut(LANES).enumerate() {
        let base = first + grouped + jc * LANES;
        let mut acc = [F::zero(); LANES];
        for (l, &x) in hi.iter().enumerate() {
            let start = l * p.cs + base;
            let col: &[F; LANES] = p.cols[start..start + LANES]
                .try_into()
                .expect("LANES-wide slice");
            for (a, &y) in acc.iter_mut().zip(col) {
                *a = *a + K::term(x, y);
            }
        }
        for (o, &a) in o.iter_mut().zip(&acc) {
            *o = kappa * a;
        }
    }
}

/// Max over a buffer whose length is a multiple of [`LANES`] (NaNs are skipped here; they
/// reach the result through the sum of exponentials).
#[inline(always)]
fn max_lanes<F: Real>(s: &[F]) -> F {
    let mut acc = [F::neg_infinity(); LANES];
    for ch in s.chunks_exact(LANES) {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter()
        .fold(F::neg_infinity(), |m, &v| if v > m { v } else { m })
}

/// Σ_j exp(s_j − m) over a buffer whose length is a multiple of [`LANES`].
#[inline(always)]
fn sum_exp_lanes<F: Real>(s: &[F], m: F) -> F {
    let mut acc = [F::zero(); LANES];
    for ch in s.chunks_exact(LANES) {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a = *a + F::fast_exp(v - m);
        }
    }
    sum_lanes(&acc)
}

/// Asks the CPU to bring the cache line holding `s[at]` into L2 ahead of its use (nothing
/// when `at` is out of range or on other architectures; L2, not L1, so that the lines do not
/// evict what the inner loops are reading). It changes no result: the kernels use it where
/// they read the triangle buffer with a stride the hardware prefetchers do not follow (rows
/// of 32 floats a page or more apart).
#[inline(always)]
pub(crate) fn prefetch<F>(s: &[F], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = s.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        // SAFETY: a prefetch is a hint that never faults, here for the address of a live
        // element; SSE, which it needs, is part of every x86_64 target.
        unsafe { _mm_prefetch::<_MM_HINT_T1>((x as *const F).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, at);
}

#[inline(always)]
fn sum_lanes<F: Real>(acc: &[F; LANES]) -> F {
    // Pairwise tree in a fixed order. (Written with a literal list of widths: a `while` loop
    // here leads LLVM to split the callers' accumulator loops into 128-bit pieces.)
    let mut v = *acc;
    for w in [16, 8, 4, 2, 1] {
        for t in 0..w {
            v[t] = v[t] + v[t + w];
        }
    }
    v[0]
}

/// `g[l] = κ·Σ_j c_j·dterm(hk[l], h_jl)` over the padded batch (c is 0 on the padding).
/// `lanes` is scratch of d·LANES: the lane accumulators are stored there and reduced in a
/// separate loop, which keeps LLVM's SLP vectoriser from splitting the main loop into
/// 128-bit pieces (it does for the dot-product term otherwise).
#[inline(always)]
fn grad_row<F: Real, K: Term<F>>(
    kappa: F,
    hk: &[F],
    p: &Packed<F>,
    c: &[F],
    lanes: &mut [F],
    g: &mut [F],
) {
    let (bp, cs) = (p.bp, p.cs);
    for (l, (&x, buf)) in hk.iter().zip(lanes.chunks_exact_mut(LANES)).enumerate() {
        let col = &p.cols[l * cs..l * cs + bp];
        let mut acc = [F::zero(); LANES];
        for (cc, hh) in c.chunks_exact(LANES).zip(col.chunks_exact(LANES)) {
            for ((a, &cj), &y) in acc.iter_mut().zip(cc).zip(hh) {
                *a = *a + cj * K::dterm(x, y);
            }
        }
        buf.copy_from_slice(&acc);
    }
    for (gl, buf) in g.iter_mut().zip(lanes.chunks_exact(LANES)) {
        *gl = kappa * sum_lanes(buf.try_into().expect("LANES-wide"));
    }
}

/// The instruction sets the kernels are compiled for, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Isa {
    /// Plain Rust, whatever the target's baseline is.
    Portable = 0,
    /// x86-64 with AVX2.
    Avx2 = 1,
    /// x86-64 with AVX-512F (512-bit lanes).
    Avx512 = 2,
}

/// The best instruction set this CPU supports (capped in tests by `tests::ISA_CAP`).
#[cfg(target_arch = "x86_64")]
#[inline]
fn isa() -> Isa {
    let best = if std::arch::is_x86_feature_detected!("avx512f") {
        Isa::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Isa::Avx2
    } else {
        Isa::Portable
    };
    #[cfg(test)]
    let best = best.min(tests::cap());
    best
}

/// Whether the kernels run on 32 vector registers of 16 f32 lanes (AVX-512), enough for
/// loops that keep twice the accumulators of the AVX2 and portable builds. Such loops must
/// perform each accumulator's operations in the same order as the narrow ones (tested: the
/// ISA cap of the tests selects the narrow loops).
pub(crate) fn wide_registers() -> bool {
    #[cfg(test)]
    if tests::force_wide() {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    return isa() == Isa::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Generates a dispatcher `$name` that runs the `#[inline(always)]` body `$body` compiled
/// with AVX-512F or AVX2 when the CPU has them (x86-64) and as portable code otherwise.
/// Neither build enables FMA, and Rust never contracts a multiply and an add, so every
/// version performs the same IEEE operations in the same order: results are bit-identical
/// whichever runs (tested).
macro_rules! multiversion {
    ($name:ident, $avx2:ident, $avx512:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        fn $name<F: Real, K: Term<F>>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            match $crate::kernel::isa() {
                // SAFETY: the CPU supports AVX-512F, the only feature `$avx512` enables.
                $crate::kernel::Isa::Avx512 => return unsafe { $avx512::<F, K>($($arg),*) },
                // SAFETY: the CPU supports AVX2, the only feature `$avx2` enables.
                $crate::kernel::Isa::Avx2 => return unsafe { $avx2::<F, K>($($arg),*) },
                $crate::kernel::Isa::Portable => {}
            }
            #[cfg(test)]
            $crate::kernel::tests::ran($crate::kernel::Isa::Portable);
            $body::<F, K>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2<F: Real, K: Term<F>>($($arg: $ty),*) {
            #[cfg(test)]
            $crate::kernel::tests::ran($crate::kernel::Isa::Avx2);
            $body::<F, K>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512<F: Real, K: Term<F>>($($arg: $ty),*) {
            #[cfg(test)]
            $crate::kernel::tests::ran($crate::kernel::Isa::Avx512);
            $body::<F, K>($($arg),*)
        }
    };
}

pub(crate) mod cached;

/// The InfoNCE family: per row, logits s_ij = κ·Σ_l term(h_il, h_jl) against every anchor
/// (optionally without j = i) and a positive logit q_i = κ·Σ_l term(h_il, h̃_il);
/// loss_i = −q_i + L_i − offset with L_i the logsumexp of the negatives' logits and, when
/// `include_pos`, of q_i.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InfoNceSpec<F> {
    pub kappa: F,
    pub exclude_self: bool,
    pub include_pos: bool,
    pub offset: F,
}

/// Everything a row block of the InfoNCE passes reads.
struct InfoNceCtx<'a, F> {
    spec: InfoNceSpec<F>,
    p: &'a Packed<F>,
    /// h̃, row-major B×d.
    ht: &'a [F],
    /// Positive logits q_i.
    q: &'a [F],
    /// Row logsumexps L_i, zero padded to bp (pass 2 only).
    lse: &'a [F],
}

/// Pass 1 on rows `first..first + out.len()`: their logsumexps L_i.
#[inline(always)]
fn infonce_pass1_body<F: Real, K: Term<F>>(cx: &InfoNceCtx<'_, F>, first: usize, out: &mut [F]) {
    let (p, spec) = (cx.p, cx.spec);
    let mut s = vec![F::zero(); p.bp];
    for (r, li) in out.iter_mut().enumerate() {
        let i = first + r;
        logits_row::<F, K>(spec.kappa, p.row(i), p, &mut s);
        if spec.exclude_self {
            s[i] = F::neg_infinity();
        }
        let q = cx.q[i];
        let mut m = max_lanes(&s);
        if spec.include_pos && q > m {
            m = q;
        }
        let mut sum = sum_exp_lanes(&s, m);
        if spec.include_pos {
            sum = sum + F::fast_exp(q - m);
        }
        *li = m + sum.ln();
    }
}

/// Pass 2 on rows `first..`: the gradient rows with respect to h (`gh`) and h̃ (`gt`).
#[inline(always)]
fn infonce_pass2_body<F: Real, K: Term<F>>(
    cx: &InfoNceCtx<'_, F>,
    first: usize,
    gh: &mut [F],
    gt: &mut [F],
) {
    let (p, spec) = (cx.p, cx.spec);
    let (b, d) = (p.b, p.d);
    let kappa = spec.kappa;
    let inv_b = F::one() / F::from_f64(b as f64);
    let mut s = vec![F::zero(); p.bp];
    let mut lanes = vec![F::zero(); d * LANES];
    for (r, (g, gtil)) in gh
        .chunks_exact_mut(d)
        .zip(gt.chunks_exact_mut(d))
        .enumerate()
    {
        let k = first + r;
        let hk = p.row(k);
        let lk = cx.lse[k];
        logits_row::<F, K>(kappa, hk, p, &mut s);
        if spec.exclude_self {
            s[k] = F::neg_infinity();
        }
        // c_kj = ∂(B·loss)/∂s_kj + ∂(B·loss)/∂s_jk = softmax_k(j) + softmax_j(k) (s symmetric).
        for (sj, &lj) in s.iter_mut().zip(cx.lse) {
            *sj = F::fast_exp(*sj - lk) + F::fast_exp(*sj - lj);
        }
        grad_row::<F, K>(kappa, hk, p, &s, &mut lanes, g);
        let pi = if spec.include_pos {
            F::fast_exp(cx.q[k] - lk)
        } else {
            F::zero()
        };
        finish_row::<F, K>((kappa, inv_b, pi), hk, &cx.ht[k * d..(k + 1) * d], g, gtil);
    }
}

/// Finishes gradient row k of an InfoNCE. On entry `g` holds κ·Σ_j c_kj·∂s_kj/∂h_k; adds the
/// positive's share (`pi`: the softmax weight of q_k in the normaliser, 0 when it is not
/// there), scales by 1/B and writes the row of h̃'s gradient. `scale` is (κ, 1/B, pi).
#[inline(always)]
pub(crate) fn finish_row<F: Real, K: Term<F>>(
    scale: (F, F, F),
    hk: &[F],
    htk: &[F],
    g: &mut [F],
    gtil: &mut [F],
) {
    let (kappa, inv_b, pi) = scale;
    let a = (pi - F::one()) * kappa;
    for ((gl, gtl), (&x, &y)) in g.iter_mut().zip(gtil.iter_mut()).zip(hk.iter().zip(htk)) {
        *gl = (*gl + a * K::dterm(x, y)) * inv_b;
        *gtl = a * K::dterm(y, x) * inv_b;
    }
}

multiversion!(infonce_pass1, infonce_pass1_avx2, infonce_pass1_avx512, infonce_pass1_body,
    (cx: &InfoNceCtx<'_, F>, first: usize, out: &mut [F]));
multiversion!(infonce_pass2, infonce_pass2_avx2, infonce_pass2_avx512, infonce_pass2_body,
    (cx: &InfoNceCtx<'_, F>, first: usize, gh: &mut [F], gt: &mut [F]));

/// Positive logits q_i = κ·Σ_l term(h_il, h̃_il) (row-local, cheap).
fn positive_logits<F: Real, K: Term<F>>(kappa: F, p: &Packed<F>, ht: &[F]) -> Vec<F> {
    let d = p.d;
    (0..p.b)
        .map(|i| {
            let acc = p
                .row(i)
                .iter()
                .zip(&ht[i * d..(i + 1) * d])
                .fold(F::zero(), |a, (&x, &y)| a + K::term(x, y));
            kappa * acc
        })
        .collect()
}

/// The loss and, when asked for, the row-major gradient buffers for h and h̃.
pub(crate) type LossAndGrads<F> = (F, Option<(Vec<F>, Vec<F>)>);

// Which InfoNCE engine `infonce` ran last on this thread (tests only).
#[cfg(test)]
thread_local! {
    pub(crate) static LAST_ENGINE: std::cell::Cell<Option<Engine>> =
        const { std::cell::Cell::new(None) };
}

/// The two InfoNCE engines.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Cached,
    TwoPass,
}

/// Loss (mean over rows), and when `grads` is given, writes its gradients with respect to h
/// and h̃ into them. Shapes are checked by the caller.
///
/// Runs the cached engine ([`cached`]: one logit and one exponential per unordered pair,
/// kept between the passes) and falls back to the two-pass engine when the cached one
/// declines (a row whose normaliser would underflow under the common shift, or non-finite
/// input); both compute the same loss to rounding (tested).
pub(crate) fn infonce<F: Real, K: Term<F>>(
    spec: InfoNceSpec<F>,
    h: ArrayView2<'_, F>,
    h_tilde: ArrayView2<'_, F>,
    grads: Option<(ArrayViewMut2<'_, F>, ArrayViewMut2<'_, F>)>,
) -> F {
    let p = Packed::new(h);
    let ht = to_rows(h_tilde);
    let q = positive_logits::<F, K>(spec.kappa, &p, &ht);
    let want = grads.is_some();
    let (loss, bufs) = match cached::infonce_cached::<F, K>(spec, &p, &ht, &q, want) {
        Some(out) => {
            #[cfg(test)]
            LAST_ENGINE.with(|e| e.set(Some(Engine::Cached)));
            out
        }
        None => {
            #[cfg(test)]
            LAST_ENGINE.with(|e| e.set(Some(Engine::TwoPass)));
            infonce_two_pass::<F, K>(spec, &p, &ht, &q, want)
        }
    };
    if let (Some((grad_h, grad_h_tilde)), Some((gh, gt))) = (grads, bufs) {
        write_rows(&gh, grad_h);
        write_rows(&gt, grad_h_tilde);
    }
    loss
}

/// The two-pass engine: pass 1 computes each row's logsumexp with its own running max, pass 2
/// recomputes the logits and accumulates the gradients. Exact for any finite input; three
/// exponentials and two logits per ordered pair.
pub(crate) fn infonce_two_pass<F: Real, K: Term<F>>(
    spec: InfoNceSpec<F>,
    p: &Packed<F>,
    ht: &[F],
    q: &[F],
    want_grads: bool,
) -> LossAndGrads<F> {
    let (b, d, bp) = (p.b, p.d, p.bp);

    // Pass 1: the row logsumexps L_i (zero padded up to bp).
    let mut lse = vec![F::zero(); bp];
    {
        let cx = InfoNceCtx {
            spec,
            p,
            ht,
            q,
            lse: &[],
        };
        lse[..b]
            .par_chunks_mut(BLOCK_ROWS)
            .enumerate()
            .for_each(|(blk, out)| infonce_pass1::<F, K>(&cx, blk * BLOCK_ROWS, out));
    }

    let total: f64 = (0..b)
        .map(|i| (lse[i] - q[i] - spec.offset).to_f64_lossless())
        .sum();
    let loss = F::from_f64(total / b as f64);

    if !want_grads {
        return (loss, None);
    }

    // Pass 2: recompute the logits, weight them by both rows' softmaxes and accumulate.
    let mut gh = vec![F::zero(); b * d];
    let mut gt = vec![F::zero(); b * d];
    if d > 0 {
        let cx = InfoNceCtx {
            spec,
            p,
            ht,
            q,
            lse: &lse,
        };
        gh.par_chunks_mut(BLOCK_ROWS * d)
            .zip(gt.par_chunks_mut(BLOCK_ROWS * d))
            .enumerate()
            .for_each(|(blk, (gh_blk, gt_blk))| {
                infonce_pass2::<F, K>(&cx, blk * BLOCK_ROWS, gh_blk, gt_blk)
            });
    }
    (loss, Some((gh, gt)))
}

/// Pass 1 of the uniformity on rows `first..`: each row's max logit over j ≠ i and its sum of
/// exponentials relative to that max.
#[inline(always)]
fn uniform_pass1_body<F: Real, K: Term<F>>(
    kappa: F,
    p: &Packed<F>,
    first: usize,
    out: &mut [(F, F)],
) {
    let mut s = vec![F::zero(); p.bp];
    for (r, st) in out.iter_mut().enumerate() {
        let i = first + r;
        logits_row::<F, K>(kappa, p.row(i), p, &mut s);
        s[i] = F::neg_infinity();
        let m = max_lanes(&s);
        *st = (m, sum_exp_lanes(&s, m));
    }
}

/// Pass 2 of the uniformity on rows `first..`: `weight·∂U/∂h_k` into `gh`.
#[inline(always)]
fn uniform_pass2_body<F: Real, K: Term<F>>(
    kappa: F,
    p: &Packed<F>,
    glse_weight: (F, F),
    first: usize,
    gh: &mut [F],
) {
    let (glse, weight) = glse_weight;
    let two = F::from_f64(2.0);
    let mut s = vec![F::zero(); p.bp];
    let mut lanes = vec![F::zero(); p.d * LANES];
    for (r, g) in gh.chunks_exact_mut(p.d).enumerate() {
        let k = first + r;
        let hk = p.row(k);
        logits_row::<F, K>(kappa, hk, p, &mut s);
        s[k] = F::neg_infinity();
        // ∂U/∂s_kj + ∂U/∂s_jk = 2·exp(s_kj − LSE).
        for sj in s.iter_mut() {
            *sj = two * F::fast_exp(*sj - glse);
        }
        grad_row::<F, K>(kappa, hk, p, &s, &mut lanes, g);
        for gl in g.iter_mut() {
            *gl = *gl * weight;
        }
    }
}

multiversion!(uniform_pass1, uniform_pass1_avx2, uniform_pass1_avx512, uniform_pass1_body,
    (kappa: F, p: &Packed<F>, first: usize, out: &mut [(F, F)]));
multiversion!(uniform_pass2, uniform_pass2_avx2, uniform_pass2_avx512, uniform_pass2_body,
    (kappa: F, p: &Packed<F>, glse_weight: (F, F), first: usize, gh: &mut [F]));

/// Wang & Isola's uniformity on one view: U = log mean_{i≠j} exp(−t·‖h_i − h_j‖²).
/// When `grad` is given, writes `weight·∂U/∂h` into it. Needs B ≥ 2 (checked by the caller).
pub(crate) fn uniformity<F: Real>(
    t: F,
    h: ArrayView2<'_, F>,
    grad: Option<(ArrayViewMut2<'_, F>, F)>,
) -> F {
    let p = Packed::new(h);
    let (b, d) = (p.b, p.d);
    let kappa = -t;

    let mut stats = vec![(F::zero(), F::zero()); b];
    stats
        .par_chunks_mut(BLOCK_ROWS)
        .enumerate()
        .for_each(|(blk, out)| uniform_pass1::<F, L2<F>>(kappa, &p, blk * BLOCK_ROWS, out));
    // Global logsumexp over all ordered pairs i ≠ j, combined sequentially.
    let gmax = stats
        .iter()
        .fold(F::neg_infinity(), |a, &(m, _)| if m > a { m } else { a });
    let gsum = stats
        .iter()
        .fold(F::zero(), |a, &(m, s)| a + s * (m - gmax).exp());
    let glse = gmax + gsum.ln();
    let pairs = (b as f64) * (b as f64 - 1.0);
    let u = F::from_f64(glse.to_f64_lossless() - pairs.ln());

    let Some((grad, weight)) = grad else {
        return u;
    };
    let mut gh = vec![F::zero(); b * d];
    if d > 0 {
        gh.par_chunks_mut(BLOCK_ROWS * d)
            .enumerate()
            .for_each(|(blk, gh_blk)| {
                uniform_pass2::<F, L2<F>>(kappa, &p, (glse, weight), blk * BLOCK_ROWS, gh_blk)
            });
    }
    write_rows(&gh, grad);
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Mutex;

    /// The best instruction set the dispatchers may take.
    static ISA_CAP: AtomicU8 = AtomicU8::new(Isa::Avx512 as u8);
    /// Bit k is set whenever a version with `Isa as u8 == k` runs.
    static RAN: AtomicU8 = AtomicU8::new(0);
    /// Serialises the tests that set the cap.
    static CAP_LOCK: Mutex<()> = Mutex::new(());
    /// Makes [`super::wide_registers`] true whatever the cap (to compare the wide loops with
    /// the narrow ones on any CPU).
    static FORCE_WIDE: AtomicU8 = AtomicU8::new(0);

    pub(super) fn force_wide() -> bool {
        FORCE_WIDE.load(Ordering::SeqCst) != 0
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn cap() -> Isa {
        match ISA_CAP.load(Ordering::SeqCst) {
            0 => Isa::Portable,
            1 => Isa::Avx2,
            _ => Isa::Avx512,
        }
    }

    pub(super) fn ran(isa: Isa) {
        RAN.fetch_or(1 << isa as u8, Ordering::SeqCst);
    }

    fn input<F: Real>(b: usize, d: usize, phase: f64) -> Array2<F> {
        Array2::from_shape_fn((b, d), |(i, k)| {
            F::from_f64(((i * d + k) as f64 * 0.7548 + phase).sin() * 1.3)
        })
    }

    /// Every kernel's bits at three shapes: (45, 5) and (70, 7), whose column part in the
    /// cached engine runs coordinate groups of four, two and one over one and two earlier
    /// tiles, and (300, 3), whose logits also run in whole column groups (full groups in the
    /// wide loops, half groups in the narrow ones).
    fn all_bits<F: Real>() -> Vec<u64> {
        [(45, 5), (70, 7), (300, 3)]
            .into_iter()
            .flat_map(|(b, d)| bits_at::<F>(b, d))
            .collect()
    }

    fn bits_at<F: Real>(b: usize, d: usize) -> Vec<u64> {
        let (h, ht) = (input::<F>(b, d, 0.0), input::<F>(b, d, 0.3));
        let mut out = Vec::new();
        let mut push = |v: F, g: &Array2<F>, gt: &Array2<F>| {
            out.push(v.to_f64_lossless().to_bits());
            out.extend(g.iter().chain(gt).map(|x| x.to_f64_lossless().to_bits()));
        };
        for (exclude_self, include_pos) in
            [(false, true), (true, true), (false, false), (true, false)]
        {
            let spec = InfoNceSpec {
                kappa: F::from_f64(-0.8),
                exclude_self,
                include_pos,
                offset: F::from_f64(0.1),
            };
            macro_rules! run {
                ($k:ty) => {{
                    let (mut g, mut gt) = (Array2::zeros((b, d)), Array2::zeros((b, d)));
                    let v = infonce::<F, $k>(
                        spec,
                        h.view(),
                        ht.view(),
                        Some((g.view_mut(), gt.view_mut())),
                    );
                    push(v, &g, &gt);
                }};
            }
            run!(Dot<F>);
            run!(L1<F>);
            run!(L2<F>);
            run!(L3<F>);
            // The two-pass engine (the cached engine's fallback) on its own.
            macro_rules! run_two_pass {
                ($k:ty) => {{
                    let p = Packed::new(h.view());
                    let htr = to_rows(ht.view());
                    let q = positive_logits::<F, $k>(spec.kappa, &p, &htr);
                    let (v, bufs) = infonce_two_pass::<F, $k>(spec, &p, &htr, &q, true);
                    let (g, gt) = bufs.expect("gradients asked for");
                    let shape = (b, d);
                    push(
                        v,
                        &Array2::from_shape_vec(shape, g).expect("B×d"),
                        &Array2::from_shape_vec(shape, gt).expect("B×d"),
                    );
                }};
            }
            run_two_pass!(Dot<F>);
            run_two_pass!(L3<F>);
        }
        let mut g = Array2::zeros((b, d));
        let v = uniformity(
            F::from_f64(2.0),
            h.view(),
            Some((g.view_mut(), F::from_f64(0.5))),
        );
        push(v, &g, &g);
        out
    }

    #[test]
    fn simd_and_portable_versions_are_bit_identical() {
        let _guard = CAP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut results = Vec::new();
        // The last entry, the portable code with the narrow loops, is the reference; the wide
        // loops (AVX-512's) also run in the portable code, so they are compared on every CPU.
        for (isa, force_wide) in [
            (Isa::Avx512, false),
            (Isa::Avx2, false),
            (Isa::Portable, true),
            (Isa::Portable, false),
        ] {
            ISA_CAP.store(isa as u8, Ordering::SeqCst);
            FORCE_WIDE.store(u8::from(force_wide), Ordering::SeqCst);
            RAN.store(0, Ordering::SeqCst);
            let bits = (all_bits::<f32>(), all_bits::<f64>());
            let ran = RAN.load(Ordering::SeqCst);
            let name = format!("{isa:?}{}", if force_wide { " (wide loops)" } else { "" });
            results.push((name, ran, bits));
        }
        ISA_CAP.store(Isa::Avx512 as u8, Ordering::SeqCst);
        FORCE_WIDE.store(0, Ordering::SeqCst);
        // The portable code must have run when capped to it; on x86-64 each SIMD version runs
        // when the CPU has it (the test is then a real comparison, not a comparison with itself).
        // Other tests may run kernels meanwhile, so only the expected bit is checked.
        assert_ne!(results[2].1 & (1 << Isa::Portable as u8), 0);
        assert_ne!(results[3].1 & (1 << Isa::Portable as u8), 0);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                assert_ne!(results[0].1 & (1 << Isa::Avx512 as u8), 0);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_ne!(results[1].1 & (1 << Isa::Avx2 as u8), 0);
            }
        }
        let portable = &results[3].2;
        for (name, _, bits) in &results[..3] {
            assert_eq!(bits.0.len(), portable.0.len());
            assert!(
                bits.0 == portable.0,
                "f32 results differ between the {name} and portable code"
            );
            assert!(
                bits.1 == portable.1,
                "f64 results differ between the {name} and portable code"
            );
        }
    }

    #[test]
    fn the_transposed_rows_are_never_a_multiple_of_4_kib_apart() {
        // A regression check of the layout that keeps the logit loops in L1 (see
        // `Packed::cs`): the batch sizes of the protocols and some awkward ones.
        fn check<F: Real>(b: usize) {
            let h = Array2::<F>::zeros((b, 3));
            let p = Packed::new(h.view());
            let bytes = p.cs * std::mem::size_of::<F>();
            assert!(p.cs >= p.bp, "B = {b}: cs {} below bp {}", p.cs, p.bp);
            assert_ne!(bytes % 4096, 0, "B = {b}: rows {bytes} bytes apart");
            assert_eq!(p.cols.len(), 3 * p.cs);
        }
        for b in [1, 31, 256, 512, 1000, 1024, 2048, 4096, 6144, 8192] {
            check::<f32>(b);
            check::<f64>(b);
        }
    }
}
