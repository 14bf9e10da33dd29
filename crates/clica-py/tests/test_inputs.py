"""Inputs in every layout numpy makes: float32, Fortran order, non-contiguous and reversed views,
integers and lists. float64 inputs give exactly the scores of their C-ordered copies."""

import numpy as np
import pytest

import clica
from conftest import same_bytes


@pytest.fixture(scope="module")
def zx():
    z = clica.Prior("box", 6, conditional="normal", concentration=0.1).sample_marginal(1000, seed=5)
    x = clica.Mixing(6, seed=5, cond_pool=500).forward(z)
    return z, x


def layouts(a):
    """(name, array) views of `a`'s values in other memory layouts."""
    wide = np.zeros((a.shape[0] * 2, a.shape[1] * 3))
    wide[::2, ::3] = a
    reversed_rows = np.ascontiguousarray(a[::-1])[::-1]
    return [
        ("fortran", np.asfortranarray(a)),
        ("strided", wide[::2, ::3]),
        ("reversed", reversed_rows),
        ("transposed", np.ascontiguousarray(a.T).T),
    ]


def test_layouts_hold_the_same_values(zx):
    z, _ = zx
    for name, v in layouts(z):
        assert not v.flags.c_contiguous, name
        assert np.array_equal(v, z), name


def test_evaluate_is_the_same_in_every_layout(zx):
    z, x = zx
    want = clica.evaluate(z, x)
    for (zn, zv), (xn, xv) in zip(layouts(z), reversed(layouts(x))):
        assert clica.evaluate(zv, xv) == want, (zn, xn)
        assert clica.r2(zv, xv) == want["r2"]
        assert clica.r2_held_out(zv, xv) == want["r2_held_out"]
        assert clica.mcc(zv, xv, "spearman") == want["mcc_spearman"]


def test_float32_is_widened_exactly(zx):
    z, x = zx
    x32 = x.astype(np.float32)
    assert clica.evaluate(z, x32) == clica.evaluate(z, x32.astype(np.float64))
    assert clica.evaluate(np.asfortranarray(z.astype(np.float32)), x32[:, ::-1]) == clica.evaluate(
        z.astype(np.float32).astype(np.float64), np.ascontiguousarray(x32[:, ::-1]).astype(np.float64)
    )


def test_other_real_dtypes_and_lists_are_converted(zx):
    z, x = zx
    zi = np.rint(z * 100).astype(np.int64)
    assert clica.evaluate(zi, x) == clica.evaluate(zi.astype(np.float64), x)
    assert clica.r2(z[:50].tolist(), x[:50].tolist()) == clica.r2(z[:50], x[:50])
    big_endian = x.astype(">f8")
    assert clica.evaluate(z, big_endian) == clica.evaluate(z, x)


def test_samplers_and_mixing_take_every_layout(zx):
    z, x = zx
    prior = clica.Prior("box", 6, conditional="normal", concentration=0.1)
    g = clica.Mixing(6, seed=5, cond_pool=500)
    want_tilde = prior.sample_conditional(z, seed=9)
    want_inverse = g.inverse(x)
    for (name, zv), (_, xv) in zip(layouts(z), layouts(x)):
        assert same_bytes(prior.sample_conditional(zv, seed=9), want_tilde), name
        assert same_bytes(g.forward(zv), x), name
        assert same_bytes(g.inverse(xv), want_inverse), name
    assert same_bytes(g.forward(z.astype(np.float32)), g.forward(z.astype(np.float32).astype(np.float64)))


def test_inputs_are_not_modified(zx):
    z, x = zx
    z0, x0 = z.copy(), x.copy()
    clica.evaluate(z, x)
    clica.Prior("box", 6, conditional="normal", concentration=0.1).sample_conditional(z, seed=1)
    clica.Mixing(6, seed=5, cond_pool=500).inverse(x)
    assert same_bytes(z, z0) and same_bytes(x, x0)


def test_outputs_are_fresh_c_ordered_float64_arrays(zx):
    z, _ = zx
    out = clica.Prior("sphere", 4).sample_marginal(10, seed=0)
    assert out.dtype == np.float64 and out.flags.c_contiguous and out.flags.writeable
    y = clica.Mixing(6, seed=5, cond_pool=500).forward(z)
    assert y.flags.c_contiguous and y is not z
