//! Shared helpers: an independent f64 reference forward pass and random inputs.
#![allow(dead_code)]

use clica_encoders::{EncoderConfig, NamedTensor, Normalization};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A fixed, named generator for test data.
pub fn rng(name: &str) -> Xoshiro256PlusPlus {
    clica_core::RunSeed::new(20_210_101).stream(name)
}

/// Standard-normal-ish f32 matrix (sum of uniforms, enough for tests).
pub fn randn(rows: usize, cols: usize, rng: &mut impl Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

/// Same generator type as `rng`, seeded directly.
pub fn seeded(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

pub fn find<'a>(ps: &'a [NamedTensor], name: &str) -> &'a NamedTensor {
    ps.iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

/// The encoder in f64 from f32 parameters (`flat` in `parameters()` order), written
/// independently of the crate: plain loops, PyTorch's formulas.
pub fn reference_forward(cfg: &EncoderConfig, ps: &[Vec<f64>], x: &Array2<f64>) -> Array2<f64> {
    let widths = cfg.widths();
    let layers = widths.len() - 1;
    let mut out = Array2::zeros((x.nrows(), cfg.output_dim));
    for (i, xr) in x.rows().into_iter().enumerate() {
        let mut a: Vec<f64> = xr.to_vec();
        for l in 0..layers {
            let (w, b) = (&ps[2 * l], &ps[2 * l + 1]);
            let (din, dout) = (widths[l], widths[l + 1]);
            let mut z = vec![0.0; dout];
            for o in 0..dout {
                let mut s = b[o];
                for k in 0..din {
                    s += w[o * din + k] * a[k];
                }
                z[o] = if l + 1 < layers && s <= 0.0 {
                    s * cfg.negative_slope
                } else {
                    s
                };
            }
            a = z;
        }
        let y: Vec<f64> = match cfg.normalization {
            Normalization::None => a,
            Normalization::Sphere { radius } => {
                let n = a.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                a.iter().map(|v| v / n * radius).collect()
            }
            Normalization::LearnableSphere { .. } => {
                let r = ps[2 * layers][0];
                let n = a.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                a.iter().map(|v| v / n * r).collect()
            }
            Normalization::LearnableBox { .. } => {
                let b = &ps[2 * layers];
                a.iter()
                    .zip(b)
                    .map(|(v, b)| b / (1.0 + (-v).exp()))
                    .collect()
            }
        };
        for (o, v) in out.row_mut(i).iter_mut().zip(y) {
            *o = v;
        }
    }
    out
}

pub fn to_f64(ps: &[NamedTensor]) -> Vec<Vec<f64>> {
    ps.iter()
        .map(|t| t.data.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

/// max |a − b| / max |b| over one tensor (norm-wise relative error; 0/0 counts as 0).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if num == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Every normalisation, with non-default constants.
pub fn all_normalizations() -> Vec<Normalization> {
    vec![
        Normalization::None,
        Normalization::Sphere { radius: 2.5 },
        Normalization::LearnableSphere { init_radius: 1.5 },
        Normalization::LearnableBox { init_bound: 0.7 },
    ]
}

/// The backends compiled in (dfdx only with the `dfdx` feature).
pub fn backends() -> Vec<clica_encoders::Backend> {
    let mut v = vec![clica_encoders::Backend::Native];
    if cfg!(feature = "dfdx") {
        v.push(clica_encoders::Backend::Dfdx);
    }
    v
}
