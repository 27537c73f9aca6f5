"""Tile functions in SQL: decoded with mapbox-vector-tile and with GDAL's MVT driver; the reader role.

Expected features come from the base tables: every road crossing the tile is in it, and
nothing far outside it is; attribute values equal the statistics views exactly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import mapbox_vector_tile
import psycopg
import pytest

from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.sample_rows import tile_of
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def data(db_url: str) -> dict:
    synthetic_models(db_url, seeds=(31,))
    refresh_stats(db_url)
    with psycopg.connect(db_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c FROM streetaudit.road) AS e"
        ).fetchone()
    return {"centre": (lon, lat)}


def call(db_url: str, layer: str, z: int, x: int, y: int, properties: str | None = None) -> bytes:
    with psycopg.connect(db_url) as conn:
        data = conn.execute(f"SELECT api.{layer}(%s, %s, %s, %s)", (z, x, y, properties)).fetchone()[0]
    return bytes(data)


def roads_crossing(db_url: str, z: int, x: int, y: int, margin: float = 0.0) -> set[int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT id FROM streetaudit.road
               WHERE ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(%s, %s, %s, margin => %s))""",
            (z, x, y, margin),
        ).fetchall()
    return {r[0] for r in rows}


def decode(tile: bytes) -> dict:
    return mapbox_vector_tile.decode(tile)


def test_segment_tile_holds_every_road_crossing_it_with_its_statistics(db_url, data):
    z, x, y = tile_of(*data["centre"], 14)
    layer = decode(call(db_url, "roads", z, x, y))["api.roads"]
    got = {f["id"]: f["properties"] for f in layer["features"]}
    assert roads_crossing(db_url, z, x, y) <= set(got) <= roads_crossing(db_url, z, x, y, 64 / 4096 + 1e-6)
    with psycopg.connect(db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        stats = {r["road_id"]: r for r in cur.execute("SELECT * FROM api.road_stats").fetchall()}
    for road_id, props in got.items():
        row = stats[road_id]
        assert props["name"] == row["name"] if row["name"] else "name" not in props
        assert props["n_points"] == row["n_points"]
        for key in ("greenery_mean", "greenery_std", "car_mean", "car_std"):
            assert props.get(key) == row[key]  # doubles travel exactly; NULL is left out


def test_low_zoom_segments_carry_means_only(db_url, data):
    z, x, y = tile_of(*data["centre"], 10)
    features = decode(call(db_url, "roads", z, x, y))["api.roads"]["features"]
    # Generalised: fewer, merged features, whose lengths still account for every road crossing the tile.
    with psycopg.connect(db_url) as conn:
        lengths = dict(conn.execute("SELECT id, length_m FROM streetaudit.road").fetchall())
    crossing = sum(lengths[r] for r in roads_crossing(db_url, z, x, y))
    assert sum(f["properties"]["length_m"] for f in features) >= crossing * (1 - 1e-9) > 0
    assert all("greenery_std" not in f["properties"] for f in features)
    assert any("greenery_mean" in f["properties"] for f in features)


def test_properties_keeps_only_the_named_attributes(db_url, data):
    z, x, y = tile_of(*data["centre"], 14)
    features = decode(call(db_url, "roads", z, x, y, "greenery_mean,name"))["api.roads"]["features"]
    assert features and all(set(f["properties"]) <= {"greenery_mean", "name"} for f in features)
    assert any("greenery_mean" in f["properties"] for f in features)


def test_points_appear_only_from_zoom_14_with_their_values(db_url, data):
    z, x, y = tile_of(*data["centre"], 13)
    assert call(db_url, "points", z, x, y) == b""
    z, x, y = tile_of(*data["centre"], 14)
    features = decode(call(db_url, "points", z, x, y))["api.points"]["features"]
    with psycopg.connect(db_url) as conn:
        values = dict(conn.execute("SELECT point_id, sky FROM api.point_elements").fetchall())
        inside = {
            r[0]
            for r in conn.execute(
                "SELECT point_id FROM api.point_elements WHERE ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(%s, %s, %s))",
                (z, x, y),
            )
        }
    assert inside and inside <= {f["id"] for f in features}
    assert all(f["properties"]["sky"] == values[f["id"]] for f in features)


def test_area_tile_holds_the_heritage_areas(db_url, data):
    z, x, y = tile_of(*data["centre"], 12)
    features = decode(call(db_url, "areas", z, x, y))["api.areas"]["features"]
    names = {f["properties"]["area_name"] for f in features}
    assert names == {"Empire centre (Senate Square)", "Esplanadi"}
    assert all(f["properties"]["n_points"] > 0 for f in features)


def test_every_tile_stays_small(db_url, data):
    for z in (10, 12, 14, 16):
        z, x, y = tile_of(*data["centre"], z)
        for layer in ("roads", "points", "areas"):
            assert len(call(db_url, layer, z, x, y)) < 500_000


def test_gdal_mvt_driver_reads_the_tile(db_url, data, tmp_path: Path):
    z, x, y = tile_of(*data["centre"], 14)
    path = tmp_path / str(z) / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(call(db_url, "roads", z, x, y))
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-q", "-oo", "CLIP=NO", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    ids = {int(m) for m in re.findall(r"mvt_id \(Integer64\) = (\d+)", out.stdout)}
    assert "Layer name: api.roads" in out.stdout
    assert roads_crossing(db_url, z, x, y) <= ids
    assert re.search(r"greenery_mean \(Real\) = 0\.\d+", out.stdout)


def test_hostile_properties_text_is_only_ever_a_value(db_url, data):
    z, x, y = tile_of(*data["centre"], 14)
    hostile = "name'); DROP TABLE streetaudit.road; --"
    features = decode(call(db_url, "roads", z, x, y, hostile))["api.roads"]["features"]
    assert features and all(f["properties"] == {} for f in features)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.road").fetchone()[0] > 0


# -- the reader role ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reader(pg_cluster, db_url: str, data):
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(pg_cluster.reader_url(name), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(
    "view",
    ["road_stats", "area_stats", "area_comparison", "point_elements", "data_version", "tile_layers"],
)
def test_reader_reads_every_api_view_in_full(reader, db_url, view):
    query = f"SELECT count(*) FROM api.{view}"
    with psycopg.connect(db_url) as owner:
        expected = owner.execute(query).fetchone()[0]
    assert expected > 0
    assert reader.execute(query).fetchone()[0] == expected


@pytest.mark.parametrize("layer", ["roads", "points", "areas"])
def test_reader_gets_the_same_tiles_as_the_owner(reader, db_url, data, layer):
    z, x, y = tile_of(*data["centre"], 14 if layer == "points" else 12)
    tile = bytes(reader.execute(f"SELECT api.{layer}(%s, %s, %s)", (z, x, y)).fetchone()[0])
    assert decode(tile)[f"api.{layer}"]["features"]
    assert tile == call(db_url, layer, z, x, y)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM streetaudit.road LIMIT 1",
        "SELECT * FROM streetaudit.segmentation LIMIT 1",
        "SELECT * FROM streetaudit.stats_state",
        "SELECT * FROM streetaudit.road_features LIMIT 1",
        "SELECT streetaudit.refresh_stats(1)",
        "REFRESH MATERIALIZED VIEW api.road_stats",
        "DELETE FROM api.area_comparison",
        "INSERT INTO api.area_comparison (area_name, element, n_core, n_rest) VALUES ('x', 'sky', 1, 1)",
        "CREATE TABLE api.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "CREATE FUNCTION api.roads(z integer, x integer, y integer) RETURNS bytea LANGUAGE sql AS 'SELECT NULL::bytea'",
    ],
)
def test_reader_cannot_read_or_change_anything_else(reader, query):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(query)


def test_reader_cannot_change_the_layer_list(reader):
    with pytest.raises(psycopg.errors.Error):  # not updatable (a derived view) and not granted
        reader.execute("INSERT INTO api.tile_layers (id) VALUES ('x')")
    assert reader.execute("SELECT count(*) FROM api.tile_layers WHERE id = 'x'").fetchone()[0] == 0


def test_a_tile_over_its_byte_budget_keeps_the_longest_roads(db_url, data):
    z, x, y = tile_of(*data["centre"], 14)
    full = decode(call(db_url, "roads", z, x, y))["api.roads"]["features"]
    with psycopg.connect(db_url) as conn:
        small = bytes(conn.execute("SELECT api.roads(%s, %s, %s, NULL, 20000)", (z, x, y)).fetchone()[0])
        huge = bytes(conn.execute("SELECT api.roads(%s, %s, %s, NULL, 10000000)", (z, x, y)).fetchone()[0])
        lengths = dict(conn.execute("SELECT road_id, length_m FROM api.road_stats").fetchall())
    kept = decode(small)["api.roads"]["features"]
    assert 0 < len(small) <= 20000 and 0 < len(kept) < len(full)
    assert len(huge) == len(call(db_url, "roads", z, x, y))  # the budget can only be lowered
    shortest_kept = min(lengths[f["id"]] for f in kept)
    dropped = {f["id"] for f in full} - {f["id"] for f in kept}
    assert all(lengths[d] <= shortest_kept for d in dropped)


def test_low_zoom_tiles_are_prebuilt_and_equal_to_computed_ones(db_url, data):
    with psycopg.connect(db_url) as conn:
        prebuilt = conn.execute(
            "SELECT layer, z, x, y, tile FROM streetaudit.prebuilt_tile ORDER BY layer, z, x, y"
        ).fetchall()
        assert {layer for layer, *_ in prebuilt} == {"api.roads", "api.areas"}
        assert {z for _, z, _, _, _ in prebuilt} == set(range(14))
        every = dict(
            conn.execute("SELECT id, array_to_string(properties, ',') FROM api.tile_layers").fetchall()
        )
        for layer, z, x, y, tile in prebuilt:
            # Naming every attribute bypasses the pre-built tile and computes the same one.
            computed = conn.execute(f"SELECT {layer}(%s, %s, %s, %s)", (z, x, y, every[layer])).fetchone()[0]
            assert bytes(tile) == bytes(computed)
            assert bytes(conn.execute(f"SELECT {layer}(%s, %s, %s)", (z, x, y)).fetchone()[0]) == bytes(tile)
    z, x, y = tile_of(*data["centre"], 10)
    assert ("api.roads", z, x, y) in {row[:4] for row in prebuilt}


@pytest.mark.parametrize(("layer", "z"), [("roads", 14), ("points", 16), ("areas", 14), ("areas", 10)])
def test_tile_layers_lists_exactly_the_attributes_tiles_carry(db_url, data, layer, z):
    """The API validates properties= and writes TileJSON from api.tile_layers: it must not drift."""
    with psycopg.connect(db_url) as conn:
        properties, types = conn.execute(
            "SELECT properties, property_types FROM api.tile_layers WHERE id = %s", (f"api.{layer}",)
        ).fetchone()
    features = decode(call(db_url, layer, *tile_of(*data["centre"], z)))[f"api.{layer}"]["features"]
    carried = {key for f in features for key in f["properties"]}
    assert features and carried == set(properties)
    declared = dict(zip(properties, types, strict=True))
    for f in features:
        for key, value in f["properties"].items():
            assert declared[key] == ("String" if isinstance(value, str) else "Number"), key


def test_low_zoom_segments_carry_the_declared_means_only(db_url, data):
    with psycopg.connect(db_url) as conn:
        properties = conn.execute("SELECT properties FROM api.tile_layers WHERE id = 'api.roads'").fetchone()[
            0
        ]
    features = decode(call(db_url, "roads", *tile_of(*data["centre"], 10)))["api.roads"]["features"]
    assert {key for f in features for key in f["properties"]} == {
        p for p in properties if not p.endswith("_std")
    }


def test_points_carry_no_attribute_outside_tile_layers(db_url, data):
    with psycopg.connect(db_url) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'api.point_elements'::regclass AND attnum > 0"
            )
        ]
    assert {"area_ids", "in_core"} <= set(columns)  # in point_elements for analysts, not in tiles
    features = decode(call(db_url, "points", *tile_of(*data["centre"], 16)))["api.points"]["features"]
    assert features and all("area_ids" not in f["properties"] for f in features)


@pytest.mark.parametrize("layer", ["roads", "points", "areas"])
def test_declared_properties_are_the_attributes_tiles_carry(db_url, data, layer):
    """api.tile_layers drives `properties=` validation and TileJSON: it must match the tiles."""
    with psycopg.connect(db_url) as conn:
        names, types = conn.execute(
            "SELECT properties, property_types FROM api.tile_layers WHERE id = %s", (f"api.{layer}",)
        ).fetchone()
    # at full detail (z14+: no overview simplification); NULLs are left out of a feature, so
    # the union over every feature of the tile is what the layer carries
    features = decode(call(db_url, layer, *tile_of(*data["centre"], 14)))[f"api.{layer}"]["features"]
    assert len(features) > 1
    carried: dict[str, set[str]] = {}
    for feature in features:
        for key, value in feature["properties"].items():
            carried.setdefault(key, set()).add("String" if isinstance(value, str) else "Number")
    assert set(carried) == set(names)
    assert {k: {t} for k, t in zip(names, types, strict=True)} == carried
