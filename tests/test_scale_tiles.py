"""Low-zoom road tiles show the whole city: generalised (merged), never silently trimmed.

On a synthetic grid city made in SQL, every tile covering the city at zooms 5, 8, 11 and 13 is
decoded; the distinct features' lengths and points must add up to the city's (every road
accounted for), every road's midpoint must lie on a drawn line of its tile (checked with
shapely against the roads table, not against the overview), the means must agree with the
points', zoom 13's stds must be those of the points of the roads grouped as documented
(regrouped here in Python), and a tile forced under a small budget must say it is truncated.
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
        kinds = dict(conn.execute("SELECT id, kind FROM streetaudit.road").fetchall())
        by_road: dict[int, list[float]] = {}
        for road_id, building in conn.execute("SELECT road_id, building FROM api.point_elements"):
            by_road.setdefault(road_id, []).append(building)
    return {"roads": roads, "points": np.array(points), "kinds": kinds, "building_by_road": by_road}


def tile_features(db_url: str, z: int, x: int, y: int, max_bytes: int | None = None) -> tuple[int, list]:
    with psycopg.connect(db_url) as conn:
        tile = bytes(
            conn.execute("SELECT api.roads(%s, %s, %s, NULL, %s)", (z, x, y, max_bytes)).fetchone()[0]
        )
    layer = mapbox_vector_tile.decode(tile).get("api.roads", {"features": []})
    return len(tile), layer["features"]


@pytest.mark.parametrize("z", [5, 8, 11, 13])
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
    if z <= 11:
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


def test_zoom_13_features_carry_the_std_of_their_grouped_points(db_url, city):
    z = 13
    unit = 2 * HALF / 2**z / 4096
    groups: dict[tuple, list[int]] = {}
    for road_id, _, mx, my in city["roads"]:
        values = city["building_by_road"].get(road_id, [])
        key = (
            math.floor(mx / (unit * 128)),
            math.floor(my / (unit * 128)),
            city["kinds"][road_id],
            bool(values),
        )
        groups.setdefault(key, []).append(road_id)
    expected = {}
    for members in groups.values():
        values = [v for r in members for v in city["building_by_road"].get(r, [])]
        if len(values) > 1:
            expected[min(members)] = (np.mean(values), np.std(values, ddof=1))
    got = {}
    for _, x, y in city_tiles(db_url, z):
        got.update({f["id"]: f["properties"] for f in tile_features(db_url, z, x, y)[1]})
    assert expected and set(expected) <= set(got)
    for road_id, (mean, std) in expected.items():
        assert got[road_id]["building_mean"] == pytest.approx(mean, abs=5e-4)
        assert got[road_id]["building_std"] == pytest.approx(std, abs=5e-4)
