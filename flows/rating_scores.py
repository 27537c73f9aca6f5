"""Scores from pairwise choices: ELO, Bradley–Terry, and how far to trust the ranking.

Pure numpy/scipy on integer item indices, so it can be checked against independent code.

Bradley–Terry is fitted as choix's `opt_pairwise` defines it — minimise
`alpha·Σθ² + Σ log(1 + exp(-(θ_winner - θ_loser)))` — but with a vectorised objective and
L-BFGS: choix's optimisers keep a dense n×n Hessian and loop in Python, which a pool of
thousands of images and tens of thousands of choices cannot afford. The small `alpha`
keeps an image that never lost (or never won) finite, and makes the Hessian invertible
for standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse, stats

ELO_INITIAL = 1500.0
ELO_K = 32.0
BT_ALPHA = 0.01
# Standard errors from the full inverse Hessian up to this many images; above it from its
# diagonal alone (1/sqrt(H_ii), a lower bound), to keep memory linear.
DENSE_SE_LIMIT = 4000


def elo(
    n_items: int,
    left: np.ndarray,
    right: np.ndarray,
    left_won: np.ndarray,
    *,
    k: float = ELO_K,
    initial: float = ELO_INITIAL,
) -> np.ndarray:
    """ELO after applying the choices in the given (answer) order.

    Written in the same left/right terms, and the same operation order, as
    rating_api.submit_choice, so the online values are reproduced to the last bits.
    """
    scores = np.full(n_items, float(initial))
    for a, b, won in zip(left.tolist(), right.tolist(), left_won.tolist(), strict=True):
        delta = k * ((1.0 if won else 0.0) - 1.0 / (1.0 + 10.0 ** ((scores[b] - scores[a]) / 400.0)))
        scores[a] = scores[a] + delta
        scores[b] = scores[b] - delta
    return scores


def _bt_objective(theta: np.ndarray, winners: np.ndarray, losers: np.ndarray, alpha: float):
    diff = theta[winners] - theta[losers]
    value = alpha * float(theta @ theta) + float(np.logaddexp(0.0, -diff).sum())
    z = -np.exp(-np.logaddexp(0.0, diff))  # d/d(diff) of log(1 + e^-diff) = -1/(1 + e^diff)
    grad = 2.0 * alpha * theta
    np.add.at(grad, winners, z)
    np.add.at(grad, losers, -z)
    return value, grad


def bt_hessian(theta: np.ndarray, winners: np.ndarray, losers: np.ndarray, alpha: float) -> sparse.csr_matrix:
    """Hessian of the penalised negative log-likelihood (sparse: one entry per compared pair)."""
    n = len(theta)
    p = 1.0 / (1.0 + np.exp(-(theta[winners] - theta[losers])))
    w = p * (1.0 - p)
    rows = np.concatenate([winners, losers, winners, losers, np.arange(n)])
    cols = np.concatenate([winners, losers, losers, winners, np.arange(n)])
    vals = np.concatenate([w, w, -w, -w, np.full(n, 2.0 * alpha)])
    return sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()


def bradley_terry(
    n_items: int, winners: np.ndarray, losers: np.ndarray, *, alpha: float = BT_ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """(scores in logits, standard errors): the penalised maximum-likelihood estimate."""
    winners = np.asarray(winners, dtype=np.int64)
    losers = np.asarray(losers, dtype=np.int64)
    if n_items == 0:
        return np.zeros(0), np.zeros(0)
    result = optimize.minimize(
        _bt_objective,
        np.zeros(n_items),
        args=(winners, losers, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20000, "gtol": 1e-10, "ftol": 1e-15},
    )
    theta = result.x
    hessian = bt_hessian(theta, winners, losers, alpha)
    if n_items <= DENSE_SE_LIMIT:
        covariance = np.linalg.inv(hessian.toarray())
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    else:
        se = 1.0 / np.sqrt(hessian.diagonal())
    return theta, se


def spearman_brown(r: float) -> float:
    """Reliability of the whole from the correlation between two halves."""
    return float("nan") if not np.isfinite(r) or r <= -1 else 2.0 * r / (1.0 + r)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def split_half(
    n_items: int, winners: np.ndarray, losers: np.ndarray, *, seed: int = 0, splits: int = 5
) -> tuple[float, float]:
    """(median Spearman between the rankings of two random halves, Spearman–Brown corrected).

    Items are compared only where they appear in both halves.
    """
    rng = np.random.default_rng(seed)
    m = len(winners)
    if m < 4:
        return float("nan"), float("nan")
    rs = []
    for _ in range(splits):
        order = rng.permutation(m)
        halves = order[: m // 2], order[m // 2 :]
        scores, seen = [], []
        for half in halves:
            theta, _ = bradley_terry(n_items, winners[half], losers[half])
            scores.append(theta)
            seen.append(np.bincount(np.concatenate([winners[half], losers[half]]), minlength=n_items) > 0)
        both = seen[0] & seen[1]
        rs.append(_spearman(scores[0][both], scores[1][both]))
    r = float(np.nanmedian(rs)) if np.isfinite(rs).any() else float("nan")
    return r, spearman_brown(r)


def lag_correlation(n_items: int, winners: np.ndarray, losers: np.ndarray, lag: int) -> float:
    """Spearman between the ranking now and the ranking `lag` choices ago (over the items
    compared by then)."""
    m = len(winners)
    if lag <= 0 or m - lag < 2:
        return float("nan")
    now, _ = bradley_terry(n_items, winners, losers)
    before, _ = bradley_terry(n_items, winners[: m - lag], losers[: m - lag])
    seen = np.bincount(np.concatenate([winners[: m - lag], losers[: m - lag]]), minlength=n_items) > 0
    return _spearman(now[seen], before[seen])


@dataclass
class Agreement:
    pairs: int  # pairs decided by two or more raters
    rater_pairs: int  # (pair, rater, other rater) combinations compared
    agreement: float  # share of those in which both raters chose the same image


def repeated_pair_agreement(
    raters: np.ndarray, low: np.ndarray, high: np.ndarray, low_won: np.ndarray
) -> Agreement:
    """How often two raters who judged the same pair chose the same image."""
    groups: dict[tuple[int, int], dict[int, bool]] = {}
    for r, a, b, won in zip(raters.tolist(), low.tolist(), high.tolist(), low_won.tolist(), strict=True):
        groups.setdefault((a, b), {})[r] = bool(won)
    pairs = agree = total = 0
    for votes in groups.values():
        if len(votes) < 2:
            continue
        pairs += 1
        wins = sum(votes.values())
        n = len(votes)
        total += n * (n - 1) // 2
        agree += wins * (wins - 1) // 2 + (n - wins) * (n - wins - 1) // 2
    return Agreement(pairs, total, agree / total if total else float("nan"))


def kendall_tau(estimated: np.ndarray, truth: np.ndarray) -> float:
    return float(stats.kendalltau(estimated, truth).statistic)
