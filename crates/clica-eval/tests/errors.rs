//! Invalid inputs give clear errors, never panics or NaN.

use clica_eval::{
    correlation_matrix, evaluate, hungarian_max, mcc, r2_held_out, r2_held_out_half, r2_in_sample,
    r2_score, AffineFit, Correlation, Error,
};
use ndarray::{array, Array2};

fn data(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * cols + j) as f64 * 0.754_877_666).fract()
    })
}

#[test]
fn mismatched_rows() {
    let (z, h) = (data(10, 2), data(11, 2));
    for e in [
        r2_in_sample(z.view(), h.view()).unwrap_err(),
        r2_held_out_half(z.view(), h.view()).unwrap_err(),
        mcc(z.view(), h.view(), Correlation::Pearson).unwrap_err(),
        correlation_matrix(z.view(), h.view(), Correlation::Spearman).unwrap_err(),
        evaluate(z.view(), h.view()).unwrap_err(),
    ] {
        match &e {
            Error::Shape(msg) => assert!(msg.contains("z") && msg.contains("z_hat"), "{msg}"),
            other => panic!("expected a shape error, got {other:?}"),
        }
    }
    let e = r2_score(data(3, 2).view(), data(3, 3).view()).unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e:?}");
}

#[test]
fn nan_and_infinity_name_the_input() {
    let z = data(10, 2);
    let mut bad = data(10, 3);
    bad[[4, 1]] = f64::NAN;
    let expect = |e: Error, what: &str| match e {
        Error::NonFinite { what: w, row, col } => {
            assert_eq!((w.as_str(), row), (what, 4));
            assert!(col == 1 || col == 0);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    };
    expect(r2_in_sample(z.view(), bad.view()).unwrap_err(), "z_hat");
    expect(r2_held_out(z.view(), bad.view(), 5).unwrap_err(), "z_hat");
    expect(
        mcc(z.view(), bad.view(), Correlation::Spearman).unwrap_err(),
        "z_hat",
    );
    expect(evaluate(z.view(), bad.view()).unwrap_err(), "z_hat");
    let mut badz = data(10, 2);
    badz[[4, 0]] = f64::INFINITY;
    let h = data(10, 3);
    expect(r2_in_sample(badz.view(), h.view()).unwrap_err(), "z");
    expect(
        mcc(badz.view(), h.view(), Correlation::Pearson).unwrap_err(),
        "z",
    );
    expect(AffineFit::fit(badz.view(), h.view()).unwrap_err(), "x");
    let w = array![[1.0, f64::NAN]];
    assert!(matches!(
        hungarian_max(w.view()),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn too_few_rows_or_columns() {
    let (z1, h1) = (data(1, 2), data(1, 2));
    assert!(matches!(
        r2_in_sample(z1.view(), h1.view()),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        mcc(z1.view(), h1.view(), Correlation::Pearson),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        r2_score(z1.view(), h1.view()),
        Err(Error::Shape(_))
    ));
    let (z3, h3) = (data(3, 2), data(3, 2));
    assert!(matches!(
        r2_held_out_half(z3.view(), h3.view()),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        evaluate(z3.view(), h3.view()),
        Err(Error::Shape(_))
    ));
    let (z, h) = (data(10, 2), data(10, 2));
    for n_fit in [0, 1, 9, 10, 11] {
        match r2_held_out(z.view(), h.view(), n_fit) {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "n_fit"),
            other => panic!("n_fit = {n_fit}: {other:?}"),
        }
    }
    assert!(r2_held_out(z.view(), h.view(), 2).unwrap().is_finite());
    assert!(r2_held_out(z.view(), h.view(), 8).unwrap().is_finite());
    let empty = Array2::<f64>::zeros((10, 0));
    assert!(matches!(
        r2_in_sample(z.view(), empty.view()),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        r2_in_sample(empty.view(), h.view()),
        Err(Error::Shape(_))
    ));
    let none = Array2::<f64>::zeros((0, 2));
    assert!(matches!(
        AffineFit::fit(none.view(), none.view()),
        Err(Error::Shape(_))
    ));
}

#[test]
fn mcc_needs_z_hat_at_least_as_wide() {
    let (z, h) = (data(20, 3), data(20, 2));
    match mcc(z.view(), h.view(), Correlation::Pearson).unwrap_err() {
        Error::Shape(msg) => assert!(msg.contains("z_hat has 2 columns"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(evaluate(z.view(), h.view()).is_err());
    // R² is fine with a narrower z_hat.
    assert!(r2_in_sample(z.view(), h.view()).unwrap().is_finite());
}

#[test]
fn hungarian_needs_rows_le_cols() {
    let w = Array2::<f64>::zeros((3, 2));
    assert!(matches!(hungarian_max(w.view()), Err(Error::Shape(_))));
    let w = array![[f64::MAX, f64::MAX], [f64::MAX, f64::MAX]];
    assert!(matches!(hungarian_max(w.view()), Err(Error::Numerical(_))));
}
