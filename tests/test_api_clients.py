"""What map clients need from the API besides tiles: each layer's real bounds and center,
pg_tileserv's .mvt / HEAD / max_bytes= / preview pages, styles for MapLibre and QGIS from the
ramps module, internal views kept out of the OGC API, and integers that stay integers in CSV."""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from streetaudit.api import ramps
from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.export import export_stats
from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.browser import CHROMIUM, CHROMIUM_ARGS
from streetaudit.testing.http_server import serving
from streetaudit.testing.sample_rows import tile_of
from streetaudit.testing.seeded_results import synthetic_models

# layer -> the api view (and filter) its features come from
LAYER_SOURCES = {
    "api.roads": "SELECT geom FROM api.road_stats",
    "api.areas": "SELECT geom FROM api.area_stats WHERE area_id IS NOT NULL",
    "api.points": "SELECT geom FROM api.point_elements",
}
EARTH = 2 * 20037508.342789244  # the web-mercator world's width, metres


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def client(db_url: str, reader_db_url: str) -> Iterator[TestClient]:
    synthetic_models(db_url, seeds=(91,))
    refresh_stats(db_url)
    with TestClient(create_app(reader_db_url, ApiSettings(version_ttl=0))) as c:
        yield c


@pytest.fixture(scope="module")
def server(client, reader_db_url: str) -> Iterator[str]:
    with serving(create_app(reader_db_url, ApiSettings(ogc=False)), startup_s=30) as base:
        yield base


def fetch(db_url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, params).fetchall()


def shapely_bounds(db_url: str, query: str) -> tuple[float, ...]:
    geoms = [
        shapely.from_wkb(bytes(w)) for (w,) in fetch(db_url, f"SELECT ST_AsBinary(geom) FROM ({query}) q")
    ]
    return shapely.total_bounds(geoms)


def mercator_span(bounds) -> float:
    w, s, e, n = bounds
    y = [math.log(math.tan(math.pi / 4 + math.radians(v) / 2)) * EARTH / (2 * math.pi) for v in (s, n)]
    return max((e - w) * EARTH / 360, y[1] - y[0])


@pytest.mark.parametrize("layer", sorted(LAYER_SOURCES))
def test_tilejson_and_layer_json_give_the_layers_own_bounds_and_center(client, db_url, layer):
    expected = shapely_bounds(db_url, LAYER_SOURCES[layer])
    tj = client.get(f"/{layer}/tilejson.json").json()
    detail = client.get(f"/{layer}.json").json()
    assert np.allclose(tj["bounds"], expected, atol=1e-7), (tj["bounds"], expected)
    assert detail["bounds"] == tj["bounds"] and detail["center"] == tj["center"][:2]
    lon, lat, zoom = tj["center"]
    w, s, e, n = expected
    assert w < lon < e and s < lat < n
    assert tj["minzoom"] <= zoom <= tj["maxzoom"]
    if zoom > tj["minzoom"]:  # the largest zoom whose 512-pixel tile holds the extent
        assert EARTH / 2**zoom >= mercator_span(expected) > EARTH / 2 ** (zoom + 1)


def test_layers_differ_in_bounds_where_their_data_does(client):
    roads = client.get("/api.roads/tilejson.json").json()["bounds"]
    areas = client.get("/api.areas/tilejson.json").json()["bounds"]
    assert roads != areas
    assert roads[0] <= areas[0] and areas[2] <= roads[2] + 1e-6  # the core lies within the streets


@pytest.fixture(scope="module")
def z14(db_url: str, client) -> tuple[int, int, int]:
    ((lon, lat),) = fetch(
        db_url,
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c FROM api.road_stats) e",
    )
    return tile_of(lon, lat, 14)


def test_mvt_is_the_same_tile_as_pbf_and_head_answers_without_a_body(client, server, z14):
    import httpx

    z, x, y = z14
    pbf = client.get(f"/api.roads/{z}/{x}/{y}.pbf")
    mvt = client.get(f"/api.roads/{z}/{x}/{y}.mvt")
    assert mvt.status_code == 200 and mvt.content == pbf.content and len(pbf.content) > 1000
    assert mvt.headers["etag"] == pbf.headers["etag"]
    for path in (
        f"/api.roads/{z}/{x}/{y}.pbf",
        f"/api.roads/{z}/{x}/{y}.mvt",
        "/api.roads/tilejson.json",
        "/api.roads.json",
        "/index.json",
        "/index.html",
        "/api.roads.html",
    ):
        got = client.get(path)
        head = httpx.head(f"{server}{path}", headers={"Accept-Encoding": "identity"})
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    head = httpx.head(f"{server}/api.roads/{z}/{x}/{y}.pbf", headers={"Accept-Encoding": "identity"})
    assert head.headers["etag"] == pbf.headers["etag"] and int(head.headers["content-length"]) == len(
        pbf.content
    )
    assert httpx.head(f"{server}/api.nothing/1/0/0.pbf").status_code == 404


def test_max_bytes_is_honoured_or_rejected(client, z14):
    z, x, y = z14
    full = client.get(f"/api.roads/{z}/{x}/{y}.pbf").content
    full_ids = {f["id"] for f in mapbox_vector_tile.decode(full)["api.roads"]["features"]}
    budget = len(full) // 3
    small = client.get(f"/api.roads/{z}/{x}/{y}.pbf", params={"max_bytes": budget})
    assert small.status_code == 200 and 0 < len(small.content) <= budget
    kept = {f["id"] for f in mapbox_vector_tile.decode(small.content)["api.roads"]["features"]}
    assert kept < full_ids and len(kept) < len(full_ids) / 2
    assert small.headers["etag"] != client.get(f"/api.roads/{z}/{x}/{y}.pbf").headers["etag"]
    same = client.get(f"/api.roads/{z}/{x}/{y}.mvt", params={"max_bytes": 500000})
    assert same.content == full
    for bad in ("0", "-5", "500001", "abc", "1e5", "٣"):
        r = client.get(f"/api.roads/{z}/{x}/{y}.pbf", params={"max_bytes": bad})
        assert r.status_code == 400 and "max_bytes" in r.json()["detail"], bad
    r = client.get(f"/api.detections/{z}/{x}/{y}.pbf", params={"max_bytes": 1000})
    assert r.status_code == 400 and "does not take max_bytes" in r.json()["detail"]


def test_index_html_links_every_layer_to_its_preview(client):
    layers = set(client.get("/index.json").json())
    page = client.get("/index.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for layer in layers:
        assert f'href="{layer}.html"' in page.text and f'href="{layer}.qml"' in page.text
        preview = client.get(f"/{layer}.html")
        assert preview.status_code == 200 and f'data-layer="{layer}"' in preview.text
    assert client.get("/api.nothing.html").status_code == 404


@pytest.mark.slow
def test_layer_preview_draws_the_layer_in_chromium_at_its_bounds(client, server):
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "request",
            lambda r: foreign.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None,
        )
        page.goto(f"{server}/api.areas.html")
        page.wait_for_function(
            "() => window.streetauditIdle && window.streetauditPreview"
            " && window.streetauditPreview.queryRenderedFeatures().some(f => f.sourceLayer === 'api.areas')",
            timeout=60_000,
        )
        west, south, east, north = page.evaluate(
            "() => window.streetauditPreview.getBounds().toArray().flat()"
        )
        browser.close()
    assert not errors and not foreign, (errors, foreign)
    bw, bs, be, bn = client.get("/api.areas/tilejson.json").json()["bounds"]
    assert west <= bw and east >= be and south <= bs and north >= bn  # the view holds the layer
    assert (east - west) < 20 * (be - bw)  # and is about it, not the world


def expected_ramp_top(db_url: str, element: str) -> float:
    ((top,),) = fetch(db_url, f"SELECT max({element}_max) FROM api.area_stats")
    return float(top)


@pytest.mark.parametrize(("element", "statistic"), [("greenery", "mean"), ("sky", "std")])
def test_style_json_points_at_our_tilejson_and_uses_the_maps_ramps(client, db_url, element, statistic):
    style = client.get("/style.json", params={"element": element, "statistic": statistic}).json()
    assert style["version"] == 8
    index = set(client.get("/index.json").json())
    for source in style["sources"].values():
        path = source["url"].removeprefix("http://testserver")
        assert client.get(path).status_code == 200 and path.endswith("/tilejson.json")
    for layer in style["layers"][1:]:
        assert layer["source"] in style["sources"] and layer["source-layer"] in index
    roads = next(layer for layer in style["layers"] if layer["id"] == "roads")
    expression = roads["paint"]["line-color"]
    assert expression[1] == ["==", ["get", f"{element}_{statistic}"], None] and expression[2] == ramps.NO_DATA
    stops = expression[3][3:]
    top = expected_ramp_top(db_url, element) / (2 if statistic == "std" else 1)
    assert np.allclose(stops[0::2], np.linspace(0, top, len(ramps.VIRIDIS)))
    assert stops[1::2] == list(ramps.VIRIDIS)
    lon, lat = style["center"]
    w, s, e, n = client.get("/api.roads/tilejson.json").json()["bounds"]
    assert w < lon < e and s < lat < n
    listed = client.get("/ramps.json").json()
    assert listed["roads"][element][statistic]["stops"] == [
        list(p) for p in zip(stops[0::2], stops[1::2], strict=True)
    ]
    for bad in ({"element": "geom"}, {"element": "x');--"}, {"statistic": "median"}):
        assert client.get("/style.json", params=bad).status_code == 400


def test_qml_is_a_vector_tile_style_with_the_same_ramp(client, db_url):
    text = client.get("/api.roads.qml", params={"element": "building"}).text
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "qgis" and root.find("renderer").get("type") == "basic"
    (style,) = root.iter("style")
    assert style.get("layer") == "api.roads" and style.get("geometry") == "1"
    (colour,) = (o for o in style.iter("Option") if o.get("name") == "outlineColor")
    expression = next(o.get("value") for o in colour.iter("Option") if o.get("name") == "expression")
    top = expected_ramp_top(db_url, "building")
    assert '"building_mean"' in expression and repr(top) in expression
    assert [c for c in ramps.VIRIDIS if c in expression] == list(ramps.VIRIDIS)
    points = ET.fromstring(client.get("/api.points.qml").text.split("\n", 1)[1])
    (style,) = points.iter("style")
    assert style.get("geometry") == "0" and style.get("min-zoom") == "14"
    areas = ET.fromstring(client.get("/api.areas.qml").text.split("\n", 1)[1])
    assert next(areas.iter("style")).get("geometry") == "2"
    assert client.get("/api.nothing.qml").status_code == 404


def test_internal_views_are_hidden_from_the_ogc_api(client):
    collections = {c["id"] for c in client.get("/ogc/collections").json()["collections"]}
    assert {"api.road_stats", "api.area_stats", "api.area_comparison"} <= collections
    assert not collections & {"api.tile_layers", "api.data_version", "api.rating_status"}
    assert client.get("/ogc/collections/api.tile_layers/items").status_code == 404


def integer_columns(db_url: str, view: str) -> list[str]:
    rows = fetch(
        db_url,
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) ORDER BY attnum",
        (view,),
    )
    return [r[0] for r in rows]


def test_integer_columns_stay_integers_in_csv(client, db_url, tmp_path):
    columns = integer_columns(db_url, "api.area_stats")
    assert {"area_id", "n_points"} <= set(columns)
    expected = fetch(db_url, f"SELECT {', '.join(columns)} FROM api.area_stats ORDER BY area_id NULLS LAST")
    assert any(row[0] is None for row in expected)  # the rest of the city: what made area_id a float
    api_rows = list(csv.DictReader(io.StringIO(client.get("/stats/areas", params={"format": "csv"}).text)))
    export_stats(db_url, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "area_stats.csv", newline="") as f:
        export_rows = sorted(csv.DictReader(f), key=lambda r: (r["area_id"] == "", int(r["area_id"] or 0)))
    for table in (api_rows, export_rows):
        got = [tuple(None if r[c] == "" else r[c] for c in columns) for r in table]
        assert got == [tuple(None if v is None else str(v) for v in row) for row in expected]
    roads = integer_columns(db_url, "api.road_stats")
    with open(tmp_path / "csv" / "road_stats.csv", newline="") as f:
        first = next(csv.DictReader(f))
    assert all(first[c].lstrip("-").isdigit() for c in roads), {c: first[c] for c in roads}


def test_readme_sql_examples_return_rows_as_the_reader(client, reader_db_url):
    from streetaudit.testing.readme_examples import analyst_examples

    examples = analyst_examples()
    assert len(examples) >= 4
    with psycopg.connect(reader_db_url) as conn:
        for comment, statement in examples:
            rows = conn.execute(statement).fetchall()
            assert rows, f"README example returns no rows on the test data: {comment}"


def test_the_map_page_uses_the_ramps_module_numbers():
    """Until /map reads /ramps.json, its copy of the ramps must equal api/ramps.py."""
    import re
    from pathlib import Path

    import streetaudit.api

    script = (Path(streetaudit.api.__file__).parent / "static" / "map.js").read_text()
    colours = re.search(r"const COLOURS = \[([^\]]*)\]", script)
    if colours is None:
        assert "ramps.json" in script  # the page reads the module's ramps instead
        return
    assert re.findall(r'"(#[0-9a-f]{6})"', colours.group(1)) == list(ramps.VIRIDIS)
    assert (
        f"const ELO_LOW = {ramps.ELO_LOW:g};" in script and f"const ELO_HIGH = {ramps.ELO_HIGH:g};" in script
    )
    assert f'"{ramps.NO_DATA}"' in script and f'"{ramps.AREA}"' in script
