//! Agreement with scikit-learn 1.9.1 / SciPy 1.17.1 reference values
//! (`tests/fixtures/metrics.json`, `tests/fixtures/hungarian.json`).

use clica_eval::{hungarian_max, mcc, r2_held_out_half, r2_in_sample, Correlation};
use ndarray::Array2;
use serde_json::Value;

const TOL: f64 = 1e-9;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("fixture is valid JSON");
    v.as_array().expect("fixture is a list").clone()
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows = v.as_array().expect("matrix is a list of rows");
    let n = rows.len();
    let m = rows[0].as_array().expect("row is a list").len();
    Array2::from_shape_fn((n, m), |(i, j)| rows[i][j].as_f64().expect("number"))
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

fn close(what: &str, case: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{case}: {what} = {got}, reference {want} (diff {:e})",
        (got - want).abs()
    );
}

#[test]
fn metrics_match_reference() {
    let cases = load("metrics.json");
    assert!(!cases.is_empty());
    let mut mcc_cases = 0;
    for c in &cases {
        let name = c["name"].as_str().expect("name");
        let z = matrix(&c["z"]);
        let h = matrix(&c["z_hat"]);
        close(
            "r2_in_sample",
            name,
            r2_in_sample(z.view(), h.view()).unwrap(),
            c["r2_in_sample"].as_f64().unwrap(),
        );
        close(
            "r2_held_out_first_half_fit",
            name,
            r2_held_out_half(z.view(), h.view()).unwrap(),
            c["r2_held_out_first_half_fit"].as_f64().unwrap(),
        );
        for (kind, key) in [
            (Correlation::Pearson, "mcc_pearson"),
            (Correlation::Spearman, "mcc_spearman"),
        ] {
            if c.get(key).is_none() {
                continue;
            }
            mcc_cases += 1;
            let m = mcc(z.view(), h.view(), kind).unwrap();
            close(key, name, m.score, c[key].as_f64().unwrap());
            let want = indices(&c[format!("{key}_assignment").as_str()]);
            assert_eq!(m.assignment, want, "{name}: {key} assignment");
        }
    }
    assert!(mcc_cases > 0, "no MCC cases in the fixture");
}

#[test]
fn hungarian_matches_scipy() {
    let cases = load("hungarian.json");
    assert!(!cases.is_empty());
    for (k, c) in cases.iter().enumerate() {
        let w = matrix(&c["weights"]);
        let (a, total) = hungarian_max(w.view()).unwrap();
        close(
            "max_total",
            &format!("case {k}"),
            total,
            c["max_total"].as_f64().unwrap(),
        );
        assert_eq!(a, indices(&c["assignment"]), "case {k}: assignment");
    }
}
