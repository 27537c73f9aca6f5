"""Densification in SQL, checked against shapely in the same metric CRS."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString

from streetaudit.flows.errors import InputError
from streetaudit.flows.points import densify


def utm_epsg(lon: float, lat: float) -> int:
    return (32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1


def random_roads(n: int, seed: int = 3) -> list[LineString]:
    """Wiggly roads of 40-700 m around Helsinki, kept well apart (no merging)."""
    rng = np.random.default_rng(seed)
    roads = []
    for k in range(n):
        lon0, lat0 = 24.80 + 0.02 * (k % 10), 60.10 + 0.01 * (k // 10)
        steps = rng.integers(2, 12)
        dx = rng.normal(0, 0.0008, steps).cumsum()
        dy = rng.normal(0, 0.0004, steps).cumsum()
        roads.append(LineString(np.column_stack([lon0 + dx, lat0 + dy])))
    return [r for r in roads if r.length > 0]


def insert_roads(conn: psycopg.Connection, roads: list[LineString], source: str = "t") -> list[int]:
    ids = []
    for i, road in enumerate(roads):
        ids.append(
            conn.execute(
                "INSERT INTO streetaudit.road (source, source_id, geom, length_m) "
                "VALUES (%s, %s, ST_GeomFromText(%s, 4326), 1) RETURNING id",
                (source, str(i), road.wkt),
            ).fetchone()[0]
        )
    return ids


def stored_points(conn: psycopg.Connection) -> dict[int, list[tuple[int, float, float, float]]]:
    rows = conn.execute(
        "SELECT road_id, seq, distance_m, ST_X(geom), ST_Y(geom) FROM streetaudit.sample_point "
        "WHERE retired_at IS NULL ORDER BY road_id, seq"
    ).fetchall()
    out: dict[int, list] = {}
    for road_id, seq, dist, x, y in rows:
        out.setdefault(road_id, []).append((seq, dist, x, y))
    return out


@pytest.fixture
def conn(fresh_db_url: str):
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def test_densify_places_points_every_interval_metres(conn: psycopg.Connection, fresh_db_url: str) -> None:
    roads = random_roads(60)
    ids = insert_roads(conn, roads)
    report = densify(fresh_db_url, interval=30, dedupe_within=0)
    points = stored_points(conn)
    expected_total = 0
    for road_id, road in zip(ids, roads, strict=True):
        epsg = utm_epsg(*road.centroid.coords[0])
        forward = Transformer.from_crs(4326, epsg, always_xy=True)
        metric = shapely.transform(
            road, lambda xy, f=forward: np.column_stack(f.transform(xy[:, 0], xy[:, 1]))
        )
        n = math.floor(metric.length / 30) + 1
        expected_total += n
        got = points[road_id]
        assert [p[0] for p in got] == list(range(n))
        for seq, dist, lon, lat in got:
            assert dist == pytest.approx(30 * seq, abs=1e-9)
            want = metric.interpolate(30 * seq)
            x, y = forward.transform(lon, lat)
            assert math.hypot(x - want.x, y - want.y) < 0.01, (road_id, seq)
    assert report.points == expected_total == sum(len(v) for v in points.values())
    assert report.inserted == expected_total and report.retired == 0


def test_short_road_gets_only_its_start_point(conn: psycopg.Connection, fresh_db_url: str) -> None:
    [road_id] = insert_roads(conn, [LineString([(24.9, 60.1), (24.9002, 60.1)])])  # ~11 m
    densify(fresh_db_url, interval=30)
    assert [(p[0], p[1]) for p in stored_points(conn)[road_id]] == [(0, 0.0)]


def test_densify_is_idempotent_and_a_new_interval_replaces_points(
    conn: psycopg.Connection, fresh_db_url: str
) -> None:
    insert_roads(conn, random_roads(20))
    densify(fresh_db_url, interval=30)
    before = conn.execute(
        "SELECT id, road_id, seq, ST_AsEWKB(geom), retired_at FROM streetaudit.sample_point ORDER BY id"
    ).fetchall()
    again = densify(fresh_db_url, interval=30)
    after = conn.execute(
        "SELECT id, road_id, seq, ST_AsEWKB(geom), retired_at FROM streetaudit.sample_point ORDER BY id"
    ).fetchall()
    assert after == before
    assert again.inserted == again.retired == again.reactivated == 0
    coarse = densify(fresh_db_url, interval=60)
    rows = conn.execute(
        "SELECT id, road_id, seq, distance_m FROM streetaudit.sample_point WHERE retired_at IS NULL"
    ).fetchall()
    assert all(dist == pytest.approx(60 * seq) for _, _, seq, dist in rows)
    assert coarse.points == len(rows) < len(before)
    # Points at 0 m and at multiples of 60 m are where 30 m points were: those rows (ids) serve.
    by_place = {(road, round(30 * seq, 6)): pid for pid, road, seq, _, _ in before}
    for pid, road, seq, _ in rows:
        assert pid == by_place[(road, round(60 * seq, 6))]
    assert coarse.inserted == 0 and coarse.retired == len(before) - len(rows)


def test_same_roads_in_tm35fin_and_wgs84_give_the_same_points(
    conn: psycopg.Connection, fresh_db_url: str, tmp_path
) -> None:
    import geopandas as gpd

    from streetaudit.flows.roads import load_roads

    roads = random_roads(15, seed=11)
    frame = gpd.GeoDataFrame({"n": range(len(roads))}, geometry=roads, crs="EPSG:4326")
    frame.to_file(tmp_path / "wgs84.gpkg")
    frame.to_crs(3067).to_file(tmp_path / "tm35fin.gpkg")
    load_roads(fresh_db_url, tmp_path / "wgs84.gpkg", source="wgs84")
    load_roads(fresh_db_url, tmp_path / "tm35fin.gpkg", source="tm35fin")
    densify(fresh_db_url, interval=30, dedupe_within=0)
    pairs = conn.execute(
        """SELECT pa.seq, pb.seq, ST_DistanceSphere(pa.geom, pb.geom)
           FROM streetaudit.road a JOIN streetaudit.road b ON a.source_id = b.source_id
           JOIN streetaudit.sample_point pa ON pa.road_id = a.id
           JOIN streetaudit.sample_point pb ON pb.road_id = b.id AND pb.seq = pa.seq
           WHERE pa.retired_at IS NULL AND pb.retired_at IS NULL
             AND a.source = 'wgs84' AND b.source = 'tm35fin'"""
    ).fetchall()
    counts = dict(
        conn.execute(
            "SELECT r.source, count(*) FROM streetaudit.sample_point p JOIN streetaudit.road r ON r.id = p.road_id GROUP BY 1"
        ).fetchall()
    )
    assert counts["wgs84"] == counts["tm35fin"] == len(pairs) > 15
    assert max(d for _, _, d in pairs) < 0.05


def test_multiline_parts_are_densified_separately(
    conn: psycopg.Connection, fresh_db_url: str, tmp_path
) -> None:
    import geopandas as gpd
    from shapely.geometry import MultiLineString

    from streetaudit.flows.roads import load_roads

    multi = MultiLineString([[(24.90, 60.10), (24.902, 60.10)], [(24.91, 60.10), (24.913, 60.10)]])
    gpd.GeoDataFrame({"n": [1]}, geometry=[multi], crs="EPSG:4326").to_file(tmp_path / "m.geojson")
    load_roads(fresh_db_url, tmp_path / "m.geojson")
    densify(fresh_db_url, interval=30)
    per_road = conn.execute(
        "SELECT r.source_id, count(*), max(p.seq) FROM streetaudit.road r JOIN streetaudit.sample_point p ON p.road_id = r.id GROUP BY 1 ORDER BY 1"
    ).fetchall()
    # ~111 m and ~167 m parts: 4 and 6 points, each starting again at seq 0.
    assert per_road == [("1.1", 4, 3), ("1.2", 6, 5)]


def test_points_of_different_roads_within_dedupe_distance_are_merged(
    conn: psycopg.Connection, fresh_db_url: str
) -> None:
    # Three roads start at one junction; the third also passes 0.5 m from the first's 30 m point.
    junction = (24.95, 60.17)
    metres = 1 / 111_320
    east = LineString([junction, (24.95 + 100 * metres / math.cos(math.radians(60.17)), 60.17)])
    north = LineString([junction, (24.95, 60.17 + 100 * metres)])
    first_30m = east.interpolate(30 / 100, normalized=True)
    crossing = LineString([junction, (first_30m.x, first_30m.y + 0.5 * metres)])
    ids = insert_roads(conn, [east, north, crossing])
    report = densify(fresh_db_url, interval=30, dedupe_within=1.0)
    points = stored_points(conn)
    assert [p[0] for p in points[ids[0]]] == [0, 1, 2, 3]  # the first road keeps everything
    assert [p[0] for p in points[ids[1]]] == [1, 2, 3]  # its junction point merged into road 1's
    assert 0 not in [p[0] for p in points.get(ids[2], [])]
    assert report.merged == 2 + (1 if 1 not in [p[0] for p in points.get(ids[2], [])] else 0)
    # With merging off, every road keeps its own junction point.
    none_merged = densify(fresh_db_url, interval=30, dedupe_within=0)
    assert none_merged.merged == 0
    assert (
        conn.execute(
            "SELECT count(*) FROM streetaudit.sample_point WHERE seq = 0 AND retired_at IS NULL"
        ).fetchone()[0]
        == 3
    )


def test_dedupe_agrees_with_a_brute_force_check(conn: psycopg.Connection, fresh_db_url: str) -> None:
    """The grid-hash merge finds exactly the pairs an all-pairs sphere-distance check finds."""
    rng = np.random.default_rng(5)
    metres = 1 / 111_320
    roads = []
    for _ in range(80):  # a dense tangle in a 300 m square: many near points
        x0, y0 = 24.95 + rng.uniform(0, 600) * metres, 60.17 + rng.uniform(0, 300) * metres
        angle = rng.uniform(0, math.pi)
        roads.append(
            LineString(
                [(x0, y0), (x0 + 200 * metres * math.cos(angle) * 2, y0 + 200 * metres * math.sin(angle))]
            )
        )
    ids = insert_roads(conn, roads)
    densify(fresh_db_url, interval=3, dedupe_within=0)
    everything = conn.execute(
        "SELECT road_id, seq, ST_X(geom), ST_Y(geom) FROM streetaudit.sample_point "
        "WHERE retired_at IS NULL ORDER BY road_id, seq"
    ).fetchall()
    report = densify(fresh_db_url, interval=3, dedupe_within=1.5)
    kept = {
        (r, s)
        for r, s in conn.execute("SELECT road_id, seq FROM streetaudit.sample_point WHERE retired_at IS NULL")
    }
    arr = np.array([(r, x, y) for r, _, x, y in everything])
    lat = np.radians(arr[:, 2])
    lon = np.radians(arr[:, 1])
    doomed = set()
    for i, (road, seq, _, _) in enumerate(everything):
        # haversine on PostGIS's sphere radius, as ST_DistanceSphere uses
        dlat = lat - lat[i]
        dlon = lon - lon[i]
        a = np.sin(dlat / 2) ** 2 + np.cos(lat[i]) * np.cos(lat) * np.sin(dlon / 2) ** 2
        d = 2 * 6371008.7714 * np.arcsin(np.sqrt(a))
        if ((arr[:, 0] < road) & (d <= 1.5)).any():
            doomed.add((road, seq))
    assert len(doomed) > 20
    assert kept == {(r, s) for r, s, _, _ in everything} - doomed
    assert report.merged == len(doomed)
    assert ids


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "--interval"),
        ({"interval": -5}, "--interval"),
        ({"dedupe_within": -1}, "--dedupe-within"),
        ({"srid": 4326}, "not in metres"),
        ({"srid": 999999}, "unknown"),
    ],
)
def test_bad_densify_parameters_are_refused(fresh_db_url: str, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        densify(fresh_db_url, **kwargs)
