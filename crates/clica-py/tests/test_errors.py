"""Bad input raises the right Python exception with a clear message, never a crash, a panic or a
silent NaN."""

import os

import numpy as np
import pytest

import clica
from conftest import TINY

Z = clica.Prior("sphere", 3).sample_marginal(40, seed=0)


def raises(exc, fn, *needles):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    assert "panicked" not in msg and "PanicException" not in type(e.value).__name__
    for n in needles:
        assert n in msg, (n, msg)
    return msg


@pytest.mark.parametrize(
    "z,z_hat,needles",
    [
        (Z, np.full_like(Z, np.nan), ["non-finite value in z_hat at row 0, column 0"]),
        (np.where(np.arange(3) == 1, np.inf, Z), Z, ["non-finite value in z at row 0, column 1"]),
        (Z, Z[:30], ["row counts differ: z has 40 rows, z_hat has 30 rows"]),
        # (evaluate's held-out R² needs 4 rows; the in-sample scores fewer)
        (Z[:3], Z[:3], ["at least 4"]),
        (np.zeros((0, 3)), np.zeros((0, 3)), ["z: array is empty (shape [0, 3])"]),
        (np.zeros((5, 0)), Z[:5], ["z: array is empty"]),
        (Z[:, 0], Z, ["z: expected a 2-D array, found 1 dimension(s) with shape (40,)"]),
        (Z, Z[None], ["z_hat: expected a 2-D array, found 3 dimension(s)"]),
    ],
)
def test_bad_scores_input_is_a_value_error(z, z_hat, needles):
    raises(ValueError, lambda: clica.evaluate(z, z_hat), *needles)
    raises(ValueError, lambda: clica.r2_held_out(z, z_hat))
    if len(z) >= 4:
        raises(ValueError, lambda: clica.r2(z, z_hat))
        raises(ValueError, lambda: clica.mcc(z, z_hat))


def test_wrong_types_are_type_errors():
    raises(TypeError, lambda: clica.evaluate(Z.astype(np.complex128), Z), "z: unsupported dtype 'complex128': expected float32 or float64")
    raises(TypeError, lambda: clica.evaluate(np.array([["a", "b"]]), Z), "unsupported dtype")
    raises(TypeError, lambda: clica.evaluate(object(), Z))
    raises(ValueError, lambda: clica.evaluate([[1.0, 2.0], [3.0]], Z))


def test_mcc_needs_a_known_correlation_and_a_wide_enough_representation():
    raises(ValueError, lambda: clica.mcc(Z, Z, "kendall"), "invalid value 'kendall'", "pearson, spearman")
    raises(ValueError, lambda: clica.mcc(Z, Z[:, :2]), "at least as wide")


@pytest.mark.parametrize(
    "kwargs,needles",
    [
        (dict(space="cube"), ["`space`", "possible values: sphere, box, unbounded"]),
        (dict(marginal="cauchy"), ["`marginal`"]),
        (dict(conditional="cauchy"), ["`conditional`"]),
        (dict(dim=-1), ["`dim`", "got -1"]),
        (dict(dim=2**70), ["`dim`"]),
        (dict(concentration=float("inf")), ["kappa"]),
        (dict(space="box", low=2.0, high=1.0, conditional="normal"), ["low"]),
        (dict(space="unbounded", conditional="normal"), ["marginal"]),
        (dict(marginal="gennorm", beta=0.0), ["beta"]),
    ],
)
def test_bad_prior_parameters_are_value_errors(kwargs, needles):
    raises(ValueError, lambda: clica.Prior(**kwargs), *needles)


def test_bad_sampling_arguments_are_value_errors():
    sphere = clica.Prior("sphere", 3)
    raises(ValueError, lambda: sphere.sample_marginal(-5), "`n`")
    raises(ValueError, lambda: sphere.sample_marginal(10, seed=-1), "`seed`")
    raises(TypeError, lambda: sphere.sample_marginal(2.5), "integer")
    raises(ValueError, lambda: sphere.sample_conditional(Z[:, :2]), "z has 2 columns but the prior's dimension is 3")
    raises(ValueError, lambda: sphere.sample_conditional(np.zeros((0, 3))), "no rows")
    nan = Z.copy()
    nan[7, 1] = np.nan
    raises(ValueError, lambda: sphere.sample_conditional(nan), "non-finite value in z at row 7, column 1")
    zero = Z.copy()
    zero[3] = 0.0
    raises(ValueError, lambda: sphere.sample_conditional(zero), "row 3 has norm 0")
    huge = Z.copy()
    huge[2] = 1e300
    raises(ValueError, lambda: sphere.sample_conditional(huge), "row 2 has norm inf")
    box = clica.Prior("box", 3, conditional="normal", low=0.0, high=1.0)
    raises(ValueError, lambda: box.sample_conditional(Z), "outside the box [0, 1]")
    # Unbounded anchors can be anything finite.
    assert np.isfinite(clica.Prior("unbounded", 3, marginal="normal", conditional="normal").sample_conditional(Z * 1e6)).all()


def test_bad_mixing_arguments_are_value_errors():
    raises(ValueError, lambda: clica.Mixing(0), "dim")
    raises(ValueError, lambda: clica.Mixing(3, layers=-2), "`layers`")
    raises(ValueError, lambda: clica.Mixing(3, cond_pool=0, seed=1), "cond_pool")
    raises(ValueError, lambda: clica.Mixing(3, cond_ratio=1.5), "cond_ratio")
    g = clica.Mixing(3, cond_pool=100)
    raises(ValueError, lambda: g.forward(Z[:, :2]), "z has 2 columns, expected 3")
    raises(ValueError, lambda: g.inverse(np.full((4, 3), np.inf)), "non-finite value in x")
    relu = clica.Mixing(3, cond_pool=100, activation="relu")
    assert np.isfinite(relu.forward(Z)).all()
    raises(ValueError, lambda: relu.inverse(Z), "ReLU network is not injective")


def test_bad_configurations_are_value_errors_naming_the_key(tmp_path):
    raises(ValueError, lambda: clica.train(overrides=["train.bacth=3"], out=tmp_path / "a", progress=False), "bacth")
    raises(ValueError, lambda: clica.train(overrides={"train.steps": 0}, progress=False), "train.steps")
    raises(ValueError, lambda: clica.train({"loss": {"tau": -1.0}}, progress=False), "loss.tau")
    raises(ValueError, lambda: clica.Data({"data": {"conditional": {"kind": "vmf", "kappa": "much"}}}), "kappa")
    raises(ValueError, lambda: clica.Data(overrides={"data.space.kind": "box"}), "von Mises-Fisher")
    raises(TypeError, lambda: clica.train({"train": {"ema": None}}, progress=False), "train.ema")
    raises(TypeError, lambda: clica.train(overrides="train.steps=3", progress=False), "overrides")
    raises(TypeError, lambda: clica.train(42, progress=False), "config")
    raises(OSError, lambda: clica.train(tmp_path / "missing.toml", progress=False), "missing.toml")
    raises(ValueError, lambda: clica.Data(overrides=TINY).batches(batch=0), "batch")
    raises(ValueError, lambda: clica.resume(tmp_path / "nowhere", progress=False), "nowhere")


def test_a_run_folder_held_by_another_process_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # Process 1 runs, so its lock is live.
    (out / ".lock").write_text("1\n")
    msg = raises(RuntimeError, lambda: clica.train(overrides=TINY, out=out, progress=False), "in use by another clica process (pid 1)")
    assert str(out) in msg
    assert not (out / "summary.json").exists()
    # A stale lock (a process id that does not run) is taken over, used and released.
    (out / ".lock").write_text(f"{2**22 + 12345}\n")
    assert clica.train(overrides=TINY, out=out, progress=False)["status"] == "completed"
    assert not (out / ".lock").exists()


def test_a_completed_run_resumes_to_its_summary(tmp_path):
    summary = clica.train(overrides=TINY, out=tmp_path / "run", progress=False)
    assert clica.resume(tmp_path / "run", progress=False) == summary
    raises(ValueError, lambda: clica.resume(tmp_path / "run", overrides=["train.steps=31"], progress=False), "train.steps")
    assert not os.path.exists(tmp_path / "run" / ".lock")
