"""Low-zoom road tiles show the whole city: generalised (merged), never silently trimmed.

On a synthetic grid city made in SQL, every tile covering the city at zooms 5, 8 and 11 is
decoded; the distinct features' lengths and points must add up to the city's (every road
accounted for), every road's midpoint must lie on a drawn line of its tile (checked with
shapely against the roads table, not against the overview), the means must agree with the
points', and a tile forced under a small budget must say it is truncated.
"""

from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely

from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.grid_city import build, city_tiles

HALF = 20037508.342789244
BUDGET = 500_000


@pytest.fixture(scope="module")
def city(db_url: str) -> dict:
    build(db_url, 16)
    refresh_stats(db_url)
    with psycopg.connect(db_url) as conn:
        roads = conn.execute(
            """SELECT r.id, r.length_m, ST_X(m), ST_Y(m)
               FROM streetaudit.road AS r,
                    LATERAL ST_Transform(ST_LineInterpolatePoint(r.geom, 0.5), 3857) AS m"""
        ).fetchall()
        points = conn.execute("SELECT building, greenery FROM api.point_elements").fetchall()
    return {"roads": roads, "points": np.array(points)}


def tile_features(db_url: str, z: int, x: int, y: int, max_bytes: int | None = None) -> tuple[int, list]:
    with psycopg.connect(db_url) as conn:
        tile = bytes(
            conn.execute("SELECT api.roads(%s, %s, %s, NULL, %s)", (z, x, y, max_bytes)).fetchone()[0]
        )
    layer = mapbox_vector_tile.decode(tile).get("api.roads", {"features": []})
    return len(tile), layer["features"]


@pytest.mark.parametrize("z", [5, 8, 11])
def test_low_zoom_tiles_account_for_every_road(db_url, city, z):
    size = 2 * HALF / 2**z
    distinct: dict[int, dict] = {}
    drawn: dict[tuple[int, int], shapely.Geometry] = {}
    for _, x, y in city_tiles(db_url, z):
        nbytes, features = tile_features(db_url, z, x, y)
        assert 0 < nbytes < BUDGET
        assert not any(f["properties"].get("truncated") for f in features)
        for f in features:
            distinct[f["id"]] = f["properties"]
        drawn[(x, y)] = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in features])

    total_length = sum(length for _, length, _, _ in city["roads"])
    assert sum(p["length_m"] for p in distinct.values()) == pytest.approx(total_length, rel=1e-9)
    assert sum(p["n_points"] for p in distinct.values()) == len(city["points"])
    assert len(distinct) < len(city["roads"]) / 4  # merged, not one feature a road

    # Every road's midpoint, in its tile's units (y up, as decoded), lies on a drawn line:
    # within the 2-unit simplification and half a unit of snapping.
    for _, _, mx, my in city["roads"]:
        tx, ty = math.floor((mx + HALF) / size), math.floor((HALF - my) / size)
        u = ((mx + HALF) - tx * size) / size * 4096
        v = (my - (HALF - (ty + 1) * size)) / size * 4096
        assert drawn[(tx, ty)].distance(shapely.Point(u, v)) <= 3.0

    # The point-weighted means of the merged features are the points' means (to 3 decimals).
    for element, column in (("building", 0), ("greenery", 1)):
        weighted = sum(p["n_points"] * p[f"{element}_mean"] for p in distinct.values() if p["n_points"])
        assert weighted / len(city["points"]) == pytest.approx(city["points"][:, column].mean(), abs=6e-4)


def test_an_overview_tile_over_its_budget_says_it_is_truncated(db_url, city):
    z, x, y = city_tiles(db_url, 11)[0]
    full_bytes, full = tile_features(db_url, z, x, y)
    budget = full_bytes // 3
    nbytes, kept = tile_features(db_url, z, x, y, budget)
    assert 0 < nbytes <= budget and 0 < len(kept) < len(full)
    assert all(f["properties"]["truncated"] is True for f in kept)
    assert not any("truncated" in f["properties"] for f in full)
    # The longest features are the ones kept.
    shortest_kept = min(f["properties"]["length_m"] for f in kept)
    dropped = {f["id"] for f in full} - {f["id"] for f in kept}
    assert all(f["properties"]["length_m"] <= shortest_kept for f in full if f["id"] in dropped)
