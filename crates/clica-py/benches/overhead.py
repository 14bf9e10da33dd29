"""The cost of the Python layer, and clica.evaluate against scikit-learn + SciPy.

    python crates/clica-py/benches/overhead.py [--repeats 200]

1. Overhead of the Python call over the Rust function it wraps, in the same process: the
   median time of `clica.evaluate(z, x)` (4096 × 10) and of `Prior.sample_marginal` /
   `Prior.sample_conditional` (6144 × 10) against the median time of the same Rust
   computation timed inside the extension (`clica._clica._time_evaluate`,
   `_time_sampling`: no Python between the repeats). The two are measured in alternating
   rounds so that load from other processes hits both alike.
2. If scikit-learn and SciPy are importable: the same four scores computed with
   `LinearRegression` + `r2_score`, `numpy.corrcoef`, `scipy.stats.spearmanr` and
   `scipy.optimize.linear_sum_assignment` (checked to agree to 1e-9), timed the same way.
"""

import argparse
import statistics
import time

import numpy as np

import clica
from clica import _clica


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def alternate(python_fn, rust_fn, repeats, rounds=5):
    """Medians of the Python calls and of the Rust-only timings, `rounds` alternating rounds."""
    py, rust = [], []
    for _ in range(rounds):
        py += median_time(python_fn, repeats // rounds)
        rust += rust_fn(repeats // rounds)
    return statistics.median(py), statistics.median(rust)


def sklearn_scores(z, h):
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import spearmanr
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    d = z.shape[1]
    r2 = r2_score(z, LinearRegression().fit(h, z).predict(h))
    half = len(z) // 2
    fit = LinearRegression().fit(h[:half], z[:half])
    r2_held_out = r2_score(z[half:], fit.predict(h[half:]))

    def matched(rho):
        rows, cols = linear_sum_assignment(-np.abs(rho))
        return np.abs(rho[rows, cols]).mean(), cols

    pearson, assignment = matched(np.corrcoef(z.T, h.T)[:d, d:])
    spearman, _ = matched(spearmanr(z, h).statistic[:d, d:])
    return {"r2": r2, "r2_held_out": r2_held_out, "mcc_pearson": pearson, "mcc_spearman": spearman, "assignment": list(assignment)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    r = args.repeats

    z = clica.Prior("sphere", 10).sample_marginal(4096, seed=1)
    x = clica.Mixing(10, seed=1).forward(z)
    rows = []
    py, rust = alternate(lambda: clica.evaluate(z, x), lambda k: _clica._time_evaluate(z, x, k), r)
    rows.append(("evaluate, 4096 × 10", rust, py))

    prior = clica.Prior("sphere", 10, conditional="vmf", concentration=10.0)
    anchors = prior.sample_marginal(6144, seed=1)
    py, rust = alternate(lambda: prior.sample_marginal(6144, seed=1), lambda k: _clica._time_sampling(prior, 6144, 1, k)[0], r)
    rows.append(("Prior.sample_marginal, 6144 × 10 (uniform sphere)", rust, py))
    py, rust = alternate(lambda: prior.sample_conditional(anchors, seed=1), lambda k: _clica._time_sampling(prior, 6144, 1, k)[1], r)
    rows.append(("Prior.sample_conditional, 6144 × 10 (vMF κ = 10)", rust, py))

    print("| call | Rust alone | from Python | overhead |")
    print("|---|---|---|---|")
    for name, rust, py in rows:
        print(f"| {name} | {rust * 1e3:.3f} ms | {py * 1e3:.3f} ms | {100 * (py / rust - 1):+.1f} % |")

    try:
        ref = sklearn_scores(z, x)
    except ImportError as e:
        print(f"\n(scikit-learn/SciPy not importable: {e}; the comparison is skipped)")
        return
    import scipy
    import sklearn

    ours = clica.evaluate(z, x)
    for k in ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman"]:
        assert abs(ours[k] - ref[k]) <= 1e-9, (k, ours[k], ref[k])
    assert ours["assignment"] == ref["assignment"]
    py = statistics.median(median_time(lambda: clica.evaluate(z, x), r))
    sk = statistics.median(median_time(lambda: sklearn_scores(z, x), max(10, r // 4)))
    print(
        f"\nscikit-learn {sklearn.__version__} + SciPy {scipy.__version__} + NumPy {np.__version__}: "
        f"{sk * 1e3:.2f} ms; clica.evaluate: {py * 1e3:.2f} ms; ratio {sk / py:.1f}× "
        "(same four scores and assignment, agreeing to 1e-9)"
    )


if __name__ == "__main__":
    main()
