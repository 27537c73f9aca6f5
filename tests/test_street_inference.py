"""Street-level tests (flows/street_inference.py) against independent computations and a simulation.

The simulation is the reason they exist: points on one street share a street effect and
there is no true core-vs-rest difference, so every rejection is a false positive. The
point-level Welch test rejects far more often than its 5%; the street-level tests do not.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scistats

from streetaudit.flows.stats import compare
from streetaudit.flows.street_inference import cluster_robust, permutation_test, units

ALPHA = 0.05


def simulated(rng: np.random.Generator, streets: int = 40, core_streets: int = 10, per_street: int = 8):
    """No true difference; a street effect (sd 1) much larger than the point noise (sd 0.5)."""
    clusters = np.repeat(np.arange(streets), per_street)
    effect = rng.normal(0.0, 1.0, streets)
    values = effect[clusters] + rng.normal(0.0, 0.5, len(clusters))
    core = clusters < core_streets
    return values, core, clusters


@pytest.mark.slow
def test_street_level_tests_keep_their_size_where_point_level_welch_does_not(record_property):
    rng = np.random.default_rng(20261203)
    datasets = 200
    rejected = {"welch": 0, "permutation": 0, "cluster_robust": 0}
    for i in range(datasets):
        values, core, clusters = simulated(rng)
        welch = scistats.ttest_ind(values[core], values[~core], equal_var=False).pvalue
        rejected["welch"] += int(welch < ALPHA)
        rejected["permutation"] += int(
            permutation_test(values, core, clusters, permutations=999, seed=i)["p"][0] < ALPHA
        )
        rejected["cluster_robust"] += int(cluster_robust(values, core, clusters)["p"] < ALPHA)
    rates = {name: count / datasets for name, count in rejected.items()}
    record_property("false_positive_rates", rates)
    print(f"false-positive rates at alpha 0.05 over {datasets} null datasets: {rates}")
    # Binomial band around 5% for 200 datasets: sd 1.5%, so 10% is more than 3 sd away.
    assert 0.01 <= rates["permutation"] <= 0.10, rates
    assert 0.01 <= rates["cluster_robust"] <= 0.10, rates
    # Design effect 1 + (8 - 1) * 0.8 = 6.6: the point-level test is far too liberal.
    assert rates["welch"] > 0.15, rates


def test_permutation_p_matches_exact_enumeration_of_unit_reassignments():
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(7), [3, 5, 2, 4, 6, 3, 4])
    core = np.isin(clusters, [0, 1])
    core[clusters == 2] = [True, False]  # street 2 crosses the boundary: two units
    values = rng.normal(0, 1, len(clusters)) + 0.8 * core
    index, unit_core = units(clusters, core)
    assert len(unit_core) == 8 and unit_core.sum() == 3

    def diff(labels: np.ndarray) -> float:
        side = labels[index]
        return values[side].mean() - values[~side].mean()

    observed = diff(unit_core)
    labellings = []
    for chosen in itertools.combinations(range(8), 3):
        labels = np.zeros(8, dtype=bool)
        labels[list(chosen)] = True
        labellings.append(abs(diff(labels)) >= abs(observed) - 1e-12)
    exact = float(np.mean(labellings))
    result = permutation_test(values, core, clusters, permutations=20_000, seed=1)
    assert result["n_clusters_core"] == 3 and result["n_clusters_rest"] == 5
    # Monte Carlo error of a p near 0.1 with 20,000 draws: sd about 0.002.
    assert math.isclose(result["p"][0], exact, abs_tol=0.01), (result["p"], exact)
    # The same draws serve several elements at once: a second column is tested alike.
    both = permutation_test(np.column_stack([values, -values]), core, clusters, permutations=20_000, seed=1)
    assert both["p"][0] == both["p"][1] == result["p"][0]


def test_cluster_robust_equals_the_cr1_sandwich_computed_with_numpy():
    rng = np.random.default_rng(8)
    values, core, clusters = simulated(rng, streets=25, core_streets=9, per_street=5)
    core[::7] = ~core[::7]  # some streets cross the boundary: clusters are streets, not sides
    got = cluster_robust(values, core, clusters)
    x = np.column_stack([np.ones(len(values)), core.astype(float)])
    beta = np.linalg.solve(x.T @ x, x.T @ values)
    residual = values - x @ beta
    bread = np.linalg.inv(x.T @ x)
    meat = sum(
        np.outer(x[clusters == g].T @ residual[clusters == g], x[clusters == g].T @ residual[clusters == g])
        for g in np.unique(clusters)
    )
    n, k, g = len(values), 2, len(np.unique(clusters))
    cov = bread @ meat @ bread * (g / (g - 1)) * ((n - 1) / (n - k))
    se = math.sqrt(cov[1, 1])
    t = scistats.t(df=g - 1)
    assert math.isclose(got["diff"], values[core].mean() - values[~core].mean(), rel_tol=1e-9)
    assert math.isclose(got["se"], se, rel_tol=1e-9)
    assert math.isclose(got["p"], 2 * t.sf(abs(beta[1] / se)), rel_tol=1e-9)
    assert math.isclose(got["ci_low"], beta[1] - t.ppf(0.975) * se, rel_tol=1e-9)
    assert math.isclose(got["ci_high"], beta[1] + t.ppf(0.975) * se, rel_tol=1e-9)


def test_fewer_than_two_clusters_on_a_side_gives_none():
    values = np.arange(12, dtype=float)
    clusters = np.repeat([1, 2, 3], 4)
    core = clusters == 1
    assert permutation_test(values, core, clusters)["p"] == [None]
    assert cluster_robust(values, core, clusters)["p"] is None


@pytest.mark.parametrize("n_core", [1, 3])
def test_cohens_d_with_one_point_uses_the_other_groups_spread(n_core):
    rng = np.random.default_rng(n_core)
    core, rest = rng.normal(1, 1, n_core), rng.normal(0, 1, 9)
    squares = ((core - core.mean()) ** 2).sum() + ((rest - rest.mean()) ** 2).sum()
    expected = (core.mean() - rest.mean()) / math.sqrt(squares / (n_core + 9 - 2))
    assert math.isclose(compare(core, rest)["cohens_d"], expected, rel_tol=1e-12)
    assert compare(np.array([1.0]), np.array([2.0]))["cohens_d"] is None  # no degrees of freedom


def test_cluster_robust_gives_what_statsmodels_gives():
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    values, core, clusters = simulated(rng, streets=30, core_streets=8, per_street=6)
    core[::5] = ~core[::5]
    groups = np.unique(clusters, return_inverse=True)[1]
    design = np.column_stack([np.ones(len(values)), core.astype(float)])
    fit = sm.OLS(values, design).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = fit.conf_int(alpha=0.05)[1]
    got = cluster_robust(values, core, clusters)
    expected = {"diff": fit.params[1], "se": fit.bse[1], "ci_low": low, "ci_high": high, "p": fit.pvalues[1]}
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-10), (key, got[key], value)
