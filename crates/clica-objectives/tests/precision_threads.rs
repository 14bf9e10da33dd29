//! f32 against f64, and independence from the number of rayon threads.

mod common;

use clica_objectives::Real;
use common::{all_configs, inputs, rel_err, with_grads};
use ndarray::Array2;

#[test]
fn f32_kernels_agree_with_f64_kernels() {
    let (h, ht) = inputs(31, "precision", 512, 10);
    // Round the inputs to f32 once, so both kernels see the same numbers.
    let (h32, ht32) = (h.mapv(|v| v as f32), ht.mapv(|v| v as f32));
    let (h, ht) = (h32.mapv(f64::from), ht32.mapv(f64::from));
    for cfg in all_configs() {
        let (l64, g64, gt64) = with_grads(cfg.build::<f64>().as_ref(), h.view(), ht.view());
        let (l32, g32, gt32) = with_grads(cfg.build::<f32>().as_ref(), h32.view(), ht32.view());
        let el = (f64::from(l32) - l64).abs() / l64.abs().max(1.0);
        assert!(el < 1e-5, "{cfg:?}: loss {l32} vs {l64}");
        let eg = rel_err(&g32.mapv(f64::from), &g64);
        let et = rel_err(&gt32.mapv(f64::from), &gt64);
        assert!(eg < 1e-5 && et < 1e-5, "{cfg:?}: gradients {eg:e} {et:e}");
    }
}

fn run_in_pool<F: Real>(
    threads: usize,
    h: &Array2<F>,
    ht: &Array2<F>,
) -> Vec<(F, Array2<F>, Array2<F>)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        all_configs()
            .iter()
            .map(|cfg| with_grads(cfg.build::<F>().as_ref(), h.view(), ht.view()))
            .collect()
    })
}

fn assert_bit_identical<F: Real>(h: Array2<F>, ht: Array2<F>) {
    let one = run_in_pool(1, &h, &ht);
    let two = run_in_pool(2, &h, &ht);
    let three = run_in_pool(3, &h, &ht);
    for ((a, b), c) in one.iter().zip(&two).zip(&three) {
        let bits = |r: &(F, Array2<F>, Array2<F>)| {
            let mut v = vec![r.0.to_f64_lossless().to_bits()];
            v.extend(
                r.1.iter()
                    .chain(r.2.iter())
                    .map(|x| x.to_f64_lossless().to_bits()),
            );
            v
        };
        assert_eq!(bits(a), bits(b));
        assert_eq!(bits(a), bits(c));
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // 300 rows: 19 row blocks, the last one partial.
    let (h, ht) = inputs(32, "threads", 300, 10);
    assert_bit_identical(h.mapv(|v| v as f32), ht.mapv(|v| v as f32));
    assert_bit_identical(h, ht);
}
