//! [`Prior`]: one space, one marginal, one conditional.

use crate::chunks::for_each_chunk;
use crate::noise::Noise;
use crate::vmf::{sample_vmf_into, VmfW};
use crate::{Conditional, Marginal, Result, Space};
use clica_core::{ClicaRng, LatentPrior, Mirror, Reflection};
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::{Rng, RngCore};
use rand_distr::{Distribution, StandardNormal};

/// The marginal, ready to sample.
#[derive(Debug, Clone)]
enum MarginalSampler {
    /// Normalised standard Gaussian × r.
    SphereUniform,
    /// U(low, high) per coordinate.
    BoxUniform,
    /// i.i.d. noise around the space's centre (0, the box midpoint, or r·e₁ then projected).
    Noise(Noise),
}

/// The conditional, ready to sample.
#[derive(Debug, Clone)]
enum ConditionalSampler {
    Vmf(VmfW),
    Noise(Noise),
}

/// A latent distribution: a [`Space`] of dimension `dim`, a [`Marginal`] p(z) and a
/// [`Conditional`] p(z̃ | z). Built (and fully validated) by [`Prior::new`]; sampled through
/// [`LatentPrior`].
///
/// # Sampling
///
/// * **Sphere** of radius r. Uniform marginal: a standard Gaussian vector normalised to length
///   r. Other marginals: y = r·e₁ + noise (i.i.d. per coordinate), then z = r·y/‖y‖.
///   Normal/Laplace/GenNorm conditionals: y = z + noise, projected back the same way (y = 0 is
///   redrawn). vMF(κ): a unit vector from vMF(z/‖z‖, κ) by Wood's (1994) rejection scheme and a
///   uniform tangent direction, times r — exact for every radius.
/// * **Box** [a, b]ⁿ. Uniform marginal: U(a, b) per coordinate. Other marginals: the box
///   midpoint + noise; conditionals: z + noise; in both cases every coordinate that falls
///   outside [a, b] is redrawn (alone) until it falls inside, i.e. the law is the
///   per-coordinate truncation to the box. The expected number of redraws is
///   1/P(inside), so scales much wider than the box are slow.
/// * **Unbounded** ℝⁿ. Marginals centred at 0; conditionals z + noise.
///
/// Noise laws: Normal σ·N(0,1); Laplace λ·(±Exp(1)); GenNorm λ·s·G^{1/β} with s a random sign
/// and G ~ Gamma(1/β, 1).
///
/// Batch sampling draws one `u64` from the caller's generator per call, splits the rows into
/// fixed chunks of 256 and gives chunk i the generator [`clica_core::chunk_rng`]`(base, i)`;
/// chunks run in parallel on rayon's pool, and the result is bit-identical for any number of
/// threads.
#[derive(Debug, Clone)]
pub struct Prior {
    space: Space,
    dim: usize,
    marginal: Marginal,
    conditional: Conditional,
    m: MarginalSampler,
    c: ConditionalSampler,
}

impl Prior {
    /// Builds a prior, validating every parameter.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] naming the parameter when: `dim` is 0 (or < 2 on the
    /// sphere); `radius` is not finite and > 0; `low`/`high` are not finite with
    /// `low < high`; a σ, λ or κ is not finite and > 0; a GenNorm β is not finite or below
    /// [`crate::MIN_GENNORM_BETA`]; the marginal is `Uniform` on [`Space::Unbounded`]
    /// (`marginal`); the conditional is vMF off the sphere (`conditional`).
    pub fn new(
        space: Space,
        dim: usize,
        marginal: Marginal,
        conditional: Conditional,
    ) -> Result<Prior> {
        space.validate(dim)?;
        marginal.validate(&space)?;
        conditional.validate(&space)?;
        let m = match marginal {
            Marginal::Uniform => match space {
                Space::Sphere { .. } => MarginalSampler::SphereUniform,
                Space::Box { .. } => MarginalSampler::BoxUniform,
                Space::Unbounded => unreachable!("rejected by validation"),
            },
            Marginal::Normal { sigma } => MarginalSampler::Noise(Noise::normal(sigma)),
            Marginal::Laplace { scale } => MarginalSampler::Noise(Noise::laplace(scale)),
            Marginal::GenNorm { beta, scale } => {
                MarginalSampler::Noise(Noise::gennorm(beta, scale))
            }
        };
        let c = match conditional {
            Conditional::VonMisesFisher { kappa } => ConditionalSampler::Vmf(VmfW::new(dim, kappa)),
            Conditional::Normal { sigma } => ConditionalSampler::Noise(Noise::normal(sigma)),
            Conditional::Laplace { scale } => ConditionalSampler::Noise(Noise::laplace(scale)),
            Conditional::GenNorm { beta, scale } => {
                ConditionalSampler::Noise(Noise::gennorm(beta, scale))
            }
        };
        Ok(Prior {
            space,
            dim,
            marginal,
            conditional,
            m,
            c,
        })
    }

    /// The space.
    pub fn space(&self) -> Space {
        self.space
    }

    /// The marginal law (named so as not to shadow [`LatentPrior::marginal`]).
    pub fn marginal_law(&self) -> Marginal {
        self.marginal
    }

    /// The conditional law (named so as not to shadow [`LatentPrior::conditional`]).
    pub fn conditional_law(&self) -> Conditional {
        self.conditional
    }

    /// One marginal draw into `buf` (length `dim`).
    #[inline]
    fn marginal_row(&self, rng: &mut ClicaRng, buf: &mut [f64]) {
        match (&self.space, &self.m) {
            (Space::Sphere { radius }, MarginalSampler::SphereUniform) => loop {
                for v in buf.iter_mut() {
                    *v = StandardNormal.sample(rng);
                }
                if project_onto_sphere(buf, *radius) {
                    break;
                }
            },
            (Space::Sphere { radius }, MarginalSampler::Noise(noise)) => loop {
                for v in buf.iter_mut() {
                    *v = noise.sample(rng);
                }
                buf[0] += radius;
                if project_onto_sphere(buf, *radius) {
                    break;
                }
            },
            (Space::Box { low, high }, MarginalSampler::BoxUniform) => {
                let width = high - low;
                for v in buf.iter_mut() {
                    let u: f64 = rng.random::<f64>();
                    *v = (low + width * u).min(*high);
                }
            }
            (Space::Box { low, high }, MarginalSampler::Noise(noise)) => {
                let mid = 0.5 * (low + high);
                for v in buf.iter_mut() {
                    *v = truncated(rng, noise, mid, *low, *high);
                }
            }
            (Space::Unbounded, MarginalSampler::Noise(noise)) => {
                for v in buf.iter_mut() {
                    *v = noise.sample(rng);
                }
            }
            _ => unreachable!("space/marginal combination rejected by validation"),
        }
    }

    /// One conditional draw around `z` into `buf`; `scratch` is workspace. All length `dim`.
    ///
    /// `z` must be finite (checked by the caller); on the box it must lie inside.
    #[inline]
    fn conditional_row(
        &self,
        rng: &mut ClicaRng,
        z: &mut [f64],
        buf: &mut [f64],
        scratch: &mut [f64],
    ) {
        match (&self.space, &self.c) {
            (Space::Sphere { radius }, ConditionalSampler::Vmf(w_law)) => {
                let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
                assert!(
                    norm > 0.0 && norm.is_finite(),
                    "clica-priors: vMF anchor has norm {norm}; anchors must lie on the sphere"
                );
                // μ = z/‖z‖ (= z/r for anchors on the sphere); reuse z's buffer for μ.
                for v in z.iter_mut() {
                    *v /= norm;
                }
                sample_vmf_into(w_law, rng, z, *radius, scratch, buf);
            }
            (Space::Sphere { radius }, ConditionalSampler::Noise(noise)) => loop {
                for (v, &zi) in buf.iter_mut().zip(z.iter()) {
                    *v = zi + noise.sample(rng);
                }
                if project_onto_sphere(buf, *radius) {
                    break;
                }
            },
            (Space::Box { low, high }, ConditionalSampler::Noise(noise)) => {
                for (v, &zi) in buf.iter_mut().zip(z.iter()) {
                    *v = truncated(rng, noise, zi, *low, *high);
                }
            }
            (Space::Unbounded, ConditionalSampler::Noise(noise)) => {
                for (v, &zi) in buf.iter_mut().zip(z.iter()) {
                    *v = zi + noise.sample(rng);
                }
            }
            _ => unreachable!("space/conditional combination rejected by validation"),
        }
    }

    fn check_anchor(&self, z: &[f64]) {
        for &v in z {
            assert!(
                v.is_finite(),
                "clica-priors: non-finite anchor coordinate {v}"
            );
        }
        if let Space::Box { low, high } = self.space {
            for &v in z {
                assert!(
                    (low..=high).contains(&v),
                    "clica-priors: anchor coordinate {v} lies outside the box [{low}, {high}]"
                );
            }
        }
    }
}

/// `center + noise`, redrawn until it lies in `[low, high]`.
#[inline]
fn truncated(rng: &mut ClicaRng, noise: &Noise, center: f64, low: f64, high: f64) -> f64 {
    loop {
        let x = center + noise.sample(rng);
        if x >= low && x <= high {
            return x;
        }
    }
}

/// Scales `y` in place to length `radius`. Returns `false` (leaving `y` unspecified) when `y`
/// has no direction (all zero) or is not finite; the caller then redraws.
#[inline]
fn project_onto_sphere(y: &mut [f64], radius: f64) -> bool {
    let sq: f64 = y.iter().map(|v| v * v).sum();
    if sq.is_finite() && sq >= f64::MIN_POSITIVE {
        let k = radius / sq.sqrt();
        y.iter_mut().for_each(|v| *v *= k);
        return true;
    }
    // Overflow or underflow of the squared norm: rescale by the largest entry first.
    let m = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(m > 0.0 && m.is_finite()) || y.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let sq: f64 = y.iter().map(|v| (v / m) * (v / m)).sum();
    let k = radius / sq.sqrt();
    y.iter_mut().for_each(|v| *v = (*v / m) * k);
    true
}

fn copy_row(row: &mut ndarray::ArrayViewMut1<'_, f64>, buf: &[f64]) {
    if let Some(s) = row.as_slice_mut() {
        s.copy_from_slice(buf);
    } else {
        for (o, &v) in row.iter_mut().zip(buf) {
            *o = v;
        }
    }
}

impl LatentPrior for Prior {
    fn dim(&self) -> usize {
        self.dim
    }

    /// Fills every row of `out` with an independent draw from p(z). Consumes exactly one
    /// `u64` from `rng`.
    ///
    /// # Panics
    /// If `out` does not have `dim()` columns.
    fn sample_marginal(&self, rng: &mut dyn RngCore, out: ArrayViewMut2<'_, f64>) {
        assert_eq!(
            out.ncols(),
            self.dim,
            "clica-priors: output has {} columns, prior dimension is {}",
            out.ncols(),
            self.dim
        );
        let base = rng.next_u64();
        for_each_chunk(base, out, None, |rng, mut out, _| {
            let mut buf = vec![0.0; self.dim];
            for mut row in out.rows_mut() {
                self.marginal_row(rng, &mut buf);
                copy_row(&mut row, &buf);
            }
        });
    }

    /// Fills row i of `out` with a draw from p(z̃ | z = `anchors[i]`). Consumes exactly one
    /// `u64` from `rng`.
    ///
    /// # Panics
    /// If `anchors` and `out` differ in shape or do not have `dim()` columns; if an anchor is
    /// not finite; on the box, if an anchor lies outside it (truncated rejection would not
    /// terminate); for vMF, if an anchor is zero.
    fn sample_conditional(
        &self,
        rng: &mut dyn RngCore,
        anchors: ArrayView2<'_, f64>,
        out: ArrayViewMut2<'_, f64>,
    ) {
        assert_eq!(
            anchors.ncols(),
            self.dim,
            "clica-priors: anchors have {} columns, prior dimension is {}",
            anchors.ncols(),
            self.dim
        );
        assert_eq!(
            anchors.dim(),
            out.dim(),
            "clica-priors: anchors and output differ in shape"
        );
        let base = rng.next_u64();
        for_each_chunk(base, out, Some(anchors), |rng, mut out, anchors| {
            let anchors = anchors.expect("anchors are chunked with the output");
            let mut z = vec![0.0; self.dim];
            let mut buf = vec![0.0; self.dim];
            let mut scratch = vec![0.0; self.dim];
            for (mut row, a) in out.rows_mut().into_iter().zip(anchors.rows()) {
                for (zi, &ai) in z.iter_mut().zip(a.iter()) {
                    *zi = ai;
                }
                self.check_anchor(&z);
                self.conditional_row(rng, &mut z, &mut buf, &mut scratch);
                copy_row(&mut row, &buf);
            }
        });
    }

    /// The axis reflection on the sphere for vMF (its density depends on z̃ only through
    /// μ·z̃) and for Normal noise (isotropic, projected); the point reflection on ℝⁿ, where
    /// every noise law is symmetric. None in the box (truncation breaks the symmetry) and for
    /// Laplace or GenNorm noise on the sphere (i.i.d. per coordinate, not isotropic).
    fn conditional_mirror(&self) -> Option<Mirror> {
        match (self.space, self.conditional) {
            (
                Space::Sphere { .. },
                Conditional::VonMisesFisher { .. } | Conditional::Normal { .. },
            ) => Some(Mirror::Axis),
            (Space::Unbounded, _) => Some(Mirror::Point),
            _ => None,
        }
    }

    /// Every prior here has one, because every noise law here is symmetric and the box
    /// truncates coordinate by coordinate:
    /// - the sphere with the uniform marginal: z ↦ −z (orthogonal, so vMF and the projected
    ///   laws, whose i.i.d. symmetric noise keeps its law under sign flips, commute with it);
    /// - the sphere with a marginal centred at r·e₁: the sign flip of every coordinate but the
    ///   first (it fixes e₁);
    /// - the box: z ↦ (a + b)·1 − z, which maps [a, b]ⁿ onto itself, keeps the uniform law
    ///   and the laws centred at the midpoint, and maps each coordinate's truncated symmetric
    ///   noise around z onto the same around the image;
    /// - ℝⁿ: z ↦ −z (marginals centred at 0, symmetric noise).
    fn anchor_reflection(&self) -> Option<Reflection> {
        Some(match (self.space, self.marginal) {
            (Space::Sphere { .. }, Marginal::Uniform) => Reflection::through(vec![0.0; self.dim]),
            (Space::Sphere { .. }, _) => Reflection::sign_flip(self.dim, &[0]),
            (Space::Box { low, high }, _) => {
                Reflection::through(vec![0.5 * (low + high); self.dim])
            }
            (Space::Unbounded, _) => Reflection::through(vec![0.0; self.dim]),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}, n={}, marginal {}, conditional {}",
            self.space, self.dim, self.marginal, self.conditional
        )
    }
}
