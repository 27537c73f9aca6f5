"""ELO, Bradley–Terry and the reliability figures against independent computations."""

from __future__ import annotations

import choix
import numpy as np
import pytest
from scipy import optimize, stats

from streetaudit.flows import rating_scores as scores


def small_case(seed: int = 1, n: int = 6, m: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = np.linspace(-1.5, 1.5, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    a_wins = rng.random(m) < 1 / (1 + np.exp(-(theta[a] - theta[b])))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def direct_negative_log_posterior(theta, winners, losers, alpha):
    total = alpha * np.sum(theta**2)
    for w, lo in zip(winners, losers, strict=True):
        total += np.log1p(np.exp(-(theta[w] - theta[lo])))
    return total


def test_bradley_terry_equals_a_direct_scipy_mle_and_choix():
    winners, losers = small_case()
    theta, se = scores.bradley_terry(6, winners, losers, alpha=0.01)

    # The likelihood ignores a common shift and the penalty is least at a zero sum, so the
    # optimum sums to zero: searching the five free scores leaves Nelder-Mead no flat valley.
    def centred(free):
        return np.append(free, -free.sum())

    free = optimize.minimize(
        lambda x: direct_negative_log_posterior(centred(x), winners, losers, 0.01),
        np.zeros(5),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 200000, "maxfev": 200000},
    ).x
    direct = centred(free)
    assert np.allclose(theta, direct, atol=1e-4)
    reference = choix.opt_pairwise(6, list(zip(winners.tolist(), losers.tolist(), strict=True)), alpha=0.01)
    assert np.allclose(theta, reference, atol=1e-5)
    # Standard errors: the inverse of a finite-difference Hessian of the same objective.
    h = 1e-4
    hessian = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            e_i, e_j = np.eye(6)[i] * h, np.eye(6)[j] * h
            f = lambda t: direct_negative_log_posterior(t, winners, losers, 0.01)  # noqa: E731
            hessian[i, j] = (
                f(theta + e_i + e_j) - f(theta + e_i - e_j) - f(theta - e_i + e_j) + f(theta - e_i - e_j)
            ) / (4 * h * h)
    assert np.allclose(se, np.sqrt(np.diag(np.linalg.inv(hessian))), rtol=1e-3)


def test_an_unbeaten_image_stays_finite():
    winners = np.array([0, 0, 0, 1])
    losers = np.array([1, 2, 2, 2])
    theta, se = scores.bradley_terry(3, winners, losers)
    assert np.all(np.isfinite(theta)) and np.all(np.isfinite(se))
    assert theta[0] > theta[1] > theta[2]


def test_elo_follows_the_formula_in_answer_order():
    left = np.array([0, 1, 0, 2])
    right = np.array([1, 2, 2, 0])
    won = np.array([True, False, True, True])
    r = {0: 1500.0, 1: 1500.0, 2: 1500.0}
    for a, b, w in zip(left, right, won, strict=True):
        winner, loser = (a, b) if w else (b, a)
        e = 1 / (1 + 10 ** ((r[loser] - r[winner]) / 400))
        r[winner], r[loser] = r[winner] + 32 * (1 - e), r[loser] - 32 * (1 - e)
    got = scores.elo(3, left, right, won)
    assert np.allclose(got, [r[0], r[1], r[2]], atol=1e-12)
    assert np.isclose(got.sum(), 4500.0)  # ELO is zero-sum


def test_spearman_brown_and_split_half_on_consistent_data():
    assert scores.spearman_brown(0.5) == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    n, m = 40, 1600
    theta = rng.normal(size=n) * 2
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    a_wins = rng.random(m) < 1 / (1 + np.exp(-(theta[a] - theta[b])))
    winners, losers = np.where(a_wins, a, b), np.where(a_wins, b, a)
    r, sb = scores.split_half(n, winners, losers, seed=1)
    assert 0.8 < r < sb < 1
    assert scores.lag_correlation(n, winners, losers, 100) > 0.95
    est, _ = scores.bradley_terry(n, winners, losers)
    assert scores.kendall_tau(est, theta) == pytest.approx(stats.kendalltau(est, theta).statistic)
    assert scores.kendall_tau(est, theta) > 0.7


def test_agreement_counts_rater_pairs_on_repeated_pairs():
    raters = np.array([1, 2, 3, 1, 2, 4])
    low = np.array([0, 0, 0, 5, 5, 7])
    high = np.array([1, 1, 1, 6, 6, 8])
    low_won = np.array([True, True, False, True, False, True])
    a = scores.repeated_pair_agreement(raters, low, high, low_won)
    # pair (0,1): 3 raters, 2 vs 1 -> 1 of 3 rater pairs agree; pair (5,6): 0 of 1; (7,8): one rater.
    assert (a.pairs, a.rater_pairs) == (2, 4) and a.agreement == pytest.approx(1 / 4)
