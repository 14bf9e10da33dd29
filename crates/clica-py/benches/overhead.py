"""The cost of the Python layer, and clica.evaluate against scikit-learn + SciPy.

    python crates/clica-py/benches/overhead.py [--repeats 200]

1. Overhead of the Python call over the Rust function it wraps, in the same process: the
   median time of `clica.evaluate(z, x)` (4096 × 10) and of `Prior.sample_marginal` /
   `Prior.sample_conditional` (6144 × 10) against the median time of the same Rust
   computation timed inside the extension (`clica._clica._time_evaluate`,
   `_time_marginal`, `_time_conditional`: no Python between the repeats). The two are measured in alternating
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


def times(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def alternate(python_fn, rust_fn, repeats, per_round=3):
    """Paired rounds: `per_round` Python calls, then `per_round` Rust-only timings. Returns the
    median Rust time, the median Python time and the median over rounds of the ratio of the
    round's fastest Python call to its fastest Rust run (pairing cancels load that drifts
    between rounds)."""
    py, rust, ratios = [], [], []
    for _ in range(max(1, repeats // per_round)):
        p = times(python_fn, per_round)
        r = rust_fn(per_round)
        py += p
        rust += r
        ratios.append(min(p) / min(r))
    return statistics.median(rust), statistics.median(py), statistics.median(ratios)


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
    rows.append(("evaluate, 4096 × 10", *alternate(lambda: clica.evaluate(z, x), lambda k: _clica._time_evaluate(z, x, k), r)))

    prior = clica.Prior("sphere", 10, conditional="vmf", concentration=10.0)
    anchors = prior.sample_marginal(6144, seed=1)
    rows.append(("Prior.sample_marginal, 6144 × 10 (uniform sphere)", *alternate(lambda: prior.sample_marginal(6144, seed=1), lambda k: _clica._time_marginal(prior, 6144, 1, k), r)))
    rows.append(("Prior.sample_conditional, 6144 × 10 (vMF κ = 10)", *alternate(lambda: prior.sample_conditional(anchors, seed=1), lambda k: _clica._time_conditional(prior, anchors, 1, k), r)))

    print("| call | Rust alone (median) | from Python (median) | overhead (median of paired rounds) |")
    print("|---|---|---|---|")
    for name, rust, py, ratio in rows:
        print(f"| {name} | {rust * 1e3:.3f} ms | {py * 1e3:.3f} ms | {100 * (ratio - 1):+.1f} % |")

    check = statistics.median(_clica._time_conditional(prior, anchors, 1, r, check_only=True))
    print(f"\nof which sample_conditional's check of its anchors (finite, on the sphere), which the Rust function asserts instead: {check * 1e3:.3f} ms")

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
    # Paired the same way: one scikit-learn/SciPy computation, then one clica.evaluate.
    pairs = [(times(lambda: sklearn_scores(z, x), 1)[0], times(lambda: clica.evaluate(z, x), 1)[0]) for _ in range(max(10, r // 4))]
    sk = statistics.median(p[0] for p in pairs)
    py = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    print(
        f"\nscikit-learn {sklearn.__version__} + SciPy {scipy.__version__} + NumPy {np.__version__}: "
        f"{sk * 1e3:.2f} ms; clica.evaluate: {py * 1e3:.2f} ms; ratio {ratio:.1f}× "
        "(same four scores and assignment, agreeing to 1e-9)"
    )


if __name__ == "__main__":
    main()
