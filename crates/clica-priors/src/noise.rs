//! One-dimensional, zero-centred noise laws (normal, Laplace, generalized normal).

use rand::Rng;
use rand_distr::{Distribution, Exp1, Gamma, Open01, StandardNormal};

/// x ↦ x^{1/β}, with the common shapes specialised (√, ∛, identity are faster than `powf`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Root {
    Identity,
    Sqrt,
    Cbrt,
    Pow(f64),
}

impl Root {
    fn new(beta: f64) -> Self {
        if beta == 1.0 {
            Root::Identity
        } else if beta == 2.0 {
            Root::Sqrt
        } else if beta == 3.0 {
            Root::Cbrt
        } else {
            Root::Pow(1.0 / beta)
        }
    }

    #[inline]
    fn apply(self, x: f64) -> f64 {
        match self {
            Root::Identity => x,
            Root::Sqrt => x.sqrt(),
            Root::Cbrt => x.cbrt(),
            Root::Pow(p) => x.powf(p),
        }
    }
}

/// A symmetric 1-D law centred at 0, ready to sample.
#[derive(Debug, Clone)]
pub(crate) enum Noise {
    /// σ·N(0, 1).
    Normal { sigma: f64 },
    /// λ·(±Exp(1)).
    Laplace { scale: f64 },
    /// λ·s·G^{1/β}, s a random sign, G ~ Gamma(1/β, 1).
    ///
    /// For shape a = 1/β < 1 we use G = G'·U^{1/a} with G' ~ Gamma(a + 1, 1) and
    /// U ~ U(0, 1) (the identity rand_distr itself uses for small shapes), so that
    /// G^{1/β} = G'^{1/β}·U needs a single root instead of two powers.
    GenNorm {
        scale: f64,
        root: Root,
        /// Gamma(1/β, 1) if 1/β ≥ 1, else Gamma(1/β + 1, 1).
        gamma: Gamma<f64>,
        small_shape: bool,
    },
}

impl Noise {
    pub(crate) fn normal(sigma: f64) -> Self {
        Noise::Normal { sigma }
    }

    pub(crate) fn laplace(scale: f64) -> Self {
        Noise::Laplace { scale }
    }

    /// `beta` and `scale` must already be validated (finite, β ≥ `MIN_GENNORM_BETA`, λ > 0).
    pub(crate) fn gennorm(beta: f64, scale: f64) -> Self {
        let a = 1.0 / beta;
        let small_shape = a < 1.0;
        let shape = if small_shape { a + 1.0 } else { a };
        let gamma = Gamma::new(shape, 1.0).expect("validated gennorm shape gives a valid Gamma");
        Noise::GenNorm {
            scale,
            root: Root::new(beta),
            gamma,
            small_shape,
        }
    }

    #[inline]
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Noise::Normal { sigma } => {
                let x: f64 = StandardNormal.sample(rng);
                sigma * x
            }
            Noise::Laplace { scale } => {
                let e: f64 = Exp1.sample(rng);
                let s = if rng.random::<bool>() { e } else { -e };
                scale * s
            }
            Noise::GenNorm {
                scale,
                root,
                gamma,
                small_shape,
            } => {
                let g = gamma.sample(rng);
                let mut m = scale * root.apply(g);
                if *small_shape {
                    let u: f64 = Open01.sample(rng);
                    m *= u;
                }
                if rng.random::<bool>() {
                    m
                } else {
                    -m
                }
            }
        }
    }
}
