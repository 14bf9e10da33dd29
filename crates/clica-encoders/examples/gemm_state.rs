//! What a faer GEMM does to the cost of scalar code that calls libm afterwards, and what
//! `clica_core::simd::clear_upper_state` (vzeroupper) restores.
//!
//! ```text
//! cargo run --release -p clica-encoders --example gemm_state
//! ```
//!
//! Times [`clica_encoders::sigmoid`] (a call to the system `expf` per value) over 40,960
//! values: with the vector state clean, after a faer GEMM, and after a GEMM followed by
//! `clear_upper_state`. faer's x86-64 kernels return without `vzeroupper`, so every switch
//! between the portable build's SSE code and glibc's VEX code pays a transition penalty
//! until something clears the upper halves.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::hint::black_box;
use std::time::Instant;

const N: usize = 40_960;
const REPS: usize = 100;

fn main() {
    let xs: Vec<f32> = (0..N)
        .map(|i| ((i * 7919) % 2000) as f32 * 0.01 - 10.0)
        .collect();
    let mut out = vec![0f32; N];
    let a = vec![0.5f32; 4096 * 100];
    let w = vec![0.5f32; 100 * 10];
    let mut c = vec![0f32; 4096 * 10];
    let mut gemm = || {
        matmul(
            MatMut::from_row_major_slice_mut(&mut c, 4096, 10),
            Accum::Replace,
            MatRef::from_row_major_slice(&a, 4096, 100),
            MatRef::from_row_major_slice(&w, 10, 100).transpose(),
            1.0f32,
            Par::Seq,
        );
    };
    for (name, before) in [
        ("clean state", 0),
        ("after a faer GEMM", 1),
        ("after a GEMM, then clear_upper_state", 2),
    ] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let mut t = 0.0;
            for _ in 0..REPS {
                if before >= 1 {
                    gemm();
                }
                if before == 2 {
                    clica_core::simd::clear_upper_state();
                }
                let s = Instant::now();
                for (o, &x) in out.iter_mut().zip(&xs) {
                    *o = clica_encoders::sigmoid(x);
                }
                black_box(&mut out);
                t += s.elapsed().as_secs_f64();
                // Leave the state clean for the next variant.
                clica_core::simd::clear_upper_state();
            }
            best = best.min(t);
        }
        println!(
            "{name:40} {:7.1} ns per sigmoid",
            best / (REPS * N) as f64 * 1e9
        );
    }
}
