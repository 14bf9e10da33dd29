//! faer's single-threaded f32 rate on every GEMM of one chunk of Table 1 row 1's fast step,
//! in isolation: what a GEMM of clica's own could at best save there.
//!
//! `cargo run --release -p clica-encoders --example fast_step_gemms [ROWS]`
//!
//! The fast protocol's encoder is 10-100-100-100-10 on 10,240 rows per step (2048 anchors and
//! four positives each), split into one chunk per thread (5,120 rows on 2 threads). The native
//! backend stores a chunk's activations row-major, so faer sees the forward product as
//! Zᵀ = W·Xᵀ (M = the layer's output width, N = rows, K = its input width), the input
//! gradients as dXᵀ = Wᵀ·dZᵀ and the weight gradients as dW = dZᵀ·X (K = rows). Measured on
//! 2026-12-06 on the AMD EPYC (docs/performance.md, evening section): 94–97 GFLOP/s over the
//! step's GEMMs, the 100-wide ones at 84–102 and the four with a width of 10 as M or K at
//! 61–76, which take 0.55–0.59 ms of 6.9–7.1: at faer's 100-wide rate about 0.15 ms less.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use std::time::Instant;

/// Seconds of the fastest of `reps` products (m × k)·(k × n).
fn seconds(m: usize, n: usize, k: usize, reps: usize) -> f64 {
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
    best
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
    println!("faer f32, one thread, best of 40, one chunk of {rows} rows");
    let (mut total, mut flops) = (0.0, 0.0);
    for (name, m, n, k) in shapes {
        let s = seconds(m, n, k, 40);
        let f = 2.0 * (m * n * k) as f64;
        total += s;
        flops += f;
        println!(
            "{name:21} M = {m:5} N = {n:5} K = {k:5}: {:7.3} ms {:6.1} GFLOP/s",
            s * 1e3,
            f / s / 1e9
        );
    }
    println!(
        "all: {:.3} ms for {:.3} GFLOP, {:.1} GFLOP/s",
        total * 1e3,
        flops / 1e9,
        flops / total / 1e9
    );
}
