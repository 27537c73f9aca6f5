"""The API's tile endpoints: pg_tileserv-compatible index, TileJSON, tiles, caching, bad input."""

from __future__ import annotations

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from streetaudit.api import tiles
from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.api.tile_fast_path import TileFastPath
from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.sample_rows import tile_of
from streetaudit.testing.seeded_results import synthetic_models

LAYERS = {"api.roads", "api.points", "api.areas", "api.ratings", "api.detections", "api.streets"}


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def client(db_url: str, reader_db_url: str):
    synthetic_models(db_url, seeds=(41,))
    refresh_stats(db_url)
    app = create_app(
        reader_db_url, ApiSettings(version_ttl=0, ogc=False, cors_origins="https://maps.example")
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def z14(db_url: str, client) -> tuple[int, int, int]:
    with psycopg.connect(db_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c FROM streetaudit.road) e"
        ).fetchone()
    return tile_of(lon, lat, 14)


def counts(db_url: str) -> tuple:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT (SELECT count(*) FROM streetaudit.road), (SELECT count(*) FROM streetaudit.sample_point),
                      (SELECT count(*) FROM streetaudit.segmentation), (SELECT count(*) FROM api.road_stats),
                      (SELECT count(*) FROM streetaudit.area_comparison_result), (SELECT version FROM api.data_version)"""
        ).fetchone()


def test_index_lists_the_tile_functions_like_pg_tileserv(client):
    index = client.get("/index.json").json()
    assert set(index) == LAYERS
    assert index["api.roads"]["type"] == "function" and index["api.roads"]["detailurl"].endswith(
        "/api.roads.json"
    )
    detail = client.get("/api.points.json").json()
    assert detail["id"] == "api.points" and detail["minzoom"] == 14
    assert detail["tileurl"].endswith("/api.points/{z}/{x}/{y}.pbf")
    assert {"name": "greenery", "type": "Number"} in detail["properties"]


def test_tilejson_is_3_0_0_with_versioned_tile_urls(client, db_url):
    tj = client.get("/api.roads/tilejson.json").json()
    version = counts(db_url)[-1]
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"] == [f"http://testserver/api.roads/{{z}}/{{x}}/{{y}}.pbf?v={version}"]
    assert tj["vector_layers"][0]["id"] == "api.roads"
    assert tj["vector_layers"][0]["fields"]["greenery_mean"] == "Number"
    west, south, east, north = tj["bounds"]
    assert 24.9 < west < east < 25.0 and 60.1 < south < north < 60.2


def test_tile_decodes_and_properties_selects_attributes(client, z14):
    z, x, y = z14
    r = client.get(f"/api.roads/{z}/{x}/{y}.pbf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = mapbox_vector_tile.decode(r.content)["api.roads"]["features"]
    assert len(features) > 100
    r = client.get(f"/api.roads/{z}/{x}/{y}.pbf", params={"properties": "greenery_mean"})
    features = mapbox_vector_tile.decode(r.content)["api.roads"]["features"]
    assert all(set(f["properties"]) <= {"greenery_mean"} for f in features)
    assert client.get(f"/api.points/{z - 1}/{x // 2}/{y // 2}.pbf").content == b""


def test_etag_and_if_none_match_give_304(client, z14):
    z, x, y = z14
    first = client.get(f"/api.roads/{z}/{x}/{y}.pbf")
    etag = first.headers["etag"]
    again = client.get(f"/api.roads/{z}/{x}/{y}.pbf", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = client.get(f"/api.roads/{z}/{x}/{y}.pbf?properties=name", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_stats_refresh_changes_etag_and_cache_control_follows_the_version(client, db_url, z14):
    z, x, y = z14
    path = f"/api.areas/{z}/{x}/{y}.pbf"
    before = client.get(path)
    version = counts(db_url)[-1]
    assert before.headers["cache-control"] == "public, max-age=60"
    pinned = client.get(path, params={"v": version})
    assert "immutable" in pinned.headers["cache-control"]
    # Nothing changed since the last refresh: only --full publishes a new version then.
    refresh_stats(db_url, full=True)
    after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    stale = client.get(path, params={"v": version})
    assert stale.headers["cache-control"] == "public, max-age=60"


def test_tiles_are_gzipped_and_cors_is_configurable(client, z14):
    z, x, y = z14
    r = client.get(
        f"/api.roads/{z}/{x}/{y}.pbf",
        headers={"Accept-Encoding": "gzip", "Origin": "https://maps.example"},
    )
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["access-control-allow-origin"] == "https://maps.example"
    assert "ETag" in r.headers["access-control-expose-headers"]
    other = client.get("/index.json", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


BAD_TILE_REQUESTS = [
    ("/api.nothing/1/0/0.pbf", 404),
    ("/api.road_stats/1/0/0.pbf", 404),  # a view, not a tile function
    ("/streetaudit.refresh_stats/1/0/0.pbf", 404),
    ("/api.nothing.json", 404),
    ("/api.nothing/tilejson.json", 404),
    ("/api.roads/a/0/0.pbf", 400),
    ("/api.roads/1/0/b.pbf", 400),
    ("/api.roads/-1/0/0.pbf", 400),
    ("/api.roads/1.5/0/0.pbf", 400),
    ("/api.roads/31/0/0.pbf", 400),
    ("/api.roads/2/4/0.pbf", 400),
    ("/api.roads/2/0/4.pbf", 400),
    ("/api.roads/99999999999/0/0.pbf", 400),
    ("/api.roads/14/9327/4742.pbf?properties=nope", 400),
    ("/api.roads/14/9327/4742.pbf?properties=greenery_mean,geom", 400),
]


@pytest.mark.parametrize(("path", "status"), BAD_TILE_REQUESTS)
def test_bad_tile_requests_are_4xx_with_a_message(client, path, status):
    r = client.get(path)
    assert r.status_code == status
    assert r.json()["detail"]


INJECTIONS = [
    "/api.roads;DROP TABLE streetaudit.road/1/0/0.pbf",
    "/api.roads'--/1/0/0.pbf",
    '/api"."segments/1/0/0.pbf',
    "/api.roads(0,0,0);DELETE FROM streetaudit.segmentation;--/1/0/0.pbf",
    "/api.roads/1/0/0;DROP TABLE streetaudit.road.pbf",
    "/api.roads/14/9327/4742.pbf?properties=name');DROP TABLE streetaudit.road;--",
    "/api.roads/14/9327/4742.pbf?properties=name,kind%27%29%3B%20DELETE%20FROM%20streetaudit.image%3B--",
    "/pg_catalog.pg_sleep/1/0/0.pbf",
    "/api.roads%00/1/0/0.pbf",
]


@pytest.mark.parametrize("path", INJECTIONS)
def test_injection_attempts_change_nothing(client, db_url, z14, path):
    before = counts(db_url)
    r = client.get(path)
    assert 400 <= r.status_code < 500
    assert counts(db_url) == before
    z, x, y = z14
    assert client.get(f"/api.roads/{z}/{x}/{y}.pbf").status_code == 200


def test_tile_cache_evicts_least_recently_used_within_its_budget():
    from streetaudit.api.tilecache import TileCache

    cache = TileCache(max_bytes=800)
    for key in "abcd":
        cache.put(key, b"x" * 100)
    cache.get("a")  # a is now the most recent
    for key in "efghij":
        cache.put(key, b"y" * 100)
    assert cache.bytes <= 800
    assert cache.get("a") is not None and cache.get("b") is None
    cache.put("big", b"z" * 200)  # over an eighth of the budget: not cached
    assert cache.get("big") is None


@pytest.fixture(scope="module")
def route_only(client, reader_db_url: str):
    """The same app without the tile fast path: every tile request goes through FastAPI's route."""
    app = create_app(
        reader_db_url, ApiSettings(version_ttl=0, ogc=False, cors_origins="https://maps.example")
    )
    app.user_middleware = [m for m in app.user_middleware if m.cls is not TileFastPath]
    with TestClient(app) as c:
        yield c


def test_the_fast_path_answers_exactly_as_the_tile_route(client, route_only, z14):
    z, x, y = z14
    etag = client.get(f"/api.roads/{z}/{x}/{y}.pbf").headers["etag"]
    version = client.get("/api.roads/tilejson.json").json()["tiles"][0].rsplit("=", 1)[1]
    requests = [
        (f"/api.roads/{z}/{x}/{y}.pbf", {}),
        (f"/api.roads/{z}/{x}/{y}.mvt", {}),
        (f"/api.points/{z}/{x}/{y}.pbf?properties=greenery,sky&properties=car", {}),
        (f"/api.roads/{z}/{x}/{y}.pbf?max_bytes=2000", {}),
        (f"/api.roads/{z}/{x}/{y}.pbf?v={version}", {}),
        (f"/api.roads/{z}/{x}/{y}.pbf?v=1&unknown=2", {}),
        (f"/api.roads/{z}/{x}/{y}.pbf", {"If-None-Match": etag}),
        (f"/api.roads/{z}/{x}/{y}.pbf", {"If-None-Match": f'"x", {etag}'}),
        (f"/api.roads/{z}/{x}/{y}.pbf", {"Accept-Encoding": "gzip", "Origin": "https://maps.example"}),
        (f"/api.areas/{z}/{x}/{y}.pbf?properties=", {}),
        ("/api.points/3/1/1.pbf", {}),
        ("/api.ratings/0/0/0.pbf?max_bytes=0", {}),
        *((path, {}) for path, _ in BAD_TILE_REQUESTS),
        *((path, {}) for path in INJECTIONS),
    ]
    for path, headers in requests:
        fast, route = client.get(path, headers=headers), route_only.get(path, headers=headers)
        assert (fast.status_code, fast.content) == (route.status_code, route.content), path
        assert dict(fast.headers) == dict(route.headers), path


def test_tile_requests_take_the_fast_path(reader_db_url, z14, client):
    """With the tile route removed, GET tiles are still answered (the ArcGIS address, which only the route serves, is not)."""
    app = create_app(reader_db_url, ApiSettings(version_ttl=0, ogc=False))
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "original_router", None) is not tiles.tile_router
    ]
    z, x, y = z14
    with TestClient(app) as c:
        r = c.get(f"/api.roads/{z}/{x}/{y}.pbf")
        assert r.status_code == 200 and mapbox_vector_tile.decode(r.content)["api.roads"]["features"]
        assert c.get("/api.nothing/1/0/0.pbf").status_code == 404
        assert c.get(f"/api.roads/VectorTileServer/tile/{z}/{y}/{x}.pbf").status_code == 404
