//! Any `TrainableEncoder` with `clica_optim::Adam`: fit the MLP to a known map by MSE.
//!
//! `cargo run --release -p clica-encoders --example fit`

use clica_core::{RunSeed, TrainableEncoder};
use clica_encoders::{EncoderConfig, MlpEncoder, Normalization};
use clica_optim::{Adam, AdamConfig};
use ndarray::Array2;

fn main() -> Result<(), clica_core::Error> {
    let seed = RunSeed::new(3);
    let cfg = EncoderConfig::paper(2)
        .with_hidden(vec![32, 32])
        .with_normalization(Normalization::None);
    let mut f = MlpEncoder::new(cfg, &mut seed.stream("encoder"))?;
    let mut adam = Adam::new(AdamConfig::default())?;
    let x = Array2::from_shape_fn((256, 2), |(i, j)| ((i * (j + 3)) % 17) as f32 / 8.5 - 1.0);
    let target = x.mapv(|v| v.sin()); // the map to learn, coordinate-wise
    for step in 1..=2000 {
        let h = TrainableEncoder::forward_train(&mut f, x.view());
        let grad = (&h - &target) * (2.0 / h.len() as f32); // d mean((h − y)²) / dh
        let mse = (&h - &target).mapv(|d| d * d).mean().unwrap_or(f32::NAN);
        TrainableEncoder::backward(&mut f, grad.view());
        adam.step(&mut f, 3e-3)?;
        if step % 500 == 0 {
            println!("step {step}: mse {mse:.2e}");
        }
    }
    Ok(())
}
