//! Activations: values, exact inverses on a wide grid, names, validation.

use clica_generators::{Activation, Error};

fn grid() -> Vec<f64> {
    let mut g: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.05).collect(); // [-20, 20]
    for &big in &[25.0, 30.0, 35.0, 50.0, 100.0, 1e3, 1e6, 1e12] {
        g.push(big);
        g.push(-big);
    }
    g.extend([1e-300, -1e-300, 1e-12, -1e-12, 0.0]);
    g
}

/// Relative (|x| ≥ 1) or absolute (|x| < 1) round-trip error.
fn rt_err(x: f64, back: f64) -> f64 {
    (back - x).abs() / x.abs().max(1.0)
}

#[test]
fn leaky_relu_round_trip_is_exact() {
    for slope in [0.2, 0.01, 1.0, 3.0] {
        let a = Activation::leaky_relu(slope).unwrap();
        for x in grid() {
            let back = a.inverse(a.apply(x)).unwrap();
            assert!(
                rt_err(x, back) <= 1e-15,
                "slope {slope}, x {x}, back {back}"
            );
        }
    }
    let a = Activation::default();
    assert_eq!(a, Activation::LeakyRelu { slope: 0.2 });
    assert_eq!(a.apply(-2.0), -0.4);
    assert_eq!(a.apply(3.0), 3.0);
}

#[test]
fn smooth_leaky_relu_round_trip_full_precision() {
    let a = Activation::SmoothLeakyRelu;
    for x in grid() {
        let y = a.apply(x);
        let back = a.inverse(y).unwrap();
        assert!(rt_err(x, back) <= 4.0 * f64::EPSILON, "x {x}: back {back}");
        // The inverse is (one of) the float(s) closest to solving f(x) = y.
        assert!((a.apply(back) - y).abs() <= 2.0 * f64::EPSILON * y.abs().max(1e-300));
    }
    // Formula check: 0.2 x + 0.8 ln(1 + e^x).
    for x in [-3.0f64, -0.5, 0.0, 0.7, 4.0] {
        let want = 0.2 * x + 0.8 * (1.0 + x.exp()).ln();
        assert!((a.apply(x) - want).abs() < 1e-15);
    }
}

#[test]
fn elu_round_trip() {
    let a = Activation::Elu;
    // Below about -36, e^x - 1 rounds to -1 and the information is lost: the grid stops there.
    for x in grid().into_iter().filter(|&x| x > -30.0) {
        let back = a.inverse(a.apply(x)).unwrap();
        // d/dy ln(1 + y) = e^{-x}: the conditioning of the inverse itself.
        let tol = 4.0 * f64::EPSILON * (-x).exp().max(1.0);
        assert!(rt_err(x, back) <= tol, "x {x}: back {back}");
    }
    assert!(a.inverse(-1.0).is_err());
    assert!(a.inverse(-2.0).is_err());
}

#[test]
fn softplus_round_trip() {
    let a = Activation::Softplus;
    // softplus(x) ≈ e^x underflows below about -745; stay well inside.
    for x in grid().into_iter().filter(|&x| x > -700.0) {
        let back = a.inverse(a.apply(x)).unwrap();
        assert!(rt_err(x, back) <= 8.0 * f64::EPSILON, "x {x}: back {back}");
    }
    for x in [-700.0, -300.0, -50.0] {
        let back = a.inverse(a.apply(x)).unwrap();
        assert!(rt_err(x, back) <= 8.0 * f64::EPSILON, "x {x}: back {back}");
    }
    assert!(a.inverse(0.0).is_err());
    assert!(a.inverse(-1.0).is_err());
}

#[test]
fn relu_has_no_inverse() {
    let a = Activation::Relu;
    assert_eq!(a.apply(-1.0), 0.0);
    assert_eq!(a.apply(2.0), 2.0);
    assert!(matches!(a.inverse(1.0), Err(Error::Unsupported(_))));
    assert!(!a.is_invertible());
}

#[test]
fn nan_input_errors() {
    for a in [
        Activation::default(),
        Activation::Elu,
        Activation::Softplus,
        Activation::SmoothLeakyRelu,
    ] {
        assert!(a.inverse(f64::NAN).is_err(), "{a}");
    }
}

#[test]
fn invalid_slopes_are_rejected() {
    for slope in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Activation::leaky_relu(slope),
            Err(Error::InvalidParameter { .. })
        ));
        let a = Activation::LeakyRelu { slope };
        assert!(a.validate().is_err());
        assert!(!a.is_invertible());
        assert!(a.inverse(-1.0).is_err());
    }
}

#[test]
fn names_round_trip_through_from_str() {
    for name in Activation::NAMES {
        let a: Activation = name.parse().unwrap();
        assert_eq!(a.name(), name);
    }
    assert_eq!(
        "leaky_relu".parse::<Activation>().unwrap(),
        Activation::LeakyRelu { slope: 0.2 }
    );
    assert_eq!(
        " Leaky_ReLU(0.1) ".parse::<Activation>().unwrap(),
        Activation::LeakyRelu { slope: 0.1 }
    );
    let a = Activation::LeakyRelu { slope: 0.3 };
    assert_eq!(a.to_string().parse::<Activation>().unwrap(), a);
    assert_eq!(Activation::Elu.to_string(), "elu");
    assert!("tanh".parse::<Activation>().is_err());
    assert!("leaky_relu(0)".parse::<Activation>().is_err());
    assert!("leaky_relu(x)".parse::<Activation>().is_err());
}

#[test]
fn derivatives_match_finite_differences() {
    let h = 1e-6;
    for a in [
        Activation::default(),
        Activation::Elu,
        Activation::Softplus,
        Activation::SmoothLeakyRelu,
    ] {
        for x in [-3.0, -0.7, 0.4, 2.5] {
            let fd = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
            assert!((fd - a.derivative(x)).abs() < 1e-8, "{a} at {x}");
        }
    }
}
