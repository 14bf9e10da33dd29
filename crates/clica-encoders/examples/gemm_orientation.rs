//! faer's single-threaded f32 GEMM rate for the MLP layers' shapes in the two orientations an
//! encoder could store its activations in, and whether they give the same bits; then its rate
//! on every GEMM of one chunk of Table 1 row 1's fast step, as the native backend calls them.
//!
//! `cargo run --release -p clica-encoders --example gemm_orientation [ROWS]` (ROWS: the
//! chunk's rows in the second part, 5,120 by default: 10,240 rows per step on 2 threads)
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
//!
//! The second part: the fast protocol's encoder is 10-100-100-100-10, its activations stored
//! row-major, so faer sees the forward products as Zᵀ = W·Xᵀ (M = the layer's output width,
//! N = rows, K = its input width), the input gradients as dXᵀ = Wᵀ·dZᵀ and the weight
//! gradients as dW = dZᵀ·X (K = rows). Measured on 2026-12-06 on the AMD EPYC
//! (docs/performance.md, evening section): 94–97 GFLOP/s over the step's GEMMs, the 100-wide
//! ones at 84–102 and the four with a width of 10 as M or K at 61–76, which take 0.55–0.59 ms
//! of 6.9–7.1: at faer's 100-wide rate about 0.15 ms less, what a GEMM of clica's own could
//! at best save there.
//!
//! The third part: faer's product against a plain chain of fused multiply-adds over k in
//! order (what a layer fused with its bias and LeakyReLU would compute), and the cost of the
//! separate bias + LeakyReLU pass that such a fused layer would remove. Measured on
//! 2026-12-07 (docs/performance.md): the same bits for the three layer shapes, and the pass
//! about 0.085 ms per 100-wide layer and chunk.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
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

/// A layer's input X (rows × din) and weights W (dout × din), row-major as the native backend
/// stores them, with values spread over both signs.
fn layer_inputs(rows: usize, din: usize, dout: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..rows * din)
        .map(|e| (((e / din * 7919 + e % din * 104_729) % 1000) as f32 - 500.0) * 1.37e-3)
        .collect();
    let w = (0..dout * din)
        .map(|e| (((e / din * 31 + e % din * 17) % 101) as f32 - 50.0) * 2.1e-3)
        .collect();
    (x, w)
}

/// Elements of Z = X·Wᵀ whose bits differ between the two orientations.
fn differing_bits(rows: usize, din: usize, dout: usize) -> usize {
    let (x, w) = layer_inputs(rows, din, dout);
    let x = MatRef::from_row_major_slice(&x, rows, din);
    let w = MatRef::from_row_major_slice(&w, dout, din);
    let mut zt = Mat::<f32>::zeros(dout, rows);
    matmul(zt.as_mut(), Accum::Replace, w, x.transpose(), 1.0, Par::Seq);
    let mut z = Mat::<f32>::zeros(rows, dout);
    matmul(z.as_mut(), Accum::Replace, x, w.transpose(), 1.0, Par::Seq);
    (0..rows)
        .flat_map(|i| (0..dout).map(move |j| (i, j)))
        .filter(|&(i, j)| z[(i, j)].to_bits() != zt[(j, i)].to_bits())
        .count()
}

fn main() {
    let rows: usize = match std::env::args().nth(1) {
        None => 5120,
        Some(s) => match s.parse() {
            Ok(r) if r > 0 => r,
            _ => {
                eprintln!("error: ROWS must be a positive integer, got {s:?}");
                std::process::exit(2);
            }
        },
    };
    orientations();
    fast_step(rows);
    fused_layer(rows);
}

/// What a layer fused with its bias and LeakyReLU would have to reproduce and could save:
/// whether faer's product equals a plain chain of fused multiply-adds in k order (so a fused
/// kernel could keep the bits), and what the separate bias + LeakyReLU pass costs.
fn fused_layer(rows: usize) {
    println!(
        "one layer, {rows} rows: faer's bits against an FMA chain in k order, and the bias pass"
    );
    for (din, dout) in [(10, 100), (100, 100), (100, 10)] {
        let (x, w) = layer_inputs(rows, din, dout);
        let bias: Vec<f32> = (0..dout).map(|j| (j as f32 - 50.0) * 1e-3).collect();
        let mut z = vec![0f32; rows * dout];
        // The native backend's call: a row-major Z = X·Wᵀ (faer sees M = the width).
        let mut zs = vec![0f32; rows * dout];
        let product = |zs: &mut [f32]| {
            matmul(
                faer::MatMut::from_row_major_slice_mut(zs, rows, dout),
                Accum::Replace,
                faer::MatRef::from_row_major_slice(&x, rows, din),
                faer::MatRef::from_row_major_slice(&w, dout, din).transpose(),
                1.0,
                Par::Seq,
            );
            clica_core::simd::clear_upper_state();
        };
        product(&mut zs);
        for i in 0..rows {
            for j in 0..dout {
                let mut acc = 0.0f32;
                for k in 0..din {
                    acc = x[i * din + k].mul_add(w[j * din + k], acc);
                }
                z[i * dout + j] = acc;
            }
        }
        let differ = (0..rows * dout)
            .filter(|&e| zs[e].to_bits() != z[e].to_bits())
            .count();
        let best = |f: &mut dyn FnMut()| {
            (0..50)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let gemm = best(&mut || product(&mut zs));
        let with_bias = best(&mut || {
            product(&mut zs);
            for row in zs.chunks_exact_mut(dout) {
                for (v, &b) in row.iter_mut().zip(&bias) {
                    let t = *v + b;
                    *v = if t > 0.0 { t } else { t * 0.01 };
                }
            }
        });
        println!(
            "{din:3} -> {dout:3}: {differ} of {} elements differ from the FMA chain; \
             product {:.3} ms, with the bias + LeakyReLU pass {:.3} ms",
            rows * dout,
            gemm * 1e3,
            with_bias * 1e3
        );
    }
}

/// Every GEMM of one chunk of the fast protocol's step, in the native backend's orientation.
fn fast_step(rows: usize) {
    let r = rows;
    let shapes = [
        ("forward 10 -> 100", 100, r, 10),
        ("forward 100 -> 100", 100, r, 100),
        ("forward 100 -> 100", 100, r, 100),
        ("forward 100 -> 10", 10, r, 100),
        ("input grad, layer 4", 100, r, 10),
        ("input grad, layer 3", 100, r, 100),
        ("input grad, layer 2", 100, r, 100),
        ("weight grad, layer 1", 100, 10, r),
        ("weight grad, layer 2", 100, 100, r),
        ("weight grad, layer 3", 100, 100, r),
        ("weight grad, layer 4", 10, 100, r),
    ];
    println!("the fast step's GEMMs, one chunk of {rows} rows, faer f32, one thread, best of 40");
    let (mut total, mut flops) = (0.0, 0.0);
    for (name, m, n, k) in shapes {
        let f = 2.0 * (m * n * k) as f64;
        let gflops = rate(m, n, k, 40);
        let s = f / gflops / 1e9;
        total += s;
        flops += f;
        println!(
            "{name:21} M = {m:5} N = {n:5} K = {k:5}: {:7.3} ms {gflops:6.1} GFLOP/s",
            s * 1e3
        );
    }
    println!(
        "all: {:.3} ms for {:.3} GFLOP, {:.1} GFLOP/s",
        total * 1e3,
        flops / 1e9,
        flops / total / 1e9
    );
}

/// The forward layers' rates in both orientations.
fn orientations() {
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
