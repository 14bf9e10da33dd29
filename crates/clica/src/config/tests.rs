use super::*;
use clica_core::RunSeed;
use clica_encoders::{Backend, Normalization};
use clica_objectives::{LpForm, SelfTerm, UniformOn};
use clica_priors::{Conditional, Marginal, Prior, ProductPrior, Space};

fn parse(text: &str, o: &[&str]) -> Result<TrainConfig, CliError> {
    let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_toml_with_overrides(text, &o)
}

fn err(text: &str, o: &[&str]) -> String {
    parse(text, o).unwrap_err().to_string()
}

fn latent(c: &TrainConfig) -> &LatentSection {
    match &c.data {
        DataSection::Latent(l) => l,
        other => panic!("not a latent section: {other:?}"),
    }
}

fn mlp_encoder(c: &TrainConfig) -> &MlpEncoderSection {
    match &c.encoder {
        EncoderSection::Mlp(e) => e,
        other => panic!("not an MLP encoder: {other:?}"),
    }
}

fn configs() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs").to_string()
}

#[test]
fn defaults_are_valid_and_round_trip() {
    let c = parse("", &[]).unwrap();
    assert_eq!(c, TrainConfig::default());
    let again = parse(&c.to_toml(), &[]).unwrap();
    assert_eq!(c, again);
    let mut c2 = c.clone();
    c2.train.batch = 77;
    c2.data = DataSection::Latent(LatentSection {
        space: Space::Box {
            low: -1.0,
            high: 2.0,
        },
        conditional: Conditional::Laplace { scale: 0.5 },
        ..LatentSection::default()
    });
    c2.loss.objective = Objective::Lp {
        p: 3,
        tau: 0.5,
        form: LpForm::Plain,
        self_term: SelfTerm::Exclude,
    };
    assert_eq!(parse(&c2.to_toml(), &[]).unwrap(), c2);
    // The defaults' components are the paper's Table 1 row 1 with the fast encoder.
    let v = c.validate().unwrap();
    assert_eq!(
        v.prior.describe(),
        "sphere(radius=1), n=10, marginal uniform, conditional vmf(kappa=1)"
    );
    assert_eq!(
        v.encoder.describe(),
        "mlp 10-100-100-100-10 leaky(0.01) sphere(r=1)"
    );
    assert_eq!(v.loss.name(), "sphere_infonce(tau=1,self=keep)");
    assert_eq!(
        v.mixing,
        MixingChoice::Mlp(clica_generators::MlpConfig::new(10))
    );
}

#[test]
fn the_resolved_defaults_spell_every_kind() {
    let t = TrainConfig::default().to_toml();
    for line in [
        "kind = \"latent\"",
        "kind = \"sphere\"",
        "kind = \"uniform\"",
        "kind = \"vmf\"",
        "kind = \"mlp\"",
        "activation = \"leaky_relu\"",
        "backend = \"native\"",
        "self_term = \"keep\"",
    ] {
        assert!(t.contains(line), "{line} missing from\n{t}");
    }
}

#[test]
fn overrides_apply_and_are_typed() {
    let c = parse(
        "[train]\nbatch = 64\n",
        &[
            "train.batch=128",
            "data.space.kind=box",
            "data.space.high=2",
            "data.conditional.kind=\"laplace\"",
            "data.conditional.scale=0.05",
            "loss.kind=lp",
            "loss.p=3",
            "loss.form=plain",
            "mixing.activation=smooth_leaky_relu",
            "encoder.normalization.kind=learnable_sphere",
            "encoder.normalization.init_radius=2",
            "seed=9",
        ],
    )
    .unwrap();
    assert_eq!(c.train.batch, 128);
    assert_eq!(
        latent(&c).space,
        Space::Box {
            low: 0.0,
            high: 2.0
        }
    );
    assert_eq!(latent(&c).conditional, Conditional::Laplace { scale: 0.05 });
    assert_eq!(
        c.loss.objective,
        Objective::Lp {
            p: 3,
            tau: 1.0,
            form: LpForm::Plain,
            self_term: SelfTerm::Keep
        }
    );
    let MixingSection::Mlp(m) = &c.mixing else {
        panic!("not the MLP mixing")
    };
    assert_eq!(m.activation, clica_generators::Activation::SmoothLeakyRelu);
    assert_eq!(
        mlp_encoder(&c).normalization,
        Normalization::LearnableSphere { init_radius: 2.0 }
    );
    assert_eq!(c.seed, 9);
    // An inline table is merged like a file's table, and `[i]` indexes a list.
    let c = parse(
        "",
        &[
            "data.space={ kind = \"box\", low = -1 }",
            "data.conditional.kind=normal",
            "encoder.hidden_multipliers=[2, 3]",
            "encoder.hidden_multipliers[1]=4",
        ],
    )
    .unwrap();
    assert_eq!(
        latent(&c).space,
        Space::Box {
            low: -1.0,
            high: 1.0
        }
    );
    assert_eq!(mlp_encoder(&c).hidden_multipliers, [2, 4]);
}

#[test]
fn a_kind_switch_replaces_the_table() {
    // The sphere's radius does not follow the switch to a box (it would be an unknown field
    // there); the box takes its defaults.
    let c = parse(
        "[data]\nspace = { kind = \"sphere\", radius = 2.0 }\n\
         conditional = { kind = \"normal\", sigma = 0.1 }\n",
        &["data.space.kind=box"],
    )
    .unwrap();
    assert_eq!(
        latent(&c).space,
        Space::Box {
            low: 0.0,
            high: 1.0
        }
    );
    // The same kind keeps the table's other fields.
    let c = parse(
        "[data]\nspace = { kind = \"sphere\", radius = 2.0 }\n",
        &["data.space.kind=sphere"],
    )
    .unwrap();
    assert_eq!(latent(&c).space, Space::Sphere { radius: 2.0 });
    // A table without `kind` has the default's, so a switch replaces it too.
    let c = parse(
        "[encoder.normalization]\nradius = 3.0\n",
        &["encoder.normalization.kind=box"],
    )
    .unwrap();
    assert_eq!(
        mlp_encoder(&c).normalization,
        Normalization::LearnableBox { init_bound: 1.0 }
    );
    // Between layers: the preset's box bounds do not survive a sphere.
    let c = TrainConfig::from_layers(
        &[
            (
                "a",
                "[data]\nspace = { kind = \"box\", low = -1.0, high = 1.0 }\n\
                 conditional = { kind = \"normal\", sigma = 0.1 }\n",
            ),
            ("b", "[data.space]\nkind = \"sphere\"\n"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(latent(&c).space, Space::Sphere { radius: 1.0 });
    // A loss switch drops the sphere loss's parameters but keeps the wrappers' only if given.
    let c = parse(
        "[loss]\nkind = \"sphere\"\ntau = 0.1\nself_term = \"exclude\"\n",
        &["loss.kind=align_uniform"],
    )
    .unwrap();
    assert_eq!(
        c.loss.objective,
        Objective::AlignUniform {
            alpha: 2.0,
            t: 2.0,
            lambda: 1.0,
            on: UniformOn::Anchors
        }
    );
    // And the data section switches to a product and back.
    let c = parse(
        "",
        &[
            "data.kind=product",
            "data.parts=[{ dim = 2 }, { dim = 3, space = { kind = \"box\" }, conditional = { kind = \"normal\" } }]",
            "data.parts.0.space.radius=2",
        ],
    )
    .unwrap();
    let DataSection::Product(p) = &c.data else {
        panic!("{:?}", c.data)
    };
    assert_eq!(p.parts[0].space, Space::Sphere { radius: 2.0 });
    assert_eq!(p.parts[1].dim, 3);
    let back = parse(&c.to_toml(), &["data.kind=latent"]).unwrap();
    assert_eq!(back.data, DataSection::default());
}

#[test]
fn a_default_kind_fills_a_table_without_one() {
    let c = parse("[data]\nspace = { radius = 2.0 }\n", &[]).unwrap();
    assert_eq!(latent(&c).space, Space::Sphere { radius: 2.0 });
    let c = parse("", &["data.conditional.kappa=10"]).unwrap();
    assert_eq!(
        latent(&c).conditional,
        Conditional::VonMisesFisher { kappa: 10.0 }
    );
    // In a product, each part's tables default like the latent section's.
    let c = parse(
        "[data]\nkind = \"product\"\n[[data.parts]]\ndim = 3\nspace = { radius = 3.0 }\n",
        &[],
    )
    .unwrap();
    let DataSection::Product(p) = &c.data else {
        panic!("{:?}", c.data)
    };
    assert_eq!(p.parts[0].space, Space::Sphere { radius: 3.0 });
}

#[test]
fn rejections_name_the_field() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &[&str])] = &[
        // Unknown keys and wrong types, in plain and in tagged tables.
        ("[train]\nbacth = 3\n", &[], &["`train.bacth`", "unknown field"]),
        ("[train]\nbatch = \"many\"\n", &[], &["`train.batch`"]),
        ("", &["eval.samples=-1"], &["`eval.samples`"]),
        ("", &["data.dimm=3"], &["`data.dimm`", "unknown field"]),
        ("", &["data.dim=x"], &["`data.dim`", "usize"]),
        ("", &["data.space.radiu=2"], &["`data.space.radiu`", "unknown field"]),
        ("", &["data.space.radius=x"], &["`data.space.radius`", "f64"]),
        ("", &["data.space.kind=moon"], &["`data.space.kind`", "moon"]),
        ("", &["data.kind=moon"], &["`data.kind`", "moon"]),
        ("", &["data.conditional.kappa=[1]"], &["`data.conditional.kappa`"]),
        ("", &["data.marginal.kind=normal", "data.marginal.sigma=\"1\""], &["`data.marginal.sigma`"]),
        ("", &["data.space.kind=unbounded", "data.marginal.kind=normal", "data.space.radius=1"], &["`data.space.radius`", "no parameters"]),
        ("", &["mixing.layers=x"], &["`mixing.layers`"]),
        ("", &["mixing.activation=tanh"], &["`mixing.activation`", "tanh"]),
        ("", &["mixing.kind=resnet"], &["`mixing.kind`", "resnet"]),
        ("", &["mixing.depth=3"], &["`mixing.depth`"]),
        ("", &["encoder.normalization.kind=cube"], &["`encoder.normalization.kind`"]),
        ("", &["encoder.normalization.init_radius=2"], &["`encoder.normalization.init_radius`"]),
        ("", &["encoder.normalization.kind=none", "encoder.normalization.radius=1"], &["`encoder.normalization.radius`"]),
        ("", &["encoder.backend=gpu"], &["`encoder.backend`", "gpu"]),
        ("", &["encoder.hidden_multipliers=[1,-1]"], &["`encoder.hidden_multipliers"]),
        ("", &["loss.tau=x"], &["`loss.tau`", "f64"]),
        ("", &["loss.p=2"], &["`loss.p`", "unknown field"]),
        ("", &["loss.kind=lp", "loss.form=fancy"], &["`loss.form`", "fancy"]),
        ("", &["loss.self_term=maybe"], &["`loss.self_term`"]),
        ("", &["loss.kind=align_uniform", "loss.on=neither"], &["`loss.on`"]),
        ("", &["loss.negatives=x"], &["`loss.negatives`"]),
        ("", &["loss.symmetric=1"], &["`loss.symmetric`"]),
        ("", &["data.kind=product", "data.parts=[{ dim = 2 }, { dim = \"x\" }]"], &["`data.parts[1].dim`"]),
        ("", &["data.kind=product", "data.parts=[{ dim = 2 }, { space = { kind = \"box\", low = \"a\" } }]"], &["`data.parts[1].space.low`"]),
        // Invalid values, named by the key that holds them.
        ("[loss]\nkind = \"lp\"\np = 4\n", &[], &["loss.p"]),
        ("", &["data.space.kind=box"], &["data.conditional", "sphere"]), // vMF off the sphere
        ("", &["data.space.kind=box", "data.conditional.kind=normal", "data.space.low=1", "data.space.high=0"], &["data.space.high"]),
        ("", &["data.space.radius=0"], &["data.space.radius"]),
        ("", &["data.dim=1"], &["data.dim"]),
        ("", &["data.conditional.kappa=0"], &["data.conditional.kappa"]),
        ("", &["data.marginal.kind=gennorm", "data.marginal.beta=0.001"], &["data.marginal.beta"]),
        ("", &["data.space.kind=unbounded", "data.conditional.kind=normal"], &["data.marginal", "uniform"]),
        ("", &["data.kind=product"], &["data.parts"]),
        ("", &["data.kind=product", "data.parts=[{ dim = 2 }, { dim = 3, conditional = { kappa = -1.0 } }]"], &["data.parts[1].conditional.kappa"]),
        ("", &["mixing.layers=0"], &["mixing.layers"]),
        ("", &["mixing.cond_pool=0"], &["mixing.cond_pool"]),
        ("", &["mixing.cond_ratio=2"], &["mixing.cond_ratio"]),
        ("", &["encoder.negative_slope=2"], &["encoder.negative_slope"]),
        ("", &["encoder.hidden_multipliers=[1,0]"], &["encoder.hidden_multipliers[1]"]),
        ("", &["encoder.normalization.radius=0"], &["encoder.normalization.radius"]),
        ("", &["encoder.normalization.kind=box", "encoder.normalization.init_bound=-1"], &["encoder.normalization.init_bound"]),
        ("", &["loss.tau=0"], &["loss.tau"]),
        ("", &["train.batch=0"], &["train.batch"]),
        ("", &["train.lr=-1"], &["train.lr"]),
        ("", &["eval.supervised_lr=0"], &["eval.supervised_lr"]),
        ("", &["train.decay_fraction=0.3"], &["train.decay_fraction", "wsd"]),
        ("", &["train.schedule=\"wsd\"", "train.decay_fraction=0"], &["train.decay_fraction", "(0, 1]"]),
        ("", &["train.schedule=\"wsd\"", "train.decay_fraction=1.5"], &["train.decay_fraction"]),
        ("", &["train.schedule=\"linear\""], &["train.schedule"]),
        ("", &["train.ema=1"], &["train.ema", "(0, 1)"]),
        ("", &["train.ema=0"], &["train.ema"]),
        ("", &["train.ema=-0.5"], &["train.ema"]),
        // Malformed input.
        ("", &["nonsense"], &["key=value"]),
        ("", &["data..dim=3"], &["empty key"]),
        ("", &["train.lr.x=1"], &["`train.lr`", "expected f64"]),
        ("[train]\nlr = 0.1\n", &["train.lr.x=1"], &["`train.lr` is not a section"]),
        ("[encoder]\nhidden_multipliers = [1, 2, 3]\n", &["encoder.hidden_multipliers.7=1"], &["is a list of 3, without an element `7`"]),
        ("[data\n", &[], &["TOML"]),
    ];
    for (text, o, needles) in cases {
        let e = err(text, o);
        for n in *needles {
            assert!(e.contains(n), "{text:?} {o:?}: `{n}` not in: {e}");
        }
        assert!(!e.contains('\n'), "{e}");
    }
    for bad in ["0", "1", "3", "4096"] {
        let e = err("", &["train.batch=2048", &format!("loss.negatives={bad}")]);
        assert!(e.contains("loss.negatives"), "{bad}: {e}");
    }
}

#[test]
fn every_align_uniform_parameter_is_settable_and_checked() {
    let c = parse(
        "[loss]\nkind = \"align_uniform\"\nalpha = 1.5\nt = 3.0\nlambda = 0.5\non = \"both\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.loss.objective,
        Objective::AlignUniform {
            alpha: 1.5,
            t: 3.0,
            lambda: 0.5,
            on: UniformOn::Both
        }
    );
    assert_eq!(
        c.validate().unwrap().loss.name(),
        "align_uniform(alpha=1.5,t=3,lambda=0.5,on=both)"
    );
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    // Defaults: Wang & Isola's.
    let d = parse("", &["loss.kind=align_uniform"]).unwrap();
    assert_eq!(
        d.validate().unwrap().loss.name(),
        "align_uniform(alpha=2,t=2,lambda=1,on=anchors)"
    );
    // λ = 0 is allowed (alignment only); the others must be > 0.
    assert!(parse("", &["loss.kind=align_uniform", "loss.lambda=0"]).is_ok());
    for (key, bad) in [
        ("alpha", "0"),
        ("t", "-1"),
        ("lambda", "-0.5"),
        ("alpha", "nan"),
    ] {
        let e = err(
            "",
            &["loss.kind=align_uniform", &format!("loss.{key}={bad}")],
        );
        assert!(e.contains(&format!("`loss.{key}`")), "{key}={bad}: {e}");
    }
    // The wrappers apply to it like to any loss.
    let w = parse(
        "",
        &[
            "loss.kind=align_uniform",
            "loss.negatives=64",
            "loss.symmetric=true",
        ],
    )
    .unwrap();
    assert_eq!(
        w.validate().unwrap().loss.name(),
        "symmetric[align_uniform(alpha=2,t=2,lambda=1,on=anchors)[groups of 64]]"
    );
}

#[test]
fn grouped_and_symmetric_losses_are_built_and_named() {
    let c = parse("", &["loss.negatives=256", "loss.symmetric=true"]).unwrap();
    assert_eq!(c.loss.negatives, Some(256));
    assert_eq!(
        c.loss.build().unwrap().name(),
        "symmetric[sphere_infonce(tau=1,self=keep)[groups of 256]]"
    );
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    // Off by default, and then absent from the resolved config.
    let d = parse("", &[]).unwrap().to_toml();
    assert!(!d.contains("negatives") && !d.contains("symmetric"), "{d}");
}

#[test]
fn several_positives_are_validated_by_name() {
    let c = parse("", &["loss.positives=4"]).unwrap();
    assert_eq!(c.validate().unwrap().positives.unwrap().positives(), 4);
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    assert!(parse("", &["loss.positives=1"])
        .unwrap()
        .validate()
        .unwrap()
        .positives
        .is_none());
    assert!(!parse("", &[]).unwrap().to_toml().contains("positives"));
    for (set, want) in [
        (&["loss.positives=0"][..], "`loss.positives`"),
        (&["loss.positives=65"][..], "`loss.positives`"),
        (
            &["loss.kind=align_uniform", "loss.positives=2"][..],
            "align_uniform",
        ),
    ] {
        let e = parse("", set).unwrap_err().to_string();
        assert!(e.contains(want), "{set:?}: {e}");
    }
    let lp = parse("", &["loss.kind=lp", "loss.p=1", "loss.positives=2"]).unwrap();
    assert!(lp.validate().unwrap().positives.is_some());
}

#[test]
fn antithetic_positives_are_validated_by_name() {
    let c = parse("", &["loss.positives=4", "loss.antithetic=true"]).unwrap();
    assert_eq!(
        c.validate().unwrap().antithetic,
        Some(clica_core::Mirror::Axis)
    );
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    assert!(c.to_toml().contains("antithetic = true"));
    // Off by default, and then absent from the resolved config.
    assert!(!parse("", &["loss.positives=4"])
        .unwrap()
        .to_toml()
        .contains("antithetic"));
    let unbounded = [
        "data.space.kind=unbounded",
        "data.marginal.kind=laplace",
        "data.conditional.kind=normal",
        "loss.kind=lp",
        "loss.p=2",
        "loss.positives=2",
        "loss.antithetic=true",
    ];
    assert_eq!(
        parse("", &unbounded)
            .unwrap()
            .validate()
            .unwrap()
            .antithetic,
        Some(clica_core::Mirror::Point)
    );
    for (set, want) in [
        (&["loss.antithetic=true"][..], "`positives` ≥ 2"),
        (
            &["loss.positives=1", "loss.antithetic=true"][..],
            "`loss.antithetic`",
        ),
        (
            &[
                "data.space.kind=box",
                "data.conditional.kind=laplace",
                "loss.kind=lp",
                "loss.p=1",
                "loss.positives=2",
                "loss.antithetic=true",
            ][..],
            "`loss.antithetic`: the conditional of",
        ),
    ] {
        let e = parse("", set)
            .and_then(|c| c.validate().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{set:?}: {e}");
    }
}

#[test]
fn layers_merge_section_by_section() {
    let c = TrainConfig::from_layers(
        &[
            (
                "a",
                "[train]\nbatch = 64\nsteps = 10\n[loss]\ntau = 0.5\n[data]\ndim = 4\n\
                 conditional = { kind = \"vmf\", kappa = 5.0 }\n",
            ),
            (
                "b",
                "[train]\nsteps = 20\n[data]\nspace = { radius = 2.0 }\n\
                 conditional = { kappa = 7.0 }\n",
            ),
        ],
        &[],
    )
    .unwrap();
    assert_eq!((c.train.batch, c.train.steps), (64, 20));
    assert_eq!(
        c.loss.objective,
        Objective::Sphere {
            tau: 0.5,
            self_term: SelfTerm::Keep
        }
    );
    assert_eq!(
        *latent(&c),
        LatentSection {
            dim: 4,
            space: Space::Sphere { radius: 2.0 },
            marginal: Marginal::Uniform,
            conditional: Conditional::VonMisesFisher { kappa: 7.0 },
        }
    );
    let e = TrainConfig::from_layers(&[("first.toml", ""), ("second.toml", "[x")], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("second.toml"), "{e}");
}

#[test]
fn shipped_presets_are_valid() {
    let root = configs();
    let mut n = 0;
    for sub in ["table1", "table2"] {
        for entry in std::fs::read_dir(format!("{root}/{sub}")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for protocol in ["fast", "paper"] {
                let p =
                    std::fs::read_to_string(format!("{root}/protocol/{protocol}.toml")).unwrap();
                TrainConfig::from_layers(&[("preset", &text), ("protocol", &p)], &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            n += 1;
        }
    }
    assert_eq!(n, 18, "12 rows of Table 1 and 6 of Table 2");
}

#[test]
fn the_fast_protocol_file_is_the_defaults() {
    let root = configs();
    let text = std::fs::read_to_string(format!("{root}/protocol/fast.toml")).unwrap();
    let fast = parse(&text, &[]).unwrap();
    assert_eq!(fast, TrainConfig::default());
    let paper = std::fs::read_to_string(format!("{root}/protocol/paper.toml")).unwrap();
    assert_ne!(parse(&paper, &[]).unwrap(), TrainConfig::default());
}

#[test]
fn differences_name_each_changed_field() {
    let a = parse("", &[]).unwrap();
    let b = parse(
        "",
        &[
            "train.lr=0.004",
            "data.space.kind=box",
            "data.conditional.kind=normal",
        ],
    )
    .unwrap();
    let d = a.differences(&b);
    let keys: Vec<&str> = d.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "data.conditional.kappa",
            "data.conditional.kind",
            "data.conditional.sigma",
            "data.space.high",
            "data.space.kind",
            "data.space.low",
            "data.space.radius",
            "train.lr"
        ]
    );
    assert_eq!(
        d[1],
        (
            "data.conditional.kind".into(),
            "\"vmf\"".into(),
            "\"normal\"".into()
        )
    );
    assert_eq!(d[2].1, "(absent)");
    assert_eq!(d[7], ("train.lr".into(), "0.003".into(), "0.004".into()));
    assert!(a.differences(&a.clone()).is_empty());
    // The parts of a product are compared one by one.
    let p = |dim: &str| {
        parse(
            "",
            &[
                "data.kind=product",
                "data.parts=[{ dim = 2 }, { dim = 3 }]",
                &format!("data.parts.1.dim={dim}"),
            ],
        )
        .unwrap()
    };
    let d = p("3").differences(&p("4"));
    assert_eq!(d, [("data.parts[1].dim".into(), "3".into(), "4".into())]);
}

#[test]
fn run_config_ignores_the_run_table() {
    let c = parse("", &["train.steps=7"]).unwrap();
    let text = format!(
        "{}\n[run]\nseed = 0\ngenerator_fingerprint = \"x\"\n",
        c.to_toml()
    );
    assert_eq!(TrainConfig::from_run_config(&text).unwrap(), c);
    assert!(TrainConfig::from_run_config("[train\n").is_err());
}

/// The resolved defaults as clica wrote them before the sections were tagged.
const FLAT_RUN_CONFIG: &str = r#"seed = 0

[data]
space = "sphere"
dim = 10
radius = 1.0
low = 0.0
high = 1.0
marginal = "uniform"
marginal_scale = 1.0
conditional = "vmf"
concentration = 1.0
beta = 3.0

[mixing]
layers = 3
activation = "leaky_relu"
cond_pool = 25000
cond_ratio = 0.0

[encoder]
hidden_multipliers = [10, 10, 10]
negative_slope = 0.01
normalization = "sphere"
radius = 1.0
backend = "native"

[run]
seed = 0
"#;

#[test]
fn the_earlier_flat_format_is_named_with_its_fix() {
    let e = TrainConfig::from_run_config(FLAT_RUN_CONFIG)
        .unwrap_err()
        .to_string();
    for needle in [
        "the run's config.toml",
        "earlier flat format",
        "data.space = \"sphere\"",
        "rerun",
        "data.concentration is its kappa",
        "encoder.normalization = { kind = \"sphere\"",
    ] {
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    }
    assert!(!e.contains('\n'), "{e}");
    // An old preset names its file; each flat key is recognised on its own.
    for (text, key) in [
        ("[data]\nspace = \"box\"\n", "data.space = \"box\""),
        ("[data]\nconcentration = 0.05\n", "data.concentration"),
        ("[data]\nmarginal_scale = 2.0\n", "data.marginal_scale"),
        (
            "[encoder]\nnormalization = \"none\"\n",
            "encoder.normalization = \"none\"",
        ),
        ("[encoder]\nradius = 2.0\n", "encoder.radius"),
    ] {
        let e = TrainConfig::from_layers(&[("row01.toml", text)], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row01.toml is in the earlier flat format"),
            "{e}"
        );
        assert!(e.contains(key), "`{key}` not in: {e}");
    }
    // So is an override spelled the old way.
    for o in [
        "data.space=box",
        "data.concentration=10",
        "encoder.normalization=none",
    ] {
        let e = err("", &[o]);
        assert!(
            e.contains(&format!("override `{o}` is in the earlier flat format")),
            "{e}"
        );
    }
}

#[test]
fn a_product_prior_from_toml_samples_like_one_built_by_hand() {
    let text = "[data]\nkind = \"product\"\n\
        [[data.parts]]\ndim = 3\nspace = { kind = \"box\", low = -1.0, high = 1.0 }\n\
        conditional = { kind = \"normal\", sigma = 0.1 }\n\
        [[data.parts]]\ndim = 4\nconditional = { kind = \"vmf\", kappa = 5.0 }\n";
    let c = parse(text, &[]).unwrap();
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    let v = c.validate().unwrap();
    let by_hand = ProductPrior::new(vec![
        Prior::new(
            Space::Box {
                low: -1.0,
                high: 1.0,
            },
            3,
            Marginal::Uniform,
            Conditional::Normal { sigma: 0.1 },
        )
        .unwrap(),
        Prior::new(
            Space::Sphere { radius: 1.0 },
            4,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa: 5.0 },
        )
        .unwrap(),
    ])
    .unwrap();
    assert_eq!(v.prior.dim(), 7);
    assert_eq!(v.prior.describe(), by_hand.describe());
    let seed = RunSeed::new(3);
    let (mut a, mut b) = (seed.stream("m"), seed.stream("m"));
    let z = v.prior.marginal(&mut a, 64);
    assert_eq!(z, by_hand.marginal(&mut b, 64));
    assert_eq!(
        v.prior.conditional(&mut a, z.view()),
        by_hand.conditional(&mut b, z.view())
    );
    // The mixing and the encoder take the product's dimension.
    assert_eq!(v.mixing.observation_shape(7), [7]);
    match (&v.mixing, &v.encoder) {
        (MixingChoice::Mlp(m), EncoderChoice::Mlp(e)) => {
            assert_eq!(m.dim, 7);
            assert_eq!((e.input_dim, e.output_dim), (7, 7));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_components_are_the_ones_the_keys_name() {
    let c = parse(
        "",
        &[
            "data.dim=5",
            "data.space.kind=box",
            "data.marginal.kind=gennorm",
            "data.marginal.beta=2",
            "data.marginal.scale=0.5",
            "data.conditional.kind=gennorm",
            "data.conditional.scale=0.05",
            "mixing.layers=2",
            "mixing.activation=leaky_relu(0.1)",
            "mixing.cond_pool=100",
            "mixing.cond_ratio=0.5",
            "encoder.hidden_multipliers=[2]",
            "encoder.negative_slope=0.2",
            "encoder.normalization.kind=none",
            "loss.kind=lp",
            "loss.p=2",
            "loss.tau=0.1",
            "loss.self_term=exclude",
        ],
    )
    .unwrap();
    let v = c.validate().unwrap();
    assert_eq!(
        v.prior.describe(),
        "box(low=0, high=1), n=5, marginal gennorm(beta=2, scale=0.5), \
         conditional gennorm(beta=3, scale=0.05)"
    );
    assert_eq!(
        v.mixing,
        MixingChoice::Mlp(
            clica_generators::MlpConfig::new(5)
                .with_layers(2)
                .with_activation(clica_generators::Activation::leaky_relu(0.1).unwrap())
                .with_cond_pool_size(100)
                .with_cond_ratio(0.5)
        )
    );
    assert_eq!(v.encoder.describe(), "mlp 5-10-5 leaky(0.2) none");
    match &v.encoder {
        EncoderChoice::Mlp(e) => assert_eq!(e.backend, Backend::Native),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.loss.name(), "l2_infonce_simclr(tau=0.1,self=exclude)");
    let t = c.to_toml();
    assert!(t.contains("activation = \"leaky_relu(0.1)\""), "{t}");
    assert_eq!(parse(&t, &[]).unwrap(), c);
}

#[test]
fn the_wsd_schedule_and_its_decay_fraction_are_settable_and_absent_when_unset() {
    let c = parse("", &["train.schedule=\"wsd\"", "train.decay_fraction=0.4"]).unwrap();
    assert_eq!(c.train.schedule, ScheduleKind::Wsd);
    assert_eq!(c.train.decay_fraction, Some(0.4));
    assert!(c.validate().is_ok());
    assert!(c.to_toml().contains("decay_fraction = 0.4"));
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    let plain = parse("", &[]).unwrap();
    assert!(!plain.to_toml().contains("decay_fraction"));
    assert!(!plain.to_toml().contains("ema"));
    let e = parse("", &["train.ema=0.999"]).unwrap();
    assert_eq!(e.train.ema, Some(0.999));
    assert!(e.to_toml().contains("ema = 0.999"));
}

#[test]
fn the_renderer_and_the_conv_encoder_are_configured_by_kind() {
    let text = std::fs::read_to_string(format!("{}/table3/normal-box.toml", configs())).unwrap();
    let cfg = parse(&text, &[]).unwrap();
    let v = cfg.validate().unwrap();
    match &v.mixing {
        MixingChoice::Render(r) => assert_eq!((r.size, r.supersample), (64, 2)),
        other => panic!("{other:?}"),
    }
    match &v.encoder {
        EncoderChoice::Conv { config, from_data } => {
            assert_eq!(config.input, [3, 64, 64]);
            assert!(*from_data);
        }
        other => panic!("{other:?}"),
    }
    // The renderer takes the scene's 10 latents.
    let e = err(&text, &["data.dim=4"]);
    assert!(e.contains("mixing.kind") && e.contains("10 latents"), "{e}");
    // Its size and supersampling are checked by name.
    assert!(err(&text, &["mixing.size=300"]).contains("mixing.size"));
    assert!(err(&text, &["mixing.supersample=0"]).contains("mixing.supersample"));
    assert!(err(&text, &["mixing.hue=\"rainbow\""]).contains("mixing.hue"));
    // The default widths are the KITTI net's; other widths keep its pattern.
    match &v.encoder {
        EncoderChoice::Conv { config, .. } => {
            let kitti = clica_conv::ConvEncoderConfig::kitti([3, 64, 64], 10);
            assert_eq!(config.convs, kitti.convs);
        }
        other => panic!("{other:?}"),
    }
    let wide = parse(
        &text,
        &["encoder.channels=[64, 64, 128]", "encoder.features=512"],
    )
    .unwrap();
    match wide.validate().unwrap().encoder {
        EncoderChoice::Conv { config, .. } => {
            let outs: Vec<(usize, usize, usize)> = config
                .convs
                .iter()
                .map(|c| (c.out, c.kernel, c.stride))
                .collect();
            // Three halvings leave 8 × 8: the last kernel spans it.
            assert_eq!(outs, [(64, 4, 2), (64, 4, 2), (128, 4, 2), (512, 8, 1)]);
        }
        other => panic!("{other:?}"),
    }
    // Written to the resolved config only when they differ from the KITTI net's, so earlier
    // runs' configs are what the same run writes now.
    assert!(!cfg.to_toml().contains("channels"));
    let written = wide.to_toml();
    assert!(
        written.contains("channels = [") && written.contains("features = 512"),
        "{written}"
    );
    // A stem of stride-1 convolutions runs at full resolution before the halvings.
    let stem = parse(&text, &["encoder.stem=[16, 8]"]).unwrap();
    match stem.validate().unwrap().encoder {
        EncoderChoice::Conv { config, .. } => {
            let outs: Vec<(usize, usize, usize, usize)> = config
                .convs
                .iter()
                .map(|c| (c.out, c.kernel, c.stride, c.padding))
                .collect();
            assert_eq!(
                outs,
                [
                    (16, 3, 1, 1),
                    (8, 3, 1, 1),
                    (32, 4, 2, 1),
                    (32, 4, 2, 1),
                    (64, 4, 2, 1),
                    (64, 4, 2, 1),
                    (256, 4, 1, 0)
                ]
            );
            let shapes = config.validate().unwrap();
            assert_eq!((shapes.layers[1].out_h, shapes.layers[1].out_w), (64, 64));
            assert_eq!(shapes.layers[1].in_c, 16);
        }
        other => panic!("{other:?}"),
    }
    assert!(!cfg.to_toml().contains("stem"));
    let written = stem.to_toml();
    assert!(
        written.contains("stem = [") && written.contains("16,\n    8,"),
        "{written}"
    );
    let e = err(&text, &["encoder.stem=[16, 0]"]);
    assert!(e.contains("encoder.stem"), "{e}");
    let e = err(&text, &["encoder.channels=[32, 0]"]);
    assert!(e.contains("encoder.channels"), "{e}");
    let e = err(&text, &["encoder.features=0"]);
    assert!(e.contains("encoder.features"), "{e}");
    // Seven halvings of 64 do not fit: the 4 × 4 kernel meets a 1 × 1 input.
    let e = err(&text, &["encoder.channels=[8, 8, 8, 8, 8, 8, 8]"]);
    assert!(e.contains("does not fit"), "{e}");
    // The conv encoder needs images.
    let e = err("[encoder]\nkind = \"conv\"\n", &[]);
    assert!(
        e.contains("encoder.kind") && e.contains("image observations"),
        "{e}"
    );
    // An MLP on images takes the flattened image.
    let mlp = parse(
        &text,
        &[
            "encoder.kind=\"mlp\"",
            "encoder.normalization.kind=\"none\"",
        ],
    )
    .unwrap();
    match mlp.validate().unwrap().encoder {
        EncoderChoice::Mlp(c) => assert_eq!(c.input_dim, 3 * 64 * 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn antithetic_anchors_are_validated_by_name() {
    let c = parse("", &["loss.antithetic_anchors=true"]).unwrap();
    let r = c.validate().unwrap().anchor_reflection.unwrap();
    assert_eq!(r, clica_core::Reflection::through(vec![0.0; 10]));
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    assert!(c.to_toml().contains("antithetic_anchors = true"));
    // Off by default, and then absent from the resolved config.
    assert!(!parse("", &[])
        .unwrap()
        .to_toml()
        .contains("antithetic_anchors"));
    let boxed = parse(
        "",
        &[
            "data.space.kind=box",
            "data.space.low=-1.0",
            "data.space.high=3.0",
            "data.conditional.kind=laplace",
            "loss.kind=lp",
            "loss.p=1",
            "loss.antithetic_anchors=true",
        ],
    )
    .unwrap();
    assert_eq!(
        boxed.validate().unwrap().anchor_reflection,
        Some(clica_core::Reflection::through(vec![1.0; 10]))
    );
    let e = parse("", &["loss.antithetic_anchors=true", "train.batch=7"])
        .and_then(|c| c.validate().map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`loss.antithetic_anchors`") && e.contains("even train.batch, got 7"),
        "{e}"
    );
    let e = parse("", &["loss.antithetic_anchors=1"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("antithetic_anchors") || e.contains("bool"),
        "{e}"
    );
}

#[test]
fn a_box_output_cannot_be_the_supervised_baseline_for_latents_below_zero() {
    let box_model = [
        "data.space.kind=box",
        "data.space.low=-1.0",
        "data.space.high=1.0",
        "data.conditional.kind=normal",
        "data.conditional.sigma=0.1",
        "encoder.normalization.kind=box",
        "loss.kind=lp",
        "loss.p=2",
        "eval.supervised=true",
    ];
    let e = parse("", &box_model)
        .and_then(|c| c.validate().map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`eval.supervised`") && e.contains("(0, b)") && e.contains("kind = \"none\""),
        "{e}"
    );
    // Without the baseline, with an unbounded output, or on the box [0, 1] it is accepted.
    for extra in [
        "eval.supervised=false",
        "encoder.normalization.kind=none",
        "data.space.low=0.0",
    ] {
        let mut set = box_model.to_vec();
        set.push(extra);
        parse("", &set)
            .and_then(|c| c.validate().map(|_| ()))
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

#[test]
fn the_piecewise_schedule_takes_its_knots_from_the_config() {
    let c = parse(
        "",
        &[
            "train.schedule=piecewise",
            "train.lr_knots=[[0, 1], [0.25, 1], [0.3, 0.2], [1, 0.01]]",
        ],
    )
    .unwrap();
    assert_eq!(
        c.train.lr_knots,
        Some(vec![[0.0, 1.0], [0.25, 1.0], [0.3, 0.2], [1.0, 0.01]])
    );
    assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
    // The default 100 warm-up steps, then 7,900 steps: the third knot is at step 2,470.
    assert!((c.train.lr_with_peak(1.0, 2470, 8000) - 0.2).abs() < 1e-12);
    for (set, want) in [
        (&["train.schedule=piecewise"][..], "needs its knots"),
        (
            &["train.lr_knots=[[0, 1], [1, 0.1]]"][..],
            "only to schedule = \"piecewise\"",
        ),
        (
            &[
                "train.schedule=piecewise",
                "train.lr_knots=[[0, 1], [0.5, 0.1]]",
            ][..],
            "must be 0",
        ),
        (
            &[
                "train.schedule=piecewise",
                "train.lr_knots=[[0, 1, 2], [1, 0.1]]",
            ][..],
            "lr_knots",
        ),
    ] {
        let e = parse("", set)
            .and_then(|c| c.validate().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want) && e.contains("lr_knots"), "{set:?}: {e}");
    }
}

#[test]
fn resnet18_is_configured_by_kind() {
    let text = std::fs::read_to_string(format!("{}/table3/normal-box.toml", configs())).unwrap();
    let cfg = parse(&text, &["encoder.kind=\"resnet18\""]).unwrap();
    match cfg.validate().unwrap().encoder {
        EncoderChoice::ResNet { config, from_data } => {
            assert_eq!(config.input, [3, 64, 64]);
            assert_eq!(config.widths, [64, 128, 256, 512]);
            // The paper's head: fc to 10 n.
            assert_eq!(config.hidden, 100);
            assert!(from_data);
            assert!(matches!(
                config.normalization,
                clica_encoders::Normalization::LearnableBox { .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    let e = err(
        &text,
        &["encoder.kind=\"resnet18\"", "encoder.hidden_multiplier=0"],
    );
    assert!(e.contains("encoder.hidden_multiplier"), "{e}");
    let e = err(
        &text,
        &[
            "encoder.kind=\"resnet18\"",
            "encoder.widths=[64, 0, 256, 512]",
        ],
    );
    assert!(e.contains("encoder.widths[1]"), "{e}");
    // Image observations only.
    let e = err("[encoder]\nkind = \"resnet18\"\n", &[]);
    assert!(e.contains("image observations"), "{e}");
}
