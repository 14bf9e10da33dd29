//! Writes a grid of renders, one row per latent swept across [−1, 1] with the others fixed
//! at 0, as a PNG: what each factor does.
//!
//! ```sh
//! cargo run --release -p clica-render --example sweep -- docs/figures/render-sweep.png [size] [columns]
//! ```
use clica_render::{RenderConfig, Renderer, N_LATENTS};
use ndarray::Array2;
use std::io::BufWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .map(String::as_str)
        .unwrap_or("render-sweep.png");
    let size: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let cols: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(9);
    let renderer = Renderer::new(&RenderConfig::new(size))?;
    let mut latents = Array2::<f64>::zeros((N_LATENTS * cols, N_LATENTS));
    for k in 0..N_LATENTS {
        for c in 0..cols {
            latents[[k * cols + c, k]] = -1.0 + 2.0 * c as f64 / (cols - 1) as f64;
        }
    }
    let mut images = vec![0u8; latents.nrows() * renderer.image_len()];
    renderer.render_batch(latents.view(), &mut images)?;
    let gap = 2;
    let (w, h) = (cols * (size + gap) - gap, N_LATENTS * (size + gap) - gap);
    let mut grid = vec![255u8; w * h * 3];
    for k in 0..N_LATENTS {
        for c in 0..cols {
            let img = &images[(k * cols + c) * renderer.image_len()..][..renderer.image_len()];
            for y in 0..size {
                let row = (k * (size + gap) + y) * w + c * (size + gap);
                grid[row * 3..(row + size) * 3]
                    .copy_from_slice(&img[y * size * 3..(y + 1) * size * 3]);
            }
        }
    }
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&grid)?;
    eprintln!(
        "wrote {path} ({w} × {h}): rows {:?}",
        clica_render::LATENT_NAMES
    );
    Ok(())
}
