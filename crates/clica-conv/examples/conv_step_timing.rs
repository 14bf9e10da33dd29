//! Time of one training step of the default encoder (KITTI conv net) on random images:
//! forward + backward + Adam, median (and fastest) of `steps` after one warm-up step.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p clica-conv --example conv_step_timing -- [batch] [size] [steps] [kitti|resnet18|resnet18:w1,w2,w3,w4]
//! ```
use clica_conv::{ConvEncoder, ConvEncoderConfig, ResNetConfig, ResNetEncoder};
use clica_core::{RunSeed, TrainableEncoder};
use clica_optim::{Adam, AdamConfig};
use ndarray::Array2;
use rand::Rng;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let size: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let steps: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let arch = args.get(3).map_or("kitti", String::as_str);
    let (mut enc, macs): (Box<dyn TrainableEncoder>, usize) = match arch {
        "kitti" => {
            let cfg = ConvEncoderConfig::kitti([3, size, size], 10);
            let e = ConvEncoder::new(cfg, &mut RunSeed::new(0).stream("encoder"))?;
            let m = e.macs_per_image();
            (Box::new(e), m)
        }
        a if a.starts_with("resnet18") => {
            let mut cfg = ResNetConfig::resnet18([3, size, size], 10);
            // `resnet18:16,32,64,128` sets the stage widths.
            if let Some(w) = a.strip_prefix("resnet18:") {
                let w: Vec<usize> = w.split(',').map(str::parse).collect::<Result<_, _>>()?;
                cfg = cfg.with_widths(w.try_into().map_err(|_| "four widths")?);
            }
            let e = ResNetEncoder::new(cfg, &mut RunSeed::new(0).stream("encoder"))?;
            let m = e.macs_per_image();
            (Box::new(e), m)
        }
        other => {
            return Err(format!(
                "unknown architecture `{other}` (kitti, resnet18, resnet18:w1,w2,w3,w4)"
            )
            .into())
        }
    };
    let mut rng = RunSeed::new(0).stream("x");
    let x = Array2::from_shape_fn((batch, 3 * size * size), |_| rng.random_range(0.0..1.0f32));
    let g = Array2::from_shape_fn((batch, 10), |_| rng.random_range(-1e-3..1e-3f32));
    let mut adam = Adam::new(AdamConfig::default())?;
    let mut times = Vec::new();
    for s in 0..=steps {
        let t = Instant::now();
        enc.forward_train(x.view());
        let t_fwd = t.elapsed().as_secs_f64();
        enc.backward(g.view());
        adam.step(enc.as_mut(), 1e-4)?;
        if s > 0 {
            times.push((t.elapsed().as_secs_f64(), t_fwd));
        }
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (step, fwd) = times[times.len() / 2];
    let fastest = times[0].0;
    let gflop = 3.0 * 2.0 * macs as f64 * batch as f64 / 1e9;
    println!(
        "clica-conv {arch} {size}x{size}, batch {batch}, {} threads: step {:.1} ms (forward {:.1} ms; fastest step {:.1} ms), {:.1} GFLOP/step (3x forward), {:.0} GFLOP/s",
        rayon::current_num_threads(),
        step * 1e3,
        fwd * 1e3,
        fastest * 1e3,
        gflop,
        gflop / step
    );
    Ok(())
}
