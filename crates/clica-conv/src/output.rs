//! The output layers (as the MLP encoder's), one row at a time, shared by the encoders.

use crate::engine::NORM_EPS;
use clica_encoders::{sigmoid, Normalization};

/// `out = layer(h)` for one row; `norm_p` is the layer's parameter (`norm.bound` or
/// `norm.radius`) if it has one. Returns 1 / max(‖h‖, eps) for the sphere layers (else 1).
pub(crate) fn forward_row(
    normalization: Normalization,
    norm_p: Option<&[f32]>,
    h: &[f32],
    out: &mut [f32],
) -> f32 {
    match normalization {
        Normalization::None => {
            out.copy_from_slice(h);
            1.0
        }
        Normalization::Sphere { .. } | Normalization::LearnableSphere { .. } => {
            let radius = match normalization {
                Normalization::Sphere { radius } => radius as f32,
                _ => norm_p.expect("learnable radius")[0],
            };
            let inv = 1.0 / h.iter().map(|v| v * v).sum::<f32>().sqrt().max(NORM_EPS);
            for (o, &v) in out.iter_mut().zip(h) {
                *o = v * inv * radius;
            }
            inv
        }
        Normalization::LearnableBox { .. } => {
            let bound = norm_p.expect("learnable bound");
            for ((o, &v), &b) in out.iter_mut().zip(h).zip(bound) {
                *o = sigmoid(v) * b;
            }
            1.0
        }
    }
}

/// The backward of [`forward_row`]: `g` is d loss / d out of the row, `inv` what the forward
/// returned; writes d loss / d h into `dh` and adds the layer parameter's gradient to
/// `dnorm`.
pub(crate) fn backward_row<'a>(
    normalization: Normalization,
    norm_p: Option<&[f32]>,
    h: &[f32],
    inv: f32,
    g: impl Iterator<Item = &'a f32> + Clone,
    dh: &mut [f32],
    dnorm: &mut [f32],
) {
    match normalization {
        Normalization::None => {
            for (d, &v) in dh.iter_mut().zip(g) {
                *d = v;
            }
        }
        Normalization::Sphere { .. } | Normalization::LearnableSphere { .. } => {
            let learnable = matches!(normalization, Normalization::LearnableSphere { .. });
            let radius = match normalization {
                Normalization::Sphere { radius } => radius as f32,
                _ => norm_p.expect("learnable radius")[0],
            };
            // u = h / ‖h‖; out = ρu; dh = ρ/‖h‖ (g − u (u·g)); dρ = u·g.
            let ug: f32 = h.iter().zip(g.clone()).map(|(&v, &gv)| v * inv * gv).sum();
            if learnable {
                dnorm[0] += ug;
            }
            for ((d, &v), &gv) in dh.iter_mut().zip(h).zip(g) {
                *d = radius * inv * (gv - v * inv * ug);
            }
        }
        Normalization::LearnableBox { .. } => {
            let bound = norm_p.expect("learnable bound");
            for (k, ((d, &v), &gv)) in dh.iter_mut().zip(h).zip(g).enumerate() {
                let s = sigmoid(v);
                dnorm[k] += gv * s;
                *d = gv * bound[k] * s * (1.0 - s);
            }
        }
    }
}
