//! The limit model of the loss kernels: this machine's measured throughput of the kernels'
//! `exp` and of separate f32 multiplies and adds (the kernels enable no FMA, so that every
//! build gives the same bits), times the work a loss needs.
//!
//! `cargo run --release -p clica-objectives --example limits [B ...]`
//!
//! Both probes run from L1-resident buffers with enough independent accumulators to hide
//! latency, on every thread of the rayon pool at once, compiled for the best instruction set
//! the CPU has (as the kernels are). They are upper bounds on what any kernel of the same
//! arithmetic can reach here.
//!
//! Work of one direction of a cached InfoNCE (B rows, d dimensions, one logit and one
//! exponential per unordered pair): B(B+1)/2 exponentials; B²·d multiply-adds for the logits
//! (half of the B×B×d, both operations counted: B²·d flops), 2·B² flops for the coefficients
//! E_kj·(1/Z_k + 1/Z_j) and 2·B²·d for the gradient rows.

use clica_objectives::Real;
use std::time::Instant;

const N: usize = 4096;
const REPS: usize = 4000;
/// Iterations of the multiply + add probe: 2·256 flops each, about 2 GFLOP per thread.
const FLOP_ITERS: usize = 4_000_000;

#[inline(always)]
fn exp_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f32::fast_exp(v);
    }
}

#[inline(always)]
fn flop_body(seed: f32) -> f32 {
    // 256 independent chains of a multiply and an add each (no FMA), in one flat array so
    // that the compiler keeps them in vector registers. (An earlier version nested the
    // chains as [[f32; 32]; 8], which LLVM vectorised across the outer index with pointer
    // vectors and scatters, and measured 3.7 GFLOP/s on the Xeon of 2026-12-05.)
    let mut acc = [seed; 256];
    let (m, a) = (0.999_9f32, 1e-4f32);
    for _ in 0..FLOP_ITERS {
        for v in acc.iter_mut() {
            *v = *v * m + a;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_avx2(x: &[f32], out: &mut [f32]) {
    exp_body(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(x: &[f32], out: &mut [f32]) {
    exp_body(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn flop_avx2(seed: f32) -> f32 {
    flop_body(seed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn flop_avx512(seed: f32) -> f32 {
    flop_body(seed)
}

fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
}

fn exp_pass(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: the CPU has the feature each version enables (checked by `isa`).
        "avx512" => return unsafe { exp_avx512(x, out) },
        // SAFETY: as above.
        "avx2" => return unsafe { exp_avx2(x, out) },
        _ => {}
    }
    exp_body(x, out)
}

fn flops(seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: the CPU has the feature each version enables (checked by `isa`).
        "avx512" => return unsafe { flop_avx512(seed) },
        // SAFETY: as above.
        "avx2" => return unsafe { flop_avx2(seed) },
        _ => {}
    }
    flop_body(seed)
}

/// Best of 5 rates (per second, all threads together) of `work` units done by `f` on as many
/// threads at once as the rayon pool has.
fn rate(work: f64, f: impl Fn(usize) -> f32 + Sync + Send + Copy) -> f64 {
    let threads = rayon::current_num_threads();
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let sink: f32 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|t| scope.spawn(move || f(t))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe thread"))
                .sum()
        });
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max(work * threads as f64 / secs);
    }
    best
}

fn main() {
    let threads = rayon::current_num_threads();
    let exps = rate((N * REPS) as f64, |t| {
        let x: Vec<f32> = (0..N).map(|i| ((i + t) % 64) as f32 * -0.03).collect();
        let mut out = vec![0.0f32; N];
        for _ in 0..REPS {
            exp_pass(std::hint::black_box(&x), &mut out);
        }
        out[7]
    });
    let flop = rate((FLOP_ITERS * 256 * 2) as f64, |t| flops(1.0 + t as f32));
    println!("isa {}, {threads} threads", isa());
    println!("fast_exp (f32): {:.2} G/s", exps / 1e9);
    println!("separate multiply + add (f32): {:.1} GFLOP/s", flop / 1e9);
    let d = 10.0f64;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("batch sizes are integers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![512, 2048, 6144]
    } else {
        sizes
    };
    println!("limit of one direction of the cached InfoNCE, d = 10 (ms): exp + flops = total");
    for b in sizes {
        let bf = b as f64;
        let e = bf * (bf + 1.0) / 2.0 / exps * 1e3;
        let f = (bf * bf * d + 2.0 * bf * bf + 2.0 * bf * bf * d) / flop * 1e3;
        println!(
            "B = {b:5}: {e:.2} + {f:.2} = {:.2} (symmetric loss: {:.2})",
            e + f,
            2.0 * (e + f)
        );
    }
}
