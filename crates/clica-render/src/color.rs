//! HSV → RGB for the scene's three colours.

use std::fmt;
use std::str::FromStr;

/// How a hue outside [0, 1) is turned into a colour.
///
/// The reference (`colorsys.hsv_to_rgb` in the 3DIdent scripts) receives negative hues for
/// negative latents. Python's arithmetic then gives RGB components outside [0, 1] and a jump
/// where `6·hue` crosses −1 (raw latent −2/3). clica wraps the hue into [0, 1) by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HueMode {
    /// `hue − ⌊hue⌋`: a continuous colour circle (the default).
    #[default]
    Wrapped,
    /// The reference's behaviour: `colorsys.hsv_to_rgb` on the unwrapped hue, components
    /// outside [0, 1] kept through shading (a pixel is clamped at 0 at the end).
    Reference,
}

impl HueMode {
    /// The name `FromStr` reads: `"wrapped"` or `"reference"`.
    pub fn name(self) -> &'static str {
        match self {
            HueMode::Wrapped => "wrapped",
            HueMode::Reference => "reference",
        }
    }
}

impl fmt::Display for HueMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HueMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wrapped" => Ok(HueMode::Wrapped),
            "reference" => Ok(HueMode::Reference),
            other => Err(format!(
                "unknown hue mode `{other}` (expected `wrapped` or `reference`)"
            )),
        }
    }
}

/// `colorsys.hsv_to_rgb(h, s, v)` with Python's semantics (`int()` truncates towards zero,
/// `%` is non-negative), after wrapping `h` when `mode` is [`HueMode::Wrapped`].
pub fn hsv_to_rgb(h: f64, s: f64, v: f64, mode: HueMode) -> [f64; 3] {
    let h = match mode {
        HueMode::Wrapped => h - h.floor(),
        HueMode::Reference => h,
    };
    if s == 0.0 {
        return [v, v, v];
    }
    let i = (h * 6.0).trunc();
    let f = h * 6.0 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match (i as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_and_wrap() {
        let m = HueMode::Wrapped;
        assert_eq!(hsv_to_rgb(0.0, 1.0, 1.0, m), [1.0, 0.0, 0.0]);
        assert_eq!(hsv_to_rgb(1.0 / 3.0, 1.0, 1.0, m), [0.0, 1.0, 0.0]);
        assert_eq!(hsv_to_rgb(2.0 / 3.0, 1.0, 1.0, m), [0.0, 0.0, 1.0]);
        assert_eq!(hsv_to_rgb(0.3, 0.0, 0.7, m), [0.7, 0.7, 0.7]);
        // Wrapped: −0.25 is the same colour as 0.75.
        assert_eq!(
            hsv_to_rgb(-0.25, 0.6, 1.0, m),
            hsv_to_rgb(0.75, 0.6, 1.0, m)
        );
    }

    #[test]
    fn reference_mode_reproduces_colorsys_on_negative_hues() {
        // colorsys.hsv_to_rgb(-0.1, 1.0, 1.0) == (1.0, -0.6000000000000001, 0.0):
        // int(-0.6) = 0, f = -0.6, t = 1 - (1 - f) = f.
        let [r, g, b] = hsv_to_rgb(-0.1, 1.0, 1.0, HueMode::Reference);
        assert_eq!(r, 1.0);
        assert!((g + 0.6).abs() < 1e-12);
        assert_eq!(b, 0.0);
        // Across 6h = −1 the reference jumps (sector 5 ↔ sector 0), the wrapped hue does not.
        let below = hsv_to_rgb(-1.0 / 6.0 - 1e-9, 1.0, 1.0, HueMode::Reference);
        let above = hsv_to_rgb(-1.0 / 6.0 + 1e-9, 1.0, 1.0, HueMode::Reference);
        assert!((below[1] - above[1]).abs() > 0.5 || (below[2] - above[2]).abs() > 0.5);
        let wb = hsv_to_rgb(-1.0 / 6.0 - 1e-9, 1.0, 1.0, HueMode::Wrapped);
        let wa = hsv_to_rgb(-1.0 / 6.0 + 1e-9, 1.0, 1.0, HueMode::Wrapped);
        assert!(wb.iter().zip(&wa).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
