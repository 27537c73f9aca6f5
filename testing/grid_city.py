"""A synthetic grid city made in SQL: roads, heritage areas, densified points, images, segmentations.

Scale benchmarks and tests need a city of any size in seconds, with known structure (every
road 120 m, one kind per street, areas of known extent) so results can be checked against
an independent computation; INSERT … SELECT over generate_series makes it at the database's
speed, where a Python row loop would dominate the figures. Never used on real data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import psycopg

from streetaudit.sql.rows import one, scalar

BLOCK_M = 120.0
# About 3.5 points per 120 m block edge (30 m apart, junctions merged), 4 headings each, two
# edges per grid node: images ≈ 28 n² for an n × n grid of streets.
IMAGES_PER_NODE = 28
HEADINGS = (0, 90, 180, 270)
# Harbin's centre, in UTM zone 52N.
CENTRE_LON, CENTRE_LAT, UTM = 126.63, 45.75, 32652

CITY_SQL = """
WITH origin AS (
    SELECT ST_X(o) - %(n)s * %(block)s / 2 AS x0, ST_Y(o) - %(n)s * %(block)s / 2 AS y0
    FROM ST_Transform(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(utm)s) AS o
), edge AS (
    -- d = 0: along street i (east-west), between avenues j and j + 1; d = 1: along avenue i.
    SELECT d, i, j,
           CASE WHEN d = 0 THEN ST_MakeLine(ST_MakePoint(x0 + j * %(block)s, y0 + i * %(block)s),
                                            ST_MakePoint(x0 + (j + 1) * %(block)s, y0 + i * %(block)s))
                ELSE ST_MakeLine(ST_MakePoint(x0 + i * %(block)s, y0 + j * %(block)s),
                                 ST_MakePoint(x0 + i * %(block)s, y0 + (j + 1) * %(block)s)) END AS g
    FROM origin, generate_series(0, 1) AS d, generate_series(0, %(n)s - 1) AS i,
         generate_series(0, %(n)s - 2) AS j
)
INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
SELECT 'scale', d || '-' || i || '-' || j,
       CASE WHEN d = 0 THEN 'Street ' ELSE 'Avenue ' END || (i + 1),
       CASE WHEN i %% 8 = 0 THEN 'primary' WHEN i %% 4 = 0 THEN 'secondary' ELSE 'residential' END,
       ST_Transform(ST_SetSRID(g, %(utm)s), 4326), %(block)s
FROM edge
"""

AREAS_SQL = """
WITH origin AS (
    SELECT ST_X(o) AS cx, ST_Y(o) AS cy, %(n)s * %(block)s AS side
    FROM ST_Transform(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(utm)s) AS o
), box AS (
    SELECT * FROM (VALUES ('Old town', 'core', -0.10, -0.10, 0.08),
                          ('Harbour', 'core', 0.25, 0.20, 0.06),
                          ('Old town buffer', 'buffer', -0.10, -0.10, 0.16)) AS b (name, kind, dx, dy, half)
)
INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
SELECT 'scale', name, name, kind,
       ST_Multi(ST_Transform(ST_MakeEnvelope(cx + (dx - half) * side, cy + (dy - half) * side,
                                             cx + (dx + half) * side, cy + (dy + half) * side, %(utm)s), 4326)),
       (2 * half * side) ^ 2
FROM origin, box
"""

MODEL_SQL = """
INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
VALUES ('segmentation', %(name)s, 'synthetic', 'testing/grid_city.py ' || %(name)s, 'elements',
        ARRAY['building', 'road', 'sky', 'greenery', 'sidewalk', 'car'])
RETURNING id
"""

# Images of the active points at `headings`, for the points whose id % modulus = 0.
IMAGES_SQL = """
INSERT INTO streetaudit.image (point_id, provider, heading, status, geom, uri, fetched_at)
SELECT p.id, 'scale', h, 'ok', p.geom, 'scale/' || p.id || '/' || h || '.jpg', now()
FROM streetaudit.sample_point AS p, unnest(%(headings)s::double precision[]) AS h
WHERE p.retired_at IS NULL AND p.id %% %(modulus)s = 0
"""

# One segmentation per image after image id `after` (the images the model has not seen; an
# anti-join against the growing table would be planned as a nested loop, quadratic): values that drift from west to
# east (greenery) and south to north (building), plus noise, all within [0, 1]; `building`,
# when given, replaces that element's value everywhere (a model the tests can recognise).
SEGMENT_SQL = """
INSERT INTO streetaudit.segmentation
    (image_id, model_id, building, road, sky, greenery, sidewalk, car, histogram, pixels)
SELECT i.id, %(model)s,
       coalesce(%(building)s, 0.1 + 0.3 * e.v + 0.2 * random()), 0.1 + 0.3 * random(), 0.05 + 0.3 * random(),
       0.05 + 0.3 * e.u + 0.2 * random(), 0.1 * random(), 0.08 * random(),
       ARRAY[1]::bigint[], 524288
FROM streetaudit.image AS i
CROSS JOIN LATERAL (
    SELECT (ST_X(i.geom) - %(xmin)s) / %(dx)s AS u, (ST_Y(i.geom) - %(ymin)s) / %(dy)s AS v
) AS e
WHERE i.provider = 'scale' AND i.id > %(after)s
"""


def reset(conn: psycopg.Connection) -> None:
    """Empty roads (and their points, images, segmentations), areas and models."""
    conn.execute("TRUNCATE streetaudit.road, streetaudit.heritage_area, streetaudit.model CASCADE")
    # The cascade empties stats_state (it names a model): put its one row back.
    conn.execute("INSERT INTO streetaudit.stats_state (singleton) VALUES (true) ON CONFLICT DO NOTHING")
    conn.commit()


@dataclass
class City:
    model_id: int
    roads: int
    points: int
    images: int
    build_s: float
    densify_s: float


def build(url: str, grid: int) -> City:
    """A grid × grid street city, densified every 30 m, 4 images a point, one model's segmentations."""
    params = {"n": grid, "block": BLOCK_M, "lon": CENTRE_LON, "lat": CENTRE_LAT, "utm": UTM}
    with psycopg.connect(url) as conn:
        reset(conn)
        start = time.perf_counter()
        conn.execute(CITY_SQL, params)
        conn.execute(AREAS_SQL, params)
        conn.commit()
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        points = scalar(conn.execute("SELECT points FROM streetaudit.densify_roads(30, 1.0)"))
        conn.commit()
        densify_s = time.perf_counter() - start
        start = time.perf_counter()
        conn.execute(IMAGES_SQL, {"headings": list(HEADINGS), "modulus": 1})
        model = add_model(conn, "grid-synthetic")
        conn.commit()
        conn.execute("ANALYZE")
        build_s += time.perf_counter() - start
        roads = scalar(conn.execute("SELECT count(*) FROM streetaudit.road"))
        images = scalar(conn.execute("SELECT count(*) FROM streetaudit.image"))
    return City(model, roads, points, images, build_s, densify_s)


def add_model(conn: psycopg.Connection, name: str, *, building: float | None = None) -> int:
    """A segmentation model with a result for every image (see SEGMENT_SQL); returns its id."""
    model = scalar(conn.execute(MODEL_SQL, {"name": name}))
    segment(conn, model, building=building)
    return model


def segment(conn: psycopg.Connection, model: int, *, building: float | None = None, after: int = 0) -> None:
    xmin, ymin, xmax, ymax = one(
        conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM streetaudit.road) AS r"
        )
    )
    conn.execute("SELECT setseed(0.42)")
    conn.execute(
        SEGMENT_SQL,
        {
            "model": model,
            "building": building,
            "after": after,
            "xmin": xmin,
            "ymin": ymin,
            "dx": xmax - xmin or 1,
            "dy": ymax - ymin or 1,
        },
    )


def grow(url: str, model: int) -> int:
    """+1% images: a fifth heading at every hundredth point, segmented."""
    with psycopg.connect(url) as conn:
        last = scalar(conn.execute("SELECT coalesce(max(id), 0) FROM streetaudit.image"))
        added = conn.execute(IMAGES_SQL, {"headings": [45], "modulus": 100}).rowcount
        segment(conn, model, after=last)
        conn.commit()
    return added


GROW_ROADS_SQL = """
INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
SELECT 'scale-grow', 'lane-' || r.id, 'Lane ' || r.id, 'service',
       ST_Transform(ST_MakeLine(ST_StartPoint(g), ST_Translate(ST_EndPoint(g), 0, %(block)s)), 4326),
       %(block)s * sqrt(2)
FROM streetaudit.road AS r
CROSS JOIN LATERAL ST_Transform(r.geom, %(utm)s) AS g
WHERE r.source = 'scale' AND r.source_id LIKE '0-%%' AND r.id %% %(modulus)s = 0
"""


def grow_roads(url: str, modulus: int = 50) -> int:
    """+1% roads: a diagonal lane across every fiftieth block (every edge is one road; half are
    east-west), meeting the grid at two junctions, as a later `roads load` would add them."""
    with psycopg.connect(url) as conn:
        added = conn.execute(GROW_ROADS_SQL, {"block": BLOCK_M, "utm": UTM, "modulus": modulus}).rowcount
        conn.commit()
    return added


def city_tiles(url: str, z: int) -> list[tuple[int, int, int]]:
    """Every tile of zoom z that meets the city's roads' bounding box."""
    with psycopg.connect(url) as conn:
        xmin, ymin, xmax, ymax = one(
            conn.execute(
                """SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
               FROM (SELECT ST_Extent(geom) AS e FROM streetaudit.road) AS r"""
            )
        )

    def tile(lon: float, lat: float) -> tuple[int, int]:
        n = 2**z
        return int((lon + 180) / 360 * n), int(
            (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        )

    x0, y0 = tile(xmin, ymax)
    x1, y1 = tile(xmax, ymin)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
