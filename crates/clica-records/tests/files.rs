//! The record types read every result file committed under docs/ (written by earlier
//! clica releases), write them back unchanged, and never panic on damaged input. Files named
//! `pytorch-*` are the PyTorch benches' logs (docs/time-to-quality), another format.

use clica_records::{LogPoint, Status, Summary};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn files(name_ends: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ends: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, ends, out);
            } else if p.to_string_lossy().ends_with(ends)
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("pytorch-"))
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    walk(&docs, name_ends, &mut out);
    out.sort();
    out
}

#[test]
fn committed_summaries_read_and_write_back_unchanged() {
    let all = files("summary.json");
    assert!(
        all.len() >= 10,
        "expected the committed reference runs, found {}",
        all.len()
    );
    for p in all {
        let text = std::fs::read_to_string(&p).unwrap();
        let s: Summary =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(s.status, Status::Completed, "{}", p.display());
        assert!(s.contrastive.is_some() && s.identity.is_some());
        let back = serde_json::to_value(&s).unwrap();
        let orig: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, orig, "{}", p.display());
    }
}

#[test]
fn committed_metrics_read_and_write_back_unchanged() {
    let all = files(".jsonl");
    assert!(all.len() >= 10, "found {}", all.len());
    for p in all {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let pt: LogPoint =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let back = serde_json::to_value(&pt).unwrap();
            let orig: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, orig, "{}", p.display());
        }
    }
}

#[test]
fn early_stops_omit_what_they_did_not_reach_and_nan_round_trips_as_null() {
    let text = r#"{"status":"diverged","phase":"supervised","step":7,"message":"diverged at step 7: the loss is not finite","checkpoint":null,"seed":1,"generator_fingerprint":"ab","supervised":null,"steps":9,"final_loss":null,"versions":{"clica":"0.1.0"}}"#;
    let s: Summary = serde_json::from_str(text).unwrap();
    assert_eq!(s.status, Status::Diverged);
    assert!(s.final_loss.unwrap().is_nan());
    assert!(s.checkpoint.is_none() && s.identity.is_none());
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["final_loss"], serde_json::Value::Null);
    assert!(v.get("identity").is_none());
    let p = LogPoint {
        step: 1,
        loss: 1.0,
        lr: 0.1,
        r2: 0.5,
        mcc: f64::NAN,
        elapsed_s: 0.0,
        r2_raw: None,
        r2_per_latent: None,
    };
    let line = serde_json::to_string(&p).unwrap();
    assert!(line.contains("\"mcc\":null"), "{line}");
    assert!(serde_json::from_str::<LogPoint>(&line)
        .unwrap()
        .mcc
        .is_nan());
    // The raw weights' R² is written only when a run averages its weights.
    assert!(!line.contains("r2_raw"), "{line}");
    assert!(!line.contains("r2_per_latent"), "{line}");
    let both = LogPoint {
        r2_raw: Some(0.25),
        r2_per_latent: Some(vec![0.75, 0.0]),
        ..p
    };
    let line = serde_json::to_string(&both).unwrap();
    assert!(line.contains("\"r2_raw\":0.25"), "{line}");
    assert_eq!(
        serde_json::from_str::<LogPoint>(&line).unwrap().r2_raw,
        Some(0.25)
    );
    assert_eq!(
        serde_json::from_str::<LogPoint>(&line)
            .unwrap()
            .r2_per_latent,
        Some(vec![0.75, 0.0])
    );
    // Unknown keys and wrong types are errors, not silently dropped.
    assert!(serde_json::from_str::<Summary>(&text.replace("\"seed\"", "\"sed\"")).is_err());
    assert!(
        serde_json::from_str::<Summary>(&text.replace("\"diverged\"", "\"exploded\"")).is_err()
    );
}

proptest! {
    #[test]
    fn arbitrary_truncated_or_mutated_input_never_panics(
        cut in 0usize..2000, pos in 0usize..2000, byte in any::<u8>(), junk in ".{0,64}"
    ) {
        let text = std::fs::read_to_string(&files("summary.json")[0]).unwrap();
        let bytes = text.as_bytes();
        let _ = serde_json::from_slice::<Summary>(&bytes[..cut.min(bytes.len())]);
        let mut m = bytes.to_vec();
        if !m.is_empty() {
            let i = pos % m.len();
            m[i] = byte;
        }
        let _ = serde_json::from_slice::<Summary>(&m);
        let _ = serde_json::from_str::<Summary>(&junk);
        let _ = serde_json::from_str::<LogPoint>(&junk);
    }
}
