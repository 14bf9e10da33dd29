//! Rendered image data sets on disk, in the reference's 3DIdent layout:
//! `DIR/images/{i}.png` (i zero-padded to ⌈log₁₀ N⌉ digits), `DIR/raw_latents.npy`
//! (N × 10, the latents as drawn), `DIR/latents.npy` (rescaled as for rendering).

use crate::npy;
use crate::{Error, Result};
use clica_render::Renderer;
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Digits of the image file names for a set of `n` images: ⌈log₁₀ n⌉, at least 1.
pub fn name_digits(n: usize) -> usize {
    let mut digits = 0;
    let mut cap = 1usize;
    while cap < n {
        cap = cap.saturating_mul(10);
        digits += 1;
    }
    digits.max(1)
}

/// The path of image `i` of `n` under `root`.
pub fn image_path(root: &Path, i: usize, n: usize) -> PathBuf {
    root.join("images")
        .join(format!("{i:0width$}.png", width = name_digits(n)))
}

/// Encodes `rgb` (`side × side × 3` bytes, rows top to bottom) as an 8-bit RGB PNG.
pub fn encode_png(rgb: &[u8], side: usize) -> Result<Vec<u8>> {
    if rgb.len() != 3 * side * side {
        return Err(Error::Data(format!(
            "an RGB image of side {side} has {} bytes, got {}",
            3 * side * side,
            rgb.len()
        )));
    }
    let png_err = |e: png::EncodingError| Error::Data(format!("PNG encoding failed: {e}"));
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, side as u32, side as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        enc.write_header()
            .map_err(png_err)?
            .write_image_data(rgb)
            .map_err(png_err)?;
    }
    Ok(bytes)
}

/// Decodes a PNG file into `(width, height, RGB bytes)`; 8-bit RGB, RGBA and grey images are
/// converted to RGB.
pub fn read_png(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::Data(format!("{}: {what}: {e}", path.display()))
    };
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| bad("not a PNG image", &e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG too large", &"size overflow"))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad("corrupt PNG", &e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let px = &buf[..info.buffer_size()];
    let rgb = match info.color_type {
        png::ColorType::Rgb => px.to_vec(),
        png::ColorType::Rgba => px
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => px
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => return Err(bad("unsupported PNG colour type", &format!("{other:?}"))),
    };
    Ok((w, h, rgb))
}

/// Renders the rows of `raw` (N × 10 raw latents) into `root` in the reference's layout,
/// `chunk` images at a time (rendered and encoded in parallel), calling `progress(done, n)`
/// after each chunk. Writes `raw_latents.npy` and `latents.npy` first.
pub fn write_dataset(
    renderer: &Renderer,
    raw: ArrayView2<'_, f64>,
    root: &Path,
    chunk: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let n = raw.nrows();
    let dir = root.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let npy_err = |e: npy::NpyError| Error::Data(e.to_string());
    npy::write_f64_2d(root.join("raw_latents.npy"), raw).map_err(npy_err)?;
    let mut rescaled = raw.to_owned();
    for mut row in rescaled.rows_mut() {
        let r = clica_render::rescale(row.as_slice().expect("owned rows are contiguous"));
        row.assign(&ndarray::ArrayView1::from(&r));
    }
    npy::write_f64_2d(root.join("latents.npy"), rescaled.view()).map_err(npy_err)?;
    let len = renderer.image_len();
    let side = renderer.size();
    let mut pixels = vec![0u8; chunk.max(1) * len];
    let mut start = 0;
    while start < n {
        let end = (start + chunk.max(1)).min(n);
        let buf = &mut pixels[..(end - start) * len];
        renderer.render_batch(
            raw.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end)),
            buf,
        )?;
        buf.par_chunks(len)
            .enumerate()
            .try_for_each(|(k, img)| -> Result<()> {
                let path = image_path(root, start + k, n);
                let bytes = encode_png(img, side)?;
                let io = |e| Error::io(&path, e);
                let mut f = BufWriter::new(std::fs::File::create(&path).map_err(io)?);
                std::io::Write::write_all(&mut f, &bytes).map_err(io)?;
                std::io::Write::flush(&mut f).map_err(io)?;
                Ok(())
            })?;
        start = end;
        progress(start, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_the_ceiling_of_log10() {
        for (n, d) in [
            (1, 1),
            (9, 1),
            (10, 1),
            (11, 2),
            (100, 2),
            (101, 3),
            (250_000, 6),
            (1_000_000, 6),
        ] {
            assert_eq!(name_digits(n), d, "n = {n}");
        }
        assert_eq!(
            image_path(Path::new("r"), 7, 250_000),
            Path::new("r/images/000007.png")
        );
    }
}
