//! End-to-end training in release: a small run whose R² rises well above its identity
//! baseline, its result files, determinism, the supervised baseline and divergence handling.

use clica::config::TrainConfig;
use clica::train::{train, Silent};
use std::path::PathBuf;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clica-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// n = 3 sphere, vMF(κ = 10), a small encoder: trains in about a second.
fn small(extra: &[&str]) -> TrainConfig {
    let mut o: Vec<String> = [
        "data.dim=3",
        "data.conditional.kappa=10",
        "encoder.hidden_multipliers=[10,10]",
        "train.batch=256",
        "train.steps=400",
        "train.lr=3e-3",
        "train.log_every=100",
        "mixing.cond_pool=1000",
        "eval.samples=2048",
        "eval.final_batches=3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    o.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::from_toml_with_overrides("", &o).unwrap()
}

#[test]
fn contrastive_training_beats_the_identity_baseline_and_writes_results() {
    let out = tmpdir("e2e");
    let s = train(&small(&[]), &out, &mut Silent).unwrap();
    assert!(
        s.contrastive.as_ref().unwrap().r2.mean > 0.95
            && s.contrastive.as_ref().unwrap().r2.mean > s.identity.as_ref().unwrap().r2 + 0.08,
        "r2 {} vs identity {}",
        s.contrastive.as_ref().unwrap().r2.mean,
        s.identity.as_ref().unwrap().r2
    );
    assert!(
        s.contrastive.as_ref().unwrap().mcc_pearson.mean > s.identity.as_ref().unwrap().mcc_pearson
    );

    // config.toml: the resolved config plus the run's identity; it parses back.
    let text = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(text.contains(&format!(
        "generator_fingerprint = \"{}\"",
        s.generator_fingerprint
    )));
    let without_run = text.split("\n[run]").next().unwrap();
    assert_eq!(
        TrainConfig::from_toml_with_overrides(without_run, &[]).unwrap(),
        small(&[])
    );

    // metrics.jsonl: steps 1, 100, 200, 300, 400 with finite numbers.
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["loss", "r2", "mcc", "elapsed_s", "lr"] {
                assert!(v[k].as_f64().unwrap().is_finite(), "{k} in {l}");
            }
            // Each latent's R², whose mean is the logged R².
            let per: Vec<f64> = v["r2_per_latent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(per.len(), 3, "{l}");
            let mean = per.iter().sum::<f64>() / per.len() as f64;
            assert!((mean - v["r2"].as_f64().unwrap()).abs() < 1e-12, "{l}");
            v["step"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 100, 200, 300, 400]);

    // summary.json and weights.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["steps"], 400);
    // Where the steps' time went: every step timed, each phase a duration, the compute
    // phases non-zero, and together no more than the training's wall time plus its last
    // logging (`train_seconds` stops before the last step's scoring).
    let p = s.step_phases.expect("step phases");
    assert_eq!(p.steps, 400);
    let phases = [
        p.draw_ms,
        p.forward_ms,
        p.loss_ms,
        p.backward_ms,
        p.update_ms,
        p.logging_ms,
    ];
    assert!(phases.iter().all(|v| v.is_finite() && *v >= 0.0), "{p:?}");
    assert!(
        p.forward_ms > 0.0 && p.loss_ms > 0.0 && p.backward_ms > 0.0,
        "{p:?}"
    );
    let total_s = phases.iter().sum::<f64>() * 400.0 / 1e3;
    let train_s = s.train_seconds.unwrap();
    assert!(
        total_s <= train_s + p.logging_ms * 400.0 / 1e3,
        "{p:?} vs {train_s} s"
    );
    assert_eq!(summary["step_phases"]["steps"], 400);
    // The thread count the run computed with (its results depend on it).
    assert_eq!(
        summary["threads"].as_u64(),
        Some(rayon::current_num_threads() as u64)
    );
    assert!(summary["contrastive"]["r2"]["mean"].as_f64().unwrap() > 0.95);
    // Per-latent scores: one per latent, averaging to the aggregate scores (the mean over
    // batches of the mean over latents is the mean over latents of the mean over batches).
    let c = s.contrastive.as_ref().unwrap();
    let per = c.per_latent.as_ref().expect("per-latent scores");
    assert_eq!((per.r2.len(), per.mcc_pearson.len()), (3, 3));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        (mean(&per.r2) - c.r2.mean).abs() < 1e-12,
        "{per:?} vs {}",
        c.r2.mean
    );
    assert!((mean(&per.mcc_pearson) - c.mcc_pearson.mean).abs() < 1e-12);
    assert!(per.r2.iter().all(|&v| v > 0.9), "{per:?}");
    assert_eq!(
        summary["contrastive"]["per_latent"]["r2"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        std::fs::metadata(out.join("encoder.safetensors"))
            .unwrap()
            .len()
            > 1000
    );
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let a = train(
        &small(&["train.steps=50", "train.warmup_steps=10"]),
        &tmpdir("det-a"),
        &mut Silent,
    )
    .unwrap();
    let b = train(
        &small(&["train.steps=50", "train.warmup_steps=10"]),
        &tmpdir("det-b"),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(a.final_loss, b.final_loss);
    assert_eq!(a.contrastive, b.contrastive);
    let c = train(
        &small(&["train.steps=50", "train.warmup_steps=10", "seed=1"]),
        &tmpdir("det-c"),
        &mut Silent,
    )
    .unwrap();
    assert_ne!(a.generator_fingerprint, c.generator_fingerprint);
    assert_ne!(a.final_loss, c.final_loss);
}

#[test]
fn supervised_baseline_is_an_upper_bound() {
    let s = train(
        &small(&[
            "eval.supervised=true",
            "eval.supervised_steps=1500",
            "train.steps=300",
            "encoder.normalization.kind=none",
        ]),
        &tmpdir("sup"),
        &mut Silent,
    )
    .unwrap();
    let sup = s.supervised.expect("supervised scores");
    assert!(sup.r2.mean > 0.98, "supervised r2 {}", sup.r2.mean);
}

#[test]
fn divergence_stops_with_the_step_and_quantity() {
    let err = train(
        &small(&[
            "train.lr=1e30",
            "train.warmup_steps=0",
            "encoder.normalization.kind=none",
        ]),
        &tmpdir("div"),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("diverged at step"), "{err}");
    assert!(err.contains("not finite"), "{err}");
}

#[test]
fn collapsed_encoder_loss_is_log_b_plus_one() {
    // A free exact check of the reference's self-term convention through the trainer's
    // loss construction: all outputs equal ⇒ loss = ln(B + 1).
    use ndarray::Array2;
    let cfg = small(&[]);
    let kernel = cfg.loss.build().unwrap();
    let b = 6144;
    let h = Array2::<f32>::from_elem((b, 3), 0.5);
    let l = f64::from(kernel.loss(h.view(), h.view()));
    assert!((l - ((b + 1) as f64).ln()).abs() < 1e-4, "{l}");
}

#[test]
fn the_supervised_baseline_has_its_own_learning_rate_and_the_symmetric_loss_trains() {
    let out = tmpdir("sup-lr");
    let s = train(
        &small(&[
            "loss.symmetric=true",
            "eval.supervised=true",
            "eval.supervised_steps=200",
            "eval.supervised_lr=5e-3",
            "train.steps=300",
        ]),
        &out,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(
        s.loss.as_deref().unwrap(),
        "symmetric[sphere_infonce(tau=1,self=keep)]"
    );
    assert!(
        s.contrastive.as_ref().unwrap().r2.mean > s.identity.as_ref().unwrap().r2 + 0.05,
        "r2 {} vs identity {}",
        s.contrastive.as_ref().unwrap().r2.mean,
        s.identity.as_ref().unwrap().r2
    );
    // Each phase logs its own schedule: warm-up to 3e-3 (contrastive) and to 5e-3 (supervised).
    let peak = |file: &str| {
        std::fs::read_to_string(out.join(file))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                    .as_f64()
                    .unwrap()
            })
            .fold(0.0f64, f64::max)
    };
    assert!(
        (peak("metrics.jsonl") - 3e-3).abs() < 1e-4,
        "{}",
        peak("metrics.jsonl")
    );
    assert!(
        (peak("metrics_supervised.jsonl") - 5e-3).abs() < 2e-4,
        "{}",
        peak("metrics_supervised.jsonl")
    );
}

#[test]
fn several_positives_per_anchor_train_and_one_positive_is_the_plain_loss() {
    let base = ["loss.symmetric=true", "train.steps=300"];
    let with = |extra: &[&str]| {
        let mut o: Vec<&str> = base.to_vec();
        o.extend(extra);
        small(&o)
    };
    let (d0, d1, d3) = (tmpdir("pos-none"), tmpdir("pos-1"), tmpdir("pos-3"));
    let s0 = train(&with(&[]), &d0, &mut Silent).unwrap();
    let s1 = train(&with(&["loss.positives=1"]), &d1, &mut Silent).unwrap();
    let s3 = train(&with(&["loss.positives=3"]), &d3, &mut Silent).unwrap();
    // One positive per anchor is the plain loss, bit for bit.
    assert_eq!(
        std::fs::read(d0.join("encoder.safetensors")).unwrap(),
        std::fs::read(d1.join("encoder.safetensors")).unwrap()
    );
    // Three train too, to other weights, under a name that says so.
    assert_ne!(
        std::fs::read(d0.join("encoder.safetensors")).unwrap(),
        std::fs::read(d3.join("encoder.safetensors")).unwrap()
    );
    assert_eq!(
        s3.loss.as_deref().unwrap(),
        "symmetric[sphere_infonce(tau=1,self=keep)][3 positives]"
    );
    let r2 = |s: &clica_records::Summary| s.contrastive.as_ref().unwrap().r2.mean;
    assert!(
        r2(&s3) > s3.identity.as_ref().unwrap().r2 + 0.05,
        "r2 {} vs identity {}",
        r2(&s3),
        s3.identity.as_ref().unwrap().r2
    );
    assert_eq!(r2(&s0), r2(&s1));
}

#[test]
fn the_mlp_input_standardisation_is_measured_on_the_data_and_recorded() {
    let (d0, d1) = (tmpdir("inorm-none"), tmpdir("inorm-data"));
    let plain = train(&small(&["train.steps=200"]), &d0, &mut Silent).unwrap();
    let cfg = small(&["train.steps=200", "encoder.input_norm=data"]);
    assert!(cfg.to_toml().contains("input_norm = \"data\""));
    assert!(!small(&[]).to_toml().contains("input_norm"));
    let s = train(&cfg, &d1, &mut Silent).unwrap();
    let desc = s.encoder.as_deref().unwrap();
    assert!(
        desc.starts_with(plain.encoder.as_deref().unwrap()) && desc.contains("input_norm(mean=["),
        "{desc}"
    );
    // The recorded means and standard deviations are the observations': within a few
    // standard errors of those of a large fresh sample of the same source.
    let setup = clica::train::Setup::new(&cfg).unwrap();
    let big = setup
        .source()
        .sample(&mut clica_core::RunSeed::new(99).stream("check"), 50_000);
    let x = big.x.to_f32();
    let nums: Vec<f64> = desc
        .split("input_norm(mean=[")
        .nth(1)
        .unwrap()
        .replace("], std=[", ", ")
        .trim_end_matches("])")
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    let d = x.ncols();
    assert_eq!(nums.len(), 2 * d);
    for k in 0..d {
        let col: Vec<f64> = x.column(k).iter().map(|&v| f64::from(v)).collect();
        let m = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / col.len() as f64).sqrt();
        // 1,024 draws: the mean's standard error is sd/32, the std's about sd/45.
        assert!(
            (nums[k] - m).abs() < 5.0 * sd / 32.0,
            "mean {k}: {} vs {m}",
            nums[k]
        );
        assert!(
            (nums[d + k] - sd).abs() < 5.0 * sd / 45.0,
            "std {k}: {} vs {sd}",
            nums[d + k]
        );
    }
    // It trains, to other weights than the plain encoder.
    assert!(s.contrastive.as_ref().unwrap().r2.mean > s.identity.as_ref().unwrap().r2);
    assert_ne!(
        std::fs::read(d0.join("encoder.safetensors")).unwrap(),
        std::fs::read(d1.join("encoder.safetensors")).unwrap()
    );
}
