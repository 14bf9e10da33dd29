//! The composed losses: negatives from groups of the batch, and the symmetric form. Each is
//! checked against the plain references of `common` (applied per group / in both directions)
//! and against central finite differences.

mod common;

use clica_objectives::{ContrastiveLoss, Grouped, SelfTerm, SphereInfoNce, Symmetric};
use common::{all_configs, assert_matches_reference, check_fd, inputs, with_grads};
use ndarray::s;

#[test]
fn grouped_is_the_row_weighted_mean_of_the_reference_over_groups() {
    // B = 11 in groups of 4: groups of 4, 4 and a remainder of 3.
    let (h, ht) = inputs(21, "compose.grouped", 11, 3);
    for cfg in all_configs() {
        let loss = Grouped::new(cfg.build::<f64>(), 4).unwrap();
        let mut want = 0.0;
        for (a, b) in [(0, 4), (4, 8), (8, 11)] {
            let rows = s![a..b, ..];
            want += cfg.naive(h.slice(rows), ht.slice(rows)) * (b - a) as f64;
        }
        want /= 11.0;
        assert_matches_reference(&loss.name(), loss.loss(h.view(), ht.view()), want);
        check_fd(&loss, &h, &ht);
    }
}

#[test]
fn a_group_as_large_as_the_batch_is_the_plain_loss() {
    let (h, ht) = inputs(22, "compose.whole", 9, 4);
    for cfg in all_configs() {
        let plain = cfg.build::<f64>();
        let grouped = Grouped::new(cfg.build::<f64>(), 9).unwrap();
        let (v0, g0, t0) = with_grads(plain.as_ref(), h.view(), ht.view());
        let (v1, g1, t1) = with_grads(&grouped, h.view(), ht.view());
        assert_eq!(v0, v1, "{}", grouped.name());
        assert_eq!(g0, g1);
        assert_eq!(t0, t1);
    }
}

#[test]
fn symmetric_is_the_mean_of_both_directions_and_matches_finite_differences() {
    let (h, ht) = inputs(23, "compose.symmetric", 7, 3);
    for cfg in all_configs() {
        let loss = Symmetric::new(cfg.build::<f64>());
        let want = 0.5 * (cfg.naive(h.view(), ht.view()) + cfg.naive(ht.view(), h.view()));
        assert_matches_reference(&loss.name(), loss.loss(h.view(), ht.view()), want);
        check_fd(&loss, &h, &ht);
    }
}

#[test]
fn symmetric_grouped_composes() {
    let (h, ht) = inputs(24, "compose.both", 12, 3);
    let inner = SphereInfoNce::new(0.5, SelfTerm::Keep).unwrap();
    let loss = Symmetric::new(Grouped::new(inner, 6).unwrap());
    assert_eq!(
        ContrastiveLoss::<f64>::name(&loss),
        "symmetric[sphere_infonce(tau=0.5,self=keep)[groups of 6]]"
    );
    check_fd(&loss, &h, &ht);
}

#[test]
fn a_group_of_zero_rows_is_refused() {
    let inner = SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap();
    let err = Grouped::new(inner, 0).unwrap_err().to_string();
    assert!(err.contains("negatives"), "{err}");
}

#[test]
fn symmetric_gives_the_bits_of_its_two_directions_computed_one_after_the_other() {
    // The two directions run side by side; each must come out exactly as alone, for the
    // cached engine's parallel passes too (B = 300, f32, several row blocks per thread).
    let (h, ht) = inputs(25, "compose.symmetric.bits", 300, 10);
    let (h, ht) = (h.mapv(|v| v as f32), ht.mapv(|v| v as f32));
    let inner = SphereInfoNce::new(0.5, SelfTerm::Keep).unwrap();
    let (vf, gf, tf) = with_grads(&inner, h.view(), ht.view());
    let (vb, tb, gb) = with_grads(&inner, ht.view(), h.view());
    let loss = Symmetric::new(inner);
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (v, g, t) = pool.install(|| with_grads(&loss, h.view(), ht.view()));
        assert_eq!(
            v.to_bits(),
            ((vf + vb) * 0.5).to_bits(),
            "{threads} threads"
        );
        assert_eq!(g, (&gf + &gb).mapv(|x| x * 0.5), "{threads} threads");
        assert_eq!(t, (&tf + &tb).mapv(|x| x * 0.5), "{threads} threads");
    }
}
