//! The rasteriser: a z-buffered G-buffer pass over the teapot, an analytic floor, a shadow
//! map from the spotlight, deferred shading, box-filtered supersampling and a tone curve.

use crate::color::HueMode;
use crate::math::{smoothstep, Vec3};
use crate::scene::{self, SceneParams, N_LATENTS};
use crate::teapot::{self, Mesh};
use clica_core::{Error, Fingerprint, Generator, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Default image side, in pixels.
pub const DEFAULT_SIZE: usize = 64;
/// Largest image side.
pub const MAX_SIZE: usize = 224;
/// Smallest image side.
pub const MIN_SIZE: usize = 8;
/// Default supersampling factor per axis (2: four samples per pixel, box-filtered).
pub const DEFAULT_SUPERSAMPLE: usize = 2;
/// Largest supersampling factor.
pub const MAX_SUPERSAMPLE: usize = 4;

// Light intensities (linear units; the spotlight's is its irradiance at unit distance).
const SPOT_INTENSITY: f32 = 90.0;
const SUN_INTENSITY: f32 = 0.08;
const AREA_INTENSITY: f32 = 3.0;
const AMBIENT: f32 = 0.03;
const SPECULAR: f32 = 0.12;
/// Blinn–Phong exponent of the weak specular term (a power of two: computed by squaring).
const SHININESS_LOG2: u32 = 4;
/// Shadow-map lookups move the point this far along its normal, and compare with this bias.
const SHADOW_NORMAL_OFFSET: f32 = 0.04;
const SHADOW_BIAS: f32 = 0.03;
/// The shadow map covers the spotlight's cone plus this margin (in tan of the half-angle).
const SHADOW_TAN_MARGIN: f32 = 0.03;
const NEAR: f32 = 0.1;
/// Entries of the tone curve's lookup table over linear [0, 1].
const LUT_LEN: usize = 4096;
/// Display gamma of the tone curve.
const GAMMA: f32 = 2.2;

/// What [`Renderer::new`] builds: the image size, the supersampling, the tessellation and
/// the hue convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderConfig {
    /// Image side in pixels (square images), [`MIN_SIZE`]..=[`MAX_SIZE`].
    pub size: usize,
    /// Samples per pixel along each axis, 1..=[`MAX_SUPERSAMPLE`].
    pub supersample: usize,
    /// Quads per Bézier patch along each axis; `None` picks one from the image size.
    pub tessellation: Option<usize>,
    /// Side of the spotlight's shadow map; `None` picks one from the image size.
    pub shadow_map: Option<usize>,
    /// How hues outside [0, 1) become colours.
    pub hue: HueMode,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig::new(DEFAULT_SIZE)
    }
}

impl RenderConfig {
    /// Defaults for a `size × size` image.
    pub fn new(size: usize) -> Self {
        RenderConfig {
            size,
            supersample: DEFAULT_SUPERSAMPLE,
            tessellation: None,
            shadow_map: None,
            hue: HueMode::Wrapped,
        }
    }
    /// Sets the supersampling factor.
    pub fn with_supersample(mut self, s: usize) -> Self {
        self.supersample = s;
        self
    }
    /// Sets the tessellation level.
    pub fn with_tessellation(mut self, level: usize) -> Self {
        self.tessellation = Some(level);
        self
    }
    /// Sets the hue convention.
    pub fn with_hue(mut self, hue: HueMode) -> Self {
        self.hue = hue;
        self
    }
    /// Sets the shadow map's side.
    pub fn with_shadow_map(mut self, side: usize) -> Self {
        self.shadow_map = Some(side);
        self
    }
}

/// A per-sample floor point seen by the camera (the camera is fixed, so these are computed once).
#[derive(Debug, Clone, Copy)]
struct FloorSample {
    pos: Vec3,
    /// The irradiance that does not depend on the latents: ambient, sun and area light.
    fixed: f32,
}

/// The scene renderer: ten raw latents in, one RGB image out. Built once, then shared by
/// reference across threads; every image is rendered by one thread from its latents alone,
/// so the bytes do not depend on the thread count or the machine.
#[derive(Debug, Clone)]
pub struct Renderer {
    config: RenderConfig,
    /// Internal (supersampled) side.
    side: usize,
    mesh: Mesh,
    floor: Vec<FloorSample>,
    /// The floor at the output pixels' centres (for pixels the object does not touch).
    floor_pixels: Vec<FloorSample>,
    shadow_side: usize,
    lut: Vec<u8>,
    cam_right: Vec3,
    cam_up: Vec3,
    cam_fwd: Vec3,
}

/// Per-thread working memory.
#[derive(Debug, Default)]
struct Scratch {
    world: Vec<Vec3>,
    normals: Vec<Vec3>,
    /// Camera screen x, y and 1/depth per vertex (NaN x for vertices behind the near plane).
    screen: Vec<[f32; 3]>,
    depth: Vec<f32>,
    tri: Vec<u32>,
    bary: Vec<[f32; 2]>,
    shadow: Vec<f32>,
    light_screen: Vec<[f32; 3]>,
    accum: Vec<Vec3>,
}

const NO_TRI: u32 = u32::MAX;

/// The camera's orthonormal frame looking from `eye` along `fwd`, `hint` giving "up".
fn frame(fwd: Vec3, hint: Vec3) -> (Vec3, Vec3) {
    let right = fwd.cross(hint).normalized();
    let up = right.cross(fwd);
    (right, up)
}

impl Renderer {
    /// Validates `config` and precomputes the mesh, the floor and the tone curve.
    pub fn new(config: &RenderConfig) -> Result<Self> {
        if !(MIN_SIZE..=MAX_SIZE).contains(&config.size) {
            return Err(Error::param(
                "size",
                format!(
                    "must be in {MIN_SIZE}..={MAX_SIZE} pixels, got {}",
                    config.size
                ),
            ));
        }
        if !(1..=MAX_SUPERSAMPLE).contains(&config.supersample) {
            return Err(Error::param(
                "supersample",
                format!(
                    "must be in 1..={MAX_SUPERSAMPLE}, got {}",
                    config.supersample
                ),
            ));
        }
        let side = config.size * config.supersample;
        let level = match config.tessellation {
            Some(l) if !(1..=32).contains(&l) => {
                return Err(Error::param(
                    "tessellation",
                    format!("must be in 1..=32, got {l}"),
                ))
            }
            Some(l) => l,
            // Silhouette error (the sagitta of a patch's segments) about 0.2 output pixels:
            // 4 at 64 × 64, 6 at 128, 8 at 224.
            None => ((config.size as f64 / 4.0).sqrt().ceil() as usize).clamp(3, 16),
        };
        let shadow_side = match config.shadow_map {
            Some(s) if !(16..=2048).contains(&s) => {
                return Err(Error::param(
                    "shadow_map",
                    format!("must be in 16..=2048, got {s}"),
                ))
            }
            Some(s) => s,
            None => config.size.clamp(64, 256),
        };
        let cam_fwd = (Vec3::default() - scene::CAMERA).normalized();
        let (cam_right, cam_up) = frame(cam_fwd, Vec3::new(0.0, 0.0, 1.0));
        let t = scene::TAN_HALF_FOV;
        let floor_grid = |n: usize| -> Vec<FloorSample> {
            let mut floor = Vec::with_capacity(n * n);
            for py in 0..n {
                for px in 0..n {
                    let sx = (2.0 * (px as f32 + 0.5) / n as f32 - 1.0) * t;
                    let sy = (1.0 - 2.0 * (py as f32 + 0.5) / n as f32) * t;
                    let dir = cam_fwd + cam_right * sx + cam_up * sy;
                    // dir.z < 0 for every pixel: the whole frame looks down onto the floor.
                    let s = (scene::FLOOR_Z - scene::CAMERA.z) / dir.z;
                    let pos = scene::CAMERA + dir * s;
                    floor.push(FloorSample {
                        pos,
                        fixed: fixed_irradiance(pos, Vec3::new(0.0, 0.0, 1.0)),
                    });
                }
            }
            floor
        };
        let floor = floor_grid(side);
        let floor_pixels = floor_grid(config.size);
        let lut = (0..LUT_LEN)
            .map(|i| {
                let v = i as f32 / (LUT_LEN - 1) as f32;
                (libm::powf(v, 1.0 / GAMMA) * 255.0 + 0.5) as u8
            })
            .collect();
        Ok(Renderer {
            config: *config,
            side,
            mesh: teapot::mesh(level),
            floor,
            floor_pixels,
            shadow_side,
            lut,
            cam_right,
            cam_up,
            cam_fwd,
        })
    }

    /// The configuration this renderer was built from.
    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    /// Image side in pixels.
    pub fn size(&self) -> usize {
        self.config.size
    }

    /// Bytes of one image: `3 × size × size` (rows top to bottom, RGB interleaved).
    pub fn image_len(&self) -> usize {
        3 * self.config.size * self.config.size
    }

    /// Number of triangles in the teapot mesh.
    pub fn triangles(&self) -> usize {
        self.mesh.triangles.len()
    }

    /// Renders one image from its ten raw latents into `out` (`image_len()` bytes, HWC RGB).
    pub fn render(&self, raw: &[f64], out: &mut [u8]) -> Result<()> {
        if out.len() != self.image_len() {
            return Err(Error::Shape(format!(
                "output buffer holds {} bytes, one image needs {}",
                out.len(),
                self.image_len()
            )));
        }
        let scene = SceneParams::from_raw(raw, self.config.hue)?;
        let mut scratch = Scratch::default();
        self.render_scene(&scene, &mut scratch, out, None);
        Ok(())
    }

    /// As [`Renderer::render`], and writes the object's coverage of every pixel into
    /// `coverage` (`size × size` values: the share of the pixel's samples that hit the
    /// teapot, 0 for floor only, 1 for object only): a segmentation mask.
    pub fn render_with_coverage(
        &self,
        raw: &[f64],
        out: &mut [u8],
        coverage: &mut [f32],
    ) -> Result<()> {
        let pixels = self.config.size * self.config.size;
        if out.len() != self.image_len() || coverage.len() != pixels {
            return Err(Error::Shape(format!(
                "buffers hold {} bytes and {} coverage values, one image needs {} and {pixels}",
                out.len(),
                coverage.len(),
                self.image_len()
            )));
        }
        let scene = SceneParams::from_raw(raw, self.config.hue)?;
        let mut scratch = Scratch::default();
        self.render_scene(&scene, &mut scratch, out, Some(coverage));
        Ok(())
    }

    /// Renders a batch (rows of `raw` are latent vectors) into `out`, `image_len()` bytes per
    /// row, in parallel on rayon's pool. Every latent is checked before anything is drawn.
    pub fn render_batch(&self, raw: ArrayView2<'_, f64>, out: &mut [u8]) -> Result<()> {
        let (scenes, len) = self.batch(raw, out.len(), "bytes")?;
        out.par_chunks_mut(len)
            .zip(scenes.par_iter())
            .for_each_init(Scratch::default, |scratch, (img, scene)| {
                self.render_scene(scene, scratch, img, None)
            });
        Ok(())
    }

    /// Renders a batch into `f32` values in [0, 1], channel-first (`3 × size × size` per row:
    /// all red, then green, then blue), the layout encoders read.
    pub fn render_batch_chw(&self, raw: ArrayView2<'_, f64>, out: &mut [f32]) -> Result<()> {
        let (scenes, len) = self.batch(raw, out.len(), "values")?;
        let plane = len / 3;
        out.par_chunks_mut(len)
            .zip(scenes.par_iter())
            .for_each_init(
                || (Scratch::default(), vec![0u8; len]),
                |(scratch, bytes), (img, scene)| {
                    self.render_scene(scene, scratch, bytes, None);
                    for (p, rgb) in bytes.chunks_exact(3).enumerate() {
                        for c in 0..3 {
                            img[c * plane + p] = f32::from(rgb[c]) / 255.0;
                        }
                    }
                },
            );
        Ok(())
    }

    /// The checked scenes of a batch and the length of one image, after checking that the
    /// output buffer (`out_len` entries of `unit`) holds the whole batch.
    fn batch(
        &self,
        raw: ArrayView2<'_, f64>,
        out_len: usize,
        unit: &str,
    ) -> Result<(Vec<SceneParams>, usize)> {
        let scenes = self.scenes(raw)?;
        let len = self.image_len();
        if out_len != scenes.len() * len {
            return Err(Error::Shape(format!(
                "output buffer holds {out_len} {unit}, {} images need {}",
                scenes.len(),
                scenes.len() * len
            )));
        }
        Ok((scenes, len))
    }

    fn scenes(&self, raw: ArrayView2<'_, f64>) -> Result<Vec<SceneParams>> {
        if raw.ncols() != N_LATENTS {
            return Err(Error::Shape(format!(
                "latents must have {N_LATENTS} columns, got {}",
                raw.ncols()
            )));
        }
        raw.rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let row: Vec<f64> = row.to_vec();
                SceneParams::from_raw(&row, self.config.hue).map_err(|e| match e {
                    Error::NonFinite { what, col, .. } => Error::NonFinite { what, row: i, col },
                    other => other,
                })
            })
            .collect()
    }

    fn render_scene(
        &self,
        s: &SceneParams,
        scratch: &mut Scratch,
        out: &mut [u8],
        coverage: Option<&mut [f32]>,
    ) {
        let side = self.side;
        let n_samples = side * side;
        let mesh = &self.mesh;
        assert_eq!(out.len(), self.image_len(), "image buffer length");

        // Vertices to world space.
        scratch.world.clear();
        scratch.normals.clear();
        for (p, n) in mesh.positions.iter().zip(&mesh.normals) {
            scratch.world.push(s.rotation.mul_vec(*p) + s.centre);
            scratch.normals.push(s.rotation.mul_vec(*n));
        }

        // Camera pass: depth (1/z), triangle id and screen barycentrics per sample.
        project(
            &scratch.world,
            scene::CAMERA,
            self.cam_right,
            self.cam_up,
            self.cam_fwd,
            scene::TAN_HALF_FOV,
            side,
            &mut scratch.screen,
        );
        scratch.depth.clear();
        scratch.depth.resize(n_samples, 0.0);
        scratch.tri.clear();
        scratch.tri.resize(n_samples, NO_TRI);
        scratch.bary.clear();
        scratch.bary.resize(n_samples, [0.0; 2]);
        for (t, tri) in mesh.triangles.iter().enumerate() {
            let v = [
                scratch.screen[tri[0] as usize],
                scratch.screen[tri[1] as usize],
                scratch.screen[tri[2] as usize],
            ];
            raster(v, side, |i, l1, l2, iz| {
                if iz > scratch.depth[i] {
                    scratch.depth[i] = iz;
                    scratch.tri[i] = t as u32;
                    scratch.bary[i] = [l1, l2];
                }
            });
        }

        // Spotlight: aimed at the object; shadow map over its cone.
        let spot_dir = (s.centre - s.spot).normalized();
        // spot_dir.z < 0 always (the light is above every reachable centre), so x is a valid hint.
        let (l_right, l_up) = frame(spot_dir, Vec3::new(1.0, 0.0, 0.0));
        let cos_half = libm::cosf((scene::SPOT_CONE_DEG * 0.5).to_radians());
        let spot_smooth = (1.0 - cos_half) * scene::SPOT_BLEND;
        let l_tan = libm::tanf((scene::SPOT_CONE_DEG * 0.5).to_radians()) + SHADOW_TAN_MARGIN;
        let ss = self.shadow_side;
        project(
            &scratch.world,
            s.spot,
            l_right,
            l_up,
            spot_dir,
            l_tan,
            ss,
            &mut scratch.light_screen,
        );
        scratch.shadow.clear();
        scratch.shadow.resize(ss * ss, 0.0);
        for tri in &mesh.triangles {
            let v = [
                scratch.light_screen[tri[0] as usize],
                scratch.light_screen[tri[1] as usize],
                scratch.light_screen[tri[2] as usize],
            ];
            raster(v, ss, |i, _, _, iz| {
                if iz > scratch.shadow[i] {
                    scratch.shadow[i] = iz;
                }
            });
        }
        let shadow = &scratch.shadow;
        let lit = |p: Vec3, n: Vec3| -> f32 {
            let q = p + n * SHADOW_NORMAL_OFFSET - s.spot;
            let z = q.dot(spot_dir);
            if z <= NEAR {
                return 1.0;
            }
            let fx = (q.dot(l_right) / (z * l_tan) + 1.0) * 0.5 * ss as f32 - 0.5;
            let fy = (1.0 - q.dot(l_up) / (z * l_tan)) * 0.5 * ss as f32 - 0.5;
            let (x0, y0) = (floor(fx), floor(fy));
            let (ax, ay) = (fx - x0, fy - y0);
            // Occluded where the nearest surface is nearer than this point (less the bias):
            // 1/z_surface > 1/(z − bias); empty texels hold 0.
            let inv_depth = 1.0 / (z - SHADOW_BIAS).max(NEAR);
            let lit_texel = |i: usize| if shadow[i] > inv_depth { 0.0 } else { 1.0 };
            let (t00, t10, t01, t11) =
                if x0 >= 0.0 && y0 >= 0.0 && x0 + 1.0 < ss as f32 && y0 + 1.0 < ss as f32 {
                    // The whole 2 × 2 footprint inside the map (the common case).
                    let i = y0 as usize * ss + x0 as usize;
                    (
                        lit_texel(i),
                        lit_texel(i + 1),
                        lit_texel(i + ss),
                        lit_texel(i + ss + 1),
                    )
                } else {
                    let tap = |x: f32, y: f32| -> f32 {
                        if x < 0.0 || y < 0.0 || x >= ss as f32 || y >= ss as f32 {
                            1.0
                        } else {
                            lit_texel(y as usize * ss + x as usize)
                        }
                    };
                    (
                        tap(x0, y0),
                        tap(x0 + 1.0, y0),
                        tap(x0, y0 + 1.0),
                        tap(x0 + 1.0, y0 + 1.0),
                    )
                };
            let top = t00 * (1.0 - ax) + t10 * ax;
            let bottom = t01 * (1.0 - ax) + t11 * ax;
            top * (1.0 - ay) + bottom * ay
        };

        let [obj_col, spot_col, bg_col] = s.colours;
        let shade = |p: Vec3, n: Vec3, view: Vec3, albedo: Vec3, specular: f32| -> Vec3 {
            let mut diffuse = Vec3::default();
            let mut spec = Vec3::default();
            // Spotlight.
            let lv = s.spot - p;
            let d2 = lv.dot(lv);
            let l = lv * (1.0 / d2.sqrt());
            let mask = smoothstep(spot_smooth, -l.dot(spot_dir) - cos_half);
            let ndl = n.dot(l);
            if mask > 0.0 && ndl > 0.0 {
                let e = SPOT_INTENSITY * mask * lit(p, n) / d2;
                if e > 0.0 {
                    diffuse = diffuse + spot_col * (e * ndl);
                    if specular > 0.0 {
                        let h = (l + view).normalized();
                        let mut c = n.dot(h).max(0.0);
                        for _ in 0..SHININESS_LOG2 {
                            c *= c;
                        }
                        spec = spec + spot_col * (e * specular * c);
                    }
                }
            }
            let white = fixed_irradiance(p, n);
            diffuse = diffuse + Vec3::new(white, white, white);
            albedo.scale3(diffuse) + spec
        };
        let cos_half2 = cos_half * cos_half;
        let floor_n = Vec3::new(0.0, 0.0, 1.0);
        let shade_floor = |fs: &FloorSample| -> Vec3 {
            let lv = s.spot - fs.pos;
            let proj = -lv.dot(spot_dir);
            let d2 = lv.dot(lv);
            let mut e = 0.0;
            // Inside the cone (cos > cos_half), tested without a square root first.
            if proj > 0.0 && proj * proj > cos_half2 * d2 && lv.z > 0.0 {
                let inv_d = 1.0 / d2.sqrt();
                let mask = smoothstep(spot_smooth, proj * inv_d - cos_half);
                e = SPOT_INTENSITY * mask * lit(fs.pos, floor_n) * inv_d * inv_d * (lv.z * inv_d);
            }
            let w = fs.fixed;
            bg_col.scale3(spot_col * e + Vec3::new(w, w, w))
        };

        // Shading, box-filtered into the output's pixels. A pixel the object does not touch
        // is floor only, smooth at the pixel's scale: shaded once at its centre.
        let size = self.config.size;
        let f = self.config.supersample;
        scratch.accum.clear();
        scratch.accum.resize(size * size, Vec3::default());
        let weight = (f * f) as f32;
        for oy in 0..size {
            for ox in 0..size {
                let o = oy * size + ox;
                let touched = (0..f).any(|dy| {
                    let row = (oy * f + dy) * side + ox * f;
                    scratch.tri[row..row + f].iter().any(|&t| t != NO_TRI)
                });
                if !touched {
                    scratch.accum[o] = shade_floor(&self.floor_pixels[o]) * weight;
                    continue;
                }
                let mut acc = Vec3::default();
                for dy in 0..f {
                    for dx in 0..f {
                        let i = (oy * f + dy) * side + ox * f + dx;
                        let t = scratch.tri[i];
                        acc = acc
                            + if t == NO_TRI {
                                shade_floor(&self.floor[i])
                            } else {
                                let tri = mesh.triangles[t as usize];
                                let [l1, l2] = scratch.bary[i];
                                let l0 = 1.0 - l1 - l2;
                                let (a, b, c) = (tri[0] as usize, tri[1] as usize, tri[2] as usize);
                                // Perspective-correct weights.
                                let w = [
                                    l0 * scratch.screen[a][2],
                                    l1 * scratch.screen[b][2],
                                    l2 * scratch.screen[c][2],
                                ];
                                let inv = 1.0 / (w[0] + w[1] + w[2]);
                                let p = (scratch.world[a] * w[0]
                                    + scratch.world[b] * w[1]
                                    + scratch.world[c] * w[2])
                                    * inv;
                                let mut n = (scratch.normals[a] * w[0]
                                    + scratch.normals[b] * w[1]
                                    + scratch.normals[c] * w[2])
                                    .normalized();
                                let view = (scene::CAMERA - p).normalized();
                                if n.dot(view) < 0.0 {
                                    n = -n;
                                }
                                shade(p, n, view, obj_col, SPECULAR)
                            };
                    }
                }
                scratch.accum[o] = acc;
            }
        }
        if let Some(cov) = coverage {
            for (o, c) in cov.iter_mut().enumerate() {
                let (oy, ox) = (o / size, o % size);
                let hits = (0..f)
                    .map(|dy| {
                        let row = (oy * f + dy) * side + ox * f;
                        scratch.tri[row..row + f]
                            .iter()
                            .filter(|&&t| t != NO_TRI)
                            .count()
                    })
                    .sum::<usize>();
                *c = hits as f32 / weight;
            }
        }
        let norm = 1.0 / (f * f) as f32;
        let scale = (LUT_LEN - 1) as f32;
        for (px, acc) in out.chunks_exact_mut(3).zip(&scratch.accum) {
            for (o, v) in px.iter_mut().zip([acc.x, acc.y, acc.z]) {
                // v · 4095 + 0.5 lies in [0.5, 4095.5]: its truncation indexes the table (the
                // `min` only keeps the bounds check out of the loop).
                let v = (v * norm).clamp(0.0, 1.0);
                *o = self.lut[((v * scale + 0.5) as u32 as usize).min(LUT_LEN - 1)];
            }
        }
    }
}

/// The irradiance of the fixed lights at `p` with normal `n`: ambient, the sun straight
/// down, the small area light above the scene (as a point).
fn fixed_irradiance(p: Vec3, n: Vec3) -> f32 {
    let sun = n.z.max(0.0) * SUN_INTENSITY;
    let av = scene::AREA_LIGHT - p;
    let a2 = av.dot(av);
    let area = (n.dot(av) / a2.sqrt()).max(0.0) * AREA_INTENSITY / a2;
    AMBIENT + sun + area
}

/// `⌊v⌋` by integer conversion (no libm call; exact for |v| < 2²³).
fn floor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

/// `⌈v⌉` by integer conversion (no libm call; exact for |v| < 2²³).
fn ceil(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t < v {
        t + 1.0
    } else {
        t
    }
}

/// Projects world points through a pinhole at `eye` with frame (right, up, fwd) and
/// `tan` of the half field of view onto a `side × side` raster: screen x, y (pixels) and 1/depth.
#[allow(clippy::too_many_arguments)]
fn project(
    world: &[Vec3],
    eye: Vec3,
    right: Vec3,
    up: Vec3,
    fwd: Vec3,
    tan: f32,
    side: usize,
    out: &mut Vec<[f32; 3]>,
) {
    out.clear();
    let half = side as f32 * 0.5;
    for &p in world {
        let d = p - eye;
        let z = d.dot(fwd);
        if z <= NEAR {
            out.push([f32::NAN, f32::NAN, 0.0]);
            continue;
        }
        let iz = 1.0 / z;
        let sx = d.dot(right) * iz / tan;
        let sy = d.dot(up) * iz / tan;
        out.push([(sx + 1.0) * half, (1.0 - sy) * half, iz]);
    }
}

/// Calls `frag(index, l1, l2, 1/z)` for every sample centre inside the triangle (edges
/// inclusive), with screen-space barycentrics l1, l2 of vertices 1 and 2 and 1/z
/// interpolated linearly in screen space. Triangles with a vertex behind the near plane,
/// degenerate ones and ones outside the raster draw nothing.
fn raster(v: [[f32; 3]; 3], side: usize, mut frag: impl FnMut(usize, f32, f32, f32)) {
    let [a, b, c] = v;
    if a[0].is_nan() || b[0].is_nan() || c[0].is_nan() {
        return;
    }
    let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
    if area == 0.0 || !area.is_finite() {
        return;
    }
    let min_x = a[0].min(b[0]).min(c[0]);
    let max_x = a[0].max(b[0]).max(c[0]);
    let min_y = a[1].min(b[1]).min(c[1]);
    let max_y = a[1].max(b[1]).max(c[1]);
    let lim = side as f32;
    if max_x < 0.0 || max_y < 0.0 || min_x >= lim || min_y >= lim {
        return;
    }
    // Sample centres at k + 0.5 inside [min, max].
    let x0 = ceil(min_x.max(0.0) - 0.5).max(0.0) as usize;
    let x1 = floor(max_x.min(lim) - 0.5).min(lim - 1.0) as isize;
    let y0 = ceil(min_y.max(0.0) - 0.5).max(0.0) as usize;
    let y1 = floor(max_y.min(lim) - 0.5).min(lim - 1.0) as isize;
    if x1 < x0 as isize || y1 < y0 as isize {
        return;
    }
    let inv_area = 1.0 / area;
    // Edge functions w_k(x, y) = (dx·(y − y_s) − dy·(x − x_s)) / area, normalised so they
    // are the barycentrics (≥ 0 inside for either winding), evaluated at the first sample
    // centre of each row and stepped along the row.
    let edge = |s: [f32; 3], e: [f32; 3], px: f32, py: f32| -> (f32, f32) {
        let (dx, dy) = (e[0] - s[0], e[1] - s[1]);
        (
            (dx * (py - s[1]) - dy * (px - s[0])) * inv_area,
            -dy * inv_area,
        )
    };
    let px0 = x0 as f32 + 0.5;
    let (iz0, iz1, iz2) = (a[2], b[2], c[2]);
    for y in y0..=y1 as usize {
        let py = y as f32 + 0.5;
        let (mut w0, s0) = edge(b, c, px0, py);
        let (mut w1, s1) = edge(c, a, px0, py);
        let (mut w2, s2) = edge(a, b, px0, py);
        let row = y * side;
        for x in x0..=x1 as usize {
            if w0 >= 0.0 && w1 >= 0.0 && w2 >= 0.0 {
                frag(row + x, w1, w2, w0 * iz0 + w1 * iz1 + w2 * iz2);
            }
            w0 += s0;
            w1 += s1;
            w2 += s2;
        }
    }
}

impl Generator for Renderer {
    fn input_dim(&self) -> usize {
        N_LATENTS
    }

    fn output_dim(&self) -> usize {
        self.image_len()
    }

    /// Renders each row of raw latents to `3 × size × size` values in [0, 1], channel-first.
    ///
    /// # Panics
    /// If `z` does not have 10 columns or holds a non-finite value (use
    /// [`Renderer::render_batch_chw`] for a `Result`).
    fn forward(&self, z: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut buf = vec![0f32; z.nrows() * self.image_len()];
        if let Err(e) = self.render_batch_chw(z, &mut buf) {
            panic!("Renderer::forward: {e}");
        }
        Array2::from_shape_vec(
            (z.nrows(), self.image_len()),
            buf.into_iter().map(f64::from).collect(),
        )
        .expect("buffer length matches the shape")
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![3, self.config.size, self.config.size]
    }

    /// Renders straight into `out` (channel-first values in [0, 1]).
    ///
    /// # Panics
    /// As [`Generator::forward`], or if `out` has the wrong shape.
    fn forward_f32(&self, z: ArrayView2<'_, f64>, mut out: ndarray::ArrayViewMut2<'_, f32>) {
        assert_eq!(
            out.dim(),
            (z.nrows(), self.image_len()),
            "output buffer shape"
        );
        let result = match out.as_slice_mut() {
            Some(buf) => self.render_batch_chw(z, buf),
            None => {
                let mut buf = vec![0f32; z.nrows() * self.image_len()];
                let r = self.render_batch_chw(z, &mut buf);
                out.assign(&ArrayView2::from_shape(out.dim(), &buf).expect("buffer shape"));
                r
            }
        };
        if let Err(e) = result {
            panic!("Renderer::forward_f32: {e}");
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp = Fingerprint::new();
        fp.write_bytes(b"clica-render/3dident-like/v1");
        for v in [
            self.config.size,
            self.config.supersample,
            self.mesh.triangles.len(),
            self.shadow_side,
        ] {
            fp.write_u64(v as u64);
        }
        fp.write_bytes(self.config.hue.name().as_bytes());
        fp
    }
}
