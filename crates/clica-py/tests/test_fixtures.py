"""Agreement with the scikit-learn 1.9.1 / SciPy 1.17.1 reference values in tests/fixtures/
(metrics.json), to 1e-9, as the Rust tests check clica-eval."""

import numpy as np
import pytest

import clica
from conftest import load_fixture

TOL = 1e-9
CASES = load_fixture("metrics.json")


def test_the_fixture_has_cases():
    assert len(CASES) > 0
    assert any("mcc_pearson" in c for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_scores_match_the_reference(case):
    z = np.array(case["z"], dtype=np.float64)
    h = np.array(case["z_hat"], dtype=np.float64)
    assert abs(clica.r2(z, h) - case["r2_in_sample"]) <= TOL
    assert abs(clica.r2_held_out(z, h) - case["r2_held_out_first_half_fit"]) <= TOL
    scores = clica.evaluate(z, h)
    assert abs(scores["r2"] - case["r2_in_sample"]) <= TOL
    assert abs(scores["r2_held_out"] - case["r2_held_out_first_half_fit"]) <= TOL
    if "mcc_pearson" not in case:
        # A representation narrower than the latents (or a case without MCC) has none.
        if h.shape[1] < z.shape[1]:
            assert scores["mcc_pearson"] is None
        return
    for kind in ["pearson", "spearman"]:
        key = f"mcc_{kind}"
        assert abs(clica.mcc(z, h, kind) - case[key]) <= TOL, key
        assert abs(scores[key] - case[key]) <= TOL, key
    assert scores["assignment"] == case["mcc_pearson_assignment"]


def test_a_wrong_reference_would_be_caught():
    case = next(c for c in CASES if "mcc_pearson" in c)
    z = np.array(case["z"])
    h = np.array(case["z_hat"])
    # Scoring against other data moves the scores far beyond the tolerance.
    assert abs(clica.r2(z, h[::-1]) - case["r2_in_sample"]) > TOL
