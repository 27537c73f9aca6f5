"""/points/{id}, /images/{id}.jpg (full and thumb), /images/{id}/mask.png and /map/config,
against the real database as the reader role, with STREETAUDIT_SERVE_IMAGES off, on and per provider."""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from PIL import Image

from streetaudit.api.factory import create_app
from streetaudit.api.photo_models import MapConfig, PointDetail, PointRating, View
from streetaudit.api.photo_settings import PhotoSettings
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.models.label_palette import palette
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.testing.photo_rows import give_photos
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    return helsinki_db_url


@pytest.fixture(scope="module")
def photos(db_url: str, tmp_path_factory) -> dict:
    """A point inside the heritage core whose ok views have real JPEG files, one with a mask."""
    synthetic_models(db_url, seeds=(71,))
    refresh_stats(db_url)
    given = give_photos(db_url, tmp_path_factory.mktemp("photos"))
    with psycopg.connect(db_url) as conn:
        not_ok = conn.execute("SELECT id FROM streetaudit.image WHERE status <> 'ok' LIMIT 1").fetchone()[0]
    return {
        "point_id": given.point_id,
        "files": given.files,
        "masked": given.masked,
        "mask_ids": given.mask_ids,
        "label_set": given.label_set,
        "model_id": given.model_id,
        "not_ok": not_ok,
    }


@pytest.fixture(scope="module")
def client(photos, reader_db_url: str):
    with TestClient(create_app(reader_db_url, ApiSettings(ogc=False))) as c:
        yield c


def serve(client: TestClient, value: str) -> None:
    client.app.state.photo_settings = PhotoSettings(serve_images=value)


def test_point_detail_equals_the_tables(client, photos, db_url):
    serve(client, "all")
    point_id = photos["point_id"]
    got = client.get(f"/points/{point_id}").json()
    with psycopg.connect(db_url) as conn:
        lon, lat, road_id = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom), road_id FROM streetaudit.sample_point WHERE id = %s", (point_id,)
        ).fetchone()
        views = conn.execute(
            f"""SELECT i.id, i.heading, {", ".join("s." + e for e in ELEMENTS)}
                FROM streetaudit.image AS i
                LEFT JOIN streetaudit.segmentation AS s
                  ON s.image_id = i.id AND s.model_id = %s AND s.error IS NULL
                WHERE i.point_id = %s AND i.status = 'ok' ORDER BY i.heading, i.id""",
            (photos["model_id"], point_id),
        ).fetchall()
        areas = conn.execute("SELECT id, ST_AsBinary(geom) FROM streetaudit.heritage_area").fetchall()
    inside = sorted(a for a, wkb in areas if shapely.from_wkb(wkb).intersects(shapely.Point(lon, lat)))
    assert (got["point_id"], got["road"]["road_id"]) == (point_id, road_id)
    assert got["lon"] == pytest.approx(lon) and got["lat"] == pytest.approx(lat)
    assert [a["area_id"] for a in got["areas"]] == inside and inside
    assert [v["image_id"] for v in got["views"]] == [v[0] for v in views]
    segmented = [v for v in views if v[2] is not None]
    for view, row in zip(got["views"], views, strict=True):
        if row[2] is None:
            assert view["shares"] is None
        else:
            assert [view["shares"][e] for e in ELEMENTS] == pytest.approx(list(row[2:]))
        assert view["url"] == f"images/{row[0]}.jpg"
        assert view["mask"] is (row[0] == photos["masked"])
    # the point's shares are the mean over its segmented views, as the statistics use them
    expected = np.mean(np.array([v[2:] for v in segmented], dtype=float), axis=0)
    assert [got["shares"][e] for e in ELEMENTS] == pytest.approx(expected.tolist())
    assert got["n_images"] == len(segmented)
    assert got["images_served"] is True
    assert got["ratings"] == []
    # the documented models (/docs) have exactly the served fields
    PointDetail.model_validate(got)
    assert set(got) == set(PointDetail.model_fields)
    assert all(set(v) == set(View.model_fields) for v in got["views"])
    assert client.get("/points/999999999").status_code == 404


def test_images_are_refused_until_serve_images_allows_their_provider(client, photos):
    image_id = photos["masked"]
    serve(client, "")
    for path in (f"/images/{image_id}.jpg", f"/images/{image_id}/mask.png"):
        response = client.get(path)
        assert response.status_code == 403 and "STREETAUDIT_SERVE_IMAGES" in response.json()["detail"]
    detail = client.get(f"/points/{photos['point_id']}").json()
    assert detail["images_served"] is False
    assert all(v["url"] is None and v["mask_url"] is None for v in detail["views"])
    serve(client, "local, mapillary")
    refused = client.get(f"/images/{image_id}.jpg")
    assert refused.status_code == 403 and "'synthetic'" in refused.json()["detail"]
    serve(client, "Synthetic")
    assert client.get(f"/images/{image_id}.jpg").status_code == 200


def test_full_image_thumbnail_and_etag(client, photos):
    serve(client, "all")
    image_id, path = next(iter(photos["files"].items()))
    full = client.get(f"/images/{image_id}.jpg")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.content == path.read_bytes()
    assert "max-age" in full.headers["cache-control"]
    thumb = client.get(f"/images/{image_id}.jpg", params={"size": "thumb"})
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.format == "JPEG" and small.size == (320, 100)
    assert thumb.headers["etag"] != full.headers["etag"]
    again = client.get(f"/images/{image_id}.jpg", headers={"If-None-Match": full.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert client.get(f"/images/{image_id}.jpg", params={"size": "huge"}).status_code == 400
    assert client.get(f"/images/{photos['not_ok']}.jpg").status_code == 404
    assert client.get("/images/999999999.jpg").status_code == 404


def test_mask_is_the_label_set_palette_over_the_class_ids(client, photos):
    serve(client, "all")
    response = client.get(f"/images/{photos['masked']}/mask.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as mask:
        rgba = np.asarray(mask.convert("RGBA"))
    ids = photos["mask_ids"]
    colours = palette(photos["label_set"])
    valid = ids != 255
    np.testing.assert_array_equal(rgba[valid][:, :3], colours[ids[valid]])
    assert (rgba[valid][:, 3] == 255).all() and (rgba[~valid][:, 3] == 0).all()
    other = next(i for i in photos["files"] if i != photos["masked"])
    assert client.get(f"/images/{other}/mask.png").status_code == 404


def test_map_config_ranges_are_the_data_percentiles(client, db_url):
    config = client.get("/map/config").json()
    with psycopg.connect(db_url) as conn:
        roads = np.array(
            conn.execute(
                "SELECT sky_mean, car_std, n_points FROM api.road_stats WHERE n_points > 0"
            ).fetchall(),
            dtype=float,
        )
        points = np.array(conn.execute("SELECT greenery FROM api.point_elements").fetchall(), dtype=float)
    for key, values in (
        ("sky_mean", roads[:, 0]),
        ("car_std", roads[:, 1]),
        ("*_n", roads[:, 2]),
        ("greenery_point", points[:, 0]),
    ):
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, [2, 98])
        assert config["ranges"][key]["low"] == pytest.approx(low) and config["ranges"][key][
            "high"
        ] == pytest.approx(high), key
        assert config["ranges"][key]["n"] == len(values)
    assert config["points_minzoom"] == 15 and config["basemap"] is None
    MapConfig.model_validate(config)
    assert set(config) == set(MapConfig.model_fields)


def test_basemap_setting_is_a_style_or_a_raster_template(monkeypatch):
    monkeypatch.setenv("STREETAUDIT_BASEMAP_STYLE", "https://tiles.example.org/{z}/{x}/{y}.png")
    monkeypatch.setenv("STREETAUDIT_SERVE_IMAGES", "local,Mapillary")
    settings = PhotoSettings()
    assert settings.basemap == {"type": "raster", "url": "https://tiles.example.org/{z}/{x}/{y}.png"}
    assert settings.allows("mapillary") and not settings.allows("google")
    assert PhotoSettings(basemap_style="https://x.org/style.json").basemap["type"] == "style"
    with pytest.raises(ValueError, match="STREETAUDIT_BASEMAP_STYLE"):
        PhotoSettings(basemap_style="ftp://nope")


def test_point_detail_lists_the_pooled_ratings_of_its_images(client, photos, db_url):
    image_id = photos["masked"]
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """INSERT INTO streetaudit.rating (image_id, method, rater_id, score, se, n, wins, computed_at)
               VALUES (%s, 'elo', NULL, 1561.5, NULL, 12, 8, now()), (%s, 'bt', NULL, 0.42, 0.3, 12, 8, now())""",
            (image_id, image_id),
        )
    try:
        ratings = client.get(f"/points/{photos['point_id']}").json()["ratings"]
    finally:
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM streetaudit.rating WHERE image_id = %s", (image_id,))
    assert ratings == [
        {"image_id": image_id, "elo": 1561.5, "bt": 0.42, "bt_se": 0.3, "n_comparisons": 12, "wins": 8}
    ]
    PointRating.model_validate(ratings[0])
