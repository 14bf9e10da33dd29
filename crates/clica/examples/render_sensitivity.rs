//! How much of the image each latent moves: for `n` uniform random latent points, renders the
//! point and the point with one raw latent moved by `delta` (towards the inside of [−1, 1]),
//! and reports, per latent, the root-mean-square pixel change (in units of the full 0–255
//! range) and the fraction of pixels whose largest channel change exceeds 2/255, as the mean
//! over the points. The scale of the InfoNCE signal for a factor is of the order of how much
//! its conditional step (σ = 0.1 by default) changes the image; a factor that moves a handful
//! of pixels is one an encoder has to look hard for.
//!
//! Then a linear probe: `probe_n` more points (8,192 by default; 0 skips it), each image
//! averaged down to 16 × 16 × 3, an affine map from those 768 values to the latents fitted on
//! the first half and scored (R², per latent) on the second. A factor a linear read-out of
//! the pixels already finds is one a conv net picks up early; one it cannot is not.
//!
//! ```sh
//! cargo run --release -p clica --example render_sensitivity -- [n] [size] [delta] [supersample] [probe_n]
//! ```
use clica_core::RunSeed;
use clica_render::{RenderConfig, Renderer, LATENT_NAMES as NAMES, N_LATENTS};
use ndarray::Array2;
use rand::Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let n: usize = arg(0).map(str::parse).transpose()?.unwrap_or(256);
    let size: usize = arg(1).map(str::parse).transpose()?.unwrap_or(64);
    let delta: f64 = arg(2).map(str::parse).transpose()?.unwrap_or(0.1);
    let ss: usize = arg(3).map(str::parse).transpose()?.unwrap_or(2);
    let probe_n: usize = arg(4).map(str::parse).transpose()?.unwrap_or(8192);
    if n == 0 || !(delta > 0.0 && delta <= 1.0) {
        return Err(format!("need n ≥ 1 and 0 < delta ≤ 1; got n = {n}, delta = {delta}").into());
    }
    if size % 16 != 0 || (probe_n != 0 && probe_n < 2 * (PROBE_FEATURES + 2)) {
        return Err(format!(
            "need a size divisible by 16 and probe_n 0 or ≥ {}; got {size}, {probe_n}",
            2 * (PROBE_FEATURES + 2)
        )
        .into());
    }
    let renderer = Renderer::new(&RenderConfig::new(size).with_supersample(ss))?;
    let mut rng = RunSeed::new(0).stream("latents");
    let base = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let len = renderer.image_len();
    let mut ref_img = vec![0u8; n * len];
    renderer.render_batch(base.view(), &mut ref_img)?;
    // A second, independent point per row: the scale of the difference between negatives.
    let other = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let mut moved = vec![0u8; n * len];
    renderer.render_batch(other.view(), &mut moved)?;
    println!(
        "{n} points, {size}x{size} (supersample {ss}), raw step {delta}: per latent, RMS pixel change \
         (% of 255) and % of pixels changed by more than 2/255"
    );
    let (rms, frac) = compare(&ref_img, &moved, len);
    println!("{:<14} {rms:>7.3} {frac:>7.2}", "(another)");
    for i in 0..N_LATENTS {
        let mut z = base.clone();
        for mut row in z.rows_mut() {
            let v = row[i];
            row[i] = if v + delta <= 1.0 {
                v + delta
            } else {
                v - delta
            };
        }
        renderer.render_batch(z.view(), &mut moved)?;
        let (rms, frac) = compare(&ref_img, &moved, len);
        println!("{:<14} {rms:>7.3} {frac:>7.2}", NAMES[i]);
    }
    if probe_n > 0 {
        probe(&renderer, &mut rng, probe_n, size)?;
    }
    Ok(())
}

/// Values per image the probe reads: 16 × 16 × 3.
const PROBE_FEATURES: usize = 16 * 16 * 3;

/// The linear probe: held-out R² per latent of an affine map from 16 × 16 × 3 block means.
fn probe(
    renderer: &Renderer,
    rng: &mut impl Rng,
    n: usize,
    size: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let z = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let len = renderer.image_len();
    let mut images = vec![0u8; n * len];
    renderer.render_batch(z.view(), &mut images)?;
    let k = size / 16;
    let mut x = Array2::<f64>::zeros((n, PROBE_FEATURES));
    for (img, mut row) in images.chunks_exact(len).zip(x.rows_mut()) {
        for (p, px) in img.chunks_exact(3).enumerate() {
            let (r, c) = (p / size / k, p % size / k);
            for (ch, &v) in px.iter().enumerate() {
                row[(r * 16 + c) * 3 + ch] += f64::from(v) / (255.0 * (k * k) as f64);
            }
        }
    }
    let half = n / 2;
    let fit = clica_eval::AffineFit::fit(
        x.slice(ndarray::s![..half, ..]),
        z.slice(ndarray::s![..half, ..]),
    )?;
    let test = x.slice(ndarray::s![half.., ..]);
    let r2 = clica_eval::r2_per_column(z.slice(ndarray::s![half.., ..]), fit.predict(test).view())?;
    println!(
        "linear probe, {n} images at 16x16x3 block means, fit on {half}, held-out R² per latent:"
    );
    for (name, v) in NAMES.iter().zip(&r2) {
        println!("{name:<14} {v:>7.3}");
    }
    Ok(())
}

/// Mean over images of the RMS difference (% of 255) and of the % of pixels whose largest
/// channel difference exceeds 2.
fn compare(a: &[u8], b: &[u8], len: usize) -> (f64, f64) {
    let n = a.len() / len;
    let (mut rms, mut frac) = (0.0, 0.0);
    for (ia, ib) in a.chunks_exact(len).zip(b.chunks_exact(len)) {
        let mut sq = 0.0;
        let mut changed = 0usize;
        for (pa, pb) in ia.chunks_exact(3).zip(ib.chunks_exact(3)) {
            let mut worst = 0i32;
            for (&x, &y) in pa.iter().zip(pb) {
                let d = i32::from(x) - i32::from(y);
                sq += f64::from(d * d);
                worst = worst.max(d.abs());
            }
            changed += usize::from(worst > 2);
        }
        rms += (sq / len as f64).sqrt() / 255.0 * 100.0;
        frac += changed as f64 / (len / 3) as f64 * 100.0;
    }
    (rms / n as f64, frac / n as f64)
}
