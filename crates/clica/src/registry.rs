//! The registration point: which data source and encoder a configuration builds (a loss is
//! built by its `config::Objective` variant). A new pair source or encoder kind is one
//! crate, one section variant in `config/sections.rs` and one arm here.

use crate::config::{TrainConfig, Validated};
use crate::source::LatentPairs;
use crate::Result;
use clica_core::{PairSource, RunSeed, TrainableEncoder};
use clica_encoders::{EncoderConfig, MlpEncoder};
use clica_generators::InvertibleMlp;
use clica_objectives::{ContrastiveLoss, ExtraPositives};
use clica_optim::Adam;
use rand::RngCore;

/// The components of a run, built once from its validated configuration.
pub struct Components {
    /// The data-generating process (built from the seed's `"generator"` stream).
    pub source: Box<dyn PairSource>,
    /// The contrastive objective.
    pub loss: Box<dyn ContrastiveLoss<f32>>,
    /// The alignment average over several positives per anchor (`loss.positives` > 1).
    pub positives: Option<ExtraPositives>,
    encoder: EncoderConfig,
}

impl Components {
    /// Validates `cfg` and builds its source (once) and objective.
    ///
    /// # Errors
    /// An invalid configuration (naming the key) or a failed generator build.
    pub fn build(cfg: &TrainConfig, seed: &RunSeed) -> Result<Self> {
        let Validated {
            prior,
            mixing,
            encoder,
            loss,
            positives,
            antithetic,
        } = cfg.validate()?;
        let generator = InvertibleMlp::build(&mixing, &mut seed.stream("generator"))?;
        let mut source = LatentPairs::new(prior, Box::new(generator))?;
        if antithetic.is_some() {
            source = source.antithetic()?;
        }
        Ok(Components {
            source: Box::new(source),
            loss,
            positives,
            encoder,
        })
    }

    /// A freshly initialised encoder drawn from `rng`.
    ///
    /// # Errors
    /// As the encoder's constructor.
    pub fn new_encoder(&self, rng: &mut dyn RngCore) -> Result<Box<dyn TrainableEncoder>> {
        Ok(Box::new(MlpEncoder::new(self.encoder.clone(), rng)?))
    }

    /// A fresh optimiser for the encoder.
    ///
    /// # Errors
    /// Invalid optimiser settings.
    pub fn new_optimizer(&self) -> Result<Adam> {
        Ok(Adam::new(self.encoder.adam)?)
    }

    /// Width of the encoder's representation.
    pub fn encoder_output_dim(&self) -> usize {
        self.encoder.output_dim
    }

    /// Description of the encoder, as result files record it.
    pub fn describe_encoder(&self) -> String {
        self.encoder.describe()
    }
}
