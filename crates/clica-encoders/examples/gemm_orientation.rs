//! faer's single-threaded f32 GEMM rate for the MLP layers' shapes in the two orientations an
//! encoder could store its activations in, and whether they give the same bits.
//!
//! `cargo run --release -p clica-encoders --example gemm_orientation`
//!
//! The native encoder stores a chunk's activations row-major (rows × width), so the forward
//! product Z = X·Wᵀ reaches faer as Zᵀ = W·Xᵀ with the layer's width as the kernel's M side
//! (`M = out`): a width of 100 is one 96-row panel plus a masked remainder. Stored feature-major
//! the same product has the chunk's rows as M (`M = rows`). The per-element sums run over the
//! same k in the same order either way; the check below compares the bits.
//!
//! Measured on 2026-12-06 (docs/performance.md): `M = rows` is 10–60 % faster for the fast
//! protocol's layers and level for the paper encoder's, with the same bits. A feature-major
//! encoder built on it trained Table 1 row 1 to the same bits but took *longer* per step:
//! the weight gradients' long-K products then need their operands packed, and the bias
//! gradients' sums in row order no longer vectorise across features. It was not kept.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use std::time::Instant;

/// GFLOP/s of the fastest of `reps` products (m × k)·(k × n).
fn rate(m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let a = Mat::<f32>::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = Mat::<f32>::from_fn(k, n, |i, j| ((i * 5 + j * 11) % 17) as f32 * 0.01);
    let mut c = Mat::<f32>::zeros(m, n);
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            1.0,
            Par::Seq,
        );
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

/// Elements of Z = X·Wᵀ whose bits differ between the two orientations.
fn differing_bits(rows: usize, din: usize, dout: usize) -> usize {
    let x = Mat::<f32>::from_fn(rows, din, |i, j| {
        (((i * 7919 + j * 104_729) % 1000) as f32 - 500.0) * 1.37e-3
    });
    let w = Mat::<f32>::from_fn(dout, din, |i, j| {
        (((i * 31 + j * 17) % 101) as f32 - 50.0) * 2.1e-3
    });
    let mut zt = Mat::<f32>::zeros(dout, rows);
    matmul(
        zt.as_mut(),
        Accum::Replace,
        w.as_ref(),
        x.transpose(),
        1.0,
        Par::Seq,
    );
    let mut z = Mat::<f32>::zeros(rows, dout);
    matmul(
        z.as_mut(),
        Accum::Replace,
        x.as_ref(),
        w.transpose(),
        1.0,
        Par::Seq,
    );
    (0..rows)
        .flat_map(|i| (0..dout).map(move |j| (i, j)))
        .filter(|&(i, j)| z[(i, j)].to_bits() != zt[(j, i)].to_bits())
        .count()
}

fn main() {
    println!("forward layer Z = X·Wᵀ per chunk, faer f32, one thread, best of 50 (GFLOP/s)");
    // The fast protocol's MLP (10-100-100-100-10, 10,240 rows in two chunks) and the paper
    // encoder's widest layers (B = 6144: 12,288 rows in two chunks).
    for (rows, din, dout) in [
        (5120, 10, 100),
        (5120, 100, 100),
        (5120, 100, 10),
        (6144, 100, 500),
        (6144, 500, 500),
        (6144, 500, 100),
    ] {
        let now = rate(dout, rows, din, 50);
        let alt = rate(rows, dout, din, 50);
        let diff = differing_bits(rows, din, dout);
        println!(
            "rows {rows:5} {din:3} -> {dout:3}: M = out {now:6.1} | M = rows {alt:6.1} \
             ({:+.0} %); {diff} elements differ in bits",
            100.0 * (alt / now - 1.0)
        );
    }
}
