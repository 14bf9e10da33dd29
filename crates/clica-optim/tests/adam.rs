//! Adam against an independent f64 transcription of PyTorch's update, state round trips and
//! rejected inputs.

use clica_core::{Error, NamedTensor, ParamGrad};
use clica_optim::{Adam, AdamConfig, OptimizerState};

/// A reproducible pseudo-random sequence (SplitMix64) mapped to [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// PyTorch's documented Adam (torch.optim.Adam, no weight decay, amsgrad off) in f64:
/// m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), p ← p − lr · m̂ / (√v̂ + ε).
struct Reference {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Reference {
    fn step(&mut self, p: &mut [f64], g: &[f32], lr: f64, c: &AdamConfig) {
        self.t += 1;
        for i in 0..p.len() {
            let g = f64::from(g[i]);
            self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g;
            self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g * g;
            let mh = self.m[i] / (1.0 - c.beta1.powi(self.t));
            let vh = self.v[i] / (1.0 - c.beta2.powi(self.t));
            p[i] -= lr * mh / (vh.sqrt() + c.eps);
        }
    }
}

fn step(
    adam: &mut Adam,
    a: &mut [f32],
    b: &mut [f32],
    ga: &[f32],
    gb: &[f32],
    lr: f32,
) -> clica_core::Result<()> {
    let mut p = [
        ParamGrad {
            name: "a",
            shape: &[a.len()],
            value: a,
            grad: ga,
        },
        ParamGrad {
            name: "b",
            shape: &[2, b.len() / 2],
            value: b,
            grad: gb,
        },
    ];
    adam.update(&mut p, lr)
}

#[test]
fn matches_pytorchs_update_in_f64_over_many_steps() {
    let cfg = AdamConfig {
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
    };
    let mut adam = Adam::new(cfg).unwrap();
    let (mut a, mut b) = (values(1, 7), values(2, 40));
    let mut ra: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let mut rb: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let mut ref_a = Reference {
        m: vec![0.0; 7],
        v: vec![0.0; 7],
        t: 0,
    };
    let mut ref_b = Reference {
        m: vec![0.0; 40],
        v: vec![0.0; 40],
        t: 0,
    };
    for s in 0..200u64 {
        let (ga, gb) = (values(100 + s, 7), values(1000 + s, 40));
        let lr = 1e-2 * (1.0 + (s % 3) as f32);
        step(&mut adam, &mut a, &mut b, &ga, &gb, lr).unwrap();
        ref_a.step(&mut ra, &ga, f64::from(lr), &cfg);
        ref_b.step(&mut rb, &gb, f64::from(lr), &cfg);
    }
    assert_eq!(adam.steps(), 200);
    // f32 arithmetic against f64 over 200 steps of size ≈ lr: the gap stays far below one step.
    for (x, r) in a.iter().zip(&ra).chain(b.iter().zip(&rb)) {
        assert!((f64::from(*x) - r).abs() < 1e-4, "{x} vs {r}");
    }
    let st = adam.state();
    assert_eq!(
        st.first_moment
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(st.second_moment[1].shape, [2, 20]);
    for (m, r) in st.first_moment[1].data.iter().zip(&ref_b.m) {
        assert!((f64::from(*m) - r).abs() < 1e-5);
    }
}

#[test]
fn a_restored_state_continues_bit_identically() {
    let mut x = Adam::new(AdamConfig::default()).unwrap();
    let (mut a, mut b) = (values(3, 5), values(4, 8));
    for s in 0..5 {
        step(
            &mut x,
            &mut a,
            &mut b,
            &values(10 + s, 5),
            &values(20 + s, 8),
            1e-3,
        )
        .unwrap();
    }
    let params = [
        NamedTensor {
            name: "a".into(),
            shape: vec![5],
            data: a.clone(),
        },
        NamedTensor {
            name: "b".into(),
            shape: vec![2, 4],
            data: b.clone(),
        },
    ];
    let mut y = Adam::new(AdamConfig::default()).unwrap();
    y.set_state(&x.state(), &params).unwrap();
    let (mut a2, mut b2) = (a.clone(), b.clone());
    for s in 5..9 {
        let (ga, gb) = (values(10 + s, 5), values(20 + s, 8));
        step(&mut x, &mut a, &mut b, &ga, &gb, 1e-3).unwrap();
        step(&mut y, &mut a2, &mut b2, &ga, &gb, 1e-3).unwrap();
    }
    assert_eq!((a, b), (a2, b2));
    assert_eq!(x.state(), y.state());
    // A state listed in another order is put back in the parameters' order.
    let mut st = x.state();
    st.first_moment.reverse();
    let mut z = Adam::new(AdamConfig::default()).unwrap();
    z.set_state(&st, &params).unwrap();
    assert_eq!(z.state(), x.state());
}

#[test]
fn mismatches_are_errors_naming_the_tensor_and_do_not_count_as_steps() {
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    let (mut a, mut b) = (values(5, 3), values(6, 4));
    step(
        &mut adam,
        &mut a,
        &mut b,
        &values(7, 3),
        &values(8, 4),
        1e-3,
    )
    .unwrap();
    // A gradient of the wrong length.
    let e = step(
        &mut adam,
        &mut a,
        &mut b,
        &values(7, 2),
        &values(8, 4),
        1e-3,
    )
    .unwrap_err();
    assert!(matches!(&e, Error::Shape(m) if m.contains("`a`")), "{e}");
    // Another parameter set than before.
    let mut c = values(9, 3);
    let e = adam
        .update(
            &mut [ParamGrad {
                name: "c",
                shape: &[3],
                value: &mut c,
                grad: &[0.0; 3],
            }],
            1e-3,
        )
        .unwrap_err();
    assert!(e.to_string().contains("`c`"), "{e}");
    assert_eq!(adam.steps(), 1);
    // A state that does not fit the parameters.
    let params = [NamedTensor {
        name: "a".into(),
        shape: vec![3],
        data: vec![0.0; 3],
    }];
    let e = Adam::new(AdamConfig::default())
        .unwrap()
        .set_state(&adam.state(), &params)
        .unwrap_err();
    assert!(e.to_string().contains("unexpected tensor `b`"), "{e}");
    let wrong = OptimizerState {
        steps: 1,
        first_moment: vec![NamedTensor {
            name: "a".into(),
            shape: vec![4],
            data: vec![0.0; 4],
        }],
        second_moment: vec![NamedTensor {
            name: "a".into(),
            shape: vec![3],
            data: vec![0.0; 3],
        }],
    };
    let e = Adam::new(AdamConfig::default())
        .unwrap()
        .set_state(&wrong, &params)
        .unwrap_err();
    assert!(e.to_string().contains("`a` has shape [4]"), "{e}");
    // Invalid hyper-parameters are rejected at construction.
    for (cfg, name) in [
        (
            AdamConfig {
                beta1: 1.0,
                ..AdamConfig::default()
            },
            "adam.beta1",
        ),
        (
            AdamConfig {
                beta2: -0.5,
                ..AdamConfig::default()
            },
            "adam.beta2",
        ),
        (
            AdamConfig {
                eps: f64::NAN,
                ..AdamConfig::default()
            },
            "adam.eps",
        ),
    ] {
        assert!(Adam::new(cfg).unwrap_err().to_string().contains(name));
    }
}
