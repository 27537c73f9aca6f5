"""Rows the tests and benchmarks start from: sample points on a road, image rows for files, and
the tile that holds a point. One definition each, instead of a copy per test module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import psycopg

from streetaudit.sql.rows import scalar


def along(start: tuple[float, float], step: float, n: int) -> list[tuple[float, float]]:
    """`n` (lon, lat) points eastward from `start`, `step` degrees of longitude apart."""
    return [(start[0] + i * step, start[1]) for i in range(n)]


def make_points(
    url: str,
    coords: Sequence[tuple[float, float]],
    *,
    spacing: float = 25.0,
    road: str | None = None,
    source: str = "t",
    area: str | None = None,
    area_points: int = 1,
) -> list[int]:
    """Sample points at `coords` (lon, lat) on one new road, `spacing` metres apart in
    `distance_m`; their ids in order.

    The road runs from the first point to the last (a WKT `road` replaces it); with `area`, a
    heritage area of that name covers the first `area_points` points (10 m around each) and no
    other point further than that from them.
    """
    lons = [float(lon) for lon, _ in coords]
    lats = [float(lat) for _, lat in coords]
    if road is None:
        end = (lons[-1], lats[-1]) if len(coords) > 1 else (lons[0] + 0.001, lats[0])
        road = f"LINESTRING({lons[0]} {lats[0]}, {end[0]} {end[1]})"
    with psycopg.connect(url) as conn:
        road_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               SELECT %(source)s, gen_random_uuid()::text, g, ST_Length(g::geography)
               FROM ST_GeomFromText(%(road)s, 4326) AS g RETURNING id""",
                {"source": source, "road": road},
            )
        )
        conn.execute(
            """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
               SELECT %s, p.seq - 1, (p.seq - 1) * %s::float8, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)
               FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(lon, lat, seq)""",
            (road_id, spacing, lons, lats),
        )
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM streetaudit.sample_point WHERE road_id = %s ORDER BY seq", (road_id,)
            )
        ]
        if area is not None:
            conn.execute(
                """INSERT INTO streetaudit.heritage_area (source, source_id, name, geom, area_m2)
                   SELECT %s, %s, %s, g, ST_Area(g::geography)
                   FROM (SELECT ST_Multi(ST_Buffer(ST_Collect(geom), 0.0001)) AS g
                         FROM streetaudit.sample_point WHERE id = ANY(%s)) AS a""",
                (source, area, area, ids[:area_points]),
            )
    return ids


def add_images(url: str, paths: Sequence[Path | str], *, as_url: bool = False) -> list[int]:
    """Image rows as the collect stage writes them (status 'ok', one point each on a new road in
    Helsinki, uri = the path or, with `as_url`, its file:// URL); their ids in order."""
    with psycopg.connect(url) as conn:
        road_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('test', gen_random_uuid()::text,
                       'SRID=4326;LINESTRING(24.94 60.17, 24.95 60.17)', 555) RETURNING id"""
            )
        )
        ids = []
        for seq, path in enumerate(paths):
            point_id = scalar(
                conn.execute(
                    """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(24.94, 60.17), 4326)) RETURNING id""",
                    (road_id, seq, 30.0 * seq),
                )
            )
            uri = Path(path).as_uri() if as_url else str(path)
            ids.append(
                scalar(
                    conn.execute(
                        """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                       VALUES (%s, 'test', 0, %s, 'ok') RETURNING id""",
                        (point_id, uri),
                    )
                )
            )
    return ids


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """(z, x, y) of the Web Mercator (XYZ) tile holding the point."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y
