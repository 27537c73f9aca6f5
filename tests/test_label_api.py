"""/label endpoints through the ASGI app, as the rater login role: queue order, box checks, replace."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.errors import InputError
from streetaudit.flows.label_campaign import LabelCampaign, read_label_campaign, set_label_campaign
from streetaudit.flows.raters import add_rater, revoke_rater
from streetaudit.flows.ratings import set_campaign
from streetaudit.flows.simulated_ratings import seed_rating_images

WIDTH, HEIGHT = 320, 200  # seed_rating_images' pictures


@pytest.fixture(scope="module")
def pool(db_url: str, tmp_path_factory) -> list[int]:
    ids = seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 6, outside=1)
    set_campaign(db_url, repeat_share=0.0, target=5)
    return ids


@pytest.fixture(scope="module")
def outside(db_url: str, pool: list[int]) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id FROM streetaudit.image WHERE status = 'ok' AND NOT id = ANY (%s) ORDER BY id LIMIT 1",
            (pool,),
        ).fetchone()[0]


@pytest.fixture(scope="module")
def client(db_url, reader_db_url, pool, pg_cluster):
    patch = pytest.MonkeyPatch()
    patch.setenv("STREETAUDIT_API_RATER_DATABASE_URL", pg_cluster.rater_url(db_url.rsplit("/", 1)[1]))
    with TestClient(create_app(reader_db_url, ApiSettings(ogc=False, version_ttl=0))) as c:
        yield c
    patch.undo()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def current(db_url: str, name: str, image: int | None = None) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT a.image_id, a.label, a.x1, a.y1, a.x2, a.y2, a.source, a.source_row
               FROM streetaudit.annotation AS a JOIN streetaudit.rater AS r ON r.id = a.rater_id
               WHERE r.name = %s AND a.replaced_at IS NULL AND (%s::bigint IS NULL OR a.image_id = %s)
               ORDER BY a.id""",
            (name, image, image),
        ).fetchall()


def replaced(db_url: str, name: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT count(*) FROM streetaudit.annotation AS a JOIN streetaudit.rater AS r ON r.id = a.rater_id
               WHERE r.name = %s AND a.replaced_at IS NOT NULL""",
            (name,),
        ).fetchone()[0]


ENDPOINTS = [
    ("get", "/label/api/queue", None),
    ("get", "/label/api/images/{id}", None),
    ("get", "/label/api/images/{id}/boxes", None),
    (
        "put",
        "/label/api/images/{id}/boxes",
        {"boxes": [{"label": "roof", "x1": 1, "y1": 1, "x2": 9, "y2": 9}]},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_missing_unknown_and_revoked_tokens_are_refused(client, db_url, pool, method, path, body):
    name = f"label-revoked-{method}-{path.count('/')}-{path.endswith('boxes')}"
    revoked = add_rater(db_url, name)
    revoke_rater(db_url, name)
    path = path.format(id=pool[0])
    send = getattr(client, method)
    kwargs = {"json": body} if body else {}
    assert send(path, **kwargs).status_code == 401
    assert send(path, headers=auth("no-such-token"), **kwargs).status_code == 401
    refused = send(path, headers=auth(revoked.token), **kwargs)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]
    assert current(db_url, name) == []


def test_queue_ranks_by_the_raters_own_choices_then_own_elo_and_fills_from_the_pool(client, db_url, pool):
    rater = add_rater(db_url, "label-queue")
    fresh = client.get("/label/api/queue", headers=auth(rater.token)).json()
    assert fresh["rater"] == "label-queue" and fresh["labels"] == ["window", "roof", "ornament"]
    assert sorted(i["id"] for i in fresh["images"]) == sorted(pool)  # pool only: every campaign image
    assert {(i["width"], i["height"], i["boxes"], i["basis"]) for i in fresh["images"]} == {
        (WIDTH, HEIGHT, 0, "pool")
    }
    a, b, c = pool[3], pool[1], pool[4]
    with psycopg.connect(db_url) as conn:
        rid = conn.execute("SELECT id FROM streetaudit.rater WHERE name = 'label-queue'").fetchone()[0]
        for left, right, choice in [
            (a, b, "left"),
            (c, a, "right"),
            (b, c, "left"),
            (pool[0], pool[5], "skip"),
        ]:
            conn.execute(
                "INSERT INTO streetaudit.comparison (rater_id, left_image, right_image, choice) VALUES (%s, %s, %s, %s)",
                (rid, left, right, choice),
            )
    chosen = client.get("/label/api/queue?n=3", headers=auth(rater.token)).json()["images"]
    assert [(i["id"], i["basis"]) for i in chosen[:2]] == [(a, "chosen"), (b, "chosen")]  # a twice, b once
    assert len(chosen) == 3 and chosen[2]["basis"] == "pool"
    with psycopg.connect(db_url) as conn:
        for image, score in [(c, 1700.0), (b, 1600.0), (a, 1400.0)]:
            conn.execute(
                """INSERT INTO streetaudit.rating (image_id, method, rater_id, score, n, wins, computed_at)
                   VALUES (%s, 'elo', %s, %s, 2, 1, now())""",
                (image, rid, score),
            )
    ranked = client.get("/label/api/queue", headers=auth(rater.token)).json()["images"]
    assert [i["id"] for i in ranked[:3]] == [c, b, a]
    assert {i["basis"] for i in ranked[:3]} == {"own elo"} and len(ranked) == len(pool)
    assert client.get("/label/api/queue?n=0", headers=auth(rater.token)).status_code == 400


def test_save_clips_orders_corners_and_replaces_keeping_the_old_rows(client, db_url, pool):
    rater = add_rater(db_url, "label-save")
    image = pool[2]
    boxes = [
        {"label": "window", "x1": 10.5, "y1": 20, "x2": 50, "y2": 60.25},
        {"label": "roof", "x1": 400, "y1": -5, "x2": 300, "y2": 30},  # swapped x, beyond the edges
    ]
    put = client.put(f"/label/api/images/{image}/boxes", json={"boxes": boxes}, headers=auth(rater.token))
    assert put.status_code == 200 and put.json() == {"image": image, "saved": 2}
    assert current(db_url, "label-save") == [
        (image, "window", 10.5, 20.0, 50.0, 60.25, "label page", 1),
        (image, "roof", 300.0, 0.0, float(WIDTH), 30.0, "label page", 2),
    ]
    again = client.put(
        f"/label/api/images/{image}/boxes", json={"boxes": boxes[::-1]}, headers=auth(rater.token)
    )
    assert again.json()["saved"] == 2 and replaced(db_url, "label-save") == 0  # same boxes: nothing written
    got = client.get(f"/label/api/images/{image}/boxes", headers=auth(rater.token)).json()
    assert [(b["label"], b["x2"]) for b in got["boxes"]] == [("window", 50.0), ("roof", float(WIDTH))]
    edit = [{"label": "ornament", "x1": 5, "y1": 5, "x2": 15, "y2": 25}]
    client.put(f"/label/api/images/{image}/boxes", json={"boxes": edit}, headers=auth(rater.token))
    assert current(db_url, "label-save") == [(image, "ornament", 5.0, 5.0, 15.0, 25.0, "label page", 1)]
    assert replaced(db_url, "label-save") == 2
    queue = client.get("/label/api/queue", headers=auth(rater.token)).json()["images"]
    assert {i["id"]: i["boxes"] for i in queue}[image] == 1
    client.put(f"/label/api/images/{image}/boxes", json={"boxes": []}, headers=auth(rater.token))
    assert current(db_url, "label-save") == [] and replaced(db_url, "label-save") == 3


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (
            {"label": "door", "x1": 1, "y1": 1, "x2": 9, "y2": 9},
            'box 2: label "door" is not one of window, roof',
        ),
        ({"label": "roof", "x1": 5, "y1": 1, "x2": 5, "y2": 9}, "box 2: no area inside the image (320 × 200"),
        ({"label": "roof", "x1": 330, "y1": 1, "x2": 340, "y2": 9}, "box 2: no area inside the image"),
    ],
)
def test_bad_boxes_are_refused_naming_the_box_and_nothing_is_saved(client, db_url, pool, box, message):
    rater = add_rater(db_url, f"label-bad-{box['label']}-{box['x1']}")
    good = {"label": "window", "x1": 1, "y1": 1, "x2": 9, "y2": 9}
    put = client.put(
        f"/label/api/images/{pool[0]}/boxes", json={"boxes": [good, box]}, headers=auth(rater.token)
    )
    assert put.status_code == 400 and message in put.json()["detail"], put.json()
    assert current(db_url, rater.name) == []


def test_images_outside_the_campaign_are_not_served_or_saved(client, db_url, outside):
    rater = add_rater(db_url, "label-outside")
    box = {"boxes": [{"label": "roof", "x1": 1, "y1": 1, "x2": 9, "y2": 9}]}
    assert client.get(f"/label/api/images/{outside}", headers=auth(rater.token)).status_code == 404
    assert client.get(f"/label/api/images/{outside}/boxes", headers=auth(rater.token)).status_code == 404
    assert (
        client.put(f"/label/api/images/{outside}/boxes", json=box, headers=auth(rater.token)).status_code
        == 404
    )
    assert current(db_url, "label-outside") == []


def test_the_size_is_read_from_the_file_when_the_row_lacks_it(client, db_url, pool):
    rater = add_rater(db_url, "label-size")
    image = pool[5]
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE streetaudit.image SET width = NULL, height = NULL WHERE id = %s", (image,))
    box = {"boxes": [{"label": "roof", "x1": 100, "y1": 150, "x2": 900, "y2": 900}]}
    assert (
        client.put(f"/label/api/images/{image}/boxes", json=box, headers=auth(rater.token)).status_code == 200
    )
    assert current(db_url, "label-size") == [(image, "roof", 100.0, 150.0, 320.0, 200.0, "label page", 1)]
    served = client.get(f"/label/api/images/{image}", headers=auth(rater.token))
    assert served.status_code == 200 and served.content[:2] == b"\xff\xd8"


def test_the_rater_role_cannot_write_annotations_or_call_the_helpers(pg_cluster, db_url, pool):
    with psycopg.connect(pg_cluster.rater_url(db_url.rsplit("/", 1)[1]), autocommit=True) as conn:
        for statement in [
            "INSERT INTO streetaudit.annotation (image_id, label, x1, y1, x2, y2, source) "
            f"VALUES ({pool[0]}, 'roof', 1, 1, 9, 9, 'direct')",
            "UPDATE streetaudit.annotation SET replaced_at = now()",
            "SELECT count(*) FROM streetaudit.annotation",
            f"SELECT streetaudit.label_current(1, {pool[0]})",
            "UPDATE streetaudit.label_campaign SET labels = '{door}'",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_page_is_served_without_a_token(client):
    page = client.get("/label")
    assert page.status_code == 200 and "label.js" in page.text


def test_the_label_list_is_a_campaign_setting_the_page_and_the_checks_follow(client, db_url, pool):
    rater = add_rater(db_url, "label-settings")
    assert read_label_campaign(db_url) == LabelCampaign(("window", "roof", "ornament"), 500)
    try:
        assert set_label_campaign(db_url, labels=["door", " cornice "], top_n=2) == LabelCampaign(
            ("door", "cornice"), 2
        )
        queue = client.get("/label/api/queue", headers=auth(rater.token)).json()
        assert queue["labels"] == ["door", "cornice"] and len(queue["images"]) == 2
        url = f"/label/api/images/{pool[1]}/boxes"
        door = {"boxes": [{"label": "door", "x1": 1, "y1": 1, "x2": 9, "y2": 9}]}
        assert client.put(url, json=door, headers=auth(rater.token)).status_code == 200
        roof = {"boxes": [{"label": "roof", "x1": 1, "y1": 1, "x2": 9, "y2": 9}]}
        assert client.put(url, json=roof, headers=auth(rater.token)).status_code == 400
        for bad in [{"labels": []}, {"labels": ["a", "a"]}, {"labels": [""]}, {"top_n": 0}]:
            with pytest.raises(InputError):
                set_label_campaign(db_url, **bad)
    finally:
        set_label_campaign(db_url, labels=["window", "roof", "ornament"], top_n=500)


def test_saves_record_looked_at_images(client, db_url, pool):
    """Each save also records the look in annotated_image, as `annotations import` does: an
    empty save makes the image a negative example (once; unchanged saves add nothing)."""
    rater = add_rater(db_url, "label-looked")
    url = f"/label/api/images/{pool[4]}/boxes"
    box = {"boxes": [{"label": "roof", "x1": 1, "y1": 1, "x2": 9, "y2": 9}]}
    for body in [{"boxes": []}, {"boxes": []}, box, box, {"boxes": []}]:
        assert client.put(url, json=body, headers=auth(rater.token)).status_code == 200
    with psycopg.connect(db_url) as conn:
        looks = conn.execute(
            """SELECT source, boxes, replaced_at IS NULL FROM streetaudit.annotated_image
               WHERE image_id = %s AND rater_id = (SELECT id FROM streetaudit.rater WHERE name = %s)
               ORDER BY id""",
            (pool[4], "label-looked"),
        ).fetchall()
    # An empty save is a look (a negative example) once; unchanged saves add nothing.
    assert looks == [("label page", 0, False), ("label page", 1, False), ("label page", 0, True)]
