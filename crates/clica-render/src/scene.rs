//! The 3DIdent scene: its constants and the map from the ten raw latents to scene parameters.

use crate::color::{hsv_to_rgb, HueMode};
use crate::math::{Mat3, Vec3};
use clica_core::{Error, Result};
use std::f64::consts::FRAC_PI_2;

/// Number of latents: object position x, y, z; rotation α, β, γ; spotlight angle θ; hue of
/// the object, the spotlight and the background.
pub const N_LATENTS: usize = 10;
/// Names of the latents, in order.
pub const LATENT_NAMES: [&str; N_LATENTS] = [
    "x",
    "y",
    "z",
    "alpha",
    "beta",
    "gamma",
    "spotlight",
    "hue_object",
    "hue_spotlight",
    "hue_background",
];
/// Raw latents are scaled by this for positions (raw ∈ [−1, 1] → [−3, 3]).
pub const POSITION_SCALE: f64 = 3.0;
/// Raw latents are scaled by this for angles and hues (raw ∈ [−1, 1] → [−π/2, π/2]).
pub const ANGLE_SCALE: f64 = FRAC_PI_2;
/// The object's height above its latent z (its centre sits at z + this).
pub const OBJECT_LIFT: f32 = 2.22;
/// The camera's position; it looks at the origin with world z up.
pub const CAMERA: Vec3 = Vec3::new(8.0, 0.0, 8.0);
/// `tan` of half the field of view: a 35 mm lens on a 50 mm sensor (about 71°).
pub const TAN_HALF_FOV: f32 = 25.0 / 35.0;
/// The floor plane's height.
pub const FLOOR_Z: f32 = -4.44;
/// The spotlight's circle: at (R sin θ, R cos θ, H).
pub const SPOT_RADIUS: f32 = 4.0;
/// The spotlight's height.
pub const SPOT_HEIGHT: f32 = 10.44;
/// The spotlight's full cone angle, in degrees.
pub const SPOT_CONE_DEG: f32 = 35.0;
/// Blender's spot blend: the soft edge's share of the cone (in cosine).
pub const SPOT_BLEND: f32 = 0.1;
/// The small area light's position (treated as a point light).
pub const AREA_LIGHT: Vec3 = Vec3::new(0.0, 0.0, 7.0);
/// Saturations of the object, spotlight and background colours (value 1 for all).
pub const SATURATION: [f64; 3] = [1.0, 0.8, 0.6];

/// The raw latents rescaled as for rendering (the reference's `latents.npy`): positions × 3,
/// angles and hues × π/2.
pub fn rescale(raw: &[f64]) -> [f64; N_LATENTS] {
    assert_eq!(
        raw.len(),
        N_LATENTS,
        "a 3DIdent latent vector has {N_LATENTS} entries"
    );
    let mut out = [0.0; N_LATENTS];
    for (k, (o, &r)) in out.iter_mut().zip(raw).enumerate() {
        *o = r * if k < 3 { POSITION_SCALE } else { ANGLE_SCALE };
    }
    out
}

/// One image's scene, derived from its raw latents.
#[derive(Debug, Clone, Copy)]
pub struct SceneParams {
    /// The object's centre.
    pub centre: Vec3,
    /// The object's rotation `Rz(γ)·Ry(β)·Rx(α)`.
    pub rotation: Mat3,
    /// The spotlight's position.
    pub spot: Vec3,
    /// Linear RGB of the object, the spotlight and the background.
    pub colours: [Vec3; 3],
}

impl SceneParams {
    /// The scene for one raw latent vector (10 finite entries; [−1, 1] is the data's range,
    /// but any finite value renders).
    pub fn from_raw(raw: &[f64], hue: HueMode) -> Result<Self> {
        if raw.len() != N_LATENTS {
            return Err(Error::Shape(format!(
                "a 3DIdent latent vector has {N_LATENTS} entries, got {}",
                raw.len()
            )));
        }
        if let Some(col) = raw.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "latents".into(),
                row: 0,
                col,
            });
        }
        let s = rescale(raw);
        let centre = Vec3::new(s[0] as f32, s[1] as f32, s[2] as f32 + OBJECT_LIFT);
        let rotation = Mat3::euler_xyz(s[3] as f32, s[4] as f32, s[5] as f32);
        let theta = s[6] as f32;
        let spot = Vec3::new(
            SPOT_RADIUS * libm::sinf(theta),
            SPOT_RADIUS * libm::cosf(theta),
            SPOT_HEIGHT,
        );
        let mut colours = [Vec3::default(); 3];
        for (k, c) in colours.iter_mut().enumerate() {
            // hue = angle / 2π, angle = raw × π/2.
            let h = s[7 + k] / (2.0 * std::f64::consts::PI);
            let [r, g, b] = hsv_to_rgb(h, SATURATION[k], 1.0, hue);
            *c = Vec3::new(r as f32, g as f32, b as f32);
        }
        Ok(SceneParams {
            centre,
            rotation,
            spot,
            colours,
        })
    }
}
