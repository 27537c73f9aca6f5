"""The api.detections tile layer: listed with its attributes, served by /tiles, default detector.

Detections are written as `detect predict` writes them (detection_done + detection rows) for
two detectors; each tile feature is checked against counts recomputed here from those rows.
"""

from __future__ import annotations

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.sql.rows import scalar
from streetaudit.testing.sample_rows import along, make_points, tile_of

LABELS = ["window", "facade_top"]
START = (24.941, 60.171)


def detector(conn: psycopg.Connection, name: str) -> int:
    return scalar(
        conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
               VALUES ('detection', %s, 'torchvision', %s, 'heritage', %s) RETURNING id""",
            (name, f"test:{name}", LABELS),
        )
    )


def store(conn: psycopg.Connection, model_id: int, boxes: dict[int, list[tuple[str, float]]]) -> None:
    """As the predict writer: one detection_done row per image, its detections beside it."""
    for image_id, found in boxes.items():
        conn.execute(
            "INSERT INTO streetaudit.detection_done (image_id, model_id, score_threshold, n) VALUES (%s, %s, 0.3, %s)",
            (image_id, model_id, len(found)),
        )
        for label, score in found:
            conn.execute(
                """INSERT INTO streetaudit.detection (image_id, model_id, label, score, x1, y1, x2, y2)
                   VALUES (%s, %s, %s, %s, 1, 2, 30, 40)""",
                (image_id, model_id, label, score),
            )


@pytest.fixture(scope="module")
def seeded(db_url: str) -> dict:
    points = make_points(db_url, along(START, 0.0004, 6))
    with psycopg.connect(db_url) as conn:
        images = {
            p: [
                scalar(
                    conn.execute(
                        """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                           VALUES (%s, 'test', %s, %s, 'ok') RETURNING id""",
                        (p, heading, f"/img/{p}-{heading}.jpg"),
                    )
                )
                for heading in (0, 180)
            ]
            for p in points
        }
        trained, other = detector(conn, "trained"), detector(conn, "from-file")
        # The trained detector: point k's first view has k windows, its second one facade top.
        found = {}
        for k, p in enumerate(points):
            first, second = images[p]
            found[first] = [("window", 0.4 + 0.1 * j) for j in range(k)]
            found[second] = [("facade_top", 0.9)] if k % 2 else []
        store(conn, trained, found)
        gt = scalar(
            conn.execute(
                "INSERT INTO streetaudit.ground_truth (name, method, iou, min_raters, labels) "
                "VALUES ('gt', 'union', 0.5, 1, %s) RETURNING id",
                (LABELS,),
            )
        )
        dataset = scalar(
            conn.execute(
                "INSERT INTO streetaudit.dataset (name, ground_truth_id, seed, test_share, val_share) "
                "VALUES ('ds', %s, 1, 0.3, 0.3) RETURNING id",
                (gt,),
            )
        )
        conn.execute(
            """INSERT INTO streetaudit.detector_run (name, model_id, dataset_id, architecture, labels, status, finished_at)
               VALUES ('run', %s, %s, 'fasterrcnn_resnet50_fpn_v2', %s, 'finished', now())""",
            (trained, dataset, LABELS),
        )
        # A detector loaded from a file predicts later, on the first three points only.
        store(conn, other, {images[p][0]: [("window", 0.8)] for p in points[:3]})
        conn.execute(
            "UPDATE streetaudit.detection_done SET predicted_at = now() + interval '1 hour' WHERE model_id = %s",
            (other,),
        )
    return {"points": points, "images": images, "found": found, "trained": trained, "other": other}


@pytest.fixture(scope="module")
def client(db_url: str, reader_db_url: str, seeded):
    with TestClient(create_app(reader_db_url, ApiSettings(version_ttl=0, ogc=False))) as c:
        yield c


def expected(seeded: dict) -> dict[int, dict]:
    """Per point: what its features must say, counted from the rows written above."""
    out = {}
    for p in seeded["points"]:
        rows = [d for image in seeded["images"][p] for d in seeded["found"][image]]
        props = {"model_id": seeded["trained"], "n_images": 2, "n_detections": len(rows)}
        for label in LABELS:
            if any(lab == label for lab, _ in rows):
                props[f"n_{label}"] = sum(lab == label for lab, _ in rows)
        if rows:
            props["max_score"] = max(s for _, s in rows)
        out[p] = props
    return out


def test_the_layer_is_listed_with_its_attributes(client):
    assert "api.detections" in client.get("/index.json").json()
    detail = client.get("/api.detections.json").json()
    assert detail["minzoom"] == 0 and detail["maxzoom"] == 22
    assert {p["name"] for p in detail["properties"]} == {"model_id", "n_images", "n_detections", "max_score"}
    fields = client.get("/api.detections/tilejson.json").json()["vector_layers"][0]["fields"]
    assert fields["n_detections"] == "Number"


def test_tile_serves_the_latest_trained_detectors_points(client, seeded):
    z, x, y = tile_of(*START, 15)
    r = client.get(f"/api.detections/{z}/{x}/{y}.pbf")
    assert r.status_code == 200
    features = mapbox_vector_tile.decode(r.content)["api.detections"]["features"]
    got = {f["id"]: f["properties"] for f in features}
    want = expected(seeded)
    assert set(got) == set(want)
    for point, props in want.items():
        assert set(got[point]) == set(props)
        for key, value in props.items():
            assert got[point][key] == pytest.approx(value), (point, key)


def test_naming_another_detector_serves_its_points(reader_db_url, seeded):
    z, x, y = tile_of(*START, 15)
    with psycopg.connect(reader_db_url) as conn:
        tile = conn.execute("SELECT api.detections(%s, %s, %s, %s)", (z, x, y, seeded["other"])).fetchone()[0]
        default = conn.execute("SELECT api.detections(%s, %s, %s)", (z, x, y)).fetchone()[0]
        named = conn.execute(
            "SELECT api.detections(%s, %s, %s, %s)", (z, x, y, seeded["trained"])
        ).fetchone()[0]
    features = mapbox_vector_tile.decode(bytes(tile))["api.detections"]["features"]
    assert {f["id"] for f in features} == set(seeded["points"][:3])
    assert all(
        f["properties"]["model_id"] == seeded["other"] and f["properties"]["n_window"] == 1 for f in features
    )
    assert bytes(named) == bytes(default)


def test_without_a_finished_run_the_detector_that_predicted_last_is_shown(db_url, seeded):
    with psycopg.connect(db_url) as conn:
        assert scalar(conn.execute("SELECT model_id FROM streetaudit.tile_detector")) == seeded["trained"]
        conn.execute("UPDATE streetaudit.detector_run SET status = 'failed'")
        assert scalar(conn.execute("SELECT model_id FROM streetaudit.tile_detector")) == seeded["other"]
        conn.rollback()
