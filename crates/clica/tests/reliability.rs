//! Runs that survive faults: a real SIGKILL mid-training then `--resume` gives results
//! bit-identical to an uninterrupted run, SIGTERM stops with a checkpoint and an
//! `interrupted` summary, divergence keeps the last good checkpoint, and mismatched,
//! corrupt or truncated checkpoints are refused with one line (exit code 2), never a panic.
//!
//! No test here measures time: the processes are polled until a checkpoint of the wanted
//! phase and step exists, whenever that is.

mod common;

use clica::checkpoint::{Checkpoint, Phase};
use clica::config::TrainConfig;
use clica::train::{train, Silent};
use common::{assert_ok, assert_one_line_error, assert_same_results, clica, json, s};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("rel", name)
}

/// n = 3, a small encoder, 4000 contrastive and 2000 supervised steps, checkpoints every 50
/// (long phases leave the pollers below a wide window to stop a run in, even on a busy machine).
const SETS: &[&str] = &[
    "data.dim=3",
    "data.conditional.kappa=10",
    "encoder.hidden_multipliers=[10,10]",
    "train.batch=128",
    "train.steps=4000",
    "train.lr=3e-3",
    "train.log_every=100",
    "train.checkpoint_every=50",
    "mixing.cond_pool=1000",
    "eval.samples=1024",
    "eval.final_batches=2",
    "eval.supervised=true",
    "eval.supervised_steps=2000",
];

fn set_args() -> Vec<String> {
    SETS.iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

fn spawn_train(out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_clica"))
        .arg("train")
        .args(set_args())
        .args(["--out", s(out)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn clica train")
}

fn resume(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--resume", s(dir)];
    args.extend_from_slice(extra);
    clica(&args)
}

/// The uninterrupted reference run (once per test binary).
fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tmpdir("reference");
        let mut args = vec!["train".to_string()];
        args.extend(set_args());
        args.extend(["--out".to_string(), s(&d).to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&clica(&args));
        d
    })
}

/// Polls until the run's checkpoint is in `phase` at `min_step` or later, or the process
/// exits; then sends `signal` ("-KILL" or "-TERM") if it is still running. Returns the
/// checkpoint seen.
fn stop_when(child: &mut Child, dir: &Path, phase: Phase, min_step: u64, signal: &str) {
    loop {
        if child.try_wait().unwrap().is_some() {
            panic!("the run ended before it reached {phase:?} step {min_step}");
        }
        if let Ok(ck) = Checkpoint::read(dir) {
            if ck.phase == phase && ck.step >= min_step {
                break;
            }
            assert!(
                ck.phase != Phase::Done,
                "the run finished before it could be stopped"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

#[test]
fn sigkill_mid_training_then_resume_is_bit_identical() {
    let d = tmpdir("sigkill");
    let mut child = spawn_train(&d);
    stop_when(&mut child, &d, Phase::Contrastive, 1000, "-KILL");
    let status = child.wait().unwrap();
    assert!(!status.success());
    let ck = Checkpoint::read(&d).unwrap();
    assert_eq!(ck.phase, Phase::Contrastive);
    assert!(
        ck.step < 4000,
        "killed mid-training (checkpoint step {})",
        ck.step
    );

    let out = resume(&d, &[]);
    assert_ok(&out);
    assert_same_results(&d, reference());
    // The step phases cover the steps this invocation ran.
    let summary = json(&d.join("summary.json"));
    assert_eq!(
        summary["step_phases"]["steps"].as_u64(),
        Some(4000 - ck.step)
    );

    // Resuming a completed run is a no-op with a clear message.
    let out = resume(&d, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already complete"));
}

#[test]
fn sigterm_writes_a_checkpoint_and_an_interrupted_summary_then_resume_completes() {
    let d = tmpdir("sigterm");
    let mut child = spawn_train(&d);
    stop_when(&mut child, &d, Phase::Supervised, 50, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));

    let summary = json(&d.join("summary.json"));
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(summary["phase"], "supervised");
    let step = summary["step"].as_u64().unwrap();
    assert!(step < 2000);
    let ck = Checkpoint::read(&d).unwrap();
    assert_eq!((ck.phase, ck.step), (Phase::Supervised, step));
    assert_eq!(summary["checkpoint"]["step"].as_u64(), Some(step));

    let out = resume(&d, &[]);
    assert_ok(&out);
    assert_same_results(&d, reference());
    // This invocation ran no contrastive step, so it has no phases to report.
    let summary = json(&d.join("summary.json"));
    assert!(summary.get("step_phases").is_none(), "{summary}");
}

#[test]
fn resume_with_a_changed_config_is_refused_naming_the_fields() {
    let d = tmpdir("mismatch");
    let mut child = spawn_train(&d);
    stop_when(&mut child, &d, Phase::Contrastive, 100, "-KILL");
    child.wait().unwrap();

    let out = resume(&d, &["--set", "train.lr=0.004", "--set", "train.batch=64"]);
    assert_one_line_error(&out, &["train.lr", "0.003", "0.004", "train.batch"]);
    // An edited config.toml in the run folder is refused too.
    let cfg = d.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("kappa = 10.0", "kappa = 5.0")).unwrap();
    let out = resume(&d, &[]);
    assert_one_line_error(&out, &["data.conditional.kappa", "config.toml"]);
    std::fs::write(&cfg, &text).unwrap();

    // The checkpoint of a run with another configuration is refused.
    let other = tmpdir("mismatch-other");
    let mut cfg_other = TrainConfig::from_toml_with_overrides(
        "",
        &SETS.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap();
    cfg_other.train.steps = 20;
    if let clica::config::DataSection::Latent(l) = &mut cfg_other.data {
        l.dim = 4;
    }
    train(&cfg_other, &other, &mut Silent).unwrap();
    std::fs::copy(Checkpoint::path(&other), Checkpoint::path(&d)).unwrap();
    let out = resume(&d, &[]);
    assert_one_line_error(&out, &["data.dim", "config.toml"]);

    // Restating an unchanged value is accepted (the other run is complete, so nothing runs).
    let out = resume(&other, &["--set", "train.steps=20"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already complete"));
}

#[test]
fn corrupt_truncated_or_missing_checkpoints_are_refused_in_one_line() {
    let d = tmpdir("corrupt");
    let mut cfg = TrainConfig::from_toml_with_overrides(
        "",
        &SETS.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap();
    cfg.train.steps = 60;
    cfg.eval.supervised = false;
    train(&cfg, &d, &mut Silent).unwrap();
    let path = Checkpoint::path(&d);
    let good = std::fs::read(&path).unwrap();

    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert_one_line_error(&resume(&d, &[]), &["checkpoint.safetensors", "truncated"]);
    // Empty.
    std::fs::write(&path, b"").unwrap();
    assert_one_line_error(&resume(&d, &[]), &["checkpoint.safetensors"]);
    // Not a clica checkpoint: the encoder weights.
    std::fs::copy(d.join("encoder.safetensors"), &path).unwrap();
    assert_one_line_error(&resume(&d, &[]), &["not a clica checkpoint"]);
    // Another format version.
    let mut v9 = good.clone();
    let at = good
        .windows(12)
        .position(|w| w == b"version\\\":1,")
        .expect("the version entry");
    v9[at + 10] = b'9';
    std::fs::write(&path, &v9).unwrap();
    assert_one_line_error(&resume(&d, &[]), &["version 9"]);
    // Missing.
    std::fs::remove_file(&path).unwrap();
    assert_one_line_error(&resume(&d, &[]), &["no checkpoint"]);
    // A folder that does not exist.
    assert_one_line_error(&resume(&d.join("nope"), &[]), &["no checkpoint"]);
}

#[test]
fn divergence_writes_a_diverged_summary_and_keeps_the_last_good_checkpoint() {
    let d = tmpdir("diverge");
    let cfg = TrainConfig::from_toml_with_overrides(
        "",
        &[
            "data.dim=3",
            "encoder.hidden_multipliers=[10,10]",
            "encoder.normalization.kind=none",
            "mixing.cond_pool=1000",
            "train.batch=64",
            "train.steps=200",
            "train.warmup_steps=0",
            "train.lr=1e6",
            "train.checkpoint_every=1",
            "train.log_every=1000",
            "eval.samples=256",
        ]
        .map(String::from),
    )
    .unwrap();
    let err = train(&cfg, &d, &mut Silent).unwrap_err();
    let clica::Error::Diverged { step, what } = &err else {
        panic!("expected divergence, got {err}");
    };
    let summary = json(&d.join("summary.json"));
    assert_eq!(summary["status"], "diverged");
    assert_eq!(summary["step"].as_u64(), Some(*step));
    assert!(summary["message"].as_str().unwrap().contains(what.as_str()));
    // The last checkpoint is the step before (reading it checks that its parameters are
    // finite).
    assert!(*step >= 2, "diverges after a good step (step {step})");
    let ck = Checkpoint::read(&d).unwrap();
    assert_eq!(ck.step, step - 1);
    assert_eq!(summary["checkpoint"]["step"].as_u64(), Some(step - 1));
}
