"""Core-vs-rest tests whose unit is a street, not a sample point.

Points 30 m apart on one street see the same facades, so their values are correlated and
a point-level Welch or Mann–Whitney test counts one street many times over: its p-values
are far too small (1e-46 on a few hundred points). The two tests here let the street be
the unit of evidence:

- a permutation test that reassigns whole streets between core and rest. A street that
  crosses a core boundary is split there (its core part and its rest part are two units),
  since a unit must lie on one side to be reassigned. Exact under the null that the values
  of a unit do not depend on its side, however correlated the points within a unit are.
- ordinary least squares of the value on a core indicator with cluster-robust (CR1)
  standard errors, streets as clusters and t with G−1 degrees of freedom: the estimate is
  the point-level mean difference, its confidence interval and p-value allow for any
  correlation within a street.

Both need at least two units (clusters) on each side; otherwise they are None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

MIN_CLUSTERS = 2
PERMUTATIONS = 2000
# Chunks of permutations at a time keep the label matrix small on a city of many roads.
CHUNK = 500


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def units(clusters: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's unit (its street, split at the core boundary) and each unit's side."""
    pairs = np.stack([np.asarray(clusters, dtype=np.int64), np.asarray(core, dtype=np.int64)], axis=1)
    unique, index = np.unique(pairs, axis=0, return_inverse=True)
    return index.reshape(-1), unique[:, 1].astype(bool)


def draw_core_units(unit_core: np.ndarray, permutations: int, seed: int) -> np.ndarray:
    """The units each permutation puts on the core side, as a permutations × n_core array of
    unit indices (ascending in each row): every reassignment keeps the number of core units.

    The random part of the permutation test, the same for every element and for any values:
    it depends only on which units are core, the count and the seed, so a caller may keep it
    (flows/stats.py does, between refreshes that leave the units as they were). Drawn as
    whole rows of `unit_core` shuffled, CHUNK rows at a time.
    """
    rng = np.random.default_rng(seed)
    unit_core = np.asarray(unit_core, dtype=bool)
    n_core = int(unit_core.sum())
    chunks = []
    done = 0
    while done < permutations:
        size = min(CHUNK, permutations - done)
        labels = rng.permuted(np.broadcast_to(unit_core, (size, len(unit_core))), axis=1)
        chunks.append(np.nonzero(labels)[1].astype(np.int32).reshape(size, n_core))
        done += size
    return np.vstack(chunks) if chunks else np.empty((0, n_core), dtype=np.int32)


Draw = Callable[[np.ndarray, int, int], np.ndarray]


def permutation_test(
    values: np.ndarray,
    core: np.ndarray,
    clusters: np.ndarray,
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    draw: Draw = draw_core_units,
) -> dict[str, Any]:
    """Two-sided p of the point-level mean difference when whole units swap sides.

    `values` may hold several elements as columns (n × k): the same reassignments
    (`draw`, see draw_core_units) serve all of them; each costs a sum over its core units.
    p = (1 + #{|T*| ≥ |T|}) / (1 + permutations), which is never 0 and is valid for any
    number of permutations.
    """
    values = np.asarray(values, dtype=float)
    matrix = values.reshape(len(values), -1)
    index, unit_core = units(clusters, core)
    n_core, n_rest = int(unit_core.sum()), int((~unit_core).sum())
    out: dict = {"n_clusters_core": n_core, "n_clusters_rest": n_rest, "n_permutations": None}
    columns = matrix.shape[1]
    if n_core < MIN_CLUSTERS or n_rest < MIN_CLUSTERS:
        out["p"] = [None] * columns
        return out
    sums = np.stack([np.bincount(index, weights=matrix[:, j]) for j in range(columns)], axis=1)
    counts = np.bincount(index).astype(float)
    total_sum, total_n = sums.sum(axis=0), counts.sum()

    def differences(core_sum: np.ndarray, core_n: np.ndarray) -> np.ndarray:
        return core_sum / core_n[:, None] - (total_sum - core_sum) / (total_n - core_n)[:, None]

    observed = differences(sums[unit_core].sum(axis=0)[None, :], counts[unit_core].sum()[None])[0]
    # A relative tolerance: the observed labelling drawn again must count as extreme.
    threshold = np.abs(observed) - 1e-12 * np.maximum(1.0, np.abs(observed))
    drawn = draw(unit_core, permutations, seed)
    extreme = np.zeros(columns)
    for start in range(0, permutations, CHUNK):
        chosen = drawn[start : start + CHUNK]
        core_sum = np.stack([sums[:, j][chosen].sum(axis=1) for j in range(columns)], axis=1)
        extreme += (np.abs(differences(core_sum, counts[chosen].sum(axis=1))) >= threshold).sum(axis=0)
    p = (1 + extreme) / (1 + permutations)
    out["n_permutations"] = permutations
    out["p"] = [_finite(v) if math.isfinite(observed[j]) else None for j, v in enumerate(p)]
    return out


def cluster_robust(values: np.ndarray, core: np.ndarray, clusters: np.ndarray) -> dict[str, float | None]:
    """OLS of value on [1, core] with standard errors clustered by street (CR1, t with G−1 df)."""
    return cluster_robust_columns(np.asarray(values, dtype=float)[:, None], core, clusters)[0]


def cluster_robust_columns(
    matrix: np.ndarray, core: np.ndarray, clusters: np.ndarray
) -> list[dict[str, float | None]]:
    """cluster_robust of each column of `matrix` (n × k), the clusters found once for all.

    In closed form, as statsmodels' OLS(...).fit(cov_type="cluster", use_t=True) computes
    it (tests/test_street_inference.py checks the two agree): with one indicator the fit is
    the two sides' means, and the sandwich needs only each cluster's sums of residuals
    and of core residuals, so no design matrix or model object is built for a city's
    points (statsmodels took most of the comparison's time, its import included).
    """
    from scipy import stats as scistats

    matrix = np.asarray(matrix, dtype=float)
    core = np.asarray(core, dtype=bool)
    clusters = np.asarray(clusters)
    none: dict[str, float | None] = {"diff": None, "se": None, "ci_low": None, "ci_high": None, "p": None}
    if len(np.unique(clusters[core])) < MIN_CLUSTERS or len(np.unique(clusters[~core])) < MIN_CLUSTERS:
        return [dict(none) for _ in range(matrix.shape[1])]
    groups = np.unique(clusters, return_inverse=True)[1].reshape(-1)
    n, n_core, g = len(matrix), int(core.sum()), int(groups.max()) + 1
    bread = np.linalg.inv(np.array([[n, n_core], [n_core, n_core]], dtype=float))
    t = scistats.t(df=g - 1)
    out = []
    for values in matrix.T:
        mean_core, mean_rest = values[core].mean(), values[~core].mean()
        diff = mean_core - mean_rest
        residual = values - np.where(core, mean_core, mean_rest)
        # Per cluster, X_g' e_g = (sum of residuals, sum of core residuals).
        s0 = np.bincount(groups, weights=residual, minlength=g)
        s1 = np.bincount(groups, weights=residual * core, minlength=g)
        meat = np.array([[s0 @ s0, s0 @ s1], [s1 @ s0, s1 @ s1]])
        cov = bread @ meat @ bread * (g / (g - 1)) * ((n - 1) / (n - 2))
        se = _finite(math.sqrt(cov[1, 1])) if cov[1, 1] >= 0 else None
        if se is None or se == 0:
            out.append({**none, "diff": _finite(diff)})
            continue
        half = t.ppf(0.975) * se
        out.append(
            {
                "diff": _finite(diff),
                "se": se,
                "ci_low": _finite(diff - half),
                "ci_high": _finite(diff + half),
                "p": _finite(2 * t.sf(abs(diff / se))),
            }
        )
    return out
