//! The latent pipeline as a [`PairSource`]: latents from a [`LatentPrior`], observations
//! x = g(z) from a [`Generator`] built once per run.

use crate::{Error, Result};
use clica_core::{Fingerprint, Generator, LatentPrior, Observations, PairSource, Sample};
use ndarray::{Array2, ArrayViewMut2, Axis};
use rand::RngCore;

/// Pairs (x, x̃) = (g(z), g(z̃)) with z from the prior's marginal and z̃ from its
/// conditional around z.
///
/// Observations are computed in `f64` and rounded to `f32` for training; evaluation
/// samples keep the `f64` values (the identity baseline scores them directly).
pub struct LatentPairs {
    prior: Box<dyn LatentPrior>,
    generator: Box<dyn Generator>,
}

impl LatentPairs {
    /// The source of `prior` mixed by `generator`.
    ///
    /// # Errors
    /// [`Error::Config`] when the generator's input dimension is not the prior's.
    pub fn new(prior: Box<dyn LatentPrior>, generator: Box<dyn Generator>) -> Result<Self> {
        if generator.input_dim() != prior.dim() {
            return Err(Error::Config(format!(
                "the mixing takes {}-dimensional latents but the prior draws {}",
                generator.input_dim(),
                prior.dim()
            )));
        }
        Ok(LatentPairs { prior, generator })
    }

    /// The prior.
    pub fn prior(&self) -> &dyn LatentPrior {
        self.prior.as_ref()
    }

    /// The generator g.
    pub fn generator(&self) -> &dyn Generator {
        self.generator.as_ref()
    }

    fn check(&self, x: &ArrayViewMut2<'_, f32>, z: &ArrayViewMut2<'_, f64>) {
        assert_eq!(x.nrows(), z.nrows(), "x and z must have the same rows");
        assert_eq!(
            x.ncols(),
            self.generator.output_dim(),
            "x has the wrong width"
        );
        assert_eq!(z.ncols(), self.prior.dim(), "z has the wrong width");
    }

    /// x ← g(z) rounded to f32.
    fn observe(&self, z: &Array2<f64>, mut x: ArrayViewMut2<'_, f32>) {
        let gz = self.generator.forward(z.view());
        x.zip_mut_with(&gz, |o, &v| *o = v as f32);
    }
}

impl PairSource for LatentPairs {
    fn observation_shape(&self) -> Vec<usize> {
        vec![self.generator.output_dim()]
    }

    fn latent_dim(&self) -> usize {
        self.prior.dim()
    }

    fn draw_pairs(
        &self,
        rng: &mut dyn RngCore,
        positives: usize,
        mut x: ArrayViewMut2<'_, f32>,
        mut z: ArrayViewMut2<'_, f64>,
    ) {
        self.check(&x, &z);
        let blocks = 1 + positives;
        assert_eq!(
            x.nrows() % blocks,
            0,
            "rows must be (1 + positives) · anchors"
        );
        let b = x.nrows() / blocks;
        let anchors = self.prior.marginal(rng, b);
        let mut positive = Array2::zeros((b, self.prior.dim()));
        for j in 1..blocks {
            self.prior
                .sample_conditional(rng, anchors.view(), positive.view_mut());
            self.observe(
                &positive,
                x.slice_axis_mut(Axis(0), (j * b..(j + 1) * b).into()),
            );
            z.slice_axis_mut(Axis(0), (j * b..(j + 1) * b).into())
                .assign(&positive);
        }
        self.observe(&anchors, x.slice_axis_mut(Axis(0), (..b).into()));
        z.slice_axis_mut(Axis(0), (..b).into()).assign(&anchors);
    }

    fn draw_marginal(
        &self,
        rng: &mut dyn RngCore,
        x: ArrayViewMut2<'_, f32>,
        mut z: ArrayViewMut2<'_, f64>,
    ) {
        self.check(&x, &z);
        let latents = self.prior.marginal(rng, z.nrows());
        self.observe(&latents, x);
        z.assign(&latents);
    }

    fn sample(&self, rng: &mut dyn RngCore, n: usize) -> Sample {
        let z = self.prior.marginal(rng, n);
        let x = self.generator.forward(z.view());
        Sample {
            z,
            x: Observations::F64(x),
        }
    }

    fn describe(&self) -> String {
        self.prior.describe()
    }

    fn fingerprint(&self) -> Fingerprint {
        self.generator.fingerprint()
    }
}
