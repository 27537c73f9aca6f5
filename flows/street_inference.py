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
from typing import Any

import numpy as np

MIN_CLUSTERS = 2
PERMUTATIONS = 2000
# Chunks of permutations at a time keep the label matrix small on a city of many roads.
_CHUNK = 500


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def units(clusters: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's unit (its street, split at the core boundary) and each unit's side."""
    pairs = np.stack([np.asarray(clusters, dtype=np.int64), np.asarray(core, dtype=np.int64)], axis=1)
    unique, index = np.unique(pairs, axis=0, return_inverse=True)
    return index.reshape(-1), unique[:, 1].astype(bool)


def permutation_test(
    values: np.ndarray,
    core: np.ndarray,
    clusters: np.ndarray,
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Two-sided p of the point-level mean difference when whole units swap sides.

    `values` may hold several elements as columns (n × k): the same reassignments serve
    all of them, so one run costs one matrix product per chunk. p = (1 + #{|T*| ≥ |T|}) /
    (1 + permutations), which is never 0 and is valid for any number of permutations.
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

    def differences(labels: np.ndarray) -> np.ndarray:
        core_sum, core_n = labels @ sums, labels @ counts
        return core_sum / core_n[:, None] - (total_sum - core_sum) / (total_n - core_n)[:, None]

    observed = differences(unit_core[None, :].astype(float))[0]
    rng = np.random.default_rng(seed)
    extreme = np.zeros(columns)
    done = 0
    while done < permutations:
        size = min(_CHUNK, permutations - done)
        labels = rng.permuted(np.broadcast_to(unit_core, (size, len(unit_core))), axis=1)
        # A relative tolerance: the observed labelling drawn again must count as extreme.
        tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
        extreme += (np.abs(differences(labels.astype(float))) >= np.abs(observed) - tolerance).sum(axis=0)
        done += size
    p = (1 + extreme) / (1 + permutations)
    out["n_permutations"] = permutations
    out["p"] = [_finite(v) if math.isfinite(observed[j]) else None for j, v in enumerate(p)]
    return out


def cluster_robust(values: np.ndarray, core: np.ndarray, clusters: np.ndarray) -> dict[str, float | None]:
    """OLS of value on [1, core] with standard errors clustered by street (CR1, t with G−1 df)."""
    import statsmodels.api as sm

    values = np.asarray(values, dtype=float)
    core = np.asarray(core, dtype=bool)
    clusters = np.asarray(clusters)
    none: dict[str, float | None] = {"diff": None, "se": None, "ci_low": None, "ci_high": None, "p": None}
    if len(np.unique(clusters[core])) < MIN_CLUSTERS or len(np.unique(clusters[~core])) < MIN_CLUSTERS:
        return none
    groups = np.unique(clusters, return_inverse=True)[1].reshape(-1)
    design = np.column_stack([np.ones(len(values)), core.astype(float)])
    fit = sm.OLS(values, design).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = fit.conf_int(alpha=0.05)[1]
    se = _finite(fit.bse[1])
    if se is None or se == 0:
        return {**none, "diff": _finite(fit.params[1])}
    return {
        "diff": _finite(fit.params[1]),
        "se": se,
        "ci_low": _finite(low),
        "ci_high": _finite(high),
        "p": _finite(fit.pvalues[1]),
    }
