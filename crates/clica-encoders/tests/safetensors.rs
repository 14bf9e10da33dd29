//! safetensors round trips and the errors for mismatched or malformed files.

mod common;

use clica_core::Error;
use clica_encoders::{EncoderConfig, MlpEncoder, Normalization};
use common::*;
use std::collections::HashMap;

fn trained(cfg: EncoderConfig) -> MlpEncoder {
    let mut f = MlpEncoder::new(cfg, &mut rng("st.init")).unwrap();
    let x = randn(70, f.config().input_dim, &mut rng("st.x"));
    let g = randn(70, f.config().output_dim, &mut rng("st.g"));
    f.forward_train(x.view());
    f.backward_and_step(g.view(), 1e-2);
    f
}

#[test]
fn round_trip_is_exact_for_every_normalization_and_across_backends() {
    for norm in all_normalizations() {
        let cfg = EncoderConfig::paper(3).with_normalization(norm);
        let f = trained(cfg.clone());
        let bytes = f.to_safetensors().unwrap();
        for backend in backends() {
            let mut g =
                MlpEncoder::new(cfg.clone().with_backend(backend), &mut rng("st.other")).unwrap();
            assert_ne!(g.parameters(), f.parameters());
            g.load_safetensors(&bytes).unwrap();
            assert_eq!(g.parameters(), f.parameters(), "{norm:?} {backend:?}");
            assert_eq!(g.adam_steps(), 0, "loading resets Adam");
        }
        let x = randn(20, 3, &mut rng("st.enc"));
        let mut g = MlpEncoder::new(cfg, &mut rng("st.other")).unwrap();
        g.load_safetensors(&bytes).unwrap();
        assert_eq!(g.encode_f32(x.view()), f.encode_f32(x.view()));
    }
}

#[test]
fn files_use_pytorch_names_layouts_and_record_the_architecture() {
    let f = trained(EncoderConfig::paper(2).with_normalization(Normalization::learnable_box()));
    let bytes = f.to_safetensors().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let mut expected: Vec<String> = (0..7)
        .flat_map(|l| [format!("layers.{l}.weight"), format!("layers.{l}.bias")])
        .chain(["norm.bound".to_string()])
        .collect();
    expected.sort();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let w1 = st.tensor("layers.1.weight").unwrap();
    assert_eq!(w1.shape(), &[100, 20]); // [out, in]
    assert_eq!(w1.dtype(), safetensors::Dtype::F32);
    let ps = f.parameters();
    let w = &find(&ps, "layers.1.weight").data;
    assert_eq!(&w1.data()[..4], &w[0].to_le_bytes());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata().as_ref().unwrap()["clica.architecture"],
        "mlp 2-20-100-100-100-100-20-2 leaky(0.01) learnable_box(b0=1)"
    );
}

#[test]
fn file_round_trip() {
    let f = trained(EncoderConfig::paper(2).with_normalization(Normalization::learnable_sphere()));
    let dir = std::env::temp_dir().join(format!("clica-encoders-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("encoder.safetensors");
    f.save(&path).unwrap();
    let mut g = MlpEncoder::new(f.config().clone(), &mut rng("st.file")).unwrap();
    g.load(&path).unwrap();
    assert_eq!(g.parameters(), f.parameters());
    std::fs::remove_dir_all(&dir).unwrap();
    let err = g.load(dir.join("missing.safetensors")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter { name, .. } if name == "path"),
        "{err}"
    );
}

fn shape_error(e: Error) -> String {
    match e {
        Error::Shape(m) => m,
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn loading_into_another_architecture_fails_clearly() {
    let bytes = trained(EncoderConfig::paper(3)).to_safetensors().unwrap();

    // Other width: first mismatching tensor named, both shapes and the source architecture.
    let mut g = MlpEncoder::new(EncoderConfig::paper(4), &mut rng("a")).unwrap();
    let before = g.parameters();
    let msg = shape_error(g.load_safetensors(&bytes).unwrap_err());
    assert!(
        msg.starts_with("tensor `layers.0.weight` has shape [30, 3]"),
        "{msg}"
    );
    assert!(msg.contains("expects [40, 4]"), "{msg}");
    assert!(
        msg.contains("saved from `mlp 3-30-150-150-150-150-30-3"),
        "{msg}"
    );
    assert_eq!(
        g.parameters(),
        before,
        "a failed load leaves the encoder unchanged"
    );

    // Fewer layers: unexpected tensor.
    let cfg = EncoderConfig::paper(3).with_hidden(vec![30, 150]);
    let mut g = MlpEncoder::new(cfg, &mut rng("b")).unwrap();
    let msg = shape_error(g.load_safetensors(&bytes).unwrap_err());
    assert!(
        msg.starts_with("tensor `layers.2.weight` has shape [150, 150]"),
        "{msg}"
    );
    assert!(msg.contains("expects [3, 150]"), "{msg}");

    // A learnable normalisation whose parameter is missing from the file.
    let cfg = EncoderConfig::paper(3).with_normalization(Normalization::learnable_box());
    let mut g = MlpEncoder::new(cfg, &mut rng("c")).unwrap();
    let msg = shape_error(g.load_safetensors(&bytes).unwrap_err());
    assert!(
        msg.contains("missing tensor `norm.bound` (shape [3])"),
        "{msg}"
    );

    // And the other way round: a file with a radius loaded into an unnormalised encoder.
    let sphere =
        trained(EncoderConfig::paper(3).with_normalization(Normalization::learnable_sphere()));
    let mut g = MlpEncoder::new(EncoderConfig::paper(3), &mut rng("d")).unwrap();
    let msg = shape_error(
        g.load_safetensors(&sphere.to_safetensors().unwrap())
            .unwrap_err(),
    );
    assert!(msg.contains("unexpected tensor `norm.radius`"), "{msg}");
}

#[test]
fn malformed_or_non_f32_files_are_rejected() {
    let mut g = MlpEncoder::new(EncoderConfig::paper(2), &mut rng("m")).unwrap();
    for bad in [&b""[..], b"12345678", b"\x10\0\0\0\0\0\0\0{not json}      "] {
        let err = g.load_safetensors(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidParameter { name, reason }
                if name == "safetensors" && reason.contains("malformed")),
            "{err:?}"
        );
    }
    // A valid file holding f64 tensors.
    let data = vec![0u8; 8 * 20];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![20, 1], &data).unwrap();
    let bytes =
        safetensors::serialize([("layers.0.weight", view)], None::<HashMap<String, String>>)
            .unwrap();
    let err = g.load_safetensors(&bytes).unwrap_err();
    assert!(err.to_string().contains("expected F32"), "{err}");
}

#[test]
fn equal_weights_give_equal_bytes_whatever_the_metadata_order() {
    // The header's metadata map is written with sorted keys (safetensors itself writes it in
    // HashMap order, which differs between processes).
    let f = MlpEncoder::new(EncoderConfig::paper(3), &mut common::rng("bytes")).unwrap();
    let bytes = f.to_safetensors().unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let (a, b) = (
        header.find("clica.architecture").unwrap(),
        header.find("\"format\"").unwrap(),
    );
    assert!(a < b, "{header}");
    assert_eq!(bytes, f.to_safetensors().unwrap());
}
