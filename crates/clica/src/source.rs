//! The latent pipeline as a [`PairSource`]: latents from a [`LatentPrior`], observations
//! x = g(z) from a [`Generator`] built once per run.

use crate::{Error, Result};
use clica_core::{
    Fingerprint, Generator, LatentPrior, Mirror, Observations, PairSource, Reflection, Sample,
};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::RngCore;
use rayon::prelude::*;

/// Rows per parallel task when the generator maps a block of latents.
const OBSERVE_ROWS: usize = 512;

/// Pairs (x, x̃) = (g(z), g(z̃)) with z from the prior's marginal and z̃ from its
/// conditional around z.
///
/// Observations are computed in `f64` and rounded to `f32` for training; evaluation
/// samples keep the `f64` values (the identity baseline scores them directly).
///
/// With [`LatentPairs::antithetic`], an anchor's positives come in mirrored pairs: the
/// second of each pair is the first's mirror image about the anchor
/// ([`LatentPrior::conditional_mirror`]), so every positive is still an exact draw from
/// p(z̃ | z) while the pair's average cancels the draw's odd part around the anchor.
///
/// With [`LatentPairs::antithetic_anchors`], the second half of the anchors is the first
/// half reflected ([`LatentPrior::anchor_reflection`]), each with its positives reflected:
/// every (anchor, positive) pair is still an exact draw from p(z) p(z̃ | z), while the
/// batch's negatives come in mirrored pairs whose odd parts cancel in the normaliser.
pub struct LatentPairs {
    prior: Box<dyn LatentPrior>,
    generator: Box<dyn Generator>,
    antithetic: Option<Mirror>,
    anchor_reflection: Option<Reflection>,
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
        Ok(LatentPairs {
            prior,
            generator,
            antithetic: None,
            anchor_reflection: None,
        })
    }

    /// The same source drawing its anchors in mirrored halves: anchors b/2.. and their
    /// positives are the reflections of anchors ..b/2 and theirs (b must then be even).
    ///
    /// # Errors
    /// [`Error::Config`] when the prior has no anchor reflection.
    pub fn antithetic_anchors(mut self) -> Result<Self> {
        self.anchor_reflection = Some(self.prior.anchor_reflection().ok_or_else(|| {
            Error::Config(format!(
                "loss.antithetic_anchors: {}",
                no_anchor_reflection(self.prior.as_ref())
            ))
        })?);
        Ok(self)
    }

    /// The same source drawing an anchor's positives in mirrored pairs (positives 2 and 1,
    /// 4 and 3, …; an odd last one is drawn on its own).
    ///
    /// # Errors
    /// [`Error::Config`] when the prior's conditional has no law-preserving reflection.
    pub fn antithetic(mut self) -> Result<Self> {
        self.antithetic = Some(self.prior.conditional_mirror().ok_or_else(|| {
            Error::Config(format!(
                "loss.antithetic: {}",
                no_mirror(self.prior.as_ref())
            ))
        })?);
        Ok(self)
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

    /// Writes the block of latents `latents` (and, with antithetic anchors, their reflection
    /// after them) into rows `start..` of `z`.
    fn put_block(&self, latents: &Array2<f64>, start: usize, mut z: ArrayViewMut2<'_, f64>) {
        let k = latents.nrows();
        z.slice_axis_mut(Axis(0), (start..start + k).into())
            .assign(latents);
        if let Some(r) = &self.anchor_reflection {
            r.apply(
                latents.view(),
                z.slice_axis_mut(Axis(0), (start + k..start + 2 * k).into()),
            );
        }
    }

    /// x ← g(z) rounded to f32, in row blocks run in parallel: g maps each row on its own
    /// (a [`Generator`]'s contract), so the blocks give the same observations as one call.
    fn observe(&self, z: ArrayView2<'_, f64>, mut x: ArrayViewMut2<'_, f32>) {
        let xs: Vec<_> = x.axis_chunks_iter_mut(Axis(0), OBSERVE_ROWS).collect();
        let zs: Vec<_> = z.axis_chunks_iter(Axis(0), OBSERVE_ROWS).collect();
        xs.into_par_iter()
            .zip(zs)
            .for_each(|(x, z)| self.generator.forward_f32(z, x));
    }
}

/// Why `prior` cannot draw antithetic positives (it has no law-preserving reflection); the
/// one wording of that error, for the config's validation and for [`LatentPairs::antithetic`].
pub(crate) fn no_mirror(prior: &dyn LatentPrior) -> String {
    format!(
        "the conditional of `{}` has no reflection that keeps its law (vMF or Normal on the \
         sphere, or any conditional on the unbounded space)",
        prior.describe()
    )
}

/// Why `prior` cannot draw antithetic anchors; the one wording of that error, for the
/// config's validation and for [`LatentPairs::antithetic_anchors`].
pub(crate) fn no_anchor_reflection(prior: &dyn LatentPrior) -> String {
    format!(
        "the prior `{}` has no reflection that keeps its marginal and commutes with its \
         conditional",
        prior.describe()
    )
}

impl PairSource for LatentPairs {
    fn observation_shape(&self) -> Vec<usize> {
        self.generator.output_shape()
    }

    fn latent_dim(&self) -> usize {
        self.prior.dim()
    }

    fn draw_pairs(
        &self,
        rng: &mut dyn RngCore,
        positives: usize,
        x: ArrayViewMut2<'_, f32>,
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
        // Drawn rows per block: all of them, or the first half when the second half is their
        // reflection.
        let drawn = match self.anchor_reflection {
            Some(_) => {
                assert_eq!(
                    b % 2,
                    0,
                    "antithetic anchors need an even number of anchors"
                );
                b / 2
            }
            None => b,
        };
        let anchors = self.prior.marginal(rng, drawn);
        let mut positive = Array2::zeros((drawn, self.prior.dim()));
        let rows = if self.antithetic.is_some() { drawn } else { 0 };
        let mut mirror = Array2::zeros((rows, self.prior.dim()));
        for j in 1..blocks {
            match self.antithetic {
                // Positive j (even) mirrors positive j − 1, still held in `positive`.
                Some(m) if j % 2 == 0 => {
                    m.apply(anchors.view(), positive.view(), mirror.view_mut());
                    std::mem::swap(&mut positive, &mut mirror);
                }
                _ => self
                    .prior
                    .sample_conditional(rng, anchors.view(), positive.view_mut()),
            }
            self.put_block(&positive, j * b, z.view_mut());
        }
        self.put_block(&anchors, 0, z.view_mut());
        // All observations in one parallel pass (the latents above drew every random number).
        self.observe(z.view(), x);
    }

    fn draw_marginal(
        &self,
        rng: &mut dyn RngCore,
        x: ArrayViewMut2<'_, f32>,
        mut z: ArrayViewMut2<'_, f64>,
    ) {
        self.check(&x, &z);
        let latents = self.prior.marginal(rng, z.nrows());
        self.observe(latents.view(), x);
        z.assign(&latents);
    }

    fn sample(&self, rng: &mut dyn RngCore, n: usize) -> Sample {
        let z = self.prior.marginal(rng, n);
        // Images are produced (and stored) in f32; vector observations are kept in f64.
        let x = if self.generator.output_shape().len() > 1 {
            let mut x = Array2::zeros((n, self.generator.output_dim()));
            self.generator.forward_f32(z.view(), x.view_mut());
            Observations::F32(x)
        } else {
            Observations::F64(self.generator.forward(z.view()))
        };
        Sample { z, x }
    }

    fn describe(&self) -> String {
        self.prior.describe()
    }

    fn fingerprint(&self) -> Fingerprint {
        self.generator.fingerprint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clica_core::RunSeed;
    use clica_priors::{Conditional, Marginal, Prior, Space};
    use ndarray::ArrayView2;

    /// x = z (rounded to f32), so the test reads the latents back from both outputs.
    struct Identity(usize);

    impl Generator for Identity {
        fn input_dim(&self) -> usize {
            self.0
        }
        fn output_dim(&self) -> usize {
            self.0
        }
        fn forward(&self, z: ArrayView2<'_, f64>) -> Array2<f64> {
            z.to_owned()
        }
        fn fingerprint(&self) -> Fingerprint {
            Fingerprint::new()
        }
    }

    fn source(space: Space, c: Conditional) -> LatentPairs {
        let m = match space {
            Space::Unbounded => Marginal::Normal { sigma: 1.0 },
            _ => Marginal::Uniform,
        };
        let prior = Prior::new(space, 4, m, c).unwrap();
        LatentPairs::new(Box::new(prior), Box::new(Identity(4))).unwrap()
    }

    fn draw(src: &LatentPairs, positives: usize, b: usize) -> (Array2<f32>, Array2<f64>) {
        let rows = (1 + positives) * b;
        let (mut x, mut z) = (Array2::zeros((rows, 4)), Array2::zeros((rows, 4)));
        let mut rng = RunSeed::new(7).stream("pairs");
        src.draw_pairs(&mut rng, positives, x.view_mut(), z.view_mut());
        (x, z)
    }

    #[test]
    fn the_mixing_in_parallel_row_blocks_gives_the_observations_of_one_call() {
        // Blocks of OBSERVE_ROWS and a partial one, through the paper's invertible MLP.
        let g = clica_generators::InvertibleMlp::build(
            &clica_generators::MlpConfig::new(4),
            &mut RunSeed::new(5).stream("generator"),
        )
        .unwrap();
        let prior = Prior::new(
            Space::Sphere { radius: 1.0 },
            4,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa: 1.0 },
        )
        .unwrap();
        let src = LatentPairs::new(Box::new(prior), Box::new(g.clone())).unwrap();
        let b = 2 * OBSERVE_ROWS + 37;
        let (mut x, mut z) = (Array2::zeros((2 * b, 4)), Array2::zeros((2 * b, 4)));
        src.draw_pairs(
            &mut RunSeed::new(7).stream("pairs"),
            1,
            x.view_mut(),
            z.view_mut(),
        );
        let mut whole = Array2::zeros((2 * b, 4));
        g.forward_f32(z.view(), whole.view_mut());
        assert_eq!(x, whole);
    }

    #[test]
    fn antithetic_positives_come_in_mirrored_pairs_and_the_rest_is_unchanged() {
        let b = 300;
        for (space, c, mirror) in [
            (
                Space::Sphere { radius: 1.5 },
                Conditional::VonMisesFisher { kappa: 1.0 },
                Mirror::Axis,
            ),
            (
                Space::Unbounded,
                Conditional::Laplace { scale: 0.5 },
                Mirror::Point,
            ),
        ] {
            let plain = source(space, c);
            let anti = source(space, c).antithetic().unwrap();
            let (_, zp) = draw(&plain, 5, b);
            let (x, z) = draw(&anti, 5, b);
            let block = |a: &Array2<f64>, j: usize| {
                a.slice_axis(Axis(0), (j * b..(j + 1) * b).into())
                    .to_owned()
            };
            // The anchors and the first positive of each pair are drawn as before: the
            // anchors bit for bit; positives 1, 3, 5 are fresh draws (a mirrored pair draws
            // once from the stream, so the later draws move on).
            assert_eq!(block(&z, 0), block(&zp, 0));
            assert_eq!(block(&z, 1), block(&zp, 1));
            for (first, second) in [(1, 2), (3, 4)] {
                let mut want = Array2::zeros((b, 4));
                mirror.apply(
                    block(&z, 0).view(),
                    block(&z, first).view(),
                    want.view_mut(),
                );
                assert_eq!(block(&z, second), want, "positive {second} mirrors {first}");
            }
            assert_ne!(block(&z, 3), block(&z, 1));
            assert_ne!(block(&z, 5), block(&z, 3));
            // Observations follow their latents.
            assert_eq!(x, z.mapv(|v| v as f32));
        }
    }

    #[test]
    fn antithetic_anchors_reflect_the_first_half_of_every_block() {
        let b = 200;
        for (space, c) in [
            (
                Space::Sphere { radius: 1.0 },
                Conditional::VonMisesFisher { kappa: 1.0 },
            ),
            (
                Space::Box {
                    low: 0.0,
                    high: 1.0,
                },
                Conditional::Laplace { scale: 0.1 },
            ),
        ] {
            let plain = source(space, c);
            let src = source(space, c).antithetic_anchors().unwrap();
            let r = src.prior().anchor_reflection().unwrap();
            let (_, zp) = draw(&plain, 3, b);
            let (x, z) = draw(&src, 3, b);
            let h = b / 2;
            let rows = |a: &Array2<f64>, from: usize, to: usize| {
                a.slice_axis(Axis(0), (from..to).into()).to_owned()
            };
            // The drawn half of the anchors is the plain source's first b/2 draws.
            assert_eq!(rows(&z, 0, h), rows(&zp, 0, h));
            for j in 0..4 {
                let first = rows(&z, j * b, j * b + h);
                let mut want = Array2::zeros(first.raw_dim());
                r.apply(first.view(), want.view_mut());
                assert_eq!(rows(&z, j * b + h, (j + 1) * b), want, "block {j}");
            }
            // Positives are fresh draws, not copies of the anchors or of each other.
            assert_ne!(rows(&z, b, b + h), rows(&z, 0, h));
            assert_ne!(rows(&z, 2 * b, 2 * b + h), rows(&z, b, b + h));
            assert_eq!(x, z.mapv(|v| v as f32));
        }
    }

    #[test]
    #[should_panic(expected = "even number of anchors")]
    fn antithetic_anchors_need_an_even_batch() {
        let src = source(Space::Unbounded, Conditional::Normal { sigma: 0.1 })
            .antithetic_anchors()
            .unwrap();
        draw(&src, 1, 7);
    }

    #[test]
    fn antithetic_positives_need_a_mirror() {
        let boxed = source(
            Space::Box {
                low: 0.0,
                high: 1.0,
            },
            Conditional::Normal { sigma: 0.1 },
        );
        let e = boxed.antithetic().err().unwrap().to_string();
        assert!(
            e.contains("loss.antithetic") && e.contains("no reflection"),
            "{e}"
        );
    }
}
