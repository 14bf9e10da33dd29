"""The package gives the `clica` tool's numbers for the same arguments and seeds: byte-identical
arrays, equal JSON values, the same error messages."""

import json

import numpy as np
import pytest

import clica
from conftest import TINY, cli_error, run_clica, same_bytes, without_timings

# (flags of `clica sample`, the same prior as keyword arguments of clica.Prior)
PRIORS = [
    ([], {}),
    (
        ["--space", "sphere", "--dim", "6", "--radius", "2.5", "--conditional", "vmf", "--concentration", "40"],
        dict(space="sphere", dim=6, radius=2.5, conditional="vmf", concentration=40.0),
    ),
    (
        ["--space", "box", "--dim", "4", "--low", "-1", "--high", "2", "--conditional", "laplace", "--concentration", "0.05"],
        dict(space="box", dim=4, low=-1.0, high=2.0, conditional="laplace", concentration=0.05),
    ),
    (
        ["--space", "unbounded", "--dim", "5", "--marginal", "laplace", "--marginal-scale", "2", "--conditional", "normal", "--concentration", "0.3"],
        dict(space="unbounded", dim=5, marginal="laplace", marginal_scale=2.0, conditional="normal", concentration=0.3),
    ),
    (
        ["--space", "sphere", "--dim", "3", "--marginal", "gennorm", "--beta", "1.5", "--conditional", "gennorm", "--concentration", "0.2"],
        dict(space="sphere", dim=3, marginal="gennorm", beta=1.5, conditional="gennorm", concentration=0.2),
    ),
]


@pytest.mark.parametrize("flags,kwargs", PRIORS)
def test_sample_is_byte_identical_to_the_cli(tmp_path, flags, kwargs):
    # 600 rows: more than two of the samplers' 256-row chunks.
    run_clica("sample", *flags, "--n", 600, "--seed", 7, "--out", tmp_path)
    z_cli = np.load(tmp_path / "z.npy")
    z_tilde_cli = np.load(tmp_path / "z_tilde.npy")
    prior = clica.Prior(**kwargs)
    z, z_tilde = prior.sample(600, seed=7)
    assert same_bytes(z, z_cli)
    assert same_bytes(z_tilde, z_tilde_cli)
    # The two draws alone give the same arrays, and the anchors may come from the file.
    assert same_bytes(prior.sample_marginal(600, seed=7), z_cli)
    assert same_bytes(prior.sample_conditional(z_cli, seed=7), z_tilde_cli)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert prior.config() == meta["config"]
    assert prior.describe() == meta["prior"]
    # Another seed gives other arrays (the comparison can fail).
    assert not same_bytes(prior.sample_marginal(600, seed=8), z_cli)


@pytest.mark.parametrize(
    "flags,kwargs",
    [
        ([], {}),
        (["--layers", "2", "--cond-pool", "500", "--activation", "smooth_leaky_relu"], dict(layers=2, cond_pool=500, activation="smooth_leaky_relu")),
        (["--layers", "4", "--cond-pool", "300", "--cond-ratio", "0.5"], dict(layers=4, cond_pool=300, cond_ratio=0.5)),
    ],
)
def test_mix_is_byte_identical_to_the_cli(tmp_path, flags, kwargs):
    run_clica("sample", "--dim", 10, "--n", 700, "--seed", 3, "--out", tmp_path)
    z = np.load(tmp_path / "z.npy")
    printed = json.loads(run_clica("mix", "--z", tmp_path / "z.npy", *flags, "--seed", 3, "--out", tmp_path / "x.npy").stdout)
    g = clica.Mixing(10, seed=3, **kwargs)
    x = g.forward(z)
    assert same_bytes(x, np.load(tmp_path / "x.npy"))
    assert g.fingerprint == printed["fingerprint"]
    assert g.config() == printed["mixing"]
    assert np.max(np.abs(g.inverse(x) - z)) < 1e-10
    assert clica.Mixing(10, seed=4, **kwargs).fingerprint != printed["fingerprint"]


def _eval_cli(tmp_path, z, z_hat):
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "z_hat.npy", z_hat)
    return json.loads(run_clica("eval", "--z", tmp_path / "z.npy", "--z-hat", tmp_path / "z_hat.npy").stdout)


KEYS = ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman", "assignment"]


def test_evaluate_gives_the_keys_and_values_of_clica_eval(tmp_path):
    prior = clica.Prior("sphere", 10)
    z = prior.sample_marginal(4096, seed=2)
    x = clica.Mixing(10, seed=2, cond_pool=1000).forward(z)
    printed = _eval_cli(tmp_path, z, x)
    scores = clica.evaluate(z, x)
    assert sorted(scores) == sorted(KEYS)
    for k in KEYS:
        assert scores[k] == printed[k], k
    # float32 files and arrays agree too (both widen to float64).
    printed32 = _eval_cli(tmp_path, z.astype(np.float32), x.astype(np.float32))
    scores32 = clica.evaluate(z.astype(np.float32), x.astype(np.float32))
    assert all(scores32[k] == printed32[k] for k in KEYS)
    assert scores32["r2"] != scores["r2"]


def test_evaluate_of_a_narrow_representation_has_no_mcc_like_clica_eval(tmp_path):
    z = clica.Prior("box", 4, conditional="normal").sample_marginal(300, seed=1)
    h = z[:, :2] * 3.0 + 1.0
    printed = _eval_cli(tmp_path, z, h)
    scores = clica.evaluate(z, h)
    assert scores == {k: printed[k] for k in KEYS}
    assert scores["mcc_pearson"] is None and scores["assignment"] is None


@pytest.mark.parametrize(
    "flags,kwargs",
    [
        (["--concentration", "-1"], dict(concentration=-1.0)),
        (["--dim", "0"], dict(dim=0)),
        (["--space", "box", "--low", "1", "--high", "1", "--conditional", "normal"], dict(space="box", low=1.0, high=1.0, conditional="normal")),
        (["--space", "unbounded", "--conditional", "normal"], dict(space="unbounded", conditional="normal")),
        (["--space", "box", "--conditional", "vmf"], dict(space="box", conditional="vmf")),
        (["--radius", "0"], dict(radius=0.0)),
        (["--radius", "nan"], dict(radius=float("nan"))),
    ],
)
def test_bad_prior_parameters_raise_value_error_with_the_cli_message(tmp_path, flags, kwargs):
    message = cli_error("sample", *flags, "--out", tmp_path)
    with pytest.raises(ValueError) as e:
        clica.Prior(**kwargs)
    assert str(e.value) == message


def test_bad_counts_and_mixing_raise_the_cli_message(tmp_path):
    message = cli_error("sample", "--n", "0", "--out", tmp_path)
    with pytest.raises(ValueError) as e:
        clica.Prior().sample(0)
    assert str(e.value) == message
    run_clica("sample", "--dim", 4, "--n", 10, "--out", tmp_path)
    message = cli_error("mix", "--z", tmp_path / "z.npy", "--activation", "tanh", "--out", tmp_path / "x.npy")
    with pytest.raises(ValueError) as e:
        clica.Mixing(4, activation="tanh")
    assert str(e.value) == message
    message = cli_error("mix", "--z", tmp_path / "z.npy", "--layers", "0", "--out", tmp_path / "x.npy")
    with pytest.raises(ValueError) as e:
        clica.Mixing(4, layers=0)
    assert str(e.value) == message


def test_bad_eval_inputs_raise_the_cli_message_naming_the_argument(tmp_path):
    z = clica.Prior("sphere", 3).sample_marginal(20, seed=0)
    bad = z.copy()
    bad[4, 2] = np.inf
    for z_in, h_in in [(z, bad), (z, z[:10]), (z[:3], z[:3])]:
        np.save(tmp_path / "a.npy", z_in)
        np.save(tmp_path / "b.npy", h_in)
        message = cli_error("eval", "--z", tmp_path / "a.npy", "--z-hat", tmp_path / "b.npy")
        message = message.replace(str(tmp_path / "a.npy"), "z").replace(str(tmp_path / "b.npy"), "z_hat")
        with pytest.raises(ValueError) as e:
            clica.evaluate(z_in, h_in)
        assert str(e.value) == message


def test_train_gives_the_summary_and_weights_of_clica_train(tmp_path):
    printed = json.loads(
        run_clica("train", *[a for kv in TINY for a in ("--set", kv)], "--out", tmp_path / "cli").stdout.strip().splitlines()[-1]
    )
    summary = clica.train(overrides=TINY, out=tmp_path / "py", progress=False)
    assert summary["status"] == "completed"
    assert without_timings(summary) == without_timings(printed)
    assert without_timings(json.loads((tmp_path / "py" / "summary.json").read_text())) == without_timings(summary)
    for f in ["encoder.safetensors", "config.toml"]:
        assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    # The lock was taken and released: none is left behind.
    assert not (tmp_path / "py" / ".lock").exists()
    # The same configuration given as a dict of tables, and as a dict of overrides.
    as_tables = {
        "data": {"dim": 3},
        "train": {"steps": 30, "batch": 64},
        "mixing": {"cond_pool": 100},
        "eval": {"samples": 256, "final_batches": 1},
    }
    from_dict = clica.train(as_tables, out=tmp_path / "dict", progress=False)
    assert without_timings(from_dict) == without_timings(printed)
    overrides = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in TINY}
    from_overrides = clica.train(overrides=overrides, progress=False)
    assert without_timings(from_overrides) == without_timings(printed)
    # Another seed trains something else.
    other = clica.train(overrides=TINY + ["seed=1"], progress=False)
    assert other["contrastive"] != printed["contrastive"]


def test_a_toml_file_and_layers_are_read_like_the_cli(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\ndim = 3\n[train]\nsteps = 30\nbatch = 64\n')
    rest = ["mixing.cond_pool=100", "eval.samples=256", "eval.final_batches=1"]
    args = ["train", "--config", cfg, *[a for kv in rest for a in ("--set", kv)]]
    printed = json.loads(run_clica(*args, "--out", tmp_path / "cli").stdout.strip().splitlines()[-1])
    summary = clica.train(str(cfg), overrides=rest, progress=False)
    assert without_timings(summary) == without_timings(printed)
    layered = clica.train([cfg, {"mixing": {"cond_pool": 100}}], overrides=rest[1:], progress=False)
    assert without_timings(layered) == without_timings(printed)


def test_data_is_the_process_clica_train_trains_on(tmp_path):
    summary = clica.train(overrides=TINY, progress=False)
    data = clica.Data(overrides=TINY)
    assert data.fingerprint == summary["generator_fingerprint"]
    g = clica.Mixing(3, seed=0, cond_pool=100)
    assert g.fingerprint == data.fingerprint
    batches = data.batches()
    assert len(batches) == 30
    x, x_tilde, z = next(batches)
    assert len(batches) == 29
    assert x.dtype == np.float32 and x_tilde.dtype == np.float32 and z.dtype == np.float64
    assert x.shape == x_tilde.shape == z.shape == (64, 3)
    # x = g(z) rounded to float32, as the trainer feeds its encoder; x̃ = g(z̃) with z̃ on the sphere.
    assert same_bytes(x, g.forward(z).astype(np.float32))
    z_tilde = g.inverse(x_tilde.astype(np.float64))
    assert np.allclose(np.linalg.norm(z_tilde, axis=1), 1.0, atol=1e-4)
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    # Positives lie near their anchors (vMF with κ = 1 on S²: mean cosine ≈ 0.31), far more than random pairs.
    assert np.mean(np.sum(z * z_tilde, axis=1)) > 0.15
    # The same configuration gives the same batches; another seed others.
    assert same_bytes(next(clica.Data(overrides=TINY).batches())[0], x)
    assert not same_bytes(next(clica.Data(overrides=TINY + ["seed=1"]).batches())[0], x)
    assert sum(1 for _ in data.batches(steps=5, batch=8)) == 5
    xs, zs = data.sample(100)
    assert same_bytes(xs, g.forward(zs))


def test_encoder_gives_what_clica_encode_writes(tmp_path):
    run = tmp_path / "run"
    summary = clica.train(overrides=TINY, out=run, progress=False)
    enc = clica.Encoder(run)
    assert enc.input_shape == [3] and enc.output_dim == 3
    assert enc.describe == summary["encoder"]
    assert enc.fingerprint == summary["generator_fingerprint"]
    x, z = clica.Data(overrides=TINY).sample(500, stream="test")
    h = enc.encode(x, batch=128)
    assert h.dtype == np.float32 and h.shape == (500, 3)
    np.save(tmp_path / "x.npy", x)
    printed = json.loads(
        run_clica("encode", "--run", run, "--x", tmp_path / "x.npy", "--out", tmp_path / "h.npy", "--batch", 128).stdout
    )
    assert printed["shape"] == [500, 3]
    assert same_bytes(h.astype(np.float64), np.load(tmp_path / "h.npy"))
    # The scores of the run's own process agree with what the summary reports (small sample,
    # 30 steps: a loose check), and another run's encoder gives other numbers.
    assert abs(clica.r2(z, h) - summary["contrastive"]["r2"]["mean"]) < 0.1
    clica.train(overrides=TINY + ["seed=1"], out=tmp_path / "other", progress=False)
    assert not same_bytes(clica.Encoder(tmp_path / "other").encode(x), enc.encode(x))
    # Errors read as the tool's.
    with pytest.raises(ValueError) as e:
        enc.encode(np.zeros((4, 5)))
    assert "the encoder takes 3" in str(e.value)
    with pytest.raises(ValueError) as e:
        clica.Encoder(tmp_path / "nowhere")
    assert str(e.value) == cli_error("encode", "--run", tmp_path / "nowhere", "--x", tmp_path / "x.npy", "--out", tmp_path / "h2.npy")
