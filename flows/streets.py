"""The streets stage: the roads merged into streets and cut at junctions, in PostGIS.

Statistics per input line follow however the road file happens to split its lines (on OSM
data most lines are a few metres long and hold one point); per street they describe what
a planner calls a street. The work is one SQL function (streetaudit.build_streets); this
module checks the options, runs it and measures what it made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from streetaudit.flows.errors import InputError
from streetaudit.sql.rows import one, scalar

# street_parameter_problem() names the SQL parameters; users know the options.
OPTIONS = {"by": "--by", "max_length": "--max-length"}
SPLIT_BY = ("junction", "name")
DEFAULT_MAX_LENGTH = 500.0


@dataclass
class StreetReport:
    streets: int
    kept: int
    added: int
    removed: int
    roads: int
    median_m: float | None
    p90_m: float | None
    longest_m: float | None
    # Half of all street length lies in streets at least this long: what a sample point's
    # street typically is, where the plain median counts every stub as much as a boulevard.
    length_weighted_median_m: float | None
    seconds: float


def check_street_parameters(conn: psycopg.Connection, *, by: str, max_length: float | None) -> None:
    """Raise InputError naming the option when build_streets would refuse these values."""
    bad = conn.execute(
        "SELECT parameter, problem FROM streetaudit.street_parameter_problem(%s, %s) LIMIT 1",
        (by, max_length),
    ).fetchone()
    if bad is not None:
        raise InputError(f"{OPTIONS.get(bad[0], bad[0])} {bad[1]}")


def build_streets(
    url: str, *, by: str = "name", max_length: float | None = DEFAULT_MAX_LENGTH
) -> StreetReport:
    """Rebuild the streets from the roads; points, images and segmentations are untouched."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        check_street_parameters(conn, by=by, max_length=max_length)
        streets, kept, added, removed, _ = one(
            conn.execute("SELECT * FROM streetaudit.build_streets(%s, %s)", (by, max_length))
        )
        roads, median, p90, longest = one(
            conn.execute(
                """SELECT (SELECT count(*) FROM streetaudit.road),
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY length_m),
                      percentile_cont(0.9) WITHIN GROUP (ORDER BY length_m), max(length_m)
               FROM streetaudit.street"""
            )
        )
        weighted = scalar(
            conn.execute(
                """SELECT min(length_m) FROM (
                   SELECT length_m, sum(length_m) OVER (ORDER BY length_m, id) AS running,
                          sum(length_m) OVER () AS total
                   FROM streetaudit.street) AS s
               WHERE running >= total / 2"""
            )
        )
    return StreetReport(
        streets, kept, added, removed, roads, median, p90, longest, weighted, time.perf_counter() - start
    )
