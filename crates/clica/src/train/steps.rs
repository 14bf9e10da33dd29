//! The step loop shared by the contrastive and the supervised phase, and scoring on fresh
//! samples. Everything goes through the traits: [`PairSource`], [`TrainableEncoder`],
//! [`ContrastiveLoss`] and [`Metric`]; buffers are sized from the shapes they declare.

use super::progress::Observer;
use super::Setup;
use crate::io::write_atomic;
use crate::{Error, Result};
use clica_core::{ClicaRng, Metric, NamedTensor, PairSource, TrainableEncoder};
use clica_eval::{Correlation, MccMetric, R2HeldOut, R2InSample};
use clica_objectives::{ContrastiveLoss, ExtraPositives};
use clica_optim::Adam;
use clica_records::{FinalScores, LogPoint, MeanStd, PerLatent, StepPhases};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Which objective a training loop optimises.
pub(crate) enum Objective<'a> {
    /// The loss, and the alignment average over several positives per anchor when
    /// `loss.positives` > 1.
    Contrastive(&'a dyn ContrastiveLoss<f32>, Option<&'a ExtraPositives>),
    Supervised,
}

/// How a training loop ended.
pub(crate) enum Ended {
    Completed,
    Interrupted,
}

/// The representation of a sample's observations, widened to f64 for scoring.
fn represent(
    encoder: &dyn TrainableEncoder,
    source: &dyn PairSource,
    rng: &mut ClicaRng,
    n: usize,
) -> (Array2<f64>, Array2<f64>) {
    let sample = source.sample(rng, n);
    let h = encoder.encode_f32(sample.x.to_f32().view()).mapv(f64::from);
    (sample.z, h)
}

/// Scores `encoder` on `batches` fresh samples drawn from `rng`: every metric of
/// [`FinalScores`], mean ± std over the batches.
pub(crate) fn final_scores(
    setup: &Setup,
    encoder: &dyn TrainableEncoder,
    rng: &mut ClicaRng,
    batches: usize,
) -> Result<FinalScores> {
    // The in-sample R² is the mean of the per-latent R² (one affine fit serves both), and the
    // Pearson MCC's matching gives the per-latent |ρ|: each is computed once per batch.
    let metrics: [&dyn Metric; 2] = [&R2HeldOut, &MccMetric(Correlation::Spearman)];
    let (mut r2, mut mcc_pearson, mut others): (Vec<f64>, Vec<f64>, [Vec<f64>; 2]) =
        Default::default();
    let dim = setup.source().latent_dim();
    let (mut r2_sum, mut mcc_sum) = (vec![0.0; dim], vec![0.0; dim]);
    for _ in 0..batches {
        let (z, h) = represent(encoder, setup.source(), rng, setup.config.eval.samples);
        let per_r2 = clica_eval::r2_per_latent(z.view(), h.view())?;
        r2.push(clica_eval::r2_mean(&per_r2)?);
        let pearson = clica_eval::mcc(z.view(), h.view(), Correlation::Pearson)?;
        mcc_pearson.push(pearson.score);
        for (c, m) in others.iter_mut().zip(metrics) {
            c.push(m.score(z.view(), h.view())?);
        }
        for (s, v) in r2_sum.iter_mut().zip(per_r2) {
            *s += v;
        }
        for (s, v) in mcc_sum.iter_mut().zip(pearson.matched) {
            *s += v;
        }
    }
    let k = batches as f64;
    Ok(FinalScores {
        r2: MeanStd::of(&r2),
        r2_held_out: MeanStd::of(&others[0]),
        mcc_pearson: MeanStd::of(&mcc_pearson),
        mcc_spearman: MeanStd::of(&others[1]),
        per_latent: Some(PerLatent {
            r2: r2_sum.into_iter().map(|v| v / k).collect(),
            mcc_pearson: mcc_sum.into_iter().map(|v| v / k).collect(),
        }),
    })
}

/// An exponential moving average of an encoder's parameters (`train.ema`): after every step
/// e ← β·e + (1 − β)·θ, in f32, starting from the initial weights.
pub(crate) struct Ema {
    beta: f32,
    /// The averaged weights, in the encoder's parameter order.
    pub weights: Vec<NamedTensor>,
}

impl Ema {
    /// An average with decay `beta` starting at `start`.
    pub fn new(beta: f64, start: Vec<NamedTensor>) -> Self {
        Ema {
            beta: beta as f32,
            weights: start,
        }
    }

    /// Folds in the current parameters.
    fn update(&mut self, live: &[NamedTensor]) {
        assert_eq!(live.len(), self.weights.len(), "parameter list");
        let (b, c) = (self.beta, 1.0 - self.beta);
        for (e, p) in self.weights.iter_mut().zip(live) {
            assert_eq!(e.data.len(), p.data.len(), "parameter `{}`", p.name);
            for (x, &y) in e.data.iter_mut().zip(&p.data) {
                *x = b * *x + c * y;
            }
        }
    }
}

/// The inner loop shared by contrastive and supervised training, with everything a
/// checkpoint of it records.
pub(crate) struct Loop<'a> {
    pub setup: &'a Setup,
    pub encoder: Box<dyn TrainableEncoder>,
    pub optimizer: Adam,
    pub data_rng: ClicaRng,
    pub log_rng: ClicaRng,
    /// Steps completed.
    pub step: u64,
    /// Loss of the last completed step (NaN before the first).
    pub last_loss: f64,
    /// Seconds of training so far, earlier segments of a resumed run included.
    pub elapsed_s: f64,
    /// Points logged so far; the metrics file is rewritten from them at every log point.
    pub points: Vec<LogPoint>,
    pub metrics: PathBuf,
    /// The moving average of the weights the loop is scored with, if the run keeps one.
    pub ema: Option<Ema>,
    /// Where this invocation's steps spent their time (not checkpointed).
    pub phases: PhaseClock,
}

/// Wall-clock seconds of the steps a loop ran in this invocation, by phase: drawing the batch,
/// the forward pass, the loss, the backward pass, the update (optimiser, weight average,
/// divergence checks) and logging (scores, metrics, checkpoints).
#[derive(Debug, Default, Clone)]
pub(crate) struct PhaseClock {
    steps: u64,
    seconds: [f64; 6],
}

impl PhaseClock {
    /// Adds one step, given the instants that start the draw, forward, loss, checks,
    /// backward, update and logging phases and the one that ends the step.
    fn add(&mut self, m: [Instant; 8]) {
        let span = |a: usize, b: usize| (m[b] - m[a]).as_secs_f64();
        let parts = [
            span(0, 1),
            span(1, 2),
            span(2, 3),
            span(4, 5),
            span(3, 4) + span(5, 6),
            span(6, 7),
        ];
        for (total, part) in self.seconds.iter_mut().zip(parts) {
            *total += part;
        }
        self.steps += 1;
    }

    /// Mean milliseconds per step of each phase; `None` before the first step.
    pub fn summary(&self) -> Option<StepPhases> {
        (self.steps > 0).then(|| {
            let ms = |i: usize| self.seconds[i] * 1e3 / self.steps as f64;
            StepPhases {
                steps: self.steps,
                draw_ms: ms(0),
                forward_ms: ms(1),
                loss_ms: ms(2),
                backward_ms: ms(3),
                update_ms: ms(4),
                logging_ms: ms(5),
            }
        })
    }
}

impl<'a> Loop<'a> {
    /// A fresh loop: the encoder from stream `encoder`, data and log streams `data`, `log`.
    pub fn new(
        setup: &'a Setup,
        [encoder, data, log]: [&str; 3],
        metrics: PathBuf,
    ) -> Result<Self> {
        Ok(Loop {
            setup,
            encoder: setup
                .components
                .new_encoder(&mut setup.seed.stream(encoder))?,
            optimizer: setup.components.new_optimizer()?,
            data_rng: setup.seed.stream(data),
            log_rng: setup.seed.stream(log),
            step: 0,
            last_loss: f64::NAN,
            elapsed_s: 0.0,
            points: Vec::new(),
            metrics,
            ema: None,
            phases: PhaseClock::default(),
        })
    }

    /// Keeps a moving average of the weights with decay `beta` from now on; the loop is then
    /// scored with it.
    pub fn keep_average(&mut self, beta: f64) {
        self.ema = Some(Ema::new(beta, self.encoder.parameters()));
    }

    /// Loads the averaged weights into the encoder for good (the end of a phase). Without
    /// an average, nothing changes.
    pub fn adopt_average(&mut self) -> Result<()> {
        if let Some(ema) = &self.ema {
            self.encoder.set_parameters(&ema.weights)?;
        }
        Ok(())
    }

    /// Runs the steps after `self.step` up to `steps`. `save` writes a checkpoint of the
    /// loop; it is called every `train.checkpoint_every` steps, when the phase ends and when
    /// `stop` is set.
    pub fn run(
        &mut self,
        objective: Objective<'_>,
        steps: u64,
        observer: &mut dyn Observer,
        stop: Option<&AtomicBool>,
        save: &mut dyn FnMut(&Loop<'_>) -> Result<()>,
    ) -> Result<Ended> {
        let cfg = &self.setup.config;
        let source = self.setup.source();
        let b = cfg.train.batch;
        let every = cfg.train.checkpoint_every;
        // Rows 0..b: anchors; b..2b: positives (contrastive) or independent draws
        // (supervised); with M positives per anchor, rows (m+1)·b..(m+2)·b hold the m-th.
        let positives = match objective {
            Objective::Contrastive(_, Some(extra)) => extra.positives(),
            _ => 1,
        };
        let rows = (1 + positives) * b;
        let mut x = Array2::<f32>::zeros((rows, source.observation_len()));
        let mut z = Array2::<f64>::zeros((rows, source.latent_dim()));
        let mut grad = Array2::<f32>::zeros((rows, self.encoder.output_dim()));
        let mut target = Array2::<f32>::zeros((2 * b, source.latent_dim()));
        // Peak learning rate of this phase (the supervised baseline may have its own).
        let peak = match objective {
            Objective::Contrastive(..) => cfg.train.lr,
            Objective::Supervised => cfg.eval.supervised_lr.unwrap_or(cfg.train.lr),
        };
        let start = Instant::now();
        let elapsed0 = self.elapsed_s;
        write_points(&self.metrics, &self.points)?;
        while self.step < steps {
            let t_draw = Instant::now();
            let step = self.step + 1;
            let lr = cfg.train.lr_with_peak(peak, step, steps);
            match objective {
                Objective::Contrastive(..) => {
                    source.draw_pairs(&mut self.data_rng, positives, x.view_mut(), z.view_mut())
                }
                Objective::Supervised => {
                    let (xa, xb) = x.view_mut().split_at(Axis(0), b);
                    let (za, zb) = z.view_mut().split_at(Axis(0), b);
                    source.draw_marginal(&mut self.data_rng, xa, za);
                    source.draw_marginal(&mut self.data_rng, xb, zb);
                }
            }
            let t_forward = Instant::now();
            let h = self.encoder.forward_train(x.view());
            assert_eq!(h.dim(), grad.dim(), "encoder output shape");
            let t_loss = Instant::now();
            let value = match objective {
                Objective::Contrastive(kernel, extra) => {
                    let (h_a, h_rest) = h.split_at(Axis(0), b);
                    let (h_p, h_extra) = h_rest.split_at(Axis(0), b);
                    let (g_a, g_rest) = grad.view_mut().split_at(Axis(0), b);
                    let (g_p, g_extra) = g_rest.split_at(Axis(0), b);
                    let (mut g_a, mut g_p) = (g_a, g_p);
                    // The extra positives' correction does not need the loss's gradients
                    // until it is added to them, so it runs beside the loss.
                    let (value, correction) = rayon::join(
                        || kernel.loss_and_grad(h_a, h_p, g_a.view_mut(), g_p.view_mut()),
                        || extra.map(|e| e.correction(h_a, h_p, h_extra)),
                    );
                    match correction {
                        Some(c) => value + c.add_into(g_a, g_p, g_extra),
                        None => value,
                    }
                }
                Objective::Supervised => {
                    // The loss is the mean MSE over both halves.
                    target.zip_mut_with(&z, |t, &v| *t = v as f32);
                    clica_objectives::mse_and_grad(h, target.view(), grad.view_mut())
                }
            };
            let t_checks = Instant::now();
            let loss = f64::from(value);
            let diverged = |what: String| Error::Diverged { step, what };
            if !loss.is_finite() {
                return Err(diverged("the loss".into()));
            }
            if let Some((r, c)) = first_non_finite(grad.view()) {
                return Err(diverged(format!(
                    "the output gradient (row {r}, column {c})"
                )));
            }
            let t_backward = Instant::now();
            self.encoder.backward(grad.view());
            let t_update = Instant::now();
            if let Some((name, i)) = self.encoder.first_non_finite_gradient() {
                return Err(diverged(format!(
                    "the gradient of parameter `{name}` (entry {i})"
                )));
            }
            self.optimizer.step(self.encoder.as_mut(), lr as f32)?;
            if let Some((name, i)) = self.encoder.first_non_finite_parameter() {
                return Err(diverged(format!("the parameter `{name}` (entry {i})")));
            }
            if let Some(ema) = &mut self.ema {
                ema.update(&self.encoder.parameters());
            }
            let t_logging = Instant::now();
            self.step = step;
            self.last_loss = loss;
            self.elapsed_s = elapsed0 + start.elapsed().as_secs_f64();
            observer.step(step, loss, self.elapsed_s);
            if step == 1 || step % cfg.train.log_every == 0 || step == steps {
                let point = self.log_point(step, loss, lr)?;
                observer.log(&point);
                self.points.push(point);
                write_points(&self.metrics, &self.points)?;
            }
            if step < steps {
                if stop.is_some_and(|f| f.load(Ordering::SeqCst)) {
                    save(self)?;
                    return Ok(Ended::Interrupted);
                }
                if every > 0 && step % every == 0 {
                    save(self)?;
                }
            }
            self.phases.add([
                t_draw,
                t_forward,
                t_loss,
                t_checks,
                t_backward,
                t_update,
                t_logging,
                Instant::now(),
            ]);
        }
        save(self)?;
        Ok(Ended::Completed)
    }

    /// Scores the encoder (its averaged weights, if the loop keeps them) on a fresh sample
    /// from the log stream; with averaged weights, the raw weights' R² on the same sample too.
    fn log_point(&mut self, step: u64, loss: f64, lr: f64) -> Result<LogPoint> {
        let sample = self
            .setup
            .source()
            .sample(&mut self.log_rng, self.setup.config.eval.samples);
        let x = sample.x.to_f32();
        let encode = |e: &dyn TrainableEncoder| e.encode_f32(x.view()).mapv(f64::from);
        let (z, raw) = (sample.z, encode(self.encoder.as_ref()));
        let (h, r2_raw) = match &self.ema {
            Some(ema) => {
                let live = self.encoder.parameters();
                self.encoder.set_parameters(&ema.weights)?;
                let h = encode(self.encoder.as_ref());
                self.encoder.set_parameters(&live)?;
                let r2_raw = match first_non_finite(raw.view()) {
                    None => Some(R2InSample.score(z.view(), raw.view())?),
                    Some(_) => Some(f64::NAN),
                };
                (h, r2_raw)
            }
            None => (raw, None),
        };
        if let Some((r, c)) = first_non_finite(h.view()) {
            return Err(Error::Diverged {
                step,
                what: format!("the encoder output (row {r}, column {c})"),
            });
        }
        // One affine fit: its per-latent scores, and their mean (bit for bit `R2InSample`).
        let per = clica_eval::r2_per_latent(z.view(), h.view())?;
        let r2 = clica_eval::r2_mean(&per)?;
        let r2_per_latent = Some(per);
        // MCC needs a representation at least as wide as the latents.
        let mcc = if h.ncols() >= z.ncols() {
            MccMetric(Correlation::Pearson).score(z.view(), h.view())?
        } else {
            f64::NAN
        };
        Ok(LogPoint {
            step,
            loss,
            lr,
            r2,
            mcc,
            elapsed_s: self.elapsed_s,
            r2_raw,
            r2_per_latent,
        })
    }
}

fn first_non_finite<T: Copy + Into<f64>>(a: ArrayView2<'_, T>) -> Option<(usize, usize)> {
    // Every step checks the output gradient: a branch-free pass over a contiguous array
    // (which the compiler vectorises) answers the common case, and only a non-finite entry
    // pays for the indexed search.
    if let Some(s) = a.as_slice() {
        let bad = s.chunks(1024).any(|c| {
            c.iter()
                .fold(false, |bad, v| bad | !(*v).into().is_finite())
        });
        if !bad {
            return None;
        }
    }
    a.indexed_iter()
        .find(|(_, v)| !(**v).into().is_finite())
        .map(|(i, _)| i)
}

/// Rewrites a JSON-lines metrics file from all its points, atomically.
pub(crate) fn write_points(path: &Path, points: &[LogPoint]) -> Result<()> {
    let mut text = String::new();
    for p in points {
        text.push_str(&serde_json::to_string(p).map_err(|e| Error::Config(e.to_string()))?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_folds_in_the_parameters_with_its_decay() {
        let t = |v: &[f32]| NamedTensor {
            name: "w".into(),
            shape: vec![v.len()],
            data: v.to_vec(),
        };
        let mut ema = Ema::new(0.75, vec![t(&[4.0, -8.0])]);
        ema.update(&[t(&[0.0, 8.0])]);
        assert_eq!(ema.weights[0].data, vec![3.0, -4.0]);
        ema.update(&[t(&[3.0, 0.0])]);
        assert_eq!(ema.weights[0].data, vec![3.0, -3.0]);
    }
}
