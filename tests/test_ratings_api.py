"""/rate endpoints through the ASGI app, as the rater login role, and /stats/ratings."""

from __future__ import annotations

import csv
import io

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.raters import add_rater, revoke_rater
from streetaudit.flows.ratings import rating_status, recompute_ratings, set_campaign
from streetaudit.flows.simulated_ratings import seed_rating_images


@pytest.fixture(scope="module")
def pool(db_url: str, tmp_path_factory) -> list[int]:
    ids = seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 8, outside=2)
    set_campaign(db_url, repeat_share=0.0, target=5)
    return ids


@pytest.fixture(scope="module")
def client(db_url, reader_db_url, pool, pg_cluster):
    """The raters' pool logs in as streetaudit_rater itself (as `streetaudit serve` does)."""
    database = db_url.rsplit("/", 1)[1]
    patch = pytest.MonkeyPatch()
    patch.setenv("STREETAUDIT_API_RATER_DATABASE_URL", pg_cluster.rater_url(database))
    with TestClient(create_app(reader_db_url, ApiSettings(ogc=False, version_ttl=0))) as c:
        yield c
    patch.undo()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ENDPOINTS = [
    ("get", "/rate/session", None),
    ("get", "/rate/pair", None),
    ("post", "/rate/choice", {"left": 1, "right": 2, "choice": "left"}),
    ("post", "/rate/undo", None),
    ("get", "/rate/image/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_missing_unknown_and_revoked_tokens_are_refused(client, db_url, method, path, body):
    name = f"revoked-{path.replace('/', '-')}"
    revoked = add_rater(db_url, name)
    revoke_rater(db_url, name)
    send = getattr(client, method)
    kwargs = {"json": body} if body else {}
    assert send(path, **kwargs).status_code == 401
    assert send(path, headers=auth("no-such-token"), **kwargs).status_code == 401
    refused = send(path, headers=auth(revoked.token), **kwargs)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]


def test_a_rater_rates_skips_undoes_and_gets_images(client, db_url, pool):
    rater = add_rater(db_url, "api-rater")
    session = client.get("/rate/session", headers=auth(rater.token)).json()
    assert session["rater"] == "api-rater" and session["campaign"]["pool"] == 8
    assert session["progress"] == {"done": 0, "skipped": 0, "target": 5}
    pair = client.get("/rate/pair", headers=auth(rater.token)).json()
    assert {pair["left"], pair["right"]} <= set(pool)
    image = client.get(f"/rate/image/{pair['left']}", headers=auth(rater.token))
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    body = {"left": pair["left"], "right": pair["right"], "choice": "left", "client": {"viewport": "1x1"}}
    done = client.post("/rate/choice", json=body, headers=auth(rater.token))
    assert done.status_code == 200 and done.json()["progress"]["done"] == 1
    again = client.post("/rate/choice", json=body, headers=auth(rater.token))
    assert again.status_code == 409
    undone = client.post("/rate/undo", headers=auth(rater.token)).json()
    assert (undone["left"], undone["right"]) == (pair["left"], pair["right"])
    skip = client.post("/rate/choice", json={**body, "choice": "skip"}, headers=auth(rater.token)).json()
    assert skip["progress"] == {"done": 0, "skipped": 1, "target": 5}
    bad = client.post("/rate/choice", json={**body, "choice": "both"}, headers=auth(rater.token))
    assert bad.status_code == 400
    with psycopg.connect(db_url) as conn:
        client_info = conn.execute(
            "SELECT client FROM streetaudit.comparison WHERE choice = 'left' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    assert client_info["viewport"] == "1x1" and "testclient" in client_info["user_agent"]


def test_images_outside_the_campaign_are_not_served(client, db_url, pool):
    rater = add_rater(db_url, "api-images")
    with psycopg.connect(db_url) as conn:
        outside = conn.execute(
            "SELECT id FROM streetaudit.image WHERE id <> ALL (%s) ORDER BY id LIMIT 1", (pool,)
        ).fetchone()[0]
    assert client.get(f"/rate/image/{outside}", headers=auth(rater.token)).status_code == 404


def test_rate_page_and_its_assets_are_served_by_us(client):
    page = client.get("/rate")
    assert (
        page.status_code == 200
        and "/static/app/rate.js" in page.text
        and "http" not in page.text.split("<body>")[0].replace('name="viewport"', "")
    )
    assert client.get("/static/app/rate.js").status_code == 200
    assert client.get("/static/app/rate.css").status_code == 200


def test_stats_ratings_json_csv_and_status(client, db_url, pool):
    rater = add_rater(db_url, "api-stats")
    for _ in range(6):
        pair = client.get("/rate/pair", headers=auth(rater.token)).json()
        client.post(
            "/rate/choice",
            json={"left": pair["left"], "right": pair["right"], "choice": "right"},
            headers=auth(rater.token),
        )
    recompute_ratings(db_url)
    rating_status(db_url)
    rows = client.get("/stats/ratings").json()
    with psycopg.connect(db_url) as conn:
        expected = conn.execute(
            "SELECT image_id, score FROM streetaudit.rating WHERE method = 'elo' AND rater_id IS NULL"
        ).fetchall()
    assert {r["image_id"]: r["elo"] for r in rows} == pytest.approx(dict(expected))
    assert [r["elo"] for r in rows] == sorted((r["elo"] for r in rows), reverse=True)
    assert all(r["area_name"] == "Seeded core" and r["bt_se"] > 0 for r in rows)
    table = list(csv.DictReader(io.StringIO(client.get("/stats/ratings?format=csv").text)))
    assert len(table) == len(rows) and {"lon", "lat", "bt", "n_comparisons"} <= set(table[0])
    status = client.get("/stats/ratings/status").json()
    assert status["comparisons"] >= 6 and "rule" in status and isinstance(status["stable"], bool)
    assert "api.ratings" in client.get("/index.json").json()
    tile = client.get("/api.ratings/14/9327/4742.pbf")
    features = mapbox_vector_tile.decode(tile.content)["api.ratings"]["features"]
    assert len(features) == len(rows) and {"elo", "bt", "n_comparisons"} <= set(features[0]["properties"])


def test_served_payloads_are_exactly_the_documented_models(client, db_url, pool):
    """/docs describes the rating and label JSON with api/rating_models.py; the SQL functions
    build it. Every served field must be declared and every declared field served."""
    from pydantic import BaseModel

    from streetaudit.api import rating_models as m

    def same(model: type[BaseModel], payload: dict) -> None:
        model.model_validate(payload)
        assert set(payload) == set(model.model_fields), model.__name__
        for name, field in model.model_fields.items():
            inner = field.annotation
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                same(inner, payload[name])

    rater = add_rater(db_url, "documented")
    headers = auth(rater.token)
    same(m.Session, client.get("/rate/session", headers=headers).json())
    pair = client.get("/rate/pair", headers=headers).json()
    same(m.Pair, pair)
    body = {"left": pair["left"], "right": pair["right"], "choice": "right"}
    same(m.ChoiceResult, client.post("/rate/choice", json=body, headers=headers).json())
    same(m.Undone, client.post("/rate/undo", headers=headers).json())
    queue = client.get("/label/api/queue", headers=headers).json()
    same(m.LabelQueue, queue)
    image = queue["images"][0]["id"]
    same(m.QueuedImage, queue["images"][0])
    box = {"label": queue["labels"][0], "x1": 1, "y1": 1, "x2": 5, "y2": 5}
    same(
        m.Saved, client.put(f"/label/api/images/{image}/boxes", json={"boxes": [box]}, headers=headers).json()
    )
    stored = client.get(f"/label/api/images/{image}/boxes", headers=headers).json()
    same(m.ImageBoxes, stored)
    same(m.StoredBox, stored["boxes"][0])
