//! Times the kernels (f32, d = 10) at B = 512, 2048 and 6144 on the current rayon pool.
//!
//! `cargo run --release -p clica-objectives --example timing [B ...]` (set
//! `RAYON_NUM_THREADS` to change the pool, `TIMING_REPS` the number of timed runs and
//! `TIMING_ONLY` to time only the losses whose name starts with it). For `loss_and_grad` and `loss` it prints the minimum wall-clock time of
//! several runs and, on Linux, the CPU time per call summed over all threads (from
//! `/proc/self/task/*/schedstat`), which other processes competing for the cores inflate less.

use clica_core::RunSeed;
use clica_objectives::{
    AlignUniform, ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce, Symmetric,
};
use ndarray::Array2;
use rand::Rng;
use std::time::Instant;

/// CPU time of this process in nanoseconds (all threads), if readable.
fn cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// (minimum wall ms, CPU ms per call).
fn time_ms(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    let c0 = cpu_ns();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = match (c0, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e6 / reps as f64,
        _ => f64::NAN,
    };
    (best, cpu)
}

fn main() {
    let d = 10;
    let losses: Vec<Box<dyn ContrastiveLoss<f32>>> = vec![
        Box::new(SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap()),
        Box::new(LpInfoNce::new(1, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        Box::new(LpInfoNce::new(2, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        Box::new(LpInfoNce::new(3, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        Box::new(AlignUniform::default()),
        // The fast protocol's loss: both directions, run side by side.
        Box::new(Symmetric::new(
            SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap(),
        )),
    ];
    println!(
        "rayon threads: {}, d = {d}, f32; ms: min wall (CPU per call) of loss_and_grad | loss",
        rayon::current_num_threads()
    );
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("batch sizes are integers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![512, 2048, 6144]
    } else {
        sizes
    };
    let reps_env: Option<usize> = std::env::var("TIMING_REPS")
        .ok()
        .and_then(|v| v.parse().ok());
    for b in sizes {
        let mut rng = RunSeed::new(1).stream("timing");
        let h = Array2::from_shape_fn((b, d), |_| rng.random::<f32>() * 2.0 - 1.0);
        let ht = &h + &Array2::from_shape_fn((b, d), |_| rng.random::<f32>() * 0.2 - 0.1);
        let (mut g, mut gt) = (Array2::zeros((b, d)), Array2::zeros((b, d)));
        let reps = reps_env.unwrap_or(if b >= 6144 { 7 } else { 21 });
        let only = std::env::var("TIMING_ONLY").unwrap_or_default();
        for loss in losses.iter().filter(|l| l.name().starts_with(&only)) {
            let (both, both_cpu) = time_ms(reps, || {
                loss.loss_and_grad(h.view(), ht.view(), g.view_mut(), gt.view_mut());
            });
            let (fwd, fwd_cpu) = time_ms(reps, || {
                loss.loss(h.view(), ht.view());
            });
            println!(
                "B = {b:5}  {:48} {both:8.2} ({both_cpu:8.2}) | {fwd:7.2} ({fwd_cpu:7.2})",
                loss.name()
            );
        }
    }
}
