"""Road bearing at a sample point (PostGIS) against shapely + pyproj, and `collect --relative-headings`.

The reference projects the point on the road with shapely, takes the road points 5 m (by
fraction of the length) before and after, and measures the geodesic azimuth with pyproj's
Geod on WGS84: independent of PostGIS but for the database rows.
"""

from __future__ import annotations

import psycopg
import pytest
import shapely
from pyproj import Geod

from streetaudit.flows.collect import collect

GEOD = Geod(ellps="WGS84")
ROADS = {
    "north": "LINESTRING(24.940 60.170, 24.940 60.172)",
    "east": "LINESTRING(24.950 60.170, 24.954 60.170)",
    "bend": "LINESTRING(24.960 60.170, 24.962 60.171, 24.962 60.1725)",  # north-east, then north
    "southwest": "LINESTRING(24.975 60.175, 24.972 60.173)",
}


@pytest.fixture(scope="module")
def roads_url(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        for name, wkt in ROADS.items():
            conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, name, geom, length_m)
                   VALUES ('test', %s, %s, ST_GeomFromText(%s, 4326),
                           ST_Length(ST_GeomFromText(%s, 4326)::geography))""",
                (name, name, wkt, wkt),
            )
        conn.execute("SELECT * FROM streetaudit.densify_roads(30)")
    return db_url


def reference_bearing(line: shapely.LineString, length_m: float, point: shapely.Point) -> float:
    fraction = line.project(point, normalized=True)
    half = min(0.5, 5.0 / length_m)
    a = line.interpolate(max(fraction - half, 0.0), normalized=True)
    b = line.interpolate(min(fraction + half, 1.0), normalized=True)
    return GEOD.inv(a.x, a.y, b.x, b.y)[0] % 360


def angle_between(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def points(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT p.id, r.name, ST_AsBinary(r.geom), r.length_m, ST_AsBinary(p.geom),
                      streetaudit.road_bearing(r.geom, r.length_m, p.geom),
                      streetaudit.relative_headings(p.id, '{0, 90, 180, 270}')
               FROM streetaudit.sample_point AS p JOIN streetaudit.road AS r ON r.id = p.road_id
               ORDER BY p.id"""
        ).fetchall()


def test_road_bearing_matches_shapely_and_pyproj(roads_url):
    rows = points(roads_url)
    assert len(rows) > 30
    seen = set()
    for point_id, name, road_wkb, length_m, point_wkb, bearing, headings in rows:
        line, point = shapely.from_wkb(bytes(road_wkb)), shapely.from_wkb(bytes(point_wkb))
        expected = reference_bearing(line, length_m, point)
        assert angle_between(bearing, expected) < 1e-6, (point_id, name, bearing, expected)
        # ahead, right, behind, left: the bearing plus each offset, to the 0.01 degree stored
        assert len(headings) == 4 and all(0 <= h < 360 for h in headings)
        for h, offset in zip(headings, (0, 90, 180, 270), strict=True):
            assert angle_between(h, expected + offset) <= 0.005 + 1e-9, (headings, expected)
            assert round(h, 2) == h
        seen.add(name)
    assert seen == set(ROADS)
    by_road = {name: bearing for _, name, _, _, _, bearing, _ in rows}
    assert angle_between(by_road["north"], 0) < 1e-6
    assert angle_between(by_road["east"], 90) < 0.01  # along a parallel: 90 up to convergence
    assert 180 < by_road["southwest"] < 270


def test_collect_relative_headings_face_the_road_and_resume(roads_url, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    result = cli(
        "collect",
        "--provider",
        "synthetic",
        "--relative-headings",
        "0,90,180,270",
        "--limit",
        "3",
        "--size",
        "64x32",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "synthetic: 12 ok" in result.output
    expected = {r[0]: r[6] for r in points(roads_url)}
    with psycopg.connect(roads_url) as conn:
        stored = conn.execute(
            "SELECT point_id, heading, relative_heading FROM streetaudit.image ORDER BY point_id, relative_heading"
        ).fetchall()
    assert len({p for p, _, _ in stored}) == 3
    for point_id, heading, relative in stored:
        assert heading == expected[point_id][[0, 90, 180, 270].index(relative)]
    again = collect(
        roads_url, "synthetic", relative_headings=(0, 90, 180, 270), limit=3, size=(64, 32), progress=False
    )
    assert (again.ok, again.skipped) == (0, 12)
    bad = cli("collect", "--provider", "synthetic", "--relative-headings", "0,400")
    assert bad.exit_code == 2 and "--relative-headings must be numbers in [0, 360)" in bad.output
