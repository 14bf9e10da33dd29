//! `condition_number` against NumPy/SciPy reference values (tests/fixtures/condition_numbers.json).

use clica_generators::{condition_number, Error};
use ndarray::{array, Array2};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/condition_numbers.json"
);

fn load_fixture() -> Vec<(Array2<f64>, f64)> {
    let text = std::fs::read_to_string(FIXTURE).expect("read condition_numbers.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse fixture");
    v.as_array()
        .expect("fixture is a list")
        .iter()
        .map(|case| {
            let rows: Vec<Vec<f64>> = case["matrix"]
                .as_array()
                .expect("matrix")
                .iter()
                .map(|r| {
                    r.as_array()
                        .expect("row")
                        .iter()
                        .map(|x| x.as_f64().expect("number"))
                        .collect()
                })
                .collect();
            let n = rows.len();
            let m = rows[0].len();
            let flat: Vec<f64> = rows.into_iter().flatten().collect();
            let mat = Array2::from_shape_vec((n, m), flat).expect("rectangular matrix");
            (mat, case["cond2"].as_f64().expect("cond2"))
        })
        .collect()
}

#[test]
fn matches_numpy_reference_values() {
    let cases = load_fixture();
    assert!(!cases.is_empty());
    for (i, (m, expected)) in cases.iter().enumerate() {
        assert_eq!(m.shape(), &[10, 10], "case {i}");
        let got = condition_number(m.view()).unwrap();
        let rel = (got - expected).abs() / expected;
        assert!(
            rel < 1e-9,
            "case {i}: got {got}, expected {expected}, rel {rel:e}"
        );
        // Transpose has the same singular values.
        let got_t = condition_number(m.t()).unwrap();
        assert!(
            (got_t - expected).abs() / expected < 1e-9,
            "case {i} transposed"
        );
    }
}

#[test]
fn simple_cases() {
    let eye = Array2::<f64>::eye(5);
    assert!((condition_number(eye.view()).unwrap() - 1.0).abs() < 1e-15);
    let d = array![[4.0, 0.0], [0.0, 0.5]];
    assert!((condition_number(d.view()).unwrap() - 8.0).abs() < 1e-14);
    // Rectangular: ratio of the extreme singular values.
    let r = array![[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    assert!((condition_number(r.view()).unwrap() - 3.0).abs() < 1e-14);
}

#[test]
fn singular_is_infinite_and_bad_input_errors() {
    let s = array![[1.0, 2.0], [2.0, 4.0]];
    let c = condition_number(s.view()).unwrap();
    assert!(c > 1e15, "rank-1 matrix has condition number {c}");
    let z = Array2::<f64>::zeros((3, 3));
    assert_eq!(condition_number(z.view()).unwrap(), f64::INFINITY);
    let nan = array![[1.0, f64::NAN], [0.0, 1.0]];
    assert!(matches!(
        condition_number(nan.view()),
        Err(Error::NonFinite { .. })
    ));
    let empty = Array2::<f64>::zeros((0, 0));
    assert!(matches!(
        condition_number(empty.view()),
        Err(Error::Shape(_))
    ));
}
