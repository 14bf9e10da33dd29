//! The fixed image-set source on a small set that clica renders into the reference layout:
//! loading, nearest-neighbour positives (never the anchor), observations that belong to
//! their latents, a test set for scoring, errors, and a short training run through the CLI.

use clica::imageset::{ImageSet, ImageSetPairs};
use clica_core::{LatentPrior, PairSource, RunSeed};
use clica_priors::{Conditional, Marginal, Prior, Space};
use clica_render::{RenderConfig, Renderer, N_LATENTS};
use ndarray::Array2;
use rand::Rng;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clica-imageset-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn render_set(root: &Path, n: usize, seed: u64) -> Array2<f64> {
    let mut rng = RunSeed::new(seed).stream("set");
    let z = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let r = Renderer::new(&RenderConfig::new(16)).unwrap();
    clica::images::write_dataset(&r, z.view(), root, 64, |_, _| {}).unwrap();
    z
}

/// The box [−1, 1]^dim with Normal(σ = 0.1) positives (3DIdent's conditional).
fn prior(dim: usize) -> Box<dyn LatentPrior> {
    Box::new(
        Prior::new(
            Space::Box {
                low: -1.0,
                high: 1.0,
            },
            dim,
            Marginal::Uniform,
            Conditional::Normal { sigma: 0.1 },
        )
        .unwrap(),
    )
}

#[test]
fn pairs_are_nearest_images_never_the_anchor_and_observations_match_latents() {
    let d = tmpdir("pairs");
    let z = render_set(&d, 400, 1);
    let set = ImageSet::load(&d, None).unwrap();
    assert_eq!((set.len(), set.side), (400, 16));
    assert_eq!(set.latents, z);
    // Loaded at half size: every image is its 2 × 2 area average.
    let half = ImageSet::load(&d, Some(8)).unwrap();
    let mut want = vec![0u8; 3 * 8 * 8];
    clica::imageset::resize_area(set.image(17), 16, 8, &mut want);
    assert_eq!((half.side, half.image(17)), (8, &want[..]));
    let src = ImageSetPairs::new(set, None, prior(N_LATENTS)).unwrap();
    assert_eq!(src.observation_shape(), [3, 16, 16]);
    let (b, m) = (64, 2);
    let mut x = Array2::<f32>::zeros(((1 + m) * b, 768));
    let mut zz = Array2::<f64>::zeros(((1 + m) * b, N_LATENTS));
    src.draw_pairs(
        &mut RunSeed::new(2).stream("train.data"),
        m,
        x.view_mut(),
        zz.view_mut(),
    );
    let r = Renderer::new(&RenderConfig::new(16)).unwrap();
    let set = src.train_set();
    let index_of = |row: ndarray::ArrayView1<'_, f64>| {
        (0..set.len())
            .find(|&i| set.latents.row(i) == row)
            .expect("a latent of the set")
    };
    let (mut near, mut far) = (0.0, 0.0);
    for a in 0..b {
        let ia = index_of(zz.row(a));
        for j in 1..=m {
            let ip = index_of(zz.row(j * b + a));
            assert_ne!(ia, ip, "a positive is its anchor's image");
            near += (&zz.row(j * b + a) - &zz.row(a))
                .mapv(|v| v * v)
                .sum()
                .sqrt();
        }
        far += (&zz.row((a + 1) % b) - &zz.row(a))
            .mapv(|v| v * v)
            .sum()
            .sqrt();
    }
    // Positives are near their anchors (σ = 0.1 draws snapped to a sparse set), unlike
    // random pairs.
    assert!(
        near / (m as f64) < 0.8 * far,
        "positive distance {near} vs random {far}"
    );
    // Every observation is its latent's image.
    for row in [0, 5, b + 3, 2 * b + 7] {
        let mut bytes = vec![0u8; r.image_len()];
        r.render(&zz.row(row).to_vec(), &mut bytes).unwrap();
        for p in 0..256 {
            for c in 0..3 {
                assert_eq!(x[[row, c * 256 + p]], f32::from(bytes[3 * p + c]) / 255.0);
            }
        }
    }
}

#[test]
fn scores_come_from_the_test_set_when_given() {
    let (a, b) = (tmpdir("train"), tmpdir("test"));
    render_set(&a, 50, 3);
    let zt = render_set(&b, 30, 4);
    let src = ImageSetPairs::new(
        ImageSet::load(&a, None).unwrap(),
        Some(ImageSet::load(&b, None).unwrap()),
        prior(N_LATENTS),
    )
    .unwrap();
    let s = src.sample(&mut RunSeed::new(5).stream("eval"), 30);
    // Without replacement: all 30 test images, each once.
    let mut rows: Vec<Vec<u64>> =
        s.z.rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
    let mut want: Vec<Vec<u64>> = zt
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    want.sort();
    assert_eq!(rows, want);
    assert!(src.describe().contains("scored on"));
}

#[test]
fn broken_sets_are_errors_naming_the_file() {
    let d = tmpdir("broken");
    render_set(&d, 20, 6);
    std::fs::remove_file(d.join("images/07.png")).unwrap();
    let e = ImageSet::load(&d, None).unwrap_err().to_string();
    assert!(e.contains("07.png"), "{e}");
    let d2 = tmpdir("nolatents");
    let e = ImageSet::load(&d2, None).unwrap_err().to_string();
    assert!(e.contains("raw_latents.npy"), "{e}");
    // Resizing goes down only.
    let e = ImageSet::load(&d, Some(32)).unwrap_err().to_string();
    assert!(e.contains("cannot resize"), "{e}");
    let d3 = tmpdir("dim");
    render_set(&d3, 20, 7);
    let wrong = prior(4);
    assert!(ImageSetPairs::new(ImageSet::load(&d3, None).unwrap(), None, wrong).is_err());
}

#[test]
fn a_short_training_run_on_a_rendered_set() {
    let d = tmpdir("train-run");
    render_set(&d.join("set"), 300, 8);
    let cfg = format!(
        "[data]\nkind = \"image_set\"\npath = \"{}\"\n[encoder]\nkind = \"conv\"\n[loss]\nkind = \"lp\"\np = 2\ntau = 0.1\n[train]\nsteps = 4\nbatch = 32\nlog_every = 2\ncheckpoint_every = 2\n[eval]\nsamples = 64\nfinal_batches = 1\nsupervised = false\n",
        d.join("set").display()
    );
    std::fs::write(d.join("c.toml"), cfg).unwrap();
    // `clica train` on that config with `sets` overrides, into `d/out`.
    let train = |out: &str, sets: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clica"));
        cmd.args(["train", "--config", d.join("c.toml").to_str().unwrap()]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.args(["--out", d.join(out).to_str().unwrap()]);
        cmd.output().unwrap()
    };
    // A completed run's summary.
    let summary = |out: &str, run: std::process::Output| -> serde_json::Value {
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(d.join(out).join("summary.json")).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(summary["status"], "completed", "{summary}");
        summary
    };
    let s = summary("run", train("run", &[]));
    assert!(s["prior"].as_str().unwrap().contains("image set"), "{s}");
    // The same run with a (narrow) ResNet-18: its batch norms' running averages are saved
    // with the weights, under torchvision's names.
    let sets = ["encoder.kind=\"resnet18\"", "encoder.widths=[4, 4, 8, 8]"];
    let s = summary("run-resnet", train("run-resnet", &sets));
    assert!(
        s["encoder"].as_str().unwrap().starts_with("resnet18"),
        "{s}"
    );
    let weights = std::fs::read(d.join("run-resnet/encoder.safetensors")).unwrap();
    let header = String::from_utf8_lossy(&weights[..weights.len().min(20_000)]);
    assert!(
        header.contains("layer4.1.bn2.running_var") && header.contains("conv1.weight"),
        "{header}"
    );
    // Antithetic positives need a sampler that can mirror: refused for a fixed set.
    let out = train("run2", &["loss.antithetic=true", "loss.positives=2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot mirror"),
        "{err}"
    );
}
