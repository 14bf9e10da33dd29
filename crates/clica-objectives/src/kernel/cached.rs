//! The cached InfoNCE engine: one logit and one exponential per unordered pair, kept between
//! the passes.
//!
//! The logits s_ij = κ·Σ_l term(h_il, h_jl) are symmetric, so the engine evaluates them once
//! per unordered pair and stores E_ij = exp(s_ij − c) with **one shift c for the whole batch**,
//! an upper bound on every logit ([`Term::logit_bound`]: |κ|·max‖h‖² for the dot product by
//! Cauchy–Schwarz, 0 for the distance terms with κ ≤ 0). With a common shift,
//! softmax_k(j) = E_kj / Z_k and softmax_j(k) = E_kj / Z_j share the exponential, and the
//! gradient coefficient of pass 2 is c_kj = E_kj·(1/Z_k + 1/Z_j).
//!
//! Storage is the upper triangle in 32×32 tiles: row block I keeps the columns from 32·I on
//! (its diagonal tile whole), about B²/2 floats, kept between calls in a process-wide pool of
//! two buffers.
//!
//! * Pass A (rayon over row blocks): logits and exponentials of the stored tiles, each row's
//!   sum over its stored columns and each later tile's column sums.
//! * Reduce (sequential): Z_k = Σ_j E_kj (+ exp(q_k − c) when the positive is in the
//!   normaliser), from the row's own part and the earlier blocks' column sums in a fixed order.
//! * Pass B (rayon over row blocks): gradient rows, Σ_j c_kj·∂s_kj/∂h_k, from the row's stored
//!   part (contiguous) and the earlier blocks' tiles read column-wise.
//!
//! Every sum runs in an order fixed by the batch size alone, so the results are bit-identical
//! for every thread count and for the portable, AVX2 and AVX-512 builds.
//!
//! **When it declines.** A common shift loses precision for a row whose logits all lie far
//! below c (possible only without the self term, or with very unequal norms): the engine
//! returns `None` when any Z_k is below e^−60 (f32; e^−650 for f64) or is not finite, and the
//! caller runs the two-pass engine, which shifts each row by its own max. Above that floor the
//! terms lost to underflow (each below e^−87 relative to c) weigh at most B·e^−27 ≈ 2·10⁻⁸ of
//! Z_k at B = 8,192 for f32, below its rounding.

use super::{
    finish_row, group_sums, logits_from, prefetch, sum_lanes, InfoNceSpec, LossAndGrads, Packed,
    Term, GROUP, LANES,
};
use crate::Real;
use rayon::prelude::*;
use std::any::Any;
use std::sync::Mutex;

/// Rows per block and the width of a tile (one lane group).
const TILE: usize = LANES;
/// Rows of a block whose row parts pass B computes together (sharing each column load).
const ROWS: usize = 4;
/// Coordinates whose column accumulators pass B keeps in registers together.
const COLS: usize = 4;
// Pass B's grouped loop names its four accumulators and coefficient rows one by one.
const _: () = assert!(
    ROWS == 4,
    "pass B's grouped row loop is written for four rows"
);

/// Where row block I's stored columns live in the triangle buffer.
struct Layout {
    b: usize,
    bp: usize,
    /// Number of row blocks.
    nb: usize,
    /// Offset of each block's first row in the buffer (nb + 1 entries; the last is the total).
    offsets: Vec<usize>,
}

impl Layout {
    fn new(b: usize, bp: usize) -> Self {
        let nb = b.div_ceil(TILE);
        let mut offsets = Vec::with_capacity(nb + 1);
        let mut at = 0;
        offsets.push(0);
        for blk in 0..nb {
            at += (b - blk * TILE).min(TILE) * (bp - blk * TILE);
            offsets.push(at);
        }
        Layout { b, bp, nb, offsets }
    }

    /// Stored columns per row of block `blk` (columns 32·blk .. bp).
    fn len(&self, blk: usize) -> usize {
        self.bp - blk * TILE
    }

    fn rows(&self, blk: usize) -> usize {
        (self.b - blk * TILE).min(TILE)
    }
}

/// What pass A reads.
struct PassA<'a, F> {
    kappa: F,
    shift: F,
    exclude_self: bool,
    p: &'a Packed<F>,
    /// Whether four accumulators of LANES fit the registers ([`super::wide_registers`]).
    wide: bool,
}

/// Pass A on row block `blk`: its stored exponentials `a`, each row's sum over them
/// (`rowpart`, one per row) and the column sums of every later tile (`colsum`, TILE per block,
/// indexed by the later block).
#[inline(always)]
fn pass_a_body<F: Real, K: Term<F>>(
    cx: &PassA<'_, F>,
    blk: usize,
    a: &mut [F],
    rowpart: &mut [F],
    colsum: &mut [F],
) {
    let p = cx.p;
    let (b, bp) = (p.b, p.bp);
    let first_col = blk * TILE;
    let len = bp - first_col;
    block_exps::<F, K>(cx, first_col, len, a);
    for (r, (seg, part)) in a.chunks_exact_mut(len).zip(rowpart.iter_mut()).enumerate() {
        let i = first_col + r;
        // The padding columns contribute exact zeros.
        for o in &mut seg[b - first_col..] {
            *o = F::zero();
        }
        if cx.exclude_self {
            seg[i - first_col] = F::zero();
        }
        let mut acc = [F::zero(); LANES];
        for ch in seg.chunks_exact(LANES) {
            let ch: &[F; LANES] = ch.try_into().expect("LANES-wide chunk");
            for t in 0..LANES {
                acc[t] = acc[t] + ch[t];
            }
        }
        // Passing the lanes through `black_box` keeps LLVM's SLP vectoriser from splitting
        // the loop above into 64-bit pieces around the reduction (it did: a tenth of pass A).
        *part = sum_lanes(&std::hint::black_box(acc));
    }
    let rows = rowpart.len();
    for (later, out) in colsum.chunks_exact_mut(TILE).enumerate().skip(blk + 1) {
        let off = (later - blk) * TILE;
        let mut acc = [F::zero(); TILE];
        for seg in a.chunks_exact(len).take(rows) {
            for (a, &v) in acc.iter_mut().zip(&seg[off..off + TILE]) {
                *a = *a + v;
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// The exponentials E_ij = exp(s_ij − c) of a block's stored columns (rows `first_col..`,
/// columns `first_col..bp`, row-major with `len` columns per row), column group by column
/// group: every row of the block reads the same 4·LANES columns of h while they are in L1
/// (row by row, each row would stream all of h's columns from L2). Each logit is
/// κ·Σ_l term(h_il, h_jl) summed over l in order, exactly as [`logits_from`] computes it.
#[inline(always)]
fn block_exps<F: Real, K: Term<F>>(cx: &PassA<'_, F>, first_col: usize, len: usize, a: &mut [F]) {
    let p = cx.p;
    let (kappa, shift) = (cx.kappa, cx.shift);
    let grouped = len / GROUP * GROUP;
    // AVX2's sixteen registers hold two accumulators of LANES, not four: the narrow builds
    // take half a group at a time. Each column's sum runs over l in order either way.
    if cx.wide {
        group_exps::<F, K, 4>(cx, first_col, len, grouped, a);
    } else {
        group_exps::<F, K, 2>(cx, first_col, len, grouped, a);
    }
    if grouped < len {
        for (r, seg) in a.chunks_exact_mut(len).enumerate() {
            let tail = &mut seg[grouped..];
            logits_from::<F, K>(kappa, p.row(first_col + r), p, first_col + grouped, tail);
            for o in tail.iter_mut() {
                *o = F::fast_exp(*o - shift);
            }
        }
    }
}

/// The exponentials of [`block_exps`]'s first `grouped` columns, N·LANES columns at a time.
#[inline(always)]
fn group_exps<F: Real, K: Term<F>, const N: usize>(
    cx: &PassA<'_, F>,
    first_col: usize,
    len: usize,
    grouped: usize,
    a: &mut [F],
) {
    let p = cx.p;
    let (kappa, shift) = (cx.kappa, cx.shift);
    let rows = a.len() / len.max(1);
    let width = N * LANES;
    for g in (0..grouped).step_by(width) {
        let base = first_col + g;
        for r in 0..rows {
            let sums = group_sums::<F, K, N>(p.row(first_col + r), p, base);
            let out = &mut a[r * len + g..r * len + g + width];
            for (o, s) in out.chunks_exact_mut(LANES).zip(&sums) {
                for t in 0..LANES {
                    o[t] = F::fast_exp(kappa * s[t] - shift);
                }
            }
        }
    }
}

/// What pass B reads.
struct PassB<'a, F> {
    spec: InfoNceSpec<F>,
    p: &'a Packed<F>,
    layout: &'a Layout,
    /// The triangle buffer.
    a: &'a [F],
    /// h̃, row-major B×d.
    ht: &'a [F],
    /// exp(q_k − c) (empty when the positive is not in the normaliser).
    pos: &'a [F],
    /// 1/Z_k, zero padded to bp.
    inv_z: &'a [F],
    /// Whether the row part sweeps two coordinates at once ([`super::wide_registers`], f32).
    two_coords: bool,
}

/// Per-task scratch of pass B.
struct Scratch<F> {
    /// Coefficients of the stored parts of ROWS rows, ROWS×bp.
    coef: Vec<F>,
    /// Lane accumulators of the row part, ROWS·d·LANES.
    lanes: Vec<F>,
    /// Accumulators of the column part, d·TILE (coordinate-major).
    colacc: Vec<F>,
    /// Coefficients of one earlier tile, TILE×TILE.
    tile: Vec<F>,
}

/// Pass B on row block `blk`: the gradient rows with respect to h (`gh`) and h̃ (`gt`).
#[inline(always)]
fn pass_b_body<F: Real, K: Term<F>>(
    cx: &PassB<'_, F>,
    blk: usize,
    gh: &mut [F],
    gt: &mut [F],
    scratch: &mut Scratch<F>,
) {
    let (p, spec, lay) = (cx.p, cx.spec, cx.layout);
    let (b, d, bp) = (p.b, p.d, p.bp);
    let kappa = spec.kappa;
    let inv_b = F::one() / F::from_f64(b as f64);
    let first_col = blk * TILE;
    let len = lay.len(blk);
    let inv_z = cx.inv_z;

    // Column part: Σ over the rows j of earlier blocks of E_jk·(1/Z_k + 1/Z_j)·∂s_kj/∂h_k,
    // vectorised over the block's TILE columns k.
    let colacc = &mut scratch.colacc;
    colacc.iter_mut().for_each(|v| *v = F::zero());
    let zk: &[F; TILE] = inv_z[first_col..first_col + TILE]
        .try_into()
        .expect("TILE-wide slice");
    // One earlier tile at a time, its coordinates in groups of COLS: the group's TILE-wide
    // accumulators stay in registers while the tile's rows stream, one independent chain per
    // coordinate and lane (a single coordinate's chain is bound by the add's latency). The
    // first group also computes the tile's coefficients w[rj][t] = E_jk·(1/Z_k + 1/Z_j), row
    // by row, and the later groups read them back. Each accumulator sums over the rows in
    // order, tile after tile, so the result does not depend on the grouping.
    let w = &mut scratch.tile;
    for earlier in 0..blk {
        let tile = Tile {
            rows: &cx.a[lay.offsets[earlier]..lay.offsets[earlier + 1]],
            stride: lay.len(earlier),
            off: first_col - earlier * TILE,
            zk,
            zj: inv_z[earlier * TILE..(earlier + 1) * TILE]
                .try_into()
                .expect("TILE-wide slice"),
            next: if earlier + 1 < blk {
                (
                    &cx.a[lay.offsets[earlier + 1]..lay.offsets[earlier + 2]],
                    lay.len(earlier + 1),
                    first_col - (earlier + 1) * TILE,
                )
            } else {
                (&[], 0, 0)
            },
        };
        let j0 = earlier * TILE;
        let mut l = 0;
        while l < d {
            let cols = |q: usize| {
                let at = (l + q) * p.cs;
                let xs: &[F; TILE] = p.cols[at + first_col..at + first_col + TILE]
                    .try_into()
                    .expect("TILE-wide slice");
                let ys: &[F; TILE] = p.cols[at + j0..at + j0 + TILE]
                    .try_into()
                    .expect("TILE-wide slice");
                (xs, ys)
            };
            let acc = &mut colacc[l * TILE..];
            let n = match (d - l, l == 0) {
                (1, true) => col_group1::<F, K, true>(&tile, w, [cols(0)], acc),
                (1, false) => col_group1::<F, K, false>(&tile, w, [cols(0)], acc),
                (2 | 3, true) => col_group2::<F, K, true>(&tile, w, [cols(0), cols(1)], acc),
                (2 | 3, false) => col_group2::<F, K, false>(&tile, w, [cols(0), cols(1)], acc),
                (_, true) => {
                    col_group4::<F, K, true>(&tile, w, [cols(0), cols(1), cols(2), cols(3)], acc)
                }
                (_, false) => {
                    col_group4::<F, K, false>(&tile, w, [cols(0), cols(1), cols(2), cols(3)], acc)
                }
            };
            l += n;
        }
    }

    // Row part and the positive, ROWS rows at a time: each column chunk of a coordinate is
    // loaded once for the group and serves every row of it, while each row's lane
    // accumulators see exactly the operations, in the order, of a row alone.
    let own = &cx.a[lay.offsets[blk]..lay.offsets[blk + 1]];
    let nrows = gh.len() / d;
    let mut r0 = 0;
    while r0 < nrows {
        let nr = (nrows - r0).min(ROWS);
        // With the wide loops the first sweep forms the coefficients itself.
        let fused = nr == ROWS && cx.two_coords && d >= 2;
        for q in 0..if fused { 0 } else { nr } {
            let zk = inv_z[first_col + r0 + q];
            let seg = &own[(r0 + q) * len..(r0 + q + 1) * len];
            let coef = &mut scratch.coef[q * len..(q + 1) * len];
            // The same row of the next group, line by line, comes in while
            // this one is read (the rows are pages long: the prefetchers stop at each page).
            let ahead = (r0 + q + ROWS) * len;
            let line = 64 / std::mem::size_of::<F>();
            for (i, ((c, e), zj)) in coef
                .chunks_mut(line)
                .zip(seg.chunks(line))
                .zip(inv_z[first_col..].chunks(line))
                .enumerate()
            {
                prefetch(own, ahead + i * line);
                for ((c, &e), &zj) in c.iter_mut().zip(e).zip(zj) {
                    *c = e * (zk + zj);
                }
            }
        }
        let mut l = 0;
        while l < d {
            let col = &p.cols[l * p.cs + first_col..l * p.cs + bp];
            if nr == ROWS && cx.two_coords && l + 1 < d {
                // Two coordinates per sweep: each row's coefficient chunk is loaded once for
                // both, each column chunk once for the four rows. Eight accumulators of LANES
                // fill half of AVX-512's 32 registers (AVX2's 16 would spill them). Every
                // accumulator sees the operations, in the order, of the one-coordinate loop.
                // The first sweep forms the four rows' coefficients c_kj = E_kj·(1/Z_k + 1/Z_j)
                // from the stored exponentials as it goes (the same operations as the
                // separate loop above) and keeps them for the later sweeps.
                let form = l == 0;
                let col1 = &p.cols[(l + 1) * p.cs + first_col..(l + 1) * p.cs + bp];
                let x = |q: usize, m: usize| p.row(first_col + r0 + q)[l + m];
                let (x0, x1, x2, x3) = (x(0, 0), x(1, 0), x(2, 0), x(3, 0));
                let (y0, y1, y2, y3) = (x(0, 1), x(1, 1), x(2, 1), x(3, 1));
                let zk = |q: usize| inv_z[first_col + r0 + q];
                let (z0, z1, z2, z3) = (zk(0), zk(1), zk(2), zk(3));
                let seg = |q: usize| &own[(r0 + q) * len..(r0 + q + 1) * len];
                let (e0, e1, e2, e3) = (seg(0), seg(1), seg(2), seg(3));
                let zj = &inv_z[first_col..first_col + len];
                let (c0, rest) = scratch.coef.split_at_mut(len);
                let (c1, rest) = rest.split_at_mut(len);
                let (c2, c3) = rest.split_at_mut(len);
                let c3 = &mut c3[..len];
                let line = 64 / std::mem::size_of::<F>();
                let mut a0 = [F::zero(); LANES];
                let mut a1 = [F::zero(); LANES];
                let mut a2 = [F::zero(); LANES];
                let mut a3 = [F::zero(); LANES];
                let mut b0 = [F::zero(); LANES];
                let mut b1 = [F::zero(); LANES];
                let mut b2 = [F::zero(); LANES];
                let mut b3 = [F::zero(); LANES];
                for at in (0..len).step_by(LANES) {
                    let w = |s: &[F]| -> [F; LANES] {
                        s[at..at + LANES].try_into().expect("LANES-wide slice")
                    };
                    let (hh, gg) = (w(col), w(col1));
                    let (k0, k1, k2, k3) = if form {
                        // The next group's rows, line by line (see the separate loop).
                        for q in 0..ROWS {
                            for off in (0..LANES).step_by(line) {
                                prefetch(own, (r0 + q + ROWS) * len + at + off);
                            }
                        }
                        let zz = w(zj);
                        let (f0, f1, f2, f3) = (w(e0), w(e1), w(e2), w(e3));
                        let mut k0 = [F::zero(); LANES];
                        let mut k1 = [F::zero(); LANES];
                        let mut k2 = [F::zero(); LANES];
                        let mut k3 = [F::zero(); LANES];
                        for t in 0..LANES {
                            k0[t] = f0[t] * (z0 + zz[t]);
                            k1[t] = f1[t] * (z1 + zz[t]);
                            k2[t] = f2[t] * (z2 + zz[t]);
                            k3[t] = f3[t] * (z3 + zz[t]);
                        }
                        c0[at..at + LANES].copy_from_slice(&k0);
                        c1[at..at + LANES].copy_from_slice(&k1);
                        c2[at..at + LANES].copy_from_slice(&k2);
                        c3[at..at + LANES].copy_from_slice(&k3);
                        (k0, k1, k2, k3)
                    } else {
                        (w(c0), w(c1), w(c2), w(c3))
                    };
                    for t in 0..LANES {
                        let (u, v) = (hh[t], gg[t]);
                        a0[t] = a0[t] + k0[t] * K::dterm(x0, u);
                        a1[t] = a1[t] + k1[t] * K::dterm(x1, u);
                        a2[t] = a2[t] + k2[t] * K::dterm(x2, u);
                        a3[t] = a3[t] + k3[t] * K::dterm(x3, u);
                        b0[t] = b0[t] + k0[t] * K::dterm(y0, v);
                        b1[t] = b1[t] + k1[t] * K::dterm(y1, v);
                        b2[t] = b2[t] + k2[t] * K::dterm(y2, v);
                        b3[t] = b3[t] + k3[t] * K::dterm(y3, v);
                    }
                }
                for (q, (accq, accr)) in [a0, a1, a2, a3]
                    .iter()
                    .zip([b0, b1, b2, b3].iter())
                    .enumerate()
                {
                    scratch.lanes[(q * d + l) * LANES..(q * d + l + 1) * LANES]
                        .copy_from_slice(accq);
                    scratch.lanes[(q * d + l + 1) * LANES..(q * d + l + 2) * LANES]
                        .copy_from_slice(accr);
                }
                l += 2;
                continue;
            }
            if nr == ROWS {
                let x = |q: usize| p.row(first_col + r0 + q)[l];
                let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3));
                let (c0, rest) = scratch.coef.split_at(len);
                let (c1, rest) = rest.split_at(len);
                let (c2, c3) = rest.split_at(len);
                let c3 = &c3[..len];
                let mut a0 = [F::zero(); LANES];
                let mut a1 = [F::zero(); LANES];
                let mut a2 = [F::zero(); LANES];
                let mut a3 = [F::zero(); LANES];
                for ((((hh, k0), k1), k2), k3) in col
                    .chunks_exact(LANES)
                    .zip(c0.chunks_exact(LANES))
                    .zip(c1.chunks_exact(LANES))
                    .zip(c2.chunks_exact(LANES))
                    .zip(c3.chunks_exact(LANES))
                {
                    for t in 0..LANES {
                        let y = hh[t];
                        a0[t] = a0[t] + k0[t] * K::dterm(x0, y);
                        a1[t] = a1[t] + k1[t] * K::dterm(x1, y);
                        a2[t] = a2[t] + k2[t] * K::dterm(x2, y);
                        a3[t] = a3[t] + k3[t] * K::dterm(x3, y);
                    }
                }
                for (q, accq) in [a0, a1, a2, a3].iter().enumerate() {
                    scratch.lanes[(q * d + l) * LANES..(q * d + l + 1) * LANES]
                        .copy_from_slice(accq);
                }
            } else {
                for q in 0..nr {
                    let x = p.row(first_col + r0 + q)[l];
                    let coef = &scratch.coef[q * len..(q + 1) * len];
                    let mut acc = [F::zero(); LANES];
                    for (cc, hh) in coef.chunks_exact(LANES).zip(col.chunks_exact(LANES)) {
                        for ((a, &cj), &y) in acc.iter_mut().zip(cc).zip(hh) {
                            *a = *a + cj * K::dterm(x, y);
                        }
                    }
                    scratch.lanes[(q * d + l) * LANES..(q * d + l + 1) * LANES]
                        .copy_from_slice(&acc);
                }
            }
            l += 1;
        }
        for q in 0..nr {
            let r = r0 + q;
            let k = first_col + r;
            let hk = p.row(k);
            let zk = inv_z[k];
            let g = &mut gh[r * d..(r + 1) * d];
            let gtil = &mut gt[r * d..(r + 1) * d];
            let lanes = &scratch.lanes[q * d * LANES..(q + 1) * d * LANES];
            for (l, (gl, buf)) in g.iter_mut().zip(lanes.chunks_exact(LANES)).enumerate() {
                let row = sum_lanes(buf.try_into().expect("LANES-wide"));
                *gl = kappa * (row + colacc[l * TILE + r]);
            }
            let pi = if spec.include_pos {
                cx.pos[k] * zk
            } else {
                F::zero()
            };
            finish_row::<F, K>((kappa, inv_b, pi), hk, &cx.ht[k * d..(k + 1) * d], g, gtil);
        }
        r0 += nr;
    }
}

/// One earlier tile of pass B's column part.
struct Tile<'a, F> {
    /// The earlier block's stored rows (its part of the triangle buffer).
    rows: &'a [F],
    /// Stored columns per row of the earlier block.
    stride: usize,
    /// Where the current block's columns start within an earlier row.
    off: usize,
    /// 1/Z_k of the current block's columns.
    zk: &'a [F; TILE],
    /// 1/Z_j of the earlier block's rows.
    zj: &'a [F; TILE],
    /// The next earlier tile's rows, stride and offset (empty for the last): prefetched row
    /// by row while this tile's coefficients are formed.
    next: (&'a [F], usize, usize),
}

/// Defines `$name`, which adds one earlier tile's contribution to the column accumulators of
/// a group of coordinates (`acc[q·TILE + t]` for coordinate q of the group, column t) and
/// returns the group's size. With `COMPUTE` it first fills the tile's coefficients into `w`
/// (otherwise it reads them from there). The accumulators are named one by one and the
/// coefficients of a row are formed in registers: a first version over an array of
/// accumulators, writing the coefficients through memory, compiled to scalar code and ran at
/// half the speed of the old loop.
macro_rules! col_group {
    ($name:ident, $g:expr, [$($q:tt $a:ident),+]) => {
        #[inline(always)]
        fn $name<F: Real, K: Term<F>, const COMPUTE: bool>(
            tile: &Tile<'_, F>,
            w: &mut [F],
            cols: [(&[F; TILE], &[F; TILE]); $g],
            acc: &mut [F],
        ) -> usize {
            $(
                let mut $a: [F; TILE] = acc[$q * TILE..($q + 1) * TILE]
                    .try_into()
                    .expect("TILE-wide slice");
            )+
            let zk: [F; TILE] = *tile.zk;
            for (rj, wr) in w.chunks_exact_mut(TILE).enumerate() {
                let wr: &mut [F; TILE] = wr.try_into().expect("TILE-wide slice");
                let wv: [F; TILE] = if COMPUTE {
                    let (next, stride, off) = tile.next;
                    let ahead = rj * stride + off;
                    prefetch(next, ahead);
                    prefetch(next, ahead + TILE / 2);
                    prefetch(next, ahead + TILE - 1);
                    let at = rj * tile.stride + tile.off;
                    let e: [F; TILE] = tile.rows[at..at + TILE]
                        .try_into()
                        .expect("TILE-wide slice");
                    let zj = tile.zj[rj];
                    let mut v = [F::zero(); TILE];
                    for t in 0..TILE {
                        v[t] = e[t] * (zk[t] + zj);
                    }
                    *wr = v;
                    v
                } else {
                    *wr
                };
                $(
                    let (xs, ys) = cols[$q];
                    let y = ys[rj];
                    for t in 0..TILE {
                        $a[t] = $a[t] + wv[t] * K::dterm(xs[t], y);
                    }
                )+
            }
            $(
                acc[$q * TILE..($q + 1) * TILE].copy_from_slice(&$a);
            )+
            $g
        }
    };
}
col_group!(col_group1, 1, [0 a0]);
col_group!(col_group2, 2, [0 a0, 1 a1]);
col_group!(col_group4, 4, [0 a0, 1 a1, 2 a2, 3 a3]);
const _: () = assert!(
    COLS == 4,
    "pass B's column groups are written for four coordinates"
);

multiversion!(pass_a, pass_a_avx2, pass_a_avx512, pass_a_body,
    (cx: &PassA<'_, F>, blk: usize, a: &mut [F], rowpart: &mut [F], colsum: &mut [F]));
multiversion!(pass_b, pass_b_avx2, pass_b_avx512, pass_b_body,
    (cx: &PassB<'_, F>, blk: usize, gh: &mut [F], gt: &mut [F], scratch: &mut Scratch<F>));

/// The smallest normaliser Z_k (relative to the common shift) the engine accepts.
fn floor<F: Real>() -> F {
    if std::mem::size_of::<F>() == 4 {
        F::from_f64((-60.0f64).exp())
    } else {
        F::from_f64((-650.0f64).exp())
    }
}

/// Buffers kept between calls, per element type, for the whole process: two, so that the
/// symmetric loss (whose directions run side by side, each on whichever worker takes it) finds
/// both of its buffers again, while no worker keeps one of its own (B²/2 values each: 75 MB
/// at B = 6,144 in f32).
const POOLED: usize = 2;

/// Up to [`POOLED`] buffers, the largest kept.
struct Pool<T>(Mutex<Vec<Vec<T>>>);

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        // The lock guards two pushes and pops; a panic cannot leave it half done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The largest kept buffer (empty when none is kept).
    fn take(&self) -> Vec<T> {
        let mut kept = self.kept();
        let largest = (0..kept.len()).max_by_key(|&i| kept[i].capacity());
        largest.map(|i| kept.swap_remove(i)).unwrap_or_default()
    }

    /// Keeps `buf` if fewer than [`POOLED`] are kept or it is larger than the smallest kept.
    fn give(&self, buf: Vec<T>) {
        let mut kept = self.kept();
        if kept.len() < POOLED {
            kept.push(buf);
        } else if let Some(i) = (0..kept.len()).min_by_key(|&i| kept[i].capacity()) {
            if kept[i].capacity() < buf.capacity() {
                kept[i] = buf;
            }
        }
    }
}

static POOL32: Pool<f32> = Pool::new();
static POOL64: Pool<f64> = Pool::new();

/// A buffer of `n` elements (contents unspecified), reusing a kept one.
fn take_buffer<F: Real>(n: usize) -> Vec<F> {
    let mut out: Vec<F> = Vec::new();
    let any = &mut out as &mut dyn Any;
    if let Some(v) = any.downcast_mut::<Vec<f32>>() {
        *v = POOL32.take();
    } else if let Some(v) = any.downcast_mut::<Vec<f64>>() {
        *v = POOL64.take();
    }
    out.resize(n, F::zero());
    out
}

/// Returns a buffer from [`take_buffer`] to the pool.
fn give_back<F: Real>(buf: Vec<F>) {
    let mut buf = Some(buf);
    let any = &mut buf as &mut dyn Any;
    if let Some(v) = any.downcast_mut::<Option<Vec<f32>>>() {
        POOL32.give(v.take().expect("set above"));
    } else if let Some(v) = any.downcast_mut::<Option<Vec<f64>>>() {
        POOL64.give(v.take().expect("set above"));
    }
}

/// The cached engine; `None` when it declines (see the module docs) and the caller should run
/// the two-pass engine.
pub(crate) fn infonce_cached<F: Real, K: Term<F>>(
    spec: InfoNceSpec<F>,
    p: &Packed<F>,
    ht: &[F],
    q: &[F],
    want_grads: bool,
) -> Option<LossAndGrads<F>> {
    let (b, d, bp) = (p.b, p.d, p.bp);
    let sq_norm = |row: &[F]| row.iter().fold(F::zero(), |a, &x| a + x * x);
    let max_sq = p
        .rows
        .chunks_exact(d.max(1))
        .chain(ht.chunks_exact(d.max(1)))
        .map(sq_norm)
        .fold(F::zero(), |m, v| if v > m { v } else { m });
    let shift = K::logit_bound(spec.kappa, max_sq);
    if !shift.is_finite() || b == 0 {
        return None;
    }

    let layout = Layout::new(b, bp);
    let nb = layout.nb;
    // The triangle, then the column sums of every block's later tiles (TILE per pair of
    // blocks), in one pooled buffer: neither is cleared, as pass A writes every entry that is
    // read later.
    let tri = layout.offsets[nb];
    let mut a = take_buffer::<F>(tri + nb * nb * TILE);
    let mut rowpart = vec![F::zero(); b];
    {
        let (rest, colsum) = a.split_at_mut(tri);
        let cx = PassA {
            kappa: spec.kappa,
            shift,
            exclude_self: spec.exclude_self,
            p,
            wide: super::wide_registers(),
        };
        let mut blocks = Vec::with_capacity(nb);
        let mut rest = &mut rest[..];
        for blk in 0..nb {
            let (head, tail) = rest.split_at_mut(layout.rows(blk) * layout.len(blk));
            blocks.push(head);
            rest = tail;
        }
        blocks
            .into_par_iter()
            .zip(rowpart.par_chunks_mut(TILE))
            .zip(colsum.par_chunks_mut(nb * TILE))
            .enumerate()
            .for_each(|(blk, ((a, part), cols))| pass_a::<F, K>(&cx, blk, a, part, cols));
    }

    // Z_k from the row's own part and the earlier blocks' column sums, in block order.
    let pos: Vec<F> = if spec.include_pos {
        q.iter().map(|&qk| F::fast_exp(qk - shift)).collect()
    } else {
        Vec::new()
    };
    let lowest = floor::<F>();
    let mut inv_z = vec![F::zero(); bp];
    let mut total = 0.0f64;
    let colsum = &a[tri..];
    for (blk, part) in rowpart.chunks(TILE).enumerate() {
        // A block's sums side by side, each adding the earlier blocks' column sums in order.
        let mut zs = [F::zero(); TILE];
        zs[..part.len()].copy_from_slice(part);
        for earlier in 0..blk {
            let at = (earlier * nb + blk) * TILE;
            for (z, &c) in zs.iter_mut().zip(&colsum[at..at + TILE]) {
                *z = *z + c;
            }
        }
        for (t, &zt) in zs.iter().take(part.len()).enumerate() {
            let k = blk * TILE + t;
            let mut z = zt;
            if spec.include_pos {
                z = z + pos[k];
            }
            // Also rejects NaN.
            if !(z.is_finite() && z >= lowest) {
                give_back(a);
                return None;
            }
            inv_z[k] = F::one() / z;
            let lse = shift + z.ln();
            total += (lse - q[k] - spec.offset).to_f64_lossless();
        }
    }
    let loss = F::from_f64(total / b as f64);
    if !want_grads {
        give_back(a);
        return Some((loss, None));
    }

    let mut gh = vec![F::zero(); b * d];
    let mut gt = vec![F::zero(); b * d];
    if d > 0 {
        let cx = PassB {
            spec,
            p,
            layout: &layout,
            a: &a[..tri],
            ht,
            pos: &pos,
            inv_z: &inv_z,
            // f64 lanes are twice as wide: their eight accumulators would fill every register.
            two_coords: super::wide_registers() && std::mem::size_of::<F>() == 4,
        };
        gh.par_chunks_mut(TILE * d)
            .zip(gt.par_chunks_mut(TILE * d))
            .enumerate()
            .for_each_init(
                || Scratch {
                    coef: vec![F::zero(); ROWS * bp],
                    lanes: vec![F::zero(); ROWS * d * LANES],
                    colacc: vec![F::zero(); d * TILE],
                    tile: vec![F::zero(); TILE * TILE],
                },
                |scratch, (blk, (gh_blk, gt_blk))| {
                    pass_b::<F, K>(&cx, blk, gh_blk, gt_blk, scratch)
                },
            );
    }
    give_back(a);
    Some((loss, Some((gh, gt))))
}

#[cfg(test)]
mod tests {
    use super::super::{infonce, infonce_two_pass, positive_logits, Dot, Engine, L1, L2, L3};
    use super::super::{to_rows, LAST_ENGINE};
    use super::*;
    use ndarray::Array2;

    fn input<F: Real>(b: usize, d: usize, phase: f64, unit: bool) -> Array2<F> {
        let mut x = Array2::from_shape_fn((b, d), |(i, k)| {
            ((i * d + k) as f64 * 0.7548 + phase).sin() * 1.3
        });
        if unit {
            for mut row in x.rows_mut() {
                let n = row.dot(&row).sqrt().max(1e-12);
                row.mapv_inplace(|v| v / n);
            }
        }
        x.mapv(F::from_f64)
    }

    /// Both engines on the same input: (loss, gh, gt) each, cached first.
    fn both<F: Real, K: Term<F>>(
        spec: InfoNceSpec<F>,
        h: &Array2<F>,
        ht: &Array2<F>,
    ) -> Option<(LossAndGrads<F>, LossAndGrads<F>)> {
        let p = Packed::new(h.view());
        let htr = to_rows(ht.view());
        let q = positive_logits::<F, K>(spec.kappa, &p, &htr);
        let cached = infonce_cached::<F, K>(spec, &p, &htr, &q, true)?;
        let two = infonce_two_pass::<F, K>(spec, &p, &htr, &q, true);
        Some((cached, two))
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    fn check_close(cached: &LossAndGrads<f64>, two: &LossAndGrads<f64>, tol: f64, what: &str) {
        let (lc, gc) = cached;
        let (lt, gt) = two;
        assert!(
            (lc - lt).abs() <= tol * lt.abs().max(1.0),
            "{what}: loss {lc} against {lt}"
        );
        let ((ghc, gtc), (ght, gtt)) = (gc.as_ref().unwrap(), gt.as_ref().unwrap());
        for (c, t) in [(ghc, ght), (gtc, gtt)] {
            let scale = max_abs(t).max(1e-300);
            let err = c
                .iter()
                .zip(t.iter())
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= tol * scale,
                "{what}: gradient error {err} at scale {scale}"
            );
        }
    }

    #[test]
    fn agrees_with_the_two_pass_engine_in_f64() {
        let mut ran = 0;
        for (b, d) in [
            (1, 3),
            (7, 5),
            (32, 10),
            (33, 1),
            (40, 3),
            (70, 7),
            (70, 10),
            (100, 4),
        ] {
            let (h, ht) = (input::<f64>(b, d, 0.0, true), input::<f64>(b, d, 0.4, true));
            for (exclude_self, include_pos) in
                [(false, true), (true, true), (false, false), (true, false)]
            {
                for kappa in [1.0, 10.0, -0.8] {
                    let spec = InfoNceSpec {
                        kappa,
                        exclude_self,
                        include_pos,
                        offset: 0.1,
                    };
                    let what = format!("dot b={b} d={d} κ={kappa} {exclude_self} {include_pos}");
                    if let Some((c, t)) = both::<f64, Dot<f64>>(spec, &h, &ht) {
                        check_close(&c, &t, 1e-12, &what);
                        ran += 1;
                    } else {
                        // Only a single row without its self term has an empty normaliser.
                        assert!(b == 1 && exclude_self && !include_pos, "{what} declined");
                    }
                }
                for kappa in [-0.8, -5.0] {
                    let spec = InfoNceSpec {
                        kappa,
                        exclude_self,
                        include_pos,
                        offset: 0.1,
                    };
                    for (name, out) in [
                        ("l1", both::<f64, L1<f64>>(spec, &h, &ht)),
                        ("l2", both::<f64, L2<f64>>(spec, &h, &ht)),
                        ("l3", both::<f64, L3<f64>>(spec, &h, &ht)),
                    ] {
                        let what = format!("{name} b={b} d={d} κ={kappa} {exclude_self}");
                        if let Some((c, t)) = out {
                            check_close(&c, &t, 1e-12, &what);
                            ran += 1;
                        } else {
                            assert!(b == 1 && exclude_self && !include_pos, "{what} declined");
                        }
                    }
                }
            }
        }
        assert!(ran >= 200, "only {ran} comparisons ran");
    }

    #[test]
    fn f32_agrees_with_the_exact_loss_at_the_fast_protocols_temperatures() {
        // The common shift costs no precision where the logits span a few units (τ = 1) or
        // the self term pins each row's max (τ = 0.01): f32 against the f64 two-pass engine.
        let (b, d) = (300, 10);
        let (h64, ht64) = (input::<f64>(b, d, 0.0, true), input::<f64>(b, d, 0.4, true));
        let (h32, ht32) = (h64.mapv(|v| v as f32), ht64.mapv(|v| v as f32));
        for kappa in [1.0, 100.0] {
            let spec64 = InfoNceSpec {
                kappa,
                exclude_self: false,
                include_pos: true,
                offset: 0.0,
            };
            let spec32 = InfoNceSpec {
                kappa: kappa as f32,
                exclude_self: false,
                include_pos: true,
                offset: 0.0,
            };
            let (_, exact) = both::<f64, Dot<f64>>(spec64, &h64, &ht64).unwrap();
            let (fast, _) = both::<f32, Dot<f32>>(spec32, &h32, &ht32).unwrap();
            assert!(((fast.0 as f64) - exact.0).abs() <= 2e-6 * exact.0.abs().max(1.0));
            let (gc, _) = fast.1.unwrap();
            let (ge, _) = exact.1.unwrap();
            let scale = max_abs(&ge);
            let err = gc
                .iter()
                .zip(&ge)
                .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
            assert!(
                err <= 1e-4 * scale,
                "κ = {kappa}: gradient error {err} at {scale}"
            );
        }
    }

    #[test]
    fn declines_when_a_normaliser_would_underflow_and_the_result_is_the_two_pass_one() {
        // Without the self term at τ = 0.0005, a row's best negative lies far below the bound
        // 1/τ: Z under the common shift is below e^-60, so the engine declines.
        let (b, d) = (64, 10);
        // Scattered points (splitmix64 hashes), so that no two rows nearly coincide.
        let hash = |x: u64| {
            let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let points = |view: u64| {
            Array2::from_shape_fn((b, d), |(i, k)| hash(view * 1_000_000 + (i * d + k) as u64))
        };
        let (mut h, mut ht): (Array2<f32>, Array2<f32>) = (points(0), points(1));
        for x in [&mut h, &mut ht] {
            for mut row in x.rows_mut() {
                let n = row.dot(&row).sqrt();
                row.mapv_inplace(|v| v / n);
            }
        }
        let spec = InfoNceSpec {
            kappa: 2000.0f32,
            exclude_self: true,
            include_pos: false,
            offset: 0.0,
        };
        assert!(both::<f32, Dot<f32>>(spec, &h, &ht).is_none());
        let (mut g, mut gt) = (Array2::zeros((b, d)), Array2::zeros((b, d)));
        let v = infonce::<f32, Dot<f32>>(
            spec,
            h.view(),
            ht.view(),
            Some((g.view_mut(), gt.view_mut())),
        );
        assert_eq!(LAST_ENGINE.with(|e| e.get()), Some(Engine::TwoPass));
        assert!(v.is_finite());
        let p = Packed::new(h.view());
        let htr = to_rows(ht.view());
        let q = positive_logits::<f32, Dot<f32>>(spec.kappa, &p, &htr);
        let (v2, bufs) = infonce_two_pass::<f32, Dot<f32>>(spec, &p, &htr, &q, true);
        assert_eq!(v.to_bits(), v2.to_bits());
        assert_eq!(g.as_slice().unwrap(), &bufs.unwrap().0[..]);
        // With the self term the same batch stays on the cached engine.
        let keep = InfoNceSpec {
            exclude_self: false,
            ..spec
        };
        let _ = infonce::<f32, Dot<f32>>(keep, h.view(), ht.view(), None);
        assert_eq!(LAST_ENGINE.with(|e| e.get()), Some(Engine::Cached));
    }

    #[test]
    fn non_finite_input_falls_back_and_propagates() {
        let (b, d) = (40, 4);
        let (mut h, ht) = (input::<f32>(b, d, 0.0, true), input::<f32>(b, d, 0.4, true));
        h[[3, 1]] = f32::NAN;
        let spec = InfoNceSpec {
            kappa: 1.0f32,
            exclude_self: false,
            include_pos: true,
            offset: 0.0,
        };
        let v = infonce::<f32, Dot<f32>>(spec, h.view(), ht.view(), None);
        assert_eq!(LAST_ENGINE.with(|e| e.get()), Some(Engine::TwoPass));
        assert!(v.is_nan());
    }

    #[test]
    fn the_buffer_pool_is_reused_and_sized() {
        // A pool of its own (the process-wide ones are shared with the tests running beside).
        let pool = Pool::<f32>::new();
        assert_eq!(pool.take().capacity(), 0);
        pool.give(Vec::with_capacity(1000));
        assert_eq!(pool.take().capacity(), 1000);
        // At most two are kept, the largest; the largest comes back first.
        for cap in [10, 3000, 2000] {
            pool.give(Vec::with_capacity(cap));
        }
        let caps: Vec<usize> = (0..3).map(|_| pool.take().capacity()).collect();
        assert_eq!(caps, [3000, 2000, 0]);
        // The shared pools hand out buffers of the asked length.
        assert_eq!(take_buffer::<f32>(1000).len(), 1000);
        assert_eq!(take_buffer::<f64>(3).len(), 3);
    }
}
