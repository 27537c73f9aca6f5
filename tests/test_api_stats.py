"""/stats as JSON and CSV, /health, the OGC API Features mount, and the reader role behind the API."""

from __future__ import annotations

import csv
import io
import math

import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.seeded_results import synthetic_models

BBOX = (24.940, 60.165, 24.948, 60.170)


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def client(db_url: str, reader_db_url: str):
    synthetic_models(db_url, seeds=(51,))
    refresh_stats(db_url)
    with TestClient(create_app(reader_db_url, ApiSettings(version_ttl=0))) as c:
        yield c


def rows(db_url: str, query: str) -> list[dict]:
    with psycopg.connect(db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


def same(a, b) -> bool:
    if isinstance(b, float):
        return a is not None and math.isclose(float(a), b, rel_tol=1e-12)
    return (a is None and b is None) or str(a) == str(b)


def test_stats_areas_json_and_csv_equal_the_view(client, db_url):
    expected = rows(db_url, "SELECT * FROM api.area_stats ORDER BY area_id NULLS LAST")
    got = client.get("/stats/areas").json()
    assert [r["area_id"] for r in got] == [r["area_id"] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert all(same(g[k], e[k]) for k in g)
        assert "geom" not in g
    text = client.get("/stats/areas", params={"format": "csv"}).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(expected)
    assert math.isclose(float(table[0]["greenery_median"]), expected[0]["greenery_median"], rel_tol=1e-12)
    accept = client.get("/stats/areas", headers={"Accept": "text/csv"})
    assert accept.headers["content-type"].startswith("text/csv")


def test_stats_comparison_json_and_csv(client, db_url):
    expected = rows(db_url, "SELECT * FROM api.area_comparison")
    got = client.get("/stats/comparison").json()
    assert len(got) == len(expected) == 18
    assert all(same(g["welch_p_holm"], e["welch_p_holm"]) for g, e in zip(got, expected, strict=True))
    table = list(csv.DictReader(io.StringIO(client.get("/stats/comparison?format=csv").text)))
    assert [r["element"] for r in table] == [e["element"] for e in expected]


def test_stats_segments_bbox_selects_roads_whose_box_meets_it(client, db_url):
    got = client.get("/stats/roads", params={"bbox": ",".join(map(str, BBOX)), "limit": 10000}).json()
    roads = rows(db_url, "SELECT id, ST_AsBinary(geom) AS wkb FROM streetaudit.road")
    box = shapely.box(*BBOX)
    expected = {
        r["id"] for r in roads if shapely.box(*shapely.from_wkb(bytes(r["wkb"])).bounds).intersects(box)
    }
    assert {r["road_id"] for r in got} == expected and 10 < len(expected) < len(roads)
    limited = client.get("/stats/roads", params={"bbox": ",".join(map(str, BBOX)), "limit": 3}).json()
    assert len(limited) == 3
    text = client.get("/stats/roads", params={"bbox": ",".join(map(str, BBOX)), "format": "csv"}).text
    assert text.splitlines()[0].startswith("road_id,name,kind,length_m,n_points,building_mean")


@pytest.mark.parametrize(
    "query",
    [
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=1,2,3,4,5",
        "bbox=10,10,5,5",
        "bbox=-200,0,0,10",
        "bbox=0,-95,1,1",
        "bbox=nan,0,1,1",
        "bbox=inf,0,1,1",
        "bbox=1,2,3,4);DROP TABLE streetaudit.road;--",
        "limit=0",
        "limit=abc",
        "limit=100000000",
        "format=xml",
    ],
)
def test_bad_stats_requests_are_400(client, db_url, query):
    before = rows(db_url, "SELECT count(*) AS n FROM streetaudit.road")
    r = client.get(f"/stats/roads?{query}")
    assert r.status_code == 400 and r.json()["detail"]
    assert rows(db_url, "SELECT count(*) AS n FROM streetaudit.road") == before


def test_health_reports_the_data_version_and_model(client, db_url):
    body = client.get("/health").json()
    (version,) = rows(db_url, "SELECT * FROM api.data_version")
    assert body["status"] == "ok"
    assert body["data_version"] == version["version"] and body["model_name"] == "synthetic-51"


def test_ogc_api_features_serves_the_api_views(client):
    collections = {c["id"] for c in client.get("/ogc/collections").json()["collections"]}
    assert {"api.road_stats", "api.area_stats", "api.point_elements"} <= collections
    assert not any(c.startswith("streetaudit.") for c in collections)
    items = client.get(
        "/ogc/collections/api.area_stats/items", params={"limit": 10, "properties": "area_name,n_points"}
    ).json()
    names = {f["properties"]["area_name"] for f in items["features"]}
    assert {"Empire centre (Senate Square)", "Esplanadi"} <= names


def test_the_api_acts_as_the_reader_role(client):
    """The pool logs in as the reader: no SET ROLE that a query could undo."""

    async def probe() -> tuple[str, str]:
        async with client.app.state.db.pool.connection() as conn:
            return await (await conn.execute("SELECT current_user, session_user")).fetchone()

    assert client.portal.call(probe) == ("streetaudit_reader", "streetaudit_reader")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):

        async def forbidden() -> None:
            async with client.app.state.db.pool.connection() as conn:
                await conn.execute("SELECT * FROM streetaudit.road LIMIT 1")

        client.portal.call(forbidden)
