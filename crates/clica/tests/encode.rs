//! `clica encode` and [`clica::encode::TrainedEncoder`]: a finished run's encoder, rebuilt
//! from its folder, scores fresh data from the run's own process as its summary says (and
//! clearly above an untrained encoder of the same architecture); the command line writes
//! what the library computes; images read from a set in the reference layout encode as the
//! renderer's own pixels do; bad input fails in one line.

use clica::config::TrainConfig;
use clica::encode::TrainedEncoder;
use clica::npy;
use clica::train::Setup;
use clica_core::RunSeed;
use clica_render::{RenderConfig, Renderer, N_LATENTS};
use ndarray::{Array2, ArrayView2};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{assert_ok, clica, s};

fn tmpdir(name: &str) -> PathBuf {
    let d = common::tmpdir("encode", name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The summary of a run that completed.
fn completed(out: &Output, dir: &Path) -> serde_json::Value {
    assert_ok(out);
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    v
}

fn assert_one_line_error(out: &Output, needle: &str) {
    common::assert_one_line_error(out, &[needle]);
}

/// `clica encode --run run <input> --out out --batch batch` (input: `--x FILE` or
/// `--images DIR`), which must succeed; its JSON line.
fn encode(run: &Path, input: [&str; 2], out: &Path, batch: usize) -> serde_json::Value {
    let batch = batch.to_string();
    let o = clica(&[
        "encode",
        "--run",
        s(run),
        input[0],
        input[1],
        "--out",
        s(out),
        "--batch",
        &batch,
    ]);
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn r2(z: ArrayView2<'_, f64>, h: &Array2<f32>) -> f64 {
    clica_eval::r2_in_sample(z, h.mapv(f64::from).view()).unwrap()
}

#[test]
fn an_mlp_run_encodes_fresh_data_as_its_summary_says() {
    let d = tmpdir("mlp");
    let run = d.join("run");
    // Table 2 row 1's process (box, Laplace positives, L1 loss), 3 latents: learned within
    // a few hundred steps.
    let mut args = vec![
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/table2/row01.toml"
        ),
    ];
    for kv in [
        "data.dim=3",
        "train.steps=3000",
        "train.batch=256",
        "mixing.cond_pool=100",
        "eval.samples=2048",
        "eval.final_batches=1",
    ] {
        args.extend(["--set", kv]);
    }
    args.extend(["--out", s(&run)]);
    let summary = completed(&clica(&args), &run);
    let reported = summary["contrastive"]["r2"]["mean"].as_f64().unwrap();

    let enc = TrainedEncoder::load(&run).unwrap();
    assert_eq!(enc.input_shape(), [3]);
    assert_eq!(enc.output_dim(), 3);
    assert_eq!(enc.describe(), summary["encoder"].as_str().unwrap());
    assert_eq!(
        enc.fingerprint(),
        summary["generator_fingerprint"].as_str().unwrap()
    );

    // Fresh data from the run's own data-generating process.
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let setup = Setup::new(&TrainConfig::from_run_config(&text).unwrap()).unwrap();
    let sample = setup
        .components
        .source
        .sample(&mut RunSeed::new(99).stream("test"), 4096);
    let x = sample.x.to_f32();
    let h = enc.encode(x.view(), 1000).unwrap();
    let got = r2(sample.z.view(), &h);
    let mcc = |h: &Array2<f32>| {
        let h = h.mapv(f64::from);
        clica_eval::mcc(sample.z.view(), h.view(), clica_eval::Correlation::Pearson)
            .unwrap()
            .score
    };
    let reported_mcc = summary["contrastive"]["mcc_pearson"]["mean"]
        .as_f64()
        .unwrap();
    assert!(
        (got - reported).abs() < 0.02 && (mcc(&h) - reported_mcc).abs() < 0.03,
        "fresh data: R² {got}, MCC {}; the summary: {reported}, {reported_mcc}",
        mcc(&h)
    );
    // An untrained encoder of the same architecture is far from the summary's scores, so the
    // agreement above comes from the loaded weights (and input normalisation).
    let untrained = setup
        .components
        .new_encoder(&mut RunSeed::new(5).stream("untrained"))
        .unwrap()
        .encode_f32(x.view());
    let (base, base_mcc) = (r2(sample.z.view(), &untrained), mcc(&untrained));
    assert!(
        (base - reported).abs() > 0.05 && (base_mcc - reported_mcc).abs() > 0.05,
        "untrained: R² {base}, MCC {base_mcc}"
    );
    // The batch size is a memory bound, not a change of the function.
    let whole = enc.encode(x.view(), 0).unwrap();
    let diff = (&whole - &h).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(diff < 1e-5, "batch 1000 against all at once: {diff}");

    // The command line writes what the library computes.
    let xs = d.join("x.npy");
    npy::write_f64_2d(&xs, x.mapv(f64::from).view()).unwrap();
    let zh = d.join("z_hat.npy");
    let v = encode(&run, ["--x", s(&xs)], &zh, 1000);
    assert_eq!(v["shape"], serde_json::json!([4096, 3]));
    assert!(v.get("scores").is_none(), "{v}");
    assert_eq!(npy::read_f64_2d(&zh).unwrap(), h.mapv(f64::from));

    // Bad input, one line each.
    let o = s(&zh);
    assert_one_line_error(
        &clica(&[
            "encode",
            "--run",
            s(&d.join("nowhere")),
            "--x",
            s(&xs),
            "--out",
            o,
        ]),
        "config.toml",
    );
    let wide = d.join("wide.npy");
    npy::write_f64_2d(&wide, Array2::<f64>::zeros((5, 4)).view()).unwrap();
    assert_one_line_error(
        &clica(&["encode", "--run", s(&run), "--x", s(&wide), "--out", o]),
        "the encoder takes 3",
    );
    let mut bad = Array2::<f64>::zeros((5, 3));
    bad[[2, 1]] = 1e300;
    npy::write_f64_2d(&wide, bad.view()).unwrap();
    assert_one_line_error(
        &clica(&["encode", "--run", s(&run), "--x", s(&wide), "--out", o]),
        "observation 2, value 1",
    );
    assert_one_line_error(
        &clica(&["encode", "--run", s(&run), "--images", s(&d), "--out", o]),
        "not RGB images",
    );
    assert_one_line_error(
        &clica(&[
            "encode",
            "--run",
            s(&run),
            "--x",
            s(&xs),
            "--out",
            o,
            "--batch",
            "0",
        ]),
        "`batch`",
    );
    // A run whose contrastive phase has not finished has no encoder yet.
    std::fs::remove_file(run.join("encoder.safetensors")).unwrap();
    assert_one_line_error(
        &clica(&["encode", "--run", s(&run), "--x", s(&xs), "--out", o]),
        "--resume",
    );
}

/// Renders `n` random scenes at 16 × 16 into `root` (the reference layout).
fn render_set(root: &Path, n: usize, seed: u64) -> Array2<f64> {
    let mut rng = RunSeed::new(seed).stream("set");
    let z = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let r = Renderer::new(&RenderConfig::new(16)).unwrap();
    clica::images::write_dataset(&r, z.view(), root, 64, |_, _| {}).unwrap();
    z
}

#[test]
fn image_runs_encode_a_set_as_the_renderers_own_pixels() {
    let d = tmpdir("images");
    render_set(&d.join("train"), 200, 1);
    let z = render_set(&d.join("test"), 40, 2);
    let cfg = format!(
        "[data]\nkind = \"image_set\"\npath = \"{}\"\n[encoder]\nkind = \"conv\"\n[loss]\nkind = \"lp\"\np = 2\ntau = 0.1\n[train]\nsteps = 4\nbatch = 32\nlog_every = 2\ncheckpoint_every = 2\n[eval]\nsamples = 64\nfinal_batches = 1\nsupervised = false\n",
        d.join("train").display()
    );
    let config = d.join("c.toml");
    std::fs::write(&config, cfg).unwrap();
    // The renderer's own pixels of the test latents: rows of channel-first values in [0, 1].
    let r = Renderer::new(&RenderConfig::new(16)).unwrap();
    let pixels = clica_core::Generator::forward(&r, z.view());
    let xs = d.join("x.npy");
    npy::write_f64_2d(&xs, pixels.view()).unwrap();
    for (name, sets) in [
        ("conv", vec![]),
        (
            "resnet",
            vec!["encoder.kind=\"resnet18\"", "encoder.widths=[4, 4, 8, 8]"],
        ),
    ] {
        let run = d.join(name);
        let mut args = vec!["train", "--config", s(&config)];
        for kv in &sets {
            args.extend(["--set", kv]);
        }
        args.extend(["--out", s(&run)]);
        completed(&clica(&args), &run);
        let from_set = d.join(format!("{name}-set.npy"));
        let v = encode(&run, ["--images", s(&d.join("test"))], &from_set, 7);
        assert_eq!(v["shape"], serde_json::json!([40, 10]), "{v}");
        let r2 = v["scores"]["r2"].as_f64().unwrap();
        assert!(r2.is_finite() && (0.0..=1.0).contains(&r2), "{v}");
        let from_x = d.join(format!("{name}-x.npy"));
        encode(&run, ["--x", s(&xs)], &from_x, 7);
        let (a, b) = (
            npy::read_f64_2d(&from_set).unwrap(),
            npy::read_f64_2d(&from_x).unwrap(),
        );
        assert_eq!(a, b, "{name}: the set's PNGs and the renderer's pixels");
        assert!(a.iter().all(|v| v.is_finite()));
        // Different images give different representations.
        assert_ne!(a.row(0), a.row(1));
    }
}
