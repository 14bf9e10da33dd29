//! Shared helpers of the integration tests: random inputs, every loss configuration, and
//! plain O(B²d) reference implementations written straight from the formulas.
#![allow(dead_code)]

use clica_core::RunSeed;
use clica_objectives::{
    AlignUniform, ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce, UniformOn,
};
use ndarray::{Array2, ArrayView2};
use rand::Rng;

/// A loss configuration, with its plain reference.
#[derive(Debug, Clone, Copy)]
pub enum Config {
    Sphere {
        tau: f64,
        self_term: SelfTerm,
    },
    Lp {
        p: u32,
        tau: f64,
        form: LpForm,
        self_term: SelfTerm,
    },
    AlignUniform {
        alpha: f64,
        t: f64,
        lambda: f64,
        on: UniformOn,
    },
}

impl Config {
    pub fn build<F: clica_objectives::Real>(&self) -> Box<dyn ContrastiveLoss<F>> {
        match *self {
            Config::Sphere { tau, self_term } => {
                Box::new(SphereInfoNce::new(tau, self_term).unwrap())
            }
            Config::Lp {
                p,
                tau,
                form,
                self_term,
            } => Box::new(LpInfoNce::new(p, tau, form, self_term).unwrap()),
            Config::AlignUniform {
                alpha,
                t,
                lambda,
                on,
            } => Box::new(
                AlignUniform::new(alpha, t, lambda)
                    .unwrap()
                    .with_uniform_on(on),
            ),
        }
    }

    /// The smallest batch the loss is defined on.
    pub fn min_batch(&self) -> usize {
        match *self {
            Config::Lp {
                form: LpForm::Plain,
                self_term: SelfTerm::Exclude,
                ..
            } => 2,
            Config::AlignUniform { .. } => 2,
            _ => 1,
        }
    }

    /// The plain reference loss.
    pub fn naive(&self, h: ArrayView2<'_, f64>, ht: ArrayView2<'_, f64>) -> f64 {
        match *self {
            Config::Sphere { tau, self_term } => naive_sphere(h, ht, tau, self_term),
            Config::Lp {
                p,
                tau,
                form,
                self_term,
            } => naive_lp(h, ht, p, tau, form, self_term),
            Config::AlignUniform {
                alpha,
                t,
                lambda,
                on,
            } => naive_align_uniform(h, ht, alpha, t, lambda, on),
        }
    }
}

/// Every configuration the tests sweep: sphere × self-term, Lp × p × form × self-term, and
/// alignment/uniformity with default and non-default parameters on one or both views.
pub fn all_configs() -> Vec<Config> {
    let mut v = Vec::new();
    for self_term in [SelfTerm::Keep, SelfTerm::Exclude] {
        v.push(Config::Sphere {
            tau: 0.5,
            self_term,
        });
        for p in 1..=3 {
            for form in [LpForm::SimClr, LpForm::Plain] {
                v.push(Config::Lp {
                    p,
                    tau: 0.7,
                    form,
                    self_term,
                });
            }
        }
    }
    for on in [UniformOn::Anchors, UniformOn::Both] {
        v.push(Config::AlignUniform {
            alpha: 2.0,
            t: 2.0,
            lambda: 1.0,
            on,
        });
        v.push(Config::AlignUniform {
            alpha: 1.5,
            t: 1.3,
            lambda: 0.7,
            on,
        });
    }
    v
}

/// Anchors uniform on [−1, 1]^d and positives jittered around them, from a named stream.
pub fn inputs(seed: u64, name: &str, b: usize, d: usize) -> (Array2<f64>, Array2<f64>) {
    let mut rng = RunSeed::new(seed).stream(name);
    let h = Array2::from_shape_fn((b, d), |_| 2.0 * rng.random::<f64>() - 1.0);
    let noise = Array2::from_shape_fn((b, d), |_| 0.6 * rng.random::<f64>() - 0.3);
    let ht = &h + &noise;
    (h, ht)
}

fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn lp(a: &[f64], b: &[f64], p: u32) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().powi(p as i32))
        .sum()
}

fn row(a: ArrayView2<'_, f64>, i: usize) -> Vec<f64> {
    a.row(i).to_vec()
}

pub fn naive_sphere(
    h: ArrayView2<'_, f64>,
    ht: ArrayView2<'_, f64>,
    tau: f64,
    st: SelfTerm,
) -> f64 {
    let b = h.nrows();
    let mut total = 0.0;
    for i in 0..b {
        let hi = row(h, i);
        let pos = dot(&hi, &row(ht, i)) / tau;
        let mut terms = Vec::new();
        for j in 0..b {
            if j == i && st == SelfTerm::Exclude {
                continue;
            }
            terms.push(dot(&hi, &row(h, j)) / tau);
        }
        terms.push(pos);
        total += -pos + logsumexp(&terms);
    }
    total / b as f64
}

pub fn naive_lp(
    h: ArrayView2<'_, f64>,
    ht: ArrayView2<'_, f64>,
    p: u32,
    tau: f64,
    form: LpForm,
    st: SelfTerm,
) -> f64 {
    let b = h.nrows();
    let mut total = 0.0;
    for i in 0..b {
        let hi = row(h, i);
        let pos = lp(&hi, &row(ht, i), p);
        let mut neg_logits = Vec::new();
        for j in 0..b {
            if j == i && st == SelfTerm::Exclude {
                continue;
            }
            neg_logits.push(-lp(&hi, &row(h, j), p) / tau);
        }
        total += match form {
            LpForm::SimClr => {
                let mut terms = neg_logits.clone();
                terms.push(-pos / tau);
                pos / tau + logsumexp(&terms)
            }
            LpForm::Plain => {
                let mean: f64 =
                    neg_logits.iter().map(|x| x.exp()).sum::<f64>() / neg_logits.len() as f64;
                pos / tau + mean.ln()
            }
        };
    }
    total / b as f64
}

fn naive_uniform(h: ArrayView2<'_, f64>, t: f64) -> f64 {
    let b = h.nrows();
    let mut logits = Vec::new();
    for i in 0..b {
        for j in 0..b {
            if i != j {
                logits.push(-t * lp(&row(h, i), &row(h, j), 2));
            }
        }
    }
    logsumexp(&logits) - (logits.len() as f64).ln()
}

pub fn naive_align_uniform(
    h: ArrayView2<'_, f64>,
    ht: ArrayView2<'_, f64>,
    alpha: f64,
    t: f64,
    lambda: f64,
    on: UniformOn,
) -> f64 {
    let b = h.nrows();
    let align = (0..b)
        .map(|i| lp(&row(h, i), &row(ht, i), 2).sqrt().powf(alpha))
        .sum::<f64>()
        / b as f64;
    let uniform = match on {
        UniformOn::Anchors => naive_uniform(h, t),
        UniformOn::Both => 0.5 * (naive_uniform(h, t) + naive_uniform(ht, t)),
    };
    align + lambda * uniform
}

/// Runs `loss_and_grad`, returning (loss, grad_h, grad_h_tilde).
pub fn with_grads<F: clica_objectives::Real>(
    loss: &dyn ContrastiveLoss<F>,
    h: ArrayView2<'_, F>,
    ht: ArrayView2<'_, F>,
) -> (F, Array2<F>, Array2<F>) {
    let mut g = Array2::from_elem(h.raw_dim(), F::nan());
    let mut gt = Array2::from_elem(h.raw_dim(), F::nan());
    let v = loss.loss_and_grad(h, ht, g.view_mut(), gt.view_mut());
    (v, g, gt)
}

/// max |a − b| / max |b| (norm-wise relative error).
pub fn rel_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    num / den
}

/// Step of the central differences.
pub const FD_STEP: f64 = 1e-6;
/// Relative error allowed between analytic and finite-difference gradients.
pub const FD_TOL: f64 = 1e-6;

/// Central differences of `f` at `x` along every entry.
pub fn fd_grad(x: &Array2<f64>, f: impl Fn(&Array2<f64>) -> f64) -> Array2<f64> {
    let mut g = Array2::zeros(x.raw_dim());
    for idx in ndarray::indices(x.raw_dim()) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += FD_STEP;
        xm[idx] -= FD_STEP;
        g[idx] = (f(&xp) - f(&xm)) / (2.0 * FD_STEP);
    }
    g
}

/// Checks both gradients of `loss` at (h, h̃) against central differences, and that
/// `loss_and_grad` returns the value of `loss`.
pub fn check_fd(loss: &dyn ContrastiveLoss<f64>, h: &Array2<f64>, ht: &Array2<f64>) {
    let (value, g, gt) = with_grads(loss, h.view(), ht.view());
    assert_eq!(value, loss.loss(h.view(), ht.view()), "{}", loss.name());
    let fd_h = fd_grad(h, |x| loss.loss(x.view(), ht.view()));
    let fd_ht = fd_grad(ht, |x| loss.loss(h.view(), x.view()));
    let (eh, et) = (rel_err(&g, &fd_h), rel_err(&gt, &fd_ht));
    eprintln!("{:55} grad_h {eh:.1e} grad_h_tilde {et:.1e}", loss.name());
    assert!(eh < FD_TOL, "{}: grad_h relative error {eh:e}", loss.name());
    assert!(
        et < FD_TOL,
        "{}: grad_h_tilde relative error {et:e}",
        loss.name()
    );
}

/// `got` equals the reference `want` to 1e-12 relative.
pub fn assert_matches_reference(name: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() < 1e-12 * want.abs().max(1.0),
        "{name}: {got} vs the reference {want}"
    );
}
