//! Parameter validation, shape panics, strided views and the supervised MSE.

mod common;

use clica_objectives::{
    mse, mse_and_grad, AlignUniform, ContrastiveLoss, Error, LpForm, LpInfoNce, SelfTerm,
    SphereInfoNce, UniformOn,
};
use common::{all_configs, inputs, with_grads};
use ndarray::{s, Array2};

fn is_invalid(r: Result<impl std::fmt::Debug, Error>, param: &str) {
    match r {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, param),
        other => panic!("expected InvalidParameter({param}), got {other:?}"),
    }
}

#[test]
fn constructors_reject_invalid_parameters() {
    let (f, k) = (LpForm::SimClr, SelfTerm::Keep);
    for p in [0, 4, 7] {
        is_invalid(LpInfoNce::new(p, 1.0, f, k), "p");
    }
    for tau in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        is_invalid(LpInfoNce::new(2, tau, f, k), "tau");
        is_invalid(SphereInfoNce::new(tau, k), "tau");
    }
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        is_invalid(AlignUniform::new(bad, 2.0, 1.0), "alpha");
        is_invalid(AlignUniform::new(2.0, bad, 1.0), "t");
    }
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        is_invalid(AlignUniform::new(2.0, 2.0, bad), "lambda");
    }
    for p in 1..=3 {
        assert_eq!(
            LpInfoNce::new(p, 0.1, LpForm::Plain, SelfTerm::Exclude)
                .unwrap()
                .p(),
            p
        );
    }
    assert!(SphereInfoNce::new(1e-3, k).is_ok());
    assert_eq!(
        AlignUniform::new(2.0, 2.0, 1.0).unwrap(),
        AlignUniform::default()
    );
    assert!(AlignUniform::new(1.0, 0.5, 0.0).is_ok());
}

#[test]
fn names_identify_the_configuration() {
    let names: Vec<String> = all_configs()
        .iter()
        .map(|c| c.build::<f64>().name())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert_eq!(
        LpInfoNce::new(2, 1.0, LpForm::SimClr, SelfTerm::Keep)
            .unwrap()
            .name(),
        "l2_infonce_simclr(tau=1,self=keep)"
    );
    assert_eq!(
        AlignUniform::default()
            .with_uniform_on(UniformOn::Both)
            .name(),
        "align_uniform(alpha=2,t=2,lambda=1,on=both)"
    );
}

#[test]
#[should_panic(expected = "h_tilde")]
fn mismatched_views_panic() {
    let l = SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap();
    l.loss(
        Array2::<f64>::zeros((5, 3)).view(),
        Array2::zeros((4, 3)).view(),
    );
}

#[test]
#[should_panic(expected = "grad_h_tilde")]
fn mismatched_gradient_panics() {
    let l = LpInfoNce::new(1, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap();
    let h = Array2::<f32>::zeros((5, 3));
    let mut g = Array2::zeros((5, 3));
    let mut gt = Array2::zeros((5, 2));
    l.loss_and_grad(h.view(), h.view(), g.view_mut(), gt.view_mut());
}

#[test]
#[should_panic(expected = "at least 1")]
fn empty_batch_panics() {
    let l = LpInfoNce::new(2, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap();
    l.loss(
        Array2::<f64>::zeros((0, 3)).view(),
        Array2::zeros((0, 3)).view(),
    );
}

#[test]
#[should_panic(expected = "at least 2")]
fn plain_form_without_self_term_needs_two_rows() {
    let l = LpInfoNce::new(2, 1.0, LpForm::Plain, SelfTerm::Exclude).unwrap();
    l.loss(
        Array2::<f64>::zeros((1, 3)).view(),
        Array2::zeros((1, 3)).view(),
    );
}

#[test]
#[should_panic(expected = "at least 2")]
fn uniformity_needs_two_rows() {
    let l = AlignUniform::default();
    l.loss(
        Array2::<f64>::zeros((1, 3)).view(),
        Array2::zeros((1, 3)).view(),
    );
}

#[test]
#[should_panic(expected = "z is")]
fn mse_shapes_must_match() {
    mse(
        Array2::<f64>::zeros((4, 3)).view(),
        Array2::zeros((4, 2)).view(),
    );
}

#[test]
fn strided_views_give_the_same_results() {
    let (h, ht) = inputs(41, "views", 20, 3);
    // Column-major copies and a strided gradient buffer.
    let hf = h.t().as_standard_layout().into_owned().reversed_axes();
    let htf = ht.t().as_standard_layout().into_owned().reversed_axes();
    assert!(!hf.is_standard_layout());
    for cfg in all_configs() {
        let loss = cfg.build::<f64>();
        let (v, g, gt) = with_grads(loss.as_ref(), h.view(), ht.view());
        let mut big = Array2::zeros((20, 6));
        let mut big_t = Array2::zeros((20, 6));
        let v2 = loss.loss_and_grad(
            hf.view(),
            htf.view(),
            big.slice_mut(s![.., ..;2]),
            big_t.slice_mut(s![.., 1..;2]),
        );
        assert_eq!(v, v2, "{}", loss.name());
        assert_eq!(g, big.slice(s![.., ..;2]), "{}", loss.name());
        assert_eq!(gt, big_t.slice(s![.., 1..;2]), "{}", loss.name());
    }
}

#[test]
fn mse_is_pytorchs_mean_reduction() {
    let h = ndarray::array![[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]];
    let z = ndarray::array![[0.0, 2.0], [1.0, 4.0], [0.5, 1.0]];
    // Squared errors 1, 0, 4, 0, 0, 4 over 6 entries.
    assert_eq!(mse(h.view(), z.view()), 1.5);
    let mut g = Array2::zeros((3, 2));
    mse_and_grad(h.view(), z.view(), g.view_mut());
    let want = (&h - &z) * (2.0 / 6.0);
    assert_eq!(g, want);
    let h32 = h.mapv(|v| v as f32);
    assert_eq!(mse(h32.view(), z.mapv(|v| v as f32).view()), 1.5f32);
}

#[test]
fn losses_are_usable_as_trait_objects() {
    let losses: Vec<Box<dyn ContrastiveLoss<f32>>> = vec![
        Box::new(SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap()),
        Box::new(LpInfoNce::new(3, 1.0, LpForm::Plain, SelfTerm::Exclude).unwrap()),
        Box::new(AlignUniform::default()),
    ];
    let (h, ht) = inputs(42, "dyn", 9, 4);
    let (h, ht) = (h.mapv(|v| v as f32), ht.mapv(|v| v as f32));
    for l in &losses {
        let (v, g, gt) = with_grads(l.as_ref(), h.view(), ht.view());
        assert!(v.is_finite() && g.iter().chain(gt.iter()).all(|x| x.is_finite()));
    }
}
