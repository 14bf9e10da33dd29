//! The supervised baseline: mean squared error between ĥ = f(g(z)) and z.

use crate::Real;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

fn check(h_hat: ArrayView2<'_, impl Real>, z: ArrayView2<'_, impl Real>) {
    assert_eq!(
        h_hat.dim(),
        z.dim(),
        "mse: h_hat is {:?} but z is {:?}",
        h_hat.dim(),
        z.dim()
    );
    assert!(!h_hat.is_empty(), "mse: empty input {:?}", h_hat.dim());
}

/// Mean over all B·d entries of (ĥ − z)², as PyTorch's `MSELoss` (reduction `mean`).
///
/// # Panics
/// If the shapes differ or the input is empty.
pub fn mse<F: Real>(h_hat: ArrayView2<'_, F>, z: ArrayView2<'_, F>) -> F {
    check(h_hat, z);
    let mut sum = 0.0f64;
    Zip::from(&h_hat).and(&z).for_each(|&a, &b| {
        let e = (a - b).to_f64_lossless();
        sum += e * e;
    });
    F::from_f64(sum / h_hat.len() as f64)
}

/// [`mse`] and its gradient with respect to ĥ, 2·(ĥ − z)/(B·d), written into `grad_h_hat`.
///
/// # Panics
/// If the shapes of `h_hat`, `z` and `grad_h_hat` differ or the input is empty.
pub fn mse_and_grad<F: Real>(
    h_hat: ArrayView2<'_, F>,
    z: ArrayView2<'_, F>,
    mut grad_h_hat: ArrayViewMut2<'_, F>,
) -> F {
    check(h_hat, z);
    assert_eq!(
        grad_h_hat.dim(),
        h_hat.dim(),
        "mse: grad_h_hat is {:?} but h_hat is {:?}",
        grad_h_hat.dim(),
        h_hat.dim()
    );
    let scale = F::from_f64(2.0 / h_hat.len() as f64);
    Zip::from(&mut grad_h_hat)
        .and(&h_hat)
        .and(&z)
        .for_each(|g, &a, &b| *g = scale * (a - b));
    mse(h_hat, z)
}
