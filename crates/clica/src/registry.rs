//! The registration point: which data source and encoder a configuration builds (a loss is
//! built by its `config::Objective` variant). A new pair source or encoder kind is one
//! crate, one section variant in `config/sections.rs` and one arm here.

use crate::config::{
    EncoderChoice, EncoderSection, InputNorm, MixingChoice, TrainConfig, Validated,
};
use crate::imageset::{ImageSet, ImageSetPairs};
use crate::source::LatentPairs;
use crate::Result;
use clica_conv::{ConvEncoder, ResNetEncoder};
use clica_core::{Generator, PairSource, RunSeed, TrainableEncoder};
use clica_encoders::{MlpEncoder, Standardized};
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
    encoder: EncoderChoice,
    /// The MLP's fixed input standardisation (`encoder.input_norm = "data"`): per-feature
    /// mean and standard deviation of the source's observations.
    mlp_input_norm: Option<(Vec<f32>, Vec<f32>)>,
}

/// Images drawn to measure the input's per-channel mean and std (`encoder.input_norm = "data"`).
const INPUT_NORM_SAMPLES: usize = 1024;

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
            anchor_reflection,
            images,
        } = cfg.validate()?;
        let source: Box<dyn PairSource> = if let Some(set) = images {
            let train = ImageSet::load(&set.path, set.size)?;
            let test = set
                .test_path
                .as_deref()
                .map(|p| ImageSet::load(p, set.size))
                .transpose()?;
            Box::new(ImageSetPairs::new(train, test, prior)?)
        } else {
            let generator: Box<dyn Generator> = match &mixing {
                MixingChoice::Mlp(m) => {
                    Box::new(InvertibleMlp::build(m, &mut seed.stream("generator"))?)
                }
                MixingChoice::Render(r) => Box::new(clica_render::Renderer::new(r)?),
            };
            let mut source = LatentPairs::new(prior, generator)?;
            if antithetic.is_some() {
                source = source.antithetic()?;
            }
            if anchor_reflection.is_some() {
                source = source.antithetic_anchors()?;
            }
            Box::new(source)
        };
        let mut encoder = encoder;
        let image_norm = |channels: usize| {
            let sample = source.sample(&mut seed.stream("encoder.input_norm"), INPUT_NORM_SAMPLES);
            channel_stats(&sample.x.to_f32(), channels)
        };
        match &mut encoder {
            EncoderChoice::Conv {
                config,
                from_data: true,
            } => {
                config.input_norm = Some(image_norm(config.input[0]));
                config.validate()?;
            }
            EncoderChoice::ResNet {
                config,
                from_data: true,
            } => {
                config.input_norm = Some(image_norm(config.input[0]));
                config.validate()?;
            }
            _ => {}
        }
        let mlp_input_norm = match (&cfg.encoder, &encoder) {
            (EncoderSection::Mlp(m), EncoderChoice::Mlp(_)) if m.input_norm == InputNorm::Data => {
                let sample =
                    source.sample(&mut seed.stream("encoder.input_norm"), INPUT_NORM_SAMPLES);
                let x = sample.x.to_f32();
                Some(channel_stats(&x, x.ncols()))
            }
            _ => None,
        };
        Ok(Components {
            source,
            loss,
            positives,
            encoder,
            mlp_input_norm,
        })
    }

    /// A freshly initialised encoder drawn from `rng`.
    ///
    /// # Errors
    /// As the encoder's constructor.
    pub fn new_encoder(&self, rng: &mut dyn RngCore) -> Result<Box<dyn TrainableEncoder>> {
        Ok(match &self.encoder {
            EncoderChoice::Mlp(c) => {
                let mlp = Box::new(MlpEncoder::new(c.clone(), rng)?);
                match &self.mlp_input_norm {
                    Some((mean, std)) => {
                        Box::new(Standardized::new(mlp, mean.clone(), std.clone())?)
                    }
                    None => mlp,
                }
            }
            EncoderChoice::Conv { config, .. } => Box::new(ConvEncoder::new(config.clone(), rng)?),
            EncoderChoice::ResNet { config, .. } => {
                Box::new(ResNetEncoder::new(config.clone(), rng)?)
            }
        })
    }

    /// A fresh optimiser for the encoder.
    ///
    /// # Errors
    /// Invalid optimiser settings.
    pub fn new_optimizer(&self) -> Result<Adam> {
        Ok(Adam::new(self.encoder.adam())?)
    }

    /// Width of the encoder's representation.
    pub fn encoder_output_dim(&self) -> usize {
        self.encoder.output_dim()
    }

    /// Description of the encoder, as result files record it.
    pub fn describe_encoder(&self) -> String {
        match &self.mlp_input_norm {
            Some((mean, std)) => format!(
                "{} {}",
                self.encoder.describe(),
                clica_encoders::describe_input_norm(mean, std)
            ),
            None => self.encoder.describe(),
        }
    }
}

/// Per-channel mean and standard deviation of channel-first images (rows of `x`), computed
/// in f64 over all pixels of all rows.
fn channel_stats(x: &ndarray::Array2<f32>, channels: usize) -> (Vec<f32>, Vec<f32>) {
    let plane = x.ncols() / channels;
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    for c in 0..channels {
        let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0.0f64);
        for row in x.rows() {
            for &v in row.iter().skip(c * plane).take(plane) {
                s += f64::from(v);
                s2 += f64::from(v) * f64::from(v);
                n += 1.0;
            }
        }
        let m = s / n;
        mean.push(m as f32);
        // A constant channel keeps std 1 (nothing to scale).
        let sd = (s2 / n - m * m).max(0.0).sqrt();
        std.push(if sd > 1e-6 { sd as f32 } else { 1.0 });
    }
    (mean, std)
}
