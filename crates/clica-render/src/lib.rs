//! A deterministic, pure-Rust renderer of the 3DIdent scene: ten latents in, one RGB image
//! out, the same bytes on every machine and thread count.
//!
//! The scene follows the reference's Blender files (see `docs/3dident.md`): the Utah teapot
//! (Newell's 32 Bézier patches, embedded) floating over a floor, seen by a fixed camera at
//! (8, 0, 8), lit by a coloured spotlight on a circle above it, a weak sun, a small area
//! light and a dim ambient term, with the spotlight's shadow. The ten latents, each raw in
//! [−1, 1], are the object's position x, y, z (× 3), its rotation α, β, γ (× π/2, Blender XYZ
//! Euler), the spotlight's angle θ on its circle (× π/2) and the hues of the object, the
//! spotlight and the floor (angle × π/2, hue = angle / 2π; [`HueMode`]).
//!
//! It is a generator in clica's sense ([`clica_core::Generator`]: latents to observations,
//! channel-first values in [0, 1]), and a batch renderer into caller buffers
//! ([`Renderer::render_batch`], HWC bytes; [`Renderer::render_batch_chw`], `f32`) that runs
//! on rayon's pool. Images are "3DIdent-like (clica-rendered)": a rasteriser with direct light,
//! not Blender's path tracer.
//!
//! # Example
//!
//! ```
//! use clica_render::{RenderConfig, Renderer};
//! use ndarray::Array2;
//!
//! let renderer = Renderer::new(&RenderConfig::new(32))?;
//! let mut latents = Array2::<f64>::zeros((2, 10));
//! latents[[1, 0]] = 0.5; // move the second teapot along x
//! let mut images = vec![0u8; 2 * renderer.image_len()];
//! renderer.render_batch(latents.view(), &mut images)?;
//! let (a, b) = images.split_at(renderer.image_len());
//! assert_ne!(a, b);
//!
//! // Bad input is an error, never a panic or a NaN image.
//! latents[[0, 3]] = f64::NAN;
//! assert!(renderer.render_batch(latents.view(), &mut images).is_err());
//! # Ok::<(), clica_render::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod color;
mod math;
mod render;
mod scene;
mod teapot;

pub use clica_core::{Error, Result};
pub use color::{hsv_to_rgb, HueMode};
pub use render::{
    RenderConfig, Renderer, DEFAULT_SIZE, DEFAULT_SUPERSAMPLE, MAX_SIZE, MAX_SUPERSAMPLE, MIN_SIZE,
};
pub use scene::{rescale, LATENT_NAMES, N_LATENTS};
