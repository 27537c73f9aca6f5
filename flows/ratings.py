"""The rating campaign: its settings, recomputing ratings from the record, and its status.

`comparison` is the record; everything here is derived from it and can be rebuilt at any
time, also while raters are choosing (the Prefect flow `ratings` does so on a schedule).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import psycopg
from prefect import flow

from streetaudit.flows import rating_scores as scores
from streetaudit.flows.errors import InputError
from streetaudit.sql.rows import one, scalar

STRATEGIES = ("adaptive", "random")
METHODS = ("elo", "bt")
# The stability rule `ratings status` states and applies.
STABLE_RELIABILITY = 0.80
STABLE_LAG_CORRELATION = 0.95
LAG_SHARE = 0.10
STABILITY_RULE = (
    f"stable when the split-half reliability (Spearman–Brown) is at least {STABLE_RELIABILITY:.2f} "
    f"and the ranking now correlates (Spearman) at least {STABLE_LAG_CORRELATION:.2f} with the ranking "
    f"{LAG_SHARE:.0%} of the choices ago"
)


# -- campaign --------------------------------------------------------------------------------
@dataclass
class Campaign:
    strategy: str
    area: str | None
    target: int
    k: float
    repeat_share: float
    question: str
    pool: int


def read_campaign(conn: psycopg.Connection) -> Campaign:
    row = conn.execute(
        """SELECT strategy, area, target, k, repeat_share, question,
                  (SELECT count(*) FROM streetaudit.rating_pool)
           FROM streetaudit.rating_campaign"""
    ).fetchone()
    assert row is not None  # the campaign's single row is created by the migration
    return Campaign(*row)


def set_campaign(
    url: str,
    *,
    strategy: str | None = None,
    area: str | None = None,
    all_cores: bool = False,
    target: int | None = None,
    k: float | None = None,
    repeat_share: float | None = None,
    question: str | None = None,
) -> Campaign:
    """Change the given settings (others are kept) and set the pool from the area setting."""
    if strategy is not None and strategy not in STRATEGIES:
        raise InputError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if target is not None and target <= 0:
        raise InputError(f"--target must be a positive number of comparisons, got {target}")
    if k is not None and not (math.isfinite(k) and k > 0):
        raise InputError(f"--k must be a positive number, got {k}")
    if repeat_share is not None and not 0 <= repeat_share <= 1:
        raise InputError(f"--repeat-share must be between 0 and 1, got {repeat_share}")
    if area is not None and all_cores:
        raise InputError("give either --where-area or --all-cores, not both")
    with psycopg.connect(url) as conn:
        if area is not None:
            names = [
                r[0] for r in conn.execute("SELECT DISTINCT name FROM streetaudit.heritage_area ORDER BY 1")
            ]
            if area not in names:
                raise InputError(
                    f"--where-area: no heritage area named {area!r}; areas: {', '.join(names) or 'none loaded'}"
                )
        conn.execute(
            """UPDATE streetaudit.rating_campaign SET
                   strategy = coalesce(%(strategy)s, strategy),
                   area = CASE WHEN %(all_cores)s THEN NULL ELSE coalesce(%(area)s, area) END,
                   target = coalesce(%(target)s, target),
                   k = coalesce(%(k)s, k),
                   repeat_share = coalesce(%(repeat_share)s, repeat_share),
                   question = coalesce(%(question)s, question),
                   updated_at = now()""",
            {
                "strategy": strategy,
                "area": area,
                "all_cores": all_cores,
                "target": target,
                "k": k,
                "repeat_share": repeat_share,
                "question": question,
            },
        )
        conn.execute("SELECT streetaudit.fill_rating_pool((SELECT area FROM streetaudit.rating_campaign))")
        campaign = read_campaign(conn)
    return campaign


# -- the record ------------------------------------------------------------------------------
@dataclass
class Log:
    """Decided, not undone choices in answer (id) order, on dense item indices."""

    images: np.ndarray  # item index -> image id
    rater_ids: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_won: np.ndarray

    @property
    def winners(self) -> np.ndarray:
        return np.where(self.left_won, self.left, self.right)

    @property
    def losers(self) -> np.ndarray:
        return np.where(self.left_won, self.right, self.left)

    def subset(self, mask: np.ndarray) -> Log:
        return Log(self.images, self.rater_ids[mask], self.left[mask], self.right[mask], self.left_won[mask])


def read_log(conn: psycopg.Connection) -> Log:
    rows = conn.execute(
        """SELECT rater_id, left_image, right_image, choice = 'left'
           FROM streetaudit.comparison WHERE undone_at IS NULL AND choice <> 'skip' ORDER BY id"""
    ).fetchall()
    data = np.array(rows, dtype=np.int64).reshape(-1, 4)
    images, inverse = np.unique(data[:, 1:3], return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    return Log(images, data[:, 0], inverse[:, 0], inverse[:, 1], data[:, 3].astype(bool))


def _counts(log: Log) -> tuple[np.ndarray, np.ndarray]:
    n = len(log.images)
    compared = np.bincount(np.concatenate([log.left, log.right]), minlength=n)
    wins = np.bincount(log.winners, minlength=n)
    return compared, wins


# -- recompute -------------------------------------------------------------------------------
@dataclass
class RecomputeReport:
    comparisons: int
    images: int
    raters: int
    k: float
    elo_drift: float  # largest |online ELO - recomputed ELO| before the online values were reset
    version: int
    seconds: float


def _sync_online_elo(conn: psycopg.Connection, k: float) -> tuple[Log, float]:
    """Lock the pool rows, read the record, and reset the online ELO to its recomputation.

    Choices wait on these row locks, so the record read here is complete and nothing is
    applied twice or lost; the locks are held only for this, not for Bradley–Terry.
    """
    conn.execute("SELECT image_id FROM streetaudit.rating_image ORDER BY image_id FOR UPDATE")
    log = read_log(conn)
    elo = scores.elo(len(log.images), log.left, log.right, log.left_won, k=k)
    compared, _ = _counts(log)
    online: dict[int, float] = dict(
        conn.execute("SELECT image_id, elo FROM streetaudit.rating_image").fetchall()
    )
    drift = max(
        (abs(online[i] - e) for i, e in zip(log.images.tolist(), elo.tolist(), strict=True) if i in online),
        default=0.0,
    )
    conn.execute(
        """UPDATE streetaudit.rating_image AS ri
           SET elo = coalesce(x.elo, %(initial)s), n = coalesce(x.n, 0)
           FROM streetaudit.rating_image AS r0
           LEFT JOIN unnest(%(ids)s::bigint[], %(elos)s::float8[], %(ns)s::int[]) AS x(image_id, elo, n)
                  ON x.image_id = r0.image_id
           WHERE ri.image_id = r0.image_id""",
        {
            "initial": scores.ELO_INITIAL,
            "ids": log.images.tolist(),
            "elos": elo.tolist(),
            "ns": compared.tolist(),
        },
    )
    return log, float(drift)


def _rating_rows(log: Log, k: float, rater: int | None, now: datetime) -> list[tuple]:
    present = np.unique(np.concatenate([log.left, log.right]))
    compared, wins = _counts(log)
    elo = scores.elo(len(log.images), log.left, log.right, log.left_won, k=k)
    bt, se = scores.bradley_terry(len(log.images), log.winners, log.losers)
    rows: list[tuple] = []
    for i in present.tolist():
        image = int(log.images[i])
        rows.append((image, "elo", rater, float(elo[i]), None, int(compared[i]), int(wins[i]), now))
        rows.append((image, "bt", rater, float(bt[i]), float(se[i]), int(compared[i]), int(wins[i]), now))
    return rows


def recompute_ratings(url: str) -> RecomputeReport:
    """ELO (answer order, the campaign's K) and Bradley–Terry, pooled and per rater, into `rating`."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        k = float(scalar(conn.execute("SELECT k FROM streetaudit.rating_campaign")))
        log, drift = _sync_online_elo(conn, k)
        conn.commit()
        now = datetime.now(UTC)
        rows = _rating_rows(log, k, None, now)
        raters = np.unique(log.rater_ids).tolist()
        for rater in raters:
            rows += _rating_rows(log.subset(log.rater_ids == rater), k, int(rater), now)
        conn.execute("DELETE FROM streetaudit.rating")
        with conn.cursor().copy(
            "COPY streetaudit.rating (image_id, method, rater_id, score, se, n, wins, computed_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        # Tiles of api.ratings are cached by data version: new ratings, new version.
        version = scalar(
            conn.execute(
                """UPDATE streetaudit.stats_state
               SET version = greatest(version + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
               RETURNING version"""
            )
        )
        conn.commit()
    return RecomputeReport(
        len(log.left), len(log.images), len(raters), k, drift, version, time.perf_counter() - start
    )


# -- status ----------------------------------------------------------------------------------
@dataclass
class RatingStatus:
    comparisons: int  # decided (left/right), not undone
    skipped: int
    undone: int
    images: int  # images with at least one decided comparison
    pool: int
    per_image_mean: float
    per_image_min: int
    raters: list[dict] = field(default_factory=list)
    split_half: float = float("nan")
    reliability: float = float("nan")  # Spearman–Brown corrected split-half
    lag: int = 0
    lag_correlation: float = float("nan")
    repeated_pairs: int = 0
    agreement: float = float("nan")
    stable: bool = False
    rule: str = STABILITY_RULE
    computed_at: str = ""

    def as_json(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {key: clean(value) for key, value in asdict(self).items()}


def rating_status(url: str, *, lag: int | None = None, seed: int = 0, store: bool = True) -> RatingStatus:
    """The figures that say whether to keep rating; stored as a snapshot for /stats/ratings/status."""
    with psycopg.connect(url) as conn:
        log = read_log(conn)
        skipped, undone = one(
            conn.execute(
                """SELECT count(*) FILTER (WHERE choice = 'skip' AND undone_at IS NULL),
                      count(*) FILTER (WHERE undone_at IS NOT NULL)
               FROM streetaudit.comparison"""
            )
        )
        pool = scalar(conn.execute("SELECT count(*) FROM streetaudit.rating_pool"))
        raters = [
            {"name": name, "active": active, "done": done, "skipped": skip}
            for name, active, done, skip in conn.execute(
                """SELECT r.name, r.active, count(c.id) FILTER (WHERE c.choice <> 'skip'),
                          count(c.id) FILTER (WHERE c.choice = 'skip')
                   FROM streetaudit.rater AS r
                   LEFT JOIN streetaudit.comparison AS c ON c.rater_id = r.id AND c.undone_at IS NULL
                   GROUP BY r.id ORDER BY r.id"""
            )
        ]
        m = len(log.left)
        compared, _ = _counts(log)
        status = RatingStatus(
            comparisons=m,
            skipped=skipped,
            undone=undone,
            images=len(log.images),
            pool=pool,
            per_image_mean=float(compared.mean()) if len(compared) else 0.0,
            per_image_min=int(compared.min()) if len(compared) else 0,
            raters=raters,
            computed_at=datetime.now(UTC).isoformat(),
        )
        n = len(log.images)
        status.split_half, status.reliability = scores.split_half(n, log.winners, log.losers, seed=seed)
        status.lag = lag if lag is not None else max(1, round(LAG_SHARE * m))
        status.lag_correlation = scores.lag_correlation(n, log.winners, log.losers, status.lag)
        low = np.minimum(log.left, log.right)
        high = np.maximum(log.left, log.right)
        agreement = scores.repeated_pair_agreement(log.rater_ids, low, high, log.winners == low)
        status.repeated_pairs, status.agreement = agreement.pairs, agreement.agreement
        status.stable = bool(
            status.reliability >= STABLE_RELIABILITY and status.lag_correlation >= STABLE_LAG_CORRELATION
        )
        if store:
            conn.execute(
                "INSERT INTO streetaudit.rating_status (status) VALUES (%s::jsonb)",
                (json.dumps(status.as_json()),),
            )
    return status


def status_lines(status: RatingStatus) -> list[str]:
    def f(v: float, spec: str = ".3f") -> str:
        return "n/a" if not math.isfinite(v) else format(v, spec)

    lines = [
        f"comparisons: {status.comparisons} decided, {status.skipped} skipped, {status.undone} undone; "
        f"{status.images} images compared (pool {status.pool}), "
        f"{f(status.per_image_mean, '.1f')} per image (fewest {status.per_image_min})",
        "raters: "
        + (
            ", ".join(
                f"{r['name']} {r['done']}" + ("" if r["active"] else " (revoked)") for r in status.raters
            )
            or "none"
        ),
        f"split-half reliability: r = {f(status.split_half)}, Spearman–Brown {f(status.reliability)}",
        f"ranking now vs {status.lag} choices ago: Spearman {f(status.lag_correlation)}",
        f"agreement on pairs judged by several raters: {f(status.agreement)} over {status.repeated_pairs} pairs",
        f"{'STABLE' if status.stable else 'not stable yet'}: {status.rule}",
    ]
    return lines


@flow(name="ratings", log_prints=True)
def ratings_flow(url: str | None = None) -> dict:
    """Recompute the ratings and the status; safe to schedule while a campaign runs."""
    if url is None:
        from streetaudit.sql.connect import ready_database

        url = ready_database()
    report = recompute_ratings(url)
    print(
        f"ratings from {report.comparisons} comparisons of {report.images} images by {report.raters} raters "
        f"(K {report.k:g}); online ELO drift {report.elo_drift:.3g}; data version {report.version}"
    )
    status = rating_status(url)
    for line in status_lines(status):
        print(line)
    return {"recompute": asdict(report), "status": status.as_json()}
