//! Property tests of the input readers: the TOML config reader, the `.npy` reader and the
//! checkpoint reader return `Ok` or `Err` on any input — arbitrary bytes, truncations and
//! mutations of valid files — and never panic. 256 cases per property, so they run with
//! the everyday `cargo test` (and in CI).

use clica::checkpoint::{Checkpoint, Phase};
use clica::config::TrainConfig;
use clica::npy;
use clica_core::RunSeed;
use clica_encoders::{EncoderConfig, MlpEncoder};
use ndarray::Array2;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid config file exercising every section.
fn valid_toml() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| TrainConfig::default().to_toml())
}

fn valid_npy() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let a = Array2::from_shape_fn((5, 3), |(i, j)| i as f64 - 0.5 * j as f64);
        npy::to_bytes(a.view())
    })
}

fn valid_checkpoint() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let seed = RunSeed::new(3);
        let f = MlpEncoder::new(EncoderConfig::paper(2), &mut seed.stream("encoder")).unwrap();
        let ck = Checkpoint {
            phase: Phase::Contrastive,
            step: 7,
            config_toml: valid_toml().to_string(),
            generator_fingerprint: "0123456789abcdef".into(),
            rngs: ["data", "log", "eval"]
                .iter()
                .map(|n| (n.to_string(), seed.stream(n)))
                .collect::<BTreeMap<_, _>>(),
            last_loss: 1.5,
            elapsed_s: 0.25,
            metrics: Vec::new(),
            metrics_supervised: Vec::new(),
            contrastive: None,
            parameters: f.parameters(),
            optimizer: f.optimizer_state().unwrap(),
        };
        ck.to_bytes().unwrap()
    })
}

/// A byte-level edit of `bytes`: overwrite, delete or insert at a position.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Edit::Insert(i, v)),
    ]
}

fn apply(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        let len = b.len().max(1);
        match e {
            Edit::Set(i, v) => {
                if !b.is_empty() {
                    b[i % len] = *v;
                }
            }
            Edit::Delete(i, n) => {
                let start = i % len;
                let end = (start + n).min(b.len());
                if start < end {
                    b.drain(start..end);
                }
            }
            Edit::Insert(i, v) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, v.iter().copied());
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_reader_never_panics_on_arbitrary_text(text in any::<String>(), o in any::<String>()) {
        let _ = TrainConfig::from_toml_with_overrides(&text, &[]);
        let _ = TrainConfig::from_toml_with_overrides("", &[o]);
        let _ = TrainConfig::from_run_config(&text);
    }

    #[test]
    fn config_reader_never_panics_on_mutated_valid_files(
        edits in proptest::collection::vec(edit(), 1..6)
    ) {
        let bytes = apply(valid_toml().as_bytes(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(c) = TrainConfig::from_toml_with_overrides(&text, &[]) {
            // Whatever is accepted is valid and round-trips.
            prop_assert!(c.validate().is_ok());
            let again = TrainConfig::from_toml_with_overrides(&c.to_toml(), &[]).unwrap();
            prop_assert_eq!(again, c);
        }
    }

    #[test]
    fn config_overrides_never_panic(
        key in prop::sample::select(vec![
            "seed", "train.batch", "train.lr", "data.dim", "data.space", "encoder.hidden_multipliers",
            "loss.kind", "train", "data", "", ".", "..", "train.lr.x", "x.y.z", "eval.samples",
        ]),
        value in any::<String>(),
    ) {
        let _ = TrainConfig::from_toml_with_overrides(valid_toml(), &[format!("{key}={value}")]);
    }

    #[test]
    fn npy_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = npy::parse_f64_2d(&bytes);
        // With the magic string and a version in front, the header parser is reached.
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&bytes);
        let _ = npy::parse_f64_2d(&b);
    }

    #[test]
    fn npy_reader_rejects_every_truncation(cut in 0usize..1000) {
        let good = valid_npy();
        let cut = cut % good.len();
        prop_assert!(npy::parse_f64_2d(&good[..cut]).is_err());
    }

    #[test]
    fn npy_reader_never_panics_on_mutated_valid_files(
        edits in proptest::collection::vec(edit(), 1..6)
    ) {
        let _ = npy::parse_f64_2d(&apply(valid_npy(), &edits));
    }

    #[test]
    fn checkpoint_reader_rejects_every_truncation(cut in 0usize..100_000) {
        let good = valid_checkpoint();
        let cut = cut % good.len();
        prop_assert!(Checkpoint::from_bytes(&good[..cut]).is_err());
    }

    #[test]
    fn checkpoint_reader_never_panics_on_mutated_files(
        edits in proptest::collection::vec(edit(), 1..4)
    ) {
        let _ = Checkpoint::from_bytes(&apply(valid_checkpoint(), &edits));
    }
}

#[test]
fn the_valid_inputs_are_valid() {
    assert!(TrainConfig::from_toml_with_overrides(valid_toml(), &[]).is_ok());
    assert_eq!(npy::parse_f64_2d(valid_npy()).unwrap().dim(), (5, 3));
    let ck = Checkpoint::from_bytes(valid_checkpoint()).unwrap();
    assert_eq!((ck.phase, ck.step), (Phase::Contrastive, 7));
}
