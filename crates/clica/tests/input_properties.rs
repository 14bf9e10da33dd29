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

/// Valid config files in the tagged format: the resolved defaults, a product prior with the
/// alignment-uniformity loss (resolved), and a hand-written preset with inline tables.
fn valid_tomls() -> &'static [String] {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let product = TrainConfig::from_toml_with_overrides(
            "[data]\nkind = \"product\"\n\
             [[data.parts]]\ndim = 3\nspace = { kind = \"box\", low = -1.0, high = 1.0 }\n\
             conditional = { kind = \"laplace\", scale = 0.1 }\n\
             [[data.parts]]\ndim = 4\nconditional = { kind = \"vmf\", kappa = 5.0 }\n\
             [loss]\nkind = \"align_uniform\"\nalpha = 1.5\non = \"both\"\nnegatives = 64\n\
             [encoder]\nnormalization = { kind = \"learnable_sphere\", init_radius = 2.0 }\n",
            &[],
        )
        .unwrap()
        .to_toml();
        let preset = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/table2/row02.toml"
        );
        vec![
            valid_toml().to_string(),
            product,
            std::fs::read_to_string(preset).unwrap(),
        ]
    })
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
            // Averaged weights too, so that their tensors are covered by the edits.
            ema: f.parameters(),
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
        which in 0usize..3,
        edits in proptest::collection::vec(edit(), 1..6)
    ) {
        let bytes = apply(valid_tomls()[which].as_bytes(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(c) = TrainConfig::from_toml_with_overrides(&text, &[]) {
            // Whatever is accepted is valid and round-trips.
            prop_assert!(c.validate().is_ok());
            let again = TrainConfig::from_toml_with_overrides(&c.to_toml(), &[]).unwrap();
            prop_assert_eq!(again, c);
        }
    }

    #[test]
    fn config_reader_never_panics_on_truncated_files(which in 0usize..3, cut in 0usize..4096) {
        let text = &valid_tomls()[which];
        let cut = cut % (text.len() + 1);
        let text = String::from_utf8_lossy(&text.as_bytes()[..cut]);
        if let Ok(c) = TrainConfig::from_toml_with_overrides(&text, &[]) {
            prop_assert!(c.validate().is_ok());
            let again = TrainConfig::from_toml_with_overrides(&c.to_toml(), &[]).unwrap();
            prop_assert_eq!(again, c);
        }
        let _ = TrainConfig::from_run_config(&text);
    }

    #[test]
    fn config_overrides_never_panic(
        which in 0usize..3,
        key in prop::sample::select(vec![
            "seed", "train.batch", "train.lr", "data.dim", "data.space", "data.space.kind",
            "data.space.radius", "data.conditional", "data.conditional.kind", "data.kind",
            "data.parts", "data.parts.0", "data.parts.1.dim", "data.parts[0].space.kind",
            "data.parts.9.dim", "encoder.hidden_multipliers", "encoder.hidden_multipliers.1",
            "encoder.normalization", "encoder.normalization.kind", "encoder.kind", "mixing.kind",
            "mixing.activation", "loss.kind", "loss.alpha", "loss.on", "loss.negatives", "train",
            "data", "", ".", "..", "[", "]", "data.[0]", "train.lr.x", "x.y.z", "eval.samples",
        ]),
        value in prop_oneof![
            any::<String>(),
            prop::sample::select(vec![
                "box", "sphere", "unbounded", "uniform", "vmf", "normal", "laplace", "gennorm",
                "latent", "product", "mlp", "none", "learnable_sphere", "lp", "align_uniform",
                "{ kind = \"box\" }", "[{ dim = 2 }]", "{}", "[]", "0", "-1", "1e400", "nan",
            ]).prop_map(str::to_string),
        ],
    ) {
        let o = [format!("{key}={value}")];
        if let Ok(c) = TrainConfig::from_toml_with_overrides(&valid_tomls()[which], &o) {
            let again = TrainConfig::from_toml_with_overrides(&c.to_toml(), &[]).unwrap();
            prop_assert_eq!(again, c);
        }
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
    for text in valid_tomls() {
        TrainConfig::from_toml_with_overrides(text, &[]).unwrap();
    }
    assert_eq!(npy::parse_f64_2d(valid_npy()).unwrap().dim(), (5, 3));
    let ck = Checkpoint::from_bytes(valid_checkpoint()).unwrap();
    assert_eq!((ck.phase, ck.step), (Phase::Contrastive, 7));
}
