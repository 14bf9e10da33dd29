//! A contrastive training loop written by hand over clica's traits, without the CLI or the
//! trainer: the paper's sphere setting (uniform latents, vMF positives, sphere InfoNCE).
//!
//! `cargo run --release -p clica --example train_loop` (≈ 10 s on 2 cores). Swap any part:
//! another `PairSource`, another `TrainableEncoder`, another `ContrastiveLoss`.

use clica::source::LatentPairs;
use clica_core::{Metric, PairSource, RunSeed, TrainableEncoder};
use clica_encoders::{EncoderConfig, MlpEncoder};
use clica_eval::R2InSample;
use clica_generators::{InvertibleMlp, MlpConfig};
use clica_objectives::{ContrastiveLoss, SelfTerm, SphereInfoNce};
use clica_optim::{Adam, AdamConfig};
use clica_priors::{Conditional, Marginal, Prior, Space};
use ndarray::{Array2, Axis};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, b, seed) = (10, 512, RunSeed::new(0));
    let prior = Prior::new(
        Space::Sphere { radius: 1.0 },
        n,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 10.0 },
    )?;
    let mixing = MlpConfig {
        cond_pool_size: 1000,
        ..MlpConfig::new(n)
    };
    let g = InvertibleMlp::build(&mixing, &mut seed.stream("generator"))?;
    let source = LatentPairs::new(Box::new(prior), Box::new(g))?;
    let mut f = MlpEncoder::new(
        EncoderConfig::paper(n).with_hidden(vec![10 * n; 3]),
        &mut seed.stream("encoder"),
    )?;
    let (mut adam, loss) = (
        Adam::new(AdamConfig::default())?,
        SphereInfoNce::new(0.1, SelfTerm::Keep)?,
    );
    let (mut x, mut z, mut grad) = (
        Array2::zeros((2 * b, n)),
        Array2::zeros((2 * b, n)),
        Array2::zeros((2 * b, n)),
    );
    let mut rng = seed.stream("train.data");
    for step in 1..=1500 {
        source.draw_pairs(&mut rng, 1, x.view_mut(), z.view_mut());
        let h = TrainableEncoder::forward_train(&mut f, x.view());
        let ((h_a, h_p), (g_a, g_p)) =
            (h.split_at(Axis(0), b), grad.view_mut().split_at(Axis(0), b));
        let value = loss.loss_and_grad(h_a, h_p, g_a, g_p);
        TrainableEncoder::backward(&mut f, grad.view());
        adam.step(&mut f, 1e-3)?;
        if step % 500 == 0 {
            let s = source.sample(&mut seed.stream("eval"), 4096);
            let h = f.encode_f32(s.x.to_f32().view()).mapv(f64::from);
            println!(
                "step {step}: loss {value:.4}, R² {:.4}",
                R2InSample.score(s.z.view(), h.view())?
            );
        }
    }
    Ok(())
}
