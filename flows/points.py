"""Stage 2: sample points every interval metres along the roads, computed in PostGIS."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from prefect import flow

from streetaudit.flows.errors import InputError


@dataclass
class DensifyReport:
    points: int
    merged: int
    inserted: int
    deleted: int
    seconds: float


def densify(
    url: str, *, interval: float = 30.0, dedupe_within: float = 1.0, srid: int | None = None
) -> DensifyReport:
    if not interval > 0:
        raise InputError(f"--interval must be a positive number of metres, got {interval}")
    if dedupe_within < 0:
        raise InputError(f"--dedupe-within must be >= 0 metres, got {dedupe_within}")
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute(
                "SELECT points, merged, inserted, deleted FROM streetaudit.densify_roads(%s, %s, %s)",
                (interval, dedupe_within, srid),
            ).fetchone()
        except psycopg.errors.InvalidParameterValue as error:
            raise InputError(f"--srid: {error.diag.message_primary}") from error
        conn.commit()
    return DensifyReport(*row, seconds=time.perf_counter() - start)


@flow(name="points", log_prints=True)
def points_flow(
    url: str, interval: float = 30.0, dedupe_within: float = 1.0, srid: int | None = None
) -> dict:
    report = densify(url, interval=interval, dedupe_within=dedupe_within, srid=srid)
    print(
        f"{report.points} sample points ({report.inserted} new, {report.deleted} removed) in {report.seconds:.2f} s"
    )
    return report.__dict__
