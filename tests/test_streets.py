"""Streets built in SQL from hand-made networks, each with its expected streets written out.

Networks are drawn in metres (UTM zone 35N, central Helsinki) and stored in lon/lat, as a
road file would be; expected lengths are shapely's in the same metric CRS.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import shapely
import shapely.geometry
from pyproj import Transformer
from shapely.geometry import LineString

from streetaudit.flows.roads import load_roads
from streetaudit.flows.stats import ELEMENTS, refresh_stats
from streetaudit.testing.seeded_results import fill_synthetic

X0, Y0 = 385_000.0, 6_672_000.0
TO_LONLAT = Transformer.from_crs(32635, 4326, always_xy=True)
TO_UTM = Transformer.from_crs(4326, 32635, always_xy=True)

Way = tuple[str, str | None, str, list[tuple[float, float]]]  # source id, name, kind, metres


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def lonlat(coords: list[tuple[float, float]]) -> LineString:
    xs, ys = TO_LONLAT.transform([X0 + x for x, _ in coords], [Y0 + y for _, y in coords])
    return LineString(zip(xs, ys, strict=True))


def load(conn: psycopg.Connection, ways: list[Way]) -> dict[str, int]:
    ids = {}
    for source_id, name, kind, coords in ways:
        line = lonlat(coords)
        ids[source_id] = conn.execute(
            "INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m) "
            "VALUES ('t', %s, %s, %s, ST_GeomFromText(%s, 4326), ST_Length(ST_GeomFromText(%s, 4326)::geography)) "
            "RETURNING id",
            (source_id, name, kind, line.wkt, line.wkt),
        ).fetchone()[0]
    return ids


def build(conn: psycopg.Connection, by: str = "junction", max_length: float | None = None) -> tuple:
    return conn.execute("SELECT * FROM streetaudit.build_streets(%s, %s)", (by, max_length)).fetchone()


def streets(conn: psycopg.Connection) -> Counter[tuple[str | None, str, tuple[str, ...], float]]:
    """Each street as (name, kind, its roads' source ids, metric length rounded to 0.1 m),
    counted: two equal streets (the halves of a road) are two."""
    rows = conn.execute(
        "SELECT s.name, s.kind, array_agg(r.source_id ORDER BY r.source_id), ST_AsText(s.geom) "
        "FROM streetaudit.street AS s JOIN streetaudit.road AS r ON r.id = ANY (s.road_ids) "
        "GROUP BY s.id"
    ).fetchall()
    out: Counter = Counter()
    for name, kind, roads, wkt in rows:
        xs, ys = zip(*shapely.from_wkt(wkt).coords, strict=True)
        metric = LineString(zip(*TO_UTM.transform(xs, ys), strict=True))
        out[name, kind, tuple(roads), round(metric.length, 1)] += 1
    return out


def bag(*streets: tuple) -> Counter:
    return Counter(streets)


def length(*pieces: list[tuple[float, float]]) -> float:
    return round(sum(LineString(p).length for p in pieces), 1)


# A street split into five ways, with bends, drawn end to end (some ways reversed).
FIVE = [
    (0.0, 0.0),
    (40.0, 0.0),
    (70.0, 20.0),
    (100.0, 20.0),
    (180.0, 60.0),
    (210.0, 60.0),
    (260.0, 100.0),
    (330.0, 100.0),
]
FIVE_WAYS: list[Way] = [
    ("a", "Long Street", "residential", FIVE[0:3]),
    ("b", "Long Street", "residential", FIVE[2:4][::-1]),
    ("c", "Long Street", "residential", FIVE[3:5]),
    ("d", "Long Street", "residential", FIVE[4:6][::-1]),
    ("e", "Long Street", "residential", FIVE[5:8]),
]


def test_a_street_split_into_five_ways_is_one_street(conn):
    load(conn, FIVE_WAYS)
    assert build(conn, max_length=None)[0] == 1
    assert streets(conn) == bag(("Long Street", "residential", ("a", "b", "c", "d", "e"), length(FIVE)))
    geodesic = conn.execute("SELECT length_m FROM streetaudit.street").fetchone()[0]
    assert math.isclose(geodesic, LineString(FIVE).length, rel_tol=2e-3)  # UTM scale vs the sphere


def test_max_length_cuts_a_street_into_equal_parts(conn):
    load(conn, FIVE_WAYS)
    total = LineString(FIVE).length
    parts = math.ceil(total / 150)
    assert build(conn, max_length=150)[0] == parts
    lengths = sorted(s[3] for s in streets(conn))
    assert lengths == pytest.approx([total / parts] * parts, abs=0.2)
    # The pieces cover every road once, end to end.
    covered = conn.execute(
        "SELECT r.source_id, sum(p.to_m - p.from_m), min(p.from_m), "
        "ST_Length(ST_Transform(r.geom, streetaudit.utm_srid(r.geom))) "
        "FROM streetaudit.street_piece AS p JOIN streetaudit.road AS r ON r.id = p.road_id GROUP BY r.id"
    ).fetchall()
    assert len(covered) == 5
    for _, summed, first, road_length in covered:
        assert first == 0 and summed == pytest.approx(road_length, abs=1e-6)


# A T-junction: the through road is one way passing the junction node (200, 0).
T_WAYS: list[Way] = [
    ("main", "Main Road", "secondary", [(0.0, 0.0), (200.0, 0.0), (400.0, 0.0)]),
    ("side", "Side Street", "residential", [(200.0, 0.0), (200.0, 150.0)]),
]


def test_a_t_junction_cuts_the_through_road(conn):
    load(conn, T_WAYS)
    build(conn, "junction", None)
    assert streets(conn) == bag(
        ("Main Road", "secondary", ("main",), 200.0),
        ("Main Road", "secondary", ("main",), 200.0),
        ("Side Street", "residential", ("side",), 150.0),
    )


def test_by_name_a_street_goes_on_across_a_side_street(conn):
    load(conn, T_WAYS)
    assert build(conn, "name", None)[0] == 2
    assert streets(conn) == bag(
        ("Main Road", "secondary", ("main",), 400.0),
        ("Side Street", "residential", ("side",), 150.0),
    )


def ring(radius: float, n: int, cx: float = 600.0, cy: float = 0.0) -> list[tuple[float, float]]:
    pts = [
        (cx + radius * math.cos(2 * math.pi * k / n), cy + radius * math.sin(2 * math.pi * k / n))
        for k in range(n)
    ]
    return [*pts, pts[0]]


def test_a_roundabout_is_cut_into_arcs_between_its_arms(conn):
    circle = ring(30.0, 12)  # vertices every 30 degrees; arms at vertices 1, 5 and 8
    load(
        conn,
        [
            ("ring", None, "primary", circle),
            ("north", "North Road", "primary", [circle[1], (circle[1][0], 200.0)]),
            ("west", "West Road", "primary", [(300.0, circle[5][1]), circle[5]]),
            ("south", "South Road", "primary", [circle[8], (circle[8][0], -200.0)]),
        ],
    )
    build(conn, "junction", None)
    got = streets(conn)
    arcs = sorted(s[3] for s in got.elements() if s[2] == ("ring",))
    # Arcs 1-5 and 5-8 inside the way; 8-12-1 across the way's own start, merged there.
    assert arcs == sorted([length(circle[1:6]), length(circle[5:9]), length(circle[8:] + circle[1:2])])
    assert {s[0] for s in got.elements() if s[2] != ("ring",)} == {"North Road", "West Road", "South Road"}
    assert got.total() == 6


def test_a_roundabout_without_arms_stays_one_closed_street(conn):
    circle = ring(30.0, 12)
    load(conn, [("ring", "Circle", "primary", circle)])
    build(conn, "junction", None)
    assert streets(conn) == bag(("Circle", "primary", ("ring",), length(circle)))
    assert conn.execute("SELECT ST_IsClosed(geom) FROM streetaudit.street").fetchone()[0]


# A dual carriageway: Main Road forks at (100, 0) into two one-way lines 10 m apart that
# join again at (400, 0); Cross Street crosses both at x = 250.
DUAL_WAYS: list[Way] = [
    ("m1", "Main Road", "primary", [(0.0, 0.0), (100.0, 0.0)]),
    ("north", "Main Road", "primary", [(100.0, 0.0), (120.0, 5.0), (250.0, 5.0), (380.0, 5.0), (400.0, 0.0)]),
    (
        "south",
        "Main Road",
        "primary",
        [(400.0, 0.0), (380.0, -5.0), (250.0, -5.0), (120.0, -5.0), (100.0, 0.0)],
    ),
    ("m2", "Main Road", "primary", [(400.0, 0.0), (500.0, 0.0)]),
    ("cross", "Cross Street", "residential", [(250.0, 100.0), (250.0, 5.0), (250.0, -5.0), (250.0, -100.0)]),
]
HALF = length([(100.0, 0.0), (120.0, 5.0), (250.0, 5.0)])


def test_a_dual_carriageway_is_two_streets_not_merged_across(conn):
    load(conn, DUAL_WAYS)
    build(conn, "name", None)
    assert streets(conn) == bag(
        ("Main Road", "primary", ("m1",), 100.0),
        ("Main Road", "primary", ("north",), 2 * HALF),
        ("Main Road", "primary", ("south",), 2 * HALF),
        ("Main Road", "primary", ("m2",), 100.0),
        ("Cross Street", "residential", ("cross",), 200.0),
    )


def test_by_junction_the_dual_carriageway_is_cut_at_the_cross_street(conn):
    load(conn, DUAL_WAYS)
    build(conn, "junction", None)
    got = streets(conn)
    assert sorted(s[3] for s in got.elements() if s[2] == ("north",)) == [HALF, HALF]
    assert sorted(s[3] for s in got.elements() if s[2] == ("south",)) == [HALF, HALF]
    assert sorted(s[3] for s in got.elements() if s[2] == ("cross",)) == [10.0, 95.0, 95.0]
    assert got.total() == 9


# Unnamed service roads: s1-s2 end to end, then a junction at (100, 0) with s3 and s4;
# an unnamed footway goes on from s3's end (another kind).
SERVICE_WAYS: list[Way] = [
    ("s1", None, "service", [(0.0, 0.0), (50.0, 0.0)]),
    ("s2", None, "service", [(50.0, 0.0), (100.0, 0.0)]),
    ("s3", None, "service", [(100.0, 0.0), (150.0, 0.0)]),
    ("s4", None, "service", [(100.0, 0.0), (100.0, 60.0)]),
    ("f", None, "footway", [(150.0, 0.0), (200.0, 0.0)]),
]


@pytest.mark.parametrize("by", ["junction", "name"])
def test_unnamed_service_roads_merge_by_kind_between_junctions(conn, by):
    load(conn, SERVICE_WAYS)
    build(conn, by, None)
    assert streets(conn) == bag(
        (None, "service", ("s1", "s2"), 100.0),
        (None, "service", ("s3",), 50.0),
        (None, "service", ("s4",), 60.0),
        (None, "footway", ("f",), 50.0),
    )


def test_bad_parameters_are_refused_by_name(conn):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="by must be junction or name"):
        build(conn, "street", None)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="max_length must be"):
        build(conn, "junction", 5)


def point_streets(conn: psycopg.Connection) -> dict[int, int]:
    return dict(conn.execute("SELECT point_id, street_id FROM streetaudit.point_street"))


def test_rebuild_keeps_points_images_and_street_ids(conn, fresh_db_url):
    load(conn, FIVE_WAYS + T_WAYS)
    conn.execute("SELECT * FROM streetaudit.densify_roads(30)")
    fill_synthetic(fresh_db_url, seed=3)
    build(conn, "junction", 100)
    counts = "SELECT (SELECT count(*) FROM streetaudit.sample_point), (SELECT count(*) FROM streetaudit.image), (SELECT count(*) FROM streetaudit.segmentation)"
    before = conn.execute(counts).fetchone()
    first = conn.execute("SELECT id, key, ST_AsText(geom) FROM streetaudit.street ORDER BY id").fetchall()
    mapping = point_streets(conn)
    total, kept, added, removed, _ = build(conn, "junction", 100)
    assert (kept, added, removed) == (total, 0, 0)
    assert (
        conn.execute("SELECT id, key, ST_AsText(geom) FROM streetaudit.street ORDER BY id").fetchall()
        == first
    )
    assert point_streets(conn) == mapping and len(mapping) == before[0]
    assert dict(conn.execute("SELECT point_id, street_id FROM api.point_streets")) == mapping  # none retired
    build(conn, "name", None)  # other streets, then back
    assert conn.execute(counts).fetchone() == before
    build(conn, "junction", 100)
    assert conn.execute(counts).fetchone() == before
    assert {k for _, k, _ in first} == {r[0] for r in conn.execute("SELECT key FROM streetaudit.street")}


def test_street_stats_are_numpy_means_over_the_points_of_each_part(conn, fresh_db_url):
    """Five ways (359.5 m) cut into three equal parts; a point's part follows from where its
    road starts along the street plus its distance along the road (ways b and d reversed)."""
    ids = load(conn, FIVE_WAYS)
    conn.execute("SELECT * FROM streetaudit.densify_roads(30, 0)")
    model = fill_synthetic(fresh_db_url, seed=9).model_id
    build(conn, "junction", 120)
    assert refresh_stats(fresh_db_url, model=model).model_id == model
    lengths = {ids[w[0]]: LineString(w[3]).length for w in FIVE_WAYS}
    starts = dict(zip(lengths, np.cumsum([0.0, *lengths.values()])[:-1], strict=True))
    reversed_roads = {ids["b"], ids["d"]}
    part_length = sum(lengths.values()) / 3
    points = conn.execute(
        "SELECT p.id, p.road_id, p.distance_m, " + ", ".join(f"pe.{e}" for e in ELEMENTS) + " "
        "FROM streetaudit.sample_point AS p JOIN api.point_elements AS pe ON pe.point_id = p.id"
    ).fetchall()
    groups: dict[int, dict[int, list[float]]] = {}
    for point_id, road_id, distance, *values in points:
        along = lengths[road_id] - distance if road_id in reversed_roads else distance
        position = starts[road_id] + along
        assert min(abs(position - part_length), abs(position - 2 * part_length)) > 1  # none on a boundary
        groups.setdefault(min(2, int(position // part_length)), {})[point_id] = values
    by_street: dict[int, set[int]] = {}
    for point_id, street_id in point_streets(conn).items():
        by_street.setdefault(street_id, set()).add(point_id)
    assert sorted(sorted(s) for s in by_street.values()) == sorted(sorted(g) for g in groups.values())
    rows = conn.execute(
        "SELECT street_id, n_points, "
        + ", ".join(f"{e}_mean, {e}_std" for e in ELEMENTS)
        + " FROM api.street_stats"
    ).fetchall()
    assert len(rows) == 3
    for street_id, n, *stats in rows:
        (group,) = [g for g in groups.values() if set(g) == by_street[street_id]]
        values = np.array(list(group.values()), dtype=float)
        assert n == len(values)
        expected = np.column_stack([values.mean(axis=0), values.std(axis=0, ddof=1)]).ravel()
        assert np.allclose(np.array(stats, dtype=float), expected, rtol=1e-9, atol=1e-12)


def write_ways(path, ways: list[Way]) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"name": name, "kind": kind},
            "geometry": shapely.geometry.mapping(lonlat(coords)),
        }
        for _, name, kind, coords in ways
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def test_reloading_changed_roads_rebuilds_streets_as_last_built(conn, fresh_db_url, tmp_path):
    roads = tmp_path / "roads.geojson"
    write_ways(roads, T_WAYS[:1])
    first = load_roads(fresh_db_url, roads, name_field="name", kind_field="kind")
    assert first.streets_rebuilt is None  # never built: nothing to keep up to date
    build(conn, "junction", None)
    assert streets(conn) == bag(("Main Road", "secondary", ("1",), 400.0))
    write_ways(roads, T_WAYS)  # a side street now meets the main road half way
    second = load_roads(fresh_db_url, roads, name_field="name", kind_field="kind")
    assert second.streets_rebuilt == ("junction", None, 3)
    assert streets(conn) == bag(
        ("Main Road", "secondary", ("1",), 200.0),
        ("Main Road", "secondary", ("1",), 200.0),
        ("Side Street", "residential", ("2",), 150.0),
    )
    again = load_roads(fresh_db_url, roads, name_field="name", kind_field="kind")
    assert again.streets_rebuilt is None  # nothing changed, nothing rebuilt
