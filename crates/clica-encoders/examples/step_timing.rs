//! Timing of one training step (forward + backward + Adam) of the paper encoder at n = 10,
//! for both backends, plus reference GEMM throughput and a breakdown of dfdx's time.
//!
//! ```text
//! cargo run --release -p clica-encoders [--features dfdx] --example step_timing \\
//!     [-- --reps 5 --batches 512,2048,6144 --only gemm|native|dfdx|dfdx-breakdown]
//! ```
//!
//! Flop counts: forward 2·rows·Σ in·out, backward twice that (weight and input gradients).
//! GFLOP/s is at the fastest step; `CPUs` is the CPU time the process got per wall second
//! during the timed steps (2.0 = both cores of a 2-core machine) and `GF/CPU-s` the flops
//! per CPU second, which stay meaningful when other jobs share the machine.

use clica_core::RunSeed;
use clica_encoders::{Backend, EncoderConfig, MlpEncoder};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::Array2;
use rand::Rng;
use std::time::Instant;

/// Median and minimum of `reps` timings of `f` (after one warm-up call), in seconds.
fn time<F: FnMut()>(reps: usize, mut f: F) -> (f64, f64) {
    f();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    (ts[ts.len() / 2], ts[0])
}

/// CPU time (user + system, all threads) this process has used, in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Clock ticks are taken as 1/100 s.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn gemm_reference(reps: usize) {
    let (m, k, n) = (12_288usize, 500usize, 500usize);
    let mut r = RunSeed::new(0).stream("timing.gemm");
    let a: Vec<f32> = (0..m * k).map(|_| r.random::<f32>() - 0.5).collect();
    let w: Vec<f32> = (0..n * k).map(|_| r.random::<f32>() - 0.5).collect();
    let mut c = vec![0f32; m * n];
    let flops = 2.0 * (m * n * k) as f64;
    println!("## single GEMM f32, C (12288×500) = A (12288×500) · Wᵀ (500×500)");
    let report = |name: &str, (med, min): (f64, f64)| {
        println!(
            "{name:44} median {:7.2} ms  min {:7.2} ms  {:6.1} GFLOP/s (at min)",
            med * 1e3,
            min * 1e3,
            flops / min / 1e9
        );
    };
    for (name, par) in [
        ("faer, 1 thread", Par::Seq),
        ("faer, Par::rayon(2)", Par::rayon(2)),
    ] {
        let t = time(reps, || {
            matmul(
                MatMut::from_row_major_slice_mut(&mut c, m, n),
                Accum::Replace,
                MatRef::from_row_major_slice(&a, m, k),
                MatRef::from_row_major_slice(&w, n, k).transpose(),
                1.0f32,
                par,
            )
        });
        report(name, t);
    }
    let t = time(reps, || {
        let (a0, a1) = a.split_at(m / 2 * k);
        let (c0, c1) = c.split_at_mut(m / 2 * n);
        let wt = MatRef::from_row_major_slice(&w, n, k).transpose();
        let half = |cc: &mut [f32], aa: &[f32]| {
            matmul(
                MatMut::from_row_major_slice_mut(cc, m / 2, n),
                Accum::Replace,
                MatRef::from_row_major_slice(aa, m / 2, k),
                wt,
                1.0f32,
                Par::Seq,
            )
        };
        rayon::join(|| half(c0, a0), || half(c1, a1));
    });
    report("faer, 2 row halves × 1 thread (rayon::join)", t);
    #[cfg(feature = "dfdx")]
    {
        use dfdx::prelude::*;
        let dev = Cpu::default();
        let at = dev.tensor_from_vec(a.clone(), (m, k));
        let wt = dev.tensor_from_vec(w.clone(), (n, k));
        let t = time(reps, || {
            let _ = at
                .clone()
                .matmul(wt.clone().permute::<(usize, usize), Axes2<1, 0>>());
        });
        report("dfdx 0.13 matmul (gemm 0.15, rayon)", t);
    }
    println!();
}

fn step_timing(backend: Backend, batches: &[usize], reps: usize) {
    let cfg = EncoderConfig::paper(10).with_backend(backend);
    let macs = cfg.macs_per_row() as f64;
    println!("## {backend:?} backend, {}", cfg.describe());
    println!(
        "{:>6} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} | {:>7} {:>9}",
        "B",
        "rows",
        "fwd ms",
        "bwd ms",
        "adam ms",
        "step ms",
        "min ms",
        "GFLOP/s",
        "CPUs",
        "GF/CPU-s"
    );
    for &b in batches {
        let rows = 2 * b;
        let mut f = MlpEncoder::new(cfg.clone(), &mut RunSeed::new(0).stream("encoder")).unwrap();
        let mut r = RunSeed::new(0).stream("timing.data");
        let x = Array2::from_shape_fn((rows, 10), |_| r.random::<f32>() - 0.5);
        let g = Array2::from_shape_fn((rows, 10), |_| (r.random::<f32>() - 0.5) * 1e-3);
        let (mut fwd, mut bwd, mut adam, mut step) = (vec![], vec![], vec![], vec![]);
        // Small batches get more repetitions so the CPU-time reading (10 ms ticks) is useful.
        let reps = reps * (6144 / b).max(1);
        let mut cpu0 = None;
        let mut wall0 = Instant::now();
        for rep in 0..reps + 1 {
            if rep == 1 {
                cpu0 = cpu_seconds();
                wall0 = Instant::now();
            }
            let t0 = Instant::now();
            f.forward_train(x.view());
            let t1 = Instant::now();
            f.backward(g.view());
            let t2 = Instant::now();
            f.step(1e-4);
            let t3 = Instant::now();
            if rep > 0 {
                fwd.push((t1 - t0).as_secs_f64());
                bwd.push((t2 - t1).as_secs_f64());
                adam.push((t3 - t2).as_secs_f64());
                step.push((t3 - t0).as_secs_f64());
            }
        }
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = cpu0
            .zip(cpu_seconds())
            .map(|(a, b)| b - a)
            .unwrap_or(f64::NAN);
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let min_step = step.iter().copied().fold(f64::MAX, f64::min);
        let flops = 3.0 * 2.0 * rows as f64 * macs;
        println!(
            "{:>6} {:>6} | {:>8.1} {:>8.1} {:>8.2} | {:>8.1} {:>8.1} | {:>8.1} | {:>7.2} {:>9.1}",
            b,
            rows,
            med(&mut fwd) * 1e3,
            med(&mut bwd) * 1e3,
            med(&mut adam) * 1e3,
            med(&mut step) * 1e3,
            min_step * 1e3,
            flops / min_step / 1e9,
            cpu / wall,
            flops * reps as f64 / cpu / 1e9
        );
    }
    println!();
}

/// Where dfdx spends a training step of the paper net at 2·6144 rows: the same operations
/// as the dfdx backend, timed one kind at a time on the largest layer (500 → 500).
#[cfg(feature = "dfdx")]
fn dfdx_breakdown(reps: usize) {
    use dfdx::prelude::*;
    let dev = Cpu::default();
    let (rows, k, n) = (12_288usize, 500usize, 500usize);
    let mut r = RunSeed::new(0).stream("timing.dfdx");
    let x: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(
        (0..rows * k).map(|_| r.random::<f32>() - 0.5).collect(),
        (rows, k),
    );
    let w: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(
        (0..n * k).map(|_| r.random::<f32>() - 0.5).collect(),
        (n, k),
    );
    let b: Tensor<(usize,), f32, Cpu> =
        dev.tensor_from_vec((0..n).map(|_| r.random::<f32>() - 0.5).collect(), (n,));
    let shape = (rows, n);
    println!("## dfdx breakdown on one 500→500 layer, {rows} rows (median of {reps})");
    let show = |name: &str, (med, _): (f64, f64)| println!("{name:58} {:8.2} ms", med * 1e3);
    show(
        "matmul x·Wᵀ (no tape)",
        time(reps, || {
            let _ = x
                .clone()
                .matmul(w.clone().permute::<(usize, usize), Axes2<1, 0>>());
        }),
    );
    let z = x
        .clone()
        .matmul(w.clone().permute::<(usize, usize), Axes2<1, 0>>());
    show(
        "bias add (broadcast) (no tape)",
        time(reps, || {
            let _ = z.clone() + b.clone().broadcast_like::<(usize, usize), Axis<0>>(&shape);
        }),
    );
    show(
        "leakyrelu = lt + mul + choose (no tape)",
        time(reps, || {
            let _ = z.clone().prelu(0.01f32);
        }),
    );
    show(
        "leaky as maximum(z, s·z) (no tape)",
        time(reps, || {
            let _ = z.clone().maximum(z.clone() * 0.01f32);
        }),
    );
    let gz: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![1e-3; rows * n], shape);
    show(
        "leakyrelu (prelu) fwd + bwd, traced",
        time(reps, || {
            let y = z.clone().trace(Gradients::leaky()).prelu(0.01f32);
            let _ = (y * gz.clone()).sum::<(), Axes2<0, 1>>().backward();
        }),
    );
    show(
        "maximum(z, s·z) fwd + bwd, traced",
        time(reps, || {
            let zt = z.clone().trace(Gradients::leaky());
            let y = zt.retaped::<OwnedTape<f32, Cpu>>().maximum(zt * 0.01f32);
            let _ = (y * gz.clone()).sum::<(), Axes2<0, 1>>().backward();
        }),
    );
    show(
        "bias add (broadcast) fwd + bwd, traced",
        time(reps, || {
            let y = z.clone().trace(Gradients::leaky())
                + b.retaped::<OwnedTape<f32, Cpu>>()
                    .broadcast_like::<(usize, usize), Axis<0>>(&shape);
            let _ = (y * gz.clone()).sum::<(), Axes2<0, 1>>().backward();
        }),
    );
    // Full layer traced: forward + backward with the output gradient injected as Σ out ⊙ G.
    let gout: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![1e-3; rows * n], shape);
    let layer = |x: &Tensor<(usize, usize), f32, Cpu>| {
        let y = x.clone().trace(Gradients::leaky()).matmul(
            w.retaped::<OwnedTape<f32, Cpu>>()
                .permute::<(usize, usize), Axes2<1, 0>>(),
        ) + b
            .retaped::<OwnedTape<f32, Cpu>>()
            .broadcast_like::<(usize, usize), Axis<0>>(&shape);
        y.prelu(0.01f32)
    };
    show(
        "layer forward traced (matmul + bias + leakyrelu)",
        time(reps, || {
            let _ = layer(&x);
        }),
    );
    show(
        "layer forward + backward (incl. Σ out⊙G)",
        time(reps, || {
            let _ = (layer(&x) * gout.clone())
                .sum::<(), Axes2<0, 1>>()
                .backward();
        }),
    );
    show(
        "  of which the surrogate Σ out⊙G fwd+bwd alone",
        time(reps, || {
            let _ = (z.clone().trace(Gradients::leaky()) * gout.clone())
                .sum::<(), Axes2<0, 1>>()
                .backward();
        }),
    );
    show(
        "matmul fwd + bwd alone (3 GEMMs)",
        time(reps, || {
            let y = x.clone().trace(Gradients::leaky()).matmul(
                w.retaped::<OwnedTape<f32, Cpu>>()
                    .permute::<(usize, usize), Axes2<1, 0>>(),
            );
            let _ = (y * gout.clone()).sum::<(), Axes2<0, 1>>().backward();
        }),
    );
    println!();
}

fn main() {
    let mut reps = 5;
    let mut batches = vec![512, 2048, 6144];
    let mut only: Option<String> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--reps" => {
                reps = args[i + 1].parse().expect("--reps N");
                i += 1;
            }
            "--batches" => {
                batches = args[i + 1]
                    .split(',')
                    .map(|s| s.parse().expect("--batches B1,B2,…"))
                    .collect();
                i += 1;
            }
            "--only" => {
                only = Some(args[i + 1].clone());
                i += 1;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 1;
    }
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    println!("rayon threads: {}", rayon::current_num_threads());
    if run("gemm") {
        gemm_reference(reps);
    }
    if run("native") {
        step_timing(Backend::Native, &batches, reps);
    }
    #[cfg(feature = "dfdx")]
    {
        if run("dfdx") {
            step_timing(Backend::Dfdx, &batches, reps);
        }
        if run("dfdx-breakdown") {
            dfdx_breakdown(reps);
        }
    }
}
