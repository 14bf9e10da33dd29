//! Finite-difference checks (f64, central differences) of every analytic gradient.

mod common;

use clica_objectives::{mse, mse_and_grad, ContrastiveLoss};
use common::{all_configs, check_fd, fd_grad, inputs, rel_err, with_grads, FD_STEP, FD_TOL};
use ndarray::Array2;

fn check(loss: &dyn ContrastiveLoss<f64>, h: &Array2<f64>, ht: &Array2<f64>) {
    // The uniformity on the anchors only leaves h̃ a pure alignment gradient, never zero here.
    check_fd(loss, h, ht);
}

#[test]
fn every_loss_matches_finite_differences() {
    let (h, ht) = inputs(11, "gradcheck", 7, 3);
    for cfg in all_configs() {
        check(cfg.build::<f64>().as_ref(), &h, &ht);
    }
}

#[test]
fn every_loss_matches_finite_differences_at_another_seed_and_scale() {
    // Larger encodings: logits spread over tens of units, so the softmaxes are peaked.
    let (h, ht) = inputs(12, "gradcheck.scaled", 7, 3);
    let (h, ht) = (h * 2.5, ht * 2.5);
    for cfg in all_configs() {
        check(cfg.build::<f64>().as_ref(), &h, &ht);
    }
}

#[test]
fn gradients_over_partial_blocks_match_finite_differences_on_sampled_entries() {
    // B = 37 spans three row blocks and two lane chunks; check 24 sampled entries per view.
    let (h, ht) = inputs(13, "gradcheck.b37", 37, 2);
    for cfg in all_configs() {
        let loss = cfg.build::<f64>();
        let (_, g, gt) = with_grads(loss.as_ref(), h.view(), ht.view());
        let scale = g
            .iter()
            .chain(gt.iter())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        for k in 0..24 {
            let idx = ((k * 29 + 3) % 37, k % 2);
            for tilde in [false, true] {
                let f = |delta: f64| {
                    let (mut a, mut b) = (h.clone(), ht.clone());
                    if tilde {
                        b[idx] += delta;
                    } else {
                        a[idx] += delta;
                    }
                    loss.loss(a.view(), b.view())
                };
                let fd = (f(FD_STEP) - f(-FD_STEP)) / (2.0 * FD_STEP);
                let an = if tilde { gt[idx] } else { g[idx] };
                let err = (fd - an).abs() / scale;
                assert!(
                    err < FD_TOL,
                    "{} at {idx:?} (tilde {tilde}): {err:e}",
                    loss.name()
                );
            }
        }
    }
}

#[test]
fn mse_gradient_matches_finite_differences() {
    let (h, z) = inputs(14, "gradcheck.mse", 7, 3);
    let mut g = Array2::zeros(h.raw_dim());
    let v = mse_and_grad(h.view(), z.view(), g.view_mut());
    assert_eq!(v, mse(h.view(), z.view()));
    let fd = fd_grad(&h, |x| mse(x.view(), z.view()));
    let e = rel_err(&g, &fd);
    assert!(e < FD_TOL, "mse gradient relative error {e:e}");
}
