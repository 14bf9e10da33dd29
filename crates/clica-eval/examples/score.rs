//! What R² and MCC can and cannot see: a rotated copy of the latents is affinely
//! identified (R² = 1) but not up to permutation (MCC < 1); a permuted, rescaled copy is both.
//!
//! `cargo run --release -p clica-eval --example score`

use clica_eval::evaluate;
use ndarray::{Array2, Axis};

fn main() -> Result<(), clica_core::Error> {
    // Deterministic, roughly uniform latents in [0, 1]^3 (a low-discrepancy sequence).
    let z = Array2::from_shape_fn((2000, 3), |(i, j)| {
        ((i as f64 + 0.5) * [0.618_034, 0.414_214, 0.732_051][j]).fract()
    });
    let (c, s) = (
        std::f64::consts::FRAC_PI_4.cos(),
        std::f64::consts::FRAC_PI_4.sin(),
    );
    let rotation = ndarray::arr2(&[[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
    let rotated = z.dot(&rotation);
    let mut permuted = z.select(Axis(1), &[2, 0, 1]);
    permuted.column_mut(0).mapv_inplace(|v| -3.0 * v + 1.0);
    for (name, h) in [("rotated", &rotated), ("permuted and rescaled", &permuted)] {
        let s = evaluate(z.view(), h.view())?;
        println!(
            "{name}: R² {:.4}, MCC {:.4}, assignment {:?}",
            s.r2, s.mcc_pearson, s.assignment
        );
    }
    Ok(())
}
