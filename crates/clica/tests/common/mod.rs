//! Helpers shared by the tests that run the `clica` binary on run folders.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh (removed) folder under the temporary directory, unique to this test process.
pub fn tmpdir(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clica-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `clica` with `args`, waited for.
pub fn clica(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clica"))
        .args(args)
        .output()
        .expect("run the clica binary")
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit code 2, one line on stderr starting with `error: ` that contains every needle, no
/// panic. The only line that may come before it is the note of a stale lock taken over (a
/// killed run's, see `clica::lock`).
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "exit code");
    let all = String::from_utf8_lossy(&out.stderr);
    let err = all
        .strip_prefix("note: taking over the stale lock ")
        .and_then(|rest| rest.split_once('\n'))
        .map_or(&*all, |(_, err)| err);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {all}");
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Metrics lines without the wall-clock field.
pub fn metrics(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("elapsed_s");
            v
        })
        .collect()
}

/// Bit-identical results: summary (timings aside), every metrics line (elapsed aside),
/// config and encoder bytes.
pub fn assert_same_results(a: &Path, b: &Path) {
    let strip = |mut v: serde_json::Value| {
        let o = v.as_object_mut().unwrap();
        o.remove("train_seconds");
        o.remove("seconds_per_step");
        o.remove("step_phases");
        v
    };
    let (sa, sb) = (
        strip(json(&a.join("summary.json"))),
        strip(json(&b.join("summary.json"))),
    );
    assert_eq!(sa["status"], "completed");
    assert_eq!(sa, sb, "summary.json");
    for f in ["metrics.jsonl", "metrics_supervised.jsonl"] {
        let (ma, mb) = (metrics(&a.join(f)), metrics(&b.join(f)));
        assert!(!ma.is_empty());
        assert_eq!(ma, mb, "{f}");
    }
    for f in ["config.toml", "encoder.safetensors"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}
