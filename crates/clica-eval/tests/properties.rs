//! Properties of the scores and the assignment solver.

use clica_core::{Metric, RunSeed};
use clica_eval::{
    correlation_matrix, evaluate, hungarian_max, identity_baseline, mcc, r2_held_out,
    r2_held_out_half, r2_in_sample, AffineFit, Correlation, MccMetric, R2HeldOut, R2InSample,
};
use ndarray::{array, Array2, Axis};
use rand::Rng;

fn uniform(seed: u64, name: &str, rows: usize, cols: usize) -> Array2<f64> {
    let mut rng = RunSeed::new(seed).stream(name);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f64>() * 2.0 - 1.0)
}

/// Best total over all injective maps rows → columns, by brute force.
fn brute_force_max(w: &Array2<f64>) -> f64 {
    fn rec(w: &Array2<f64>, row: usize, used: &mut Vec<bool>) -> f64 {
        if row == w.nrows() {
            return 0.0;
        }
        let mut best = f64::NEG_INFINITY;
        for c in 0..w.ncols() {
            if !used[c] {
                used[c] = true;
                best = best.max(w[[row, c]] + rec(w, row + 1, used));
                used[c] = false;
            }
        }
        best
    }
    rec(w, 0, &mut vec![false; w.ncols()])
}

#[test]
fn hungarian_equals_brute_force_square_and_rectangular() {
    let mut rng = RunSeed::new(2021).stream("eval.hungarian.brute_force");
    let mut checked = 0;
    for rows in 1..=7 {
        for cols in rows..=7 {
            for _ in 0..4 {
                // Mix of signs and magnitudes; some matrices with repeated values (ties).
                let ties = rng.random::<f64>() < 0.3;
                let w = Array2::from_shape_fn((rows, cols), |_| {
                    let x = rng.random::<f64>() * 10.0 - 3.0;
                    if ties {
                        x.round()
                    } else {
                        x
                    }
                });
                let (a, total) = hungarian_max(w.view()).unwrap();
                assert_eq!(a.len(), rows);
                let mut seen = vec![false; cols];
                for &c in &a {
                    assert!(c < cols && !seen[c], "assignment {a:?} not injective");
                    seen[c] = true;
                }
                let recomputed: f64 = a.iter().enumerate().map(|(r, &c)| w[[r, c]]).sum();
                assert!((recomputed - total).abs() < 1e-12);
                let best = brute_force_max(&w);
                assert!(
                    (total - best).abs() < 1e-9,
                    "{rows}x{cols}: got {total}, optimum {best}\n{w}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 28);
}

#[test]
fn r2_is_one_for_an_exact_affine_map_of_different_width() {
    let z = uniform(1, "z", 300, 3);
    let b = uniform(1, "b", 3, 7);
    let h = z.dot(&b) + &array![1.0, -2.0, 0.5, 3.0, 0.0, 10.0, -7.0];
    // z_hat (7 columns, rank 3) → z (3 columns): rank-deficient x, exact fit.
    let r2 = r2_in_sample(z.view(), h.view()).unwrap();
    assert!((r2 - 1.0).abs() < 1e-10, "r2 = {r2}");
    let held = r2_held_out_half(z.view(), h.view()).unwrap();
    assert!((held - 1.0).abs() < 1e-10, "held-out r2 = {held}");
    // And the other way round (z → the wider h) is exact too.
    let fit = AffineFit::fit(z.view(), h.view()).unwrap();
    assert_eq!(fit.coefficients().dim(), (3, 7));
    assert_eq!(fit.intercept().len(), 7);
    let err = (&fit.predict(z.view()) - &h)
        .mapv(f64::abs)
        .fold(0.0_f64, |m, &x| m.max(x));
    assert!(err < 1e-10);
}

#[test]
fn rank_deficient_and_constant_columns_get_minimum_norm_fit() {
    let z = uniform(2, "z", 200, 2);
    // Duplicate column, a constant column and a column that is a combination of others.
    let mut x = Array2::zeros((200, 5));
    x.column_mut(0).assign(&z.column(0));
    x.column_mut(1).assign(&z.column(0));
    x.column_mut(2).fill(4.2);
    x.column_mut(3).assign(&z.column(1));
    x.column_mut(4).assign(&(&z.column(0) + &z.column(1)));
    let fit = AffineFit::fit(x.view(), z.view()).unwrap();
    assert_eq!(fit.rank(), 2);
    let b = fit.coefficients();
    assert!(
        b.row(2).iter().all(|v| v.abs() < 1e-12),
        "constant column gets coefficient 0"
    );
    // Minimum norm: the duplicate columns share the weight equally.
    assert!((b[[0, 0]] - b[[1, 0]]).abs() < 1e-10);
    let r2 = r2_in_sample(z.view(), x.view()).unwrap();
    assert!((r2 - 1.0).abs() < 1e-10);
    assert!(fit.predict(x.view()).iter().all(|v| v.is_finite()));
}

#[test]
fn constant_z_hat_scores_zero_r2() {
    let z = uniform(3, "z", 100, 3);
    let h = Array2::from_elem((100, 4), 2.5);
    assert!(r2_in_sample(z.view(), h.view()).unwrap().abs() < 1e-12);
    let m = mcc(z.view(), h.view(), Correlation::Pearson).unwrap();
    assert_eq!(m.score, 0.0);
    // A constant latent column is predicted exactly by the intercept: R² 1 for it.
    let mut z2 = z.clone();
    z2.column_mut(1).fill(-1.0);
    let r2 = r2_in_sample(z2.view(), z2.view()).unwrap();
    assert!((r2 - 1.0).abs() < 1e-12);
}

#[test]
fn held_out_is_not_better_than_in_sample_for_noise() {
    let z = uniform(4, "z", 400, 4);
    let h = uniform(4, "noise", 400, 8);
    let ins = r2_in_sample(z.view(), h.view()).unwrap();
    let out = r2_held_out_half(z.view(), h.view()).unwrap();
    assert!(ins > 0.0 && ins < 0.1, "in-sample {ins}");
    assert!(out < ins, "held-out {out} should be below in-sample {ins}");
    // Nonlinear but informative: both high, held-out still ≤ in-sample.
    let h2 = z.mapv(|v| v + 0.3 * v.powi(3));
    let ins = r2_in_sample(z.view(), h2.view()).unwrap();
    let out = r2_held_out(z.view(), h2.view(), 300).unwrap();
    assert!(ins > 0.9 && out > 0.9 && out <= ins + 1e-3, "{ins} {out}");
}

#[test]
fn mcc_recovers_a_permuted_flipped_scaled_copy() {
    let z = uniform(5, "z", 500, 5);
    let perm = [3, 0, 4, 1, 2]; // latent i goes to column perm[i]
    let scale = [-2.0, 0.5, 3.0, -0.1, 7.0];
    let mut h = Array2::zeros((500, 6));
    for (i, &p) in perm.iter().enumerate() {
        h.column_mut(p).assign(&(&z.column(i) * scale[i] + 1.0));
    }
    // An extra unrelated column makes z_hat wider than z.
    h.column_mut(5)
        .assign(&uniform(5, "extra", 500, 1).column(0));
    for kind in [Correlation::Pearson, Correlation::Spearman] {
        let m = mcc(z.view(), h.view(), kind).unwrap();
        assert!((m.score - 1.0).abs() < 1e-12, "{kind:?}: {}", m.score);
        assert_eq!(m.assignment, perm.to_vec());
        assert!(m.matched.iter().all(|&r| (r - 1.0).abs() < 1e-12));
    }
}

#[test]
fn spearman_is_invariant_to_monotone_transforms() {
    let z = uniform(6, "z", 300, 3);
    let h = z.dot(&uniform(6, "mix", 3, 3)) + uniform(6, "noise", 300, 3) * 0.2;
    let mut g = h.clone();
    g.column_mut(0).mapv_inplace(f64::exp);
    g.column_mut(1).mapv_inplace(|v| v.powi(3) + v);
    g.column_mut(2).mapv_inplace(|v| -(5.0 * v).tanh());
    let a = correlation_matrix(z.view(), h.view(), Correlation::Spearman).unwrap();
    let b = correlation_matrix(z.view(), g.view(), Correlation::Spearman).unwrap();
    for i in 0..3 {
        for j in 0..3 {
            // Column 2 went through a decreasing map: its correlations flip sign.
            let s = if j == 2 { -1.0 } else { 1.0 };
            assert!((a[[i, j]] - s * b[[i, j]]).abs() < 1e-12);
        }
    }
    let ma = mcc(z.view(), h.view(), Correlation::Spearman).unwrap();
    let mb = mcc(z.view(), g.view(), Correlation::Spearman).unwrap();
    assert!((ma.score - mb.score).abs() < 1e-12);
    assert_eq!(ma.assignment, mb.assignment);
}

#[test]
fn correlation_matrix_shape_and_range() {
    let z = uniform(7, "z", 50, 2);
    let h = uniform(7, "h", 50, 5);
    let c = correlation_matrix(z.view(), h.view(), Correlation::Pearson).unwrap();
    assert_eq!(c.dim(), (2, 5));
    assert!(c.iter().all(|r| r.abs() <= 1.0));
    let self_c = correlation_matrix(z.view(), z.view(), Correlation::Pearson).unwrap();
    for d in self_c.diag() {
        assert!((d - 1.0).abs() < 1e-14);
    }
    // Huge and tiny magnitudes neither overflow nor underflow.
    let big = &z * 1e200;
    let tiny = &z * 1e-200;
    let c1 = correlation_matrix(big.view(), tiny.view(), Correlation::Pearson).unwrap();
    assert!((&c1 - &self_c).iter().all(|d| d.abs() < 1e-12));
}

#[test]
fn evaluate_and_metrics_agree() {
    let z = uniform(8, "z", 256, 3);
    let x = z.mapv(|v| v.sin() * 2.0) + z.sum_axis(Axis(1)).insert_axis(Axis(1)) * 0.5;
    let s = evaluate(z.view(), x.view()).unwrap();
    assert_eq!(s, identity_baseline(z.view(), x.view()).unwrap());
    assert_eq!(s.r2, R2InSample.score(z.view(), x.view()).unwrap());
    assert_eq!(s.r2_held_out, R2HeldOut.score(z.view(), x.view()).unwrap());
    let p = MccMetric(Correlation::Pearson);
    let q = MccMetric(Correlation::Spearman);
    assert_eq!(s.mcc_pearson, p.score(z.view(), x.view()).unwrap());
    assert_eq!(s.mcc_spearman, q.score(z.view(), x.view()).unwrap());
    assert_eq!(
        [R2InSample.name(), R2HeldOut.name(), p.name(), q.name()],
        ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman"]
    );
    assert_eq!(s.assignment.len(), 3);
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "r2",
        "r2_held_out",
        "mcc_pearson",
        "mcc_spearman",
        "assignment",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn benchmark_sized_noisy_linear_map_scores_high() {
    // Speed is measured by `cargo bench -p clica-benches --bench metrics`, not here.
    let z = uniform(9, "z", 6144, 10);
    let h = z.dot(&uniform(9, "mix", 10, 10)) + uniform(9, "noise", 6144, 10) * 0.01;
    let s = evaluate(z.view(), h.view()).unwrap();
    assert!(s.r2 > 0.99, "r2 {}", s.r2);
}
