//! End-to-end tests of the `clica` binary: files written, JSON printed, and one-line errors
//! (exit code 2, no panic) for every kind of bad input the issue lists.

use clica::npy;
use ndarray::{array, Array2};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clica(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clica"))
        .args(args)
        .output()
        .expect("run clica")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clica-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a clean failure: exit code 2, one line on stderr starting with "error:" that
/// contains `needle`, and no panic.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error:"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

#[test]
fn sample_writes_npy_and_meta_then_eval_scores_them() {
    let d = tmpdir("sample");
    let out = clica(&[
        "sample",
        "--space",
        "sphere",
        "--dim",
        "5",
        "--radius",
        "2",
        "--marginal",
        "uniform",
        "--conditional",
        "vmf",
        "--concentration",
        "10",
        "--n",
        "300",
        "--seed",
        "3",
        "--out",
        s(&d),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let z = npy::read_f64_2d(d.join("z.npy")).unwrap();
    let zt = npy::read_f64_2d(d.join("z_tilde.npy")).unwrap();
    assert_eq!(z.dim(), (300, 5));
    assert_eq!(zt.dim(), (300, 5));
    for row in z.rows().into_iter().chain(zt.rows()) {
        let norm = row.dot(&row).sqrt();
        assert!((norm - 2.0).abs() < 1e-12, "norm {norm}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 3);
    // The flags are recorded as they were before the configuration's tables were tagged.
    assert_eq!(
        meta["config"],
        serde_json::json!({
            "space": "sphere", "dim": 5, "radius": 2.0, "low": 0.0, "high": 1.0,
            "marginal": "uniform", "marginal_scale": 1.0, "conditional": "vmf",
            "concentration": 10.0, "beta": 3.0,
        })
    );
    assert_eq!(
        meta["prior"],
        "sphere(radius=2), n=5, marginal uniform, conditional vmf(kappa=10)"
    );

    // Same seed, same files (reproducibility through the binary).
    let d2 = tmpdir("sample2");
    let out = clica(&[
        "sample",
        "--dim",
        "5",
        "--radius",
        "2",
        "--concentration",
        "10",
        "--n",
        "300",
        "--seed",
        "3",
        "--out",
        s(&d2),
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(d.join("z.npy")).unwrap(),
        std::fs::read(d2.join("z.npy")).unwrap()
    );
    assert_eq!(
        std::fs::read(d.join("z_tilde.npy")).unwrap(),
        std::fs::read(d2.join("z_tilde.npy")).unwrap()
    );

    // z against itself: perfect scores, identity assignment.
    let out = clica(&[
        "eval",
        "--z",
        s(&d.join("z.npy")),
        "--z-hat",
        s(&d.join("z.npy")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman"] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!((x - 1.0).abs() < 1e-9, "{key} = {x}");
    }
    assert_eq!(v["assignment"], serde_json::json!([0, 1, 2, 3, 4]));
}

#[test]
fn eval_accepts_f32_and_matches_f64_scores() {
    let d = tmpdir("f32");
    let z = array![
        [0.1, 1.0],
        [0.5, -0.2],
        [0.9, 0.3],
        [0.2, 0.8],
        [-0.4, 0.1],
        [0.7, -0.6]
    ];
    let h = z.mapv(|v| 2.0 * v + 1.0);
    npy::write_f64_2d(d.join("z.npy"), z.view()).unwrap();
    // Hand-written float32 file.
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 2), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!(
        "{header}{}\n",
        " ".repeat(64 - (10 + header.len() + 1) % 64)
    );
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    for v in h.iter() {
        bytes.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    std::fs::write(d.join("h.npy"), bytes).unwrap();
    let out = clica(&[
        "eval",
        "--z",
        s(&d.join("z.npy")),
        "--z-hat",
        s(&d.join("h.npy")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["r2"].as_f64().unwrap() - 1.0).abs() < 1e-6);
}

#[test]
fn eval_rejects_bad_inputs_with_one_line_naming_the_file() {
    let d = tmpdir("bad");
    let good = d.join("good.npy");
    npy::write_f64_2d(&good, Array2::<f64>::ones((10, 3)).view()).unwrap();
    let short = d.join("short.npy");
    npy::write_f64_2d(&short, Array2::<f64>::ones((9, 3)).view()).unwrap();
    let nan = d.join("nan.npy");
    let mut a = Array2::<f64>::ones((10, 3));
    a[[4, 2]] = f64::NAN;
    npy::write_f64_2d(&nan, a.view()).unwrap();
    let trunc = d.join("trunc.npy");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 5]).unwrap();
    let text = d.join("text.npy");
    std::fs::write(&text, "not numpy").unwrap();
    let missing = d.join("missing.npy");

    let out = clica(&["eval", "--z", s(&good), "--z-hat", s(&short)]);
    assert_one_line_error(&out, "short.npy");
    let out = clica(&["eval", "--z", s(&good), "--z-hat", s(&nan)]);
    assert_one_line_error(&out, "nan.npy");
    assert_one_line_error(&out, "row 4, column 2");
    let out = clica(&["eval", "--z", s(&trunc), "--z-hat", s(&good)]);
    assert_one_line_error(&out, "trunc.npy");
    let out = clica(&["eval", "--z", s(&text), "--z-hat", s(&good)]);
    assert_one_line_error(&out, "text.npy");
    let out = clica(&["eval", "--z", s(&missing), "--z-hat", s(&good)]);
    assert_one_line_error(&out, "missing.npy");
    let out = clica(&["eval", "--z", s(&good)]);
    assert_one_line_error(&out, "--z-hat");
}

#[test]
fn sample_rejects_impossible_parameters_in_one_line() {
    let d = tmpdir("params");
    let o = s(&d);
    let cases: &[(&[&str], &str)] = &[
        (&["--concentration", "0"], "kappa"),
        (&["--concentration", "-1"], "kappa"),
        (&["--radius", "0"], "radius"),
        (&["--radius", "nan"], "radius"),
        (
            &[
                "--space",
                "box",
                "--low",
                "1",
                "--high",
                "0",
                "--conditional",
                "normal",
            ],
            "low",
        ),
        (&["--dim", "0"], "dim"),
        (
            &["--space", "unbounded", "--conditional", "normal"],
            "uniform",
        ),
        (&["--space", "box", "--conditional", "vmf"], "sphere"),
        (&["--space", "moon"], "moon"),
        (&["--bogus-flag"], "bogus"),
        (&["--n", "0"], "n"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["sample", "--out", o];
        args.extend_from_slice(extra);
        let out = clica(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
        assert!(
            err.contains(&needle.to_lowercase()),
            "{extra:?}: expected {needle} in {err}"
        );
    }
}

#[test]
fn help_is_available_on_every_verb() {
    for verb in ["sample", "mix", "eval", "baseline", "train"] {
        let out = clica(&[verb, "--help"]);
        assert!(out.status.success(), "{verb}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{verb}: {text}");
    }
}

#[test]
fn mix_is_invertible_through_the_library_and_reproducible() {
    let d = tmpdir("mix");
    let out = clica(&[
        "sample",
        "--dim",
        "4",
        "--n",
        "50",
        "--seed",
        "9",
        "--out",
        s(&d),
    ]);
    assert!(out.status.success());
    let x1 = d.join("x1.npy");
    let x2 = d.join("x2.npy");
    for x in [&x1, &x2] {
        let out = clica(&[
            "mix",
            "--z",
            s(&d.join("z.npy")),
            "--cond-pool",
            "200",
            "--seed",
            "9",
            "--out",
            s(x),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
    }
    assert_eq!(std::fs::read(&x1).unwrap(), std::fs::read(&x2).unwrap());
    let out = clica(&[
        "mix",
        "--z",
        s(&d.join("z.npy")),
        "--activation",
        "tanh",
        "--out",
        s(&x1),
    ]);
    assert_one_line_error(&out, "activation");
}

#[test]
fn mix_exports_weights_that_rebuild_the_same_network() {
    let d = tmpdir("mix_weights");
    let out = clica(&[
        "sample",
        "--dim",
        "4",
        "--n",
        "40",
        "--seed",
        "3",
        "--out",
        s(&d),
    ]);
    assert!(out.status.success());
    let wdir = d.join("w");
    let out = clica(&[
        "mix",
        "--z",
        s(&d.join("z.npy")),
        "--cond-pool",
        "200",
        "--seed",
        "3",
        "--out",
        s(&d.join("x.npy")),
        "--weights",
        s(&wdir),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["weights"].as_array().unwrap().len(), 3);
    assert_eq!(v["activation"], "leaky_relu");
    let slope = v["negative_slope"].as_f64().unwrap();
    // Rebuild x = g(z) from the exported matrices alone, as another framework would.
    let mut h = npy::read_f64_2d(d.join("z.npy")).unwrap();
    for l in 0..3 {
        let w = npy::read_f64_2d(wdir.join(format!("layer{l}.npy"))).unwrap();
        assert_eq!(w.dim(), (4, 4));
        if l > 0 {
            h.mapv_inplace(|x| if x >= 0.0 { x } else { slope * x });
        }
        h = h.dot(&w.t());
    }
    let x = npy::read_f64_2d(d.join("x.npy")).unwrap();
    let err = (&x - &h).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(err < 1e-12, "rebuilt network differs by {err}");
}

/// `clica train` of a tiny run (n = 3, 30 steps, batch 64, small evaluation) into `out`,
/// with the further `--set` overrides in `set`.
fn train_tiny(set: &[&str], out: &Path) -> Output {
    let mut args = vec!["train"];
    for kv in [
        "data.dim=3",
        "train.steps=30",
        "train.batch=64",
        "mixing.cond_pool=100",
        "eval.samples=256",
        "eval.final_batches=1",
    ]
    .iter()
    .chain(set)
    {
        args.extend(["--set", kv]);
    }
    args.extend(["--out", s(out)]);
    clica(&args)
}

/// Asserts a run that succeeded and printed a `completed` summary.
fn assert_completed(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed");
}

/// `encoder.backend = "dfdx"` needs clica built with the `dfdx` feature: without it the
/// config is rejected in one line; with it a short run trains on the dfdx backend.
#[test]
fn the_dfdx_backend_needs_the_dfdx_feature() {
    let d = tmpdir("dfdx");
    let out = train_tiny(&["encoder.backend=dfdx"], &d);
    if cfg!(feature = "dfdx") {
        assert_completed(&out);
    } else {
        assert_one_line_error(&out, "`dfdx` feature");
    }
}

#[test]
fn train_runs_from_the_command_line_and_rejects_bad_configs() {
    let d = tmpdir("train");
    assert_completed(&train_tiny(&[], &d));
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "encoder.safetensors",
    ] {
        assert!(d.join(f).exists(), "{f}");
    }
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[train]\nbatch = \"lots\"\n").unwrap();
    let out = clica(&["train", "--config", s(&bad), "--out", s(&d)]);
    assert_one_line_error(&out, "train.batch");
    let out = clica(&[
        "train",
        "--set",
        "loss.kind=lp",
        "--set",
        "loss.p=4",
        "--out",
        s(&d),
    ]);
    assert_one_line_error(&out, "loss.p");
    let out = clica(&["train", "--set", "train.bacth=3", "--out", s(&d)]);
    assert_one_line_error(&out, "bacth");
    let out = clica(&[
        "train",
        "--config",
        s(&d.join("missing.toml")),
        "--out",
        s(&d),
    ]);
    assert_one_line_error(&out, "missing.toml");
    let dry_run = |args: &[&str]| {
        let mut all = vec!["train", "--dry-run", "--out", s(&d)];
        all.extend_from_slice(args);
        clica(&all)
    };
    let out = dry_run(&["--config", "../../configs/table2/row02.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("gennorm"));

    // A preset in the earlier flat format is refused with the way to rewrite it.
    let flat = d.join("flat.toml");
    std::fs::write(
        &flat,
        "[data]\nspace = \"box\"\nconditional = \"normal\"\nconcentration = 0.05\n",
    )
    .unwrap();
    let out = dry_run(&["--config", s(&flat)]);
    assert_one_line_error(&out, "earlier flat format");
    let out = dry_run(&["--set", "data.space=box"]);
    assert_one_line_error(&out, "data.space.kind");
    // The tagged form of the same setting, and a kind switched by an override.
    let out = dry_run(&[
        "--set",
        "data.space.kind=box",
        "--set",
        "data.conditional={ kind = \"normal\", sigma = 0.05 }",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = String::from_utf8_lossy(&out.stdout);
    assert!(resolved.contains("kind = \"box\""), "{resolved}");
    assert!(resolved.contains("sigma = 0.05"), "{resolved}");
}

#[test]
fn render_writes_the_reference_layout_and_rerenders_from_latents() {
    let d = tmpdir("render");
    let a = d.join("a");
    let out = clica(&[
        "render",
        "--n",
        "12",
        "--size",
        "16",
        "--seed",
        "3",
        "--out",
        s(&a),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 12 images: ⌈log₁₀ 12⌉ = 2 digits.
    let names: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(a.join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names.len(), 12);
    assert_eq!(
        (names[0].as_str(), names[11].as_str()),
        ("00.png", "11.png")
    );
    let raw = npy::read_f64_2d(a.join("raw_latents.npy")).unwrap();
    let rescaled = npy::read_f64_2d(a.join("latents.npy")).unwrap();
    assert_eq!(raw.dim(), (12, 10));
    assert!(raw.iter().all(|v| (-1.0..=1.0).contains(v)));
    for ((i, k), &v) in raw.indexed_iter() {
        let scale = if k < 3 {
            3.0
        } else {
            std::f64::consts::FRAC_PI_2
        };
        assert_eq!(rescaled[[i, k]], v * scale);
    }
    // Every PNG decodes to the stated size and holds the renderer's bytes for its row.
    let renderer = clica_render::Renderer::new(&clica_render::RenderConfig::new(16)).unwrap();
    for (i, name) in names.iter().enumerate() {
        let (w, h, rgb) = clica::images::read_png(&a.join("images").join(name)).unwrap();
        assert_eq!((w, h), (16, 16));
        let mut want = vec![0u8; renderer.image_len()];
        renderer.render(&raw.row(i).to_vec(), &mut want).unwrap();
        assert_eq!(rgb, want, "image {i}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["label"], "3DIdent-like (clica-rendered)");
    assert_eq!(meta["n"], 12);
    // --latents renders given raw latents: the same images.
    let b = d.join("b");
    let out = clica(&[
        "render",
        "--latents",
        s(&a.join("raw_latents.npy")),
        "--size",
        "16",
        "--out",
        s(&b),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in &names {
        assert_eq!(
            std::fs::read(a.join("images").join(name)).unwrap(),
            std::fs::read(b.join("images").join(name)).unwrap()
        );
    }
}

#[test]
fn render_rejects_bad_input_with_one_line() {
    let d = tmpdir("render-bad");
    let o = s(&d).to_string();
    assert_one_line_error(&clica(&["render", "--n", "0", "--out", &o]), "`n`");
    assert_one_line_error(
        &clica(&["render", "--n", "2", "--size", "300", "--out", &o]),
        "size",
    );
    assert_one_line_error(
        &clica(&["render", "--n", "2", "--supersample", "9", "--out", &o]),
        "supersample",
    );
    let wide = d.join("wide.npy");
    npy::write_f64_2d(&wide, Array2::<f64>::zeros((3, 4)).view()).unwrap();
    assert_one_line_error(
        &clica(&["render", "--latents", s(&wide), "--out", &o]),
        "10 latents",
    );
    let nan = d.join("nan.npy");
    let mut z = Array2::<f64>::zeros((2, 10));
    z[[1, 2]] = f64::NAN;
    npy::write_f64_2d(&nan, z.view()).unwrap();
    assert_one_line_error(
        &clica(&["render", "--latents", s(&nan), "--out", &o]),
        "non-finite",
    );
}
