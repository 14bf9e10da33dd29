//! The kernels against plain O(B²d) implementations of the formulas, and the collapsed-encoder
//! values.

mod common;

use clica_objectives::{ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce};
use common::{all_configs, inputs};
use ndarray::Array2;

#[test]
fn every_loss_matches_the_plain_reference() {
    for b in [1usize, 2, 5, 33, 257] {
        let (h, ht) = inputs(21, &format!("reference.{b}"), b, 3);
        for cfg in all_configs() {
            if b < cfg.min_batch() {
                continue;
            }
            let loss = cfg.build::<f64>();
            let got = loss.loss(h.view(), ht.view());
            let want = cfg.naive(h.view(), ht.view());
            let err = (got - want).abs() / want.abs().max(1.0);
            assert!(
                err < 1e-12,
                "{} at B = {b}: {got} vs {want} ({err:e})",
                loss.name()
            );
        }
    }
}

#[test]
fn plain_reference_sees_a_wrong_loss() {
    // The comparison can fail: a different temperature gives a different value.
    let (h, ht) = inputs(22, "reference.neg", 33, 3);
    for cfg in all_configs() {
        let other = match cfg {
            common::Config::Sphere { self_term, .. } => common::Config::Sphere {
                tau: 0.51,
                self_term,
            },
            common::Config::Lp {
                p, form, self_term, ..
            } => common::Config::Lp {
                p,
                tau: 0.71,
                form,
                self_term,
            },
            common::Config::AlignUniform {
                alpha,
                t,
                lambda,
                on,
            } => common::Config::AlignUniform {
                alpha,
                t: t * 1.01,
                lambda,
                on,
            },
        };
        let got = cfg.build::<f64>().loss(h.view(), ht.view());
        let want = other.naive(h.view(), ht.view());
        assert!((got - want).abs() > 1e-6, "{cfg:?}");
    }
}

fn collapsed(b: usize) -> Array2<f64> {
    let v = [0.3, -0.7, 0.45, 0.1];
    Array2::from_shape_fn((b, v.len()), |(_, k)| v[k])
}

fn ln_b_plus_1_losses() -> Vec<Box<dyn ContrastiveLoss<f64>>> {
    let mut v: Vec<Box<dyn ContrastiveLoss<f64>>> =
        vec![Box::new(SphereInfoNce::new(0.5, SelfTerm::Keep).unwrap())];
    for p in 1..=3 {
        v.push(Box::new(
            LpInfoNce::new(p, 0.5, LpForm::SimClr, SelfTerm::Keep).unwrap(),
        ));
    }
    v
}

#[test]
fn collapsed_encoder_scores_ln_b_plus_1_with_the_self_term() {
    for b in [1usize, 2, 5, 33, 257] {
        let h = collapsed(b);
        for loss in ln_b_plus_1_losses() {
            let got = loss.loss(h.view(), h.view());
            let want = (b as f64 + 1.0).ln();
            assert!(
                (got - want).abs() < 1e-12,
                "{} at B = {b}: {got}",
                loss.name()
            );
        }
    }
}

#[test]
fn collapsed_encoder_at_the_reference_batch_size() {
    let b = 6144;
    let want = (6144f64 + 1.0).ln();
    assert!((want - 8.7234).abs() < 1e-4);
    let h = collapsed(b);
    let h32 = h.mapv(|v| v as f32);
    for (k, loss) in ln_b_plus_1_losses().iter().enumerate() {
        let got = loss.loss(h.view(), h.view());
        assert!((got - want).abs() < 1e-4, "{}: {got}", loss.name());
        let loss32: Box<dyn ContrastiveLoss<f32>> = if k == 0 {
            Box::new(SphereInfoNce::new(0.5, SelfTerm::Keep).unwrap())
        } else {
            Box::new(LpInfoNce::new(k as u32, 0.5, LpForm::SimClr, SelfTerm::Keep).unwrap())
        };
        let got = f64::from(loss32.loss(h32.view(), h32.view()));
        assert!((got - want).abs() < 1e-4, "{} (f32): {got}", loss32.name());
    }
}

#[test]
fn collapsed_encoder_under_the_other_conventions() {
    let b = 33;
    let h = collapsed(b);
    for p in 1..=3 {
        // Without the self term: B − 1 negatives and the positive, ln(B).
        let l = LpInfoNce::new(p, 0.5, LpForm::SimClr, SelfTerm::Exclude).unwrap();
        assert!((l.loss(h.view(), h.view()) - (b as f64).ln()).abs() < 1e-12);
        // The plain form is a log-mean-exp of zeros: 0.
        for st in [SelfTerm::Keep, SelfTerm::Exclude] {
            let l = LpInfoNce::new(p, 0.5, LpForm::Plain, st).unwrap();
            assert!(l.loss(h.view(), h.view()).abs() < 1e-12);
        }
    }
    let s = SphereInfoNce::new(0.5, SelfTerm::Exclude).unwrap();
    assert!((s.loss(h.view(), h.view()) - (b as f64).ln()).abs() < 1e-12);
}
