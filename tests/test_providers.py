"""Google, Mapillary, folder and synthetic providers, each through its real protocol or files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image as PILImage

from streetaudit.flows.collect import CollectStopped, collect
from streetaudit.flows.errors import InputError
from streetaudit.flows.providers.synthetic_scene import (
    BUILDING,
    CAR,
    ROAD,
    SIDEWALK,
    SKY,
    VEGETATION,
    draw_scene,
)
from streetaudit.testing.local_server import LocalProviders, json_reply
from streetaudit.testing.sample_rows import make_points

KEY = "SEKRET-google-or-mapillary-9c1e"
SECRET = base64.urlsafe_b64encode(b"signing-secret-bytes-0123").decode()
LON, LAT = 116.3970, 39.9087


def image_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT point_id, heading, status, uri, sha256, pano_id, captured_at, ST_X(geom), ST_Y(geom), detail
               FROM streetaudit.image ORDER BY point_id, heading"""
        ).fetchall()


def table_dump(url: str) -> str:
    with psycopg.connect(url) as conn:
        return repr(conn.execute("SELECT * FROM streetaudit.image").fetchall())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREETAUDIT_COLLECT_BACKOFF", "0.01")
    monkeypatch.setenv("STREETAUDIT_COLLECT_ATTEMPTS", "2")
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    return tmp_path


@pytest.fixture
def server(env):
    with LocalProviders(key=KEY) as srv:
        yield srv


# -- google ------------------------------------------------------------------------------------
@pytest.fixture
def google(server, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_GOOGLE_KEY", KEY)
    monkeypatch.setenv("STREETAUDIT_GOOGLE_URL", f"{server.url}/maps/api/streetview")
    return server


def test_google_asks_metadata_once_per_point_then_images_by_pano(google, fresh_db_url):
    (_point,) = make_points(fresh_db_url, [(LON, LAT)])
    report = collect(fresh_db_url, "google", size=(640, 320), progress=False)
    assert (report.ok, report.missing, report.error) == (4, 0, 0)
    paths = [r.path for r in google.hits]
    assert paths.count("/maps/api/streetview/metadata") == 1 and paths.count("/maps/api/streetview") == 4
    image_requests = [r for r in google.hits if r.path.endswith("/streetview")]
    assert {r.query["pano"] for r in image_requests} == {f"pano-{LAT:.5f}-{LON:.5f}"}
    assert {r.query["size"] for r in image_requests} == {"640x320"}
    for row in image_rows(fresh_db_url):
        assert row[5] == f"pano-{LAT:.5f}-{LON:.5f}"
        assert row[6] == datetime(2021, 7, 1, tzinfo=UTC)
        assert (row[7], row[8]) == pytest.approx((LON + 1e-5, LAT + 1e-5))
    assert KEY not in table_dump(fresh_db_url)


def test_google_zero_results_is_missing_without_an_image_request(google, fresh_db_url):
    make_points(fresh_db_url, [(LON, LAT)])
    google.script = lambda r: json_reply({"status": "ZERO_RESULTS"}) if r.path.endswith("/metadata") else None
    report = collect(fresh_db_url, "google", size=(640, 320), progress=False)
    assert (report.ok, report.missing) == (0, 4)
    assert all(r.path.endswith("/metadata") for r in google.hits)
    assert all(r[2] == "missing" and "ZERO_RESULTS" in r[9] for r in image_rows(fresh_db_url))


def test_google_signs_requests_with_the_secret(google, fresh_db_url, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_GOOGLE_SECRET", SECRET)
    make_points(fresh_db_url, [(LON, LAT)])
    collect(fresh_db_url, "google", headings=(0,), size=(640, 320), progress=False)
    key = base64.urlsafe_b64decode(SECRET)
    for request in google.hits:
        unsigned, _, signature = request.raw_query.rpartition("&signature=")
        digest = hmac.new(key, f"{request.path}?{unsigned}".encode(), hashlib.sha1).digest()
        assert base64.urlsafe_b64decode(signature.replace("%3D", "=")) == digest
    assert SECRET not in table_dump(fresh_db_url)


def test_google_bad_key_stops_and_refuses_too_large_sizes(google, fresh_db_url):
    make_points(fresh_db_url, [(LON, LAT)])
    with pytest.raises(InputError, match="--size 1024x512 exceeds what provider google serves"):
        collect(fresh_db_url, "google", progress=False)
    google.key = "other"
    with pytest.raises(CollectStopped, match="REQUEST_DENIED") as raised:
        collect(fresh_db_url, "google", size=(640, 320), progress=False)
    assert KEY not in str(raised.value) and KEY not in table_dump(fresh_db_url)


# -- mapillary ---------------------------------------------------------------------------------
@pytest.fixture
def mapillary(server, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_MAPILLARY_TOKEN", KEY)
    monkeypatch.setenv("STREETAUDIT_MAPILLARY_URL", server.url)
    return server


def test_mapillary_picks_the_image_facing_each_heading(mapillary, fresh_db_url):
    make_points(fresh_db_url, [(LON, LAT)])
    report = collect(fresh_db_url, "mapillary", headings=(0, 90, 200), progress=False)
    assert (report.ok, report.missing) == (3, 0)
    rows = image_rows(fresh_db_url)
    # 200° is closest to the image facing 180° (within fov/2 = 45°).
    assert [r[5].rsplit("_", 1)[1] for r in rows] == ["0", "90", "180"]
    assert all(r[6] == datetime(2021, 7, 1, tzinfo=UTC) for r in rows)
    assert sum(r.path == "/images" for r in mapillary.hits) == 1
    assert all(KEY not in r.raw_query and KEY not in r.path for r in mapillary.hits)


def test_mapillary_nothing_nearby_is_missing_and_bad_token_stops(mapillary, fresh_db_url):
    make_points(fresh_db_url, [(LON, LAT)])
    mapillary.script = lambda r: json_reply({"data": []}) if r.path == "/images" else None
    assert collect(fresh_db_url, "mapillary", progress=False).missing == 4
    mapillary.script = lambda r: None
    mapillary.key = "other"
    make_points(fresh_db_url, [(LON + 0.001, LAT)])
    with pytest.raises(CollectStopped, match="401"):
        collect(fresh_db_url, "mapillary", progress=False)


# -- folder ------------------------------------------------------------------------------------
def jpeg(colour: tuple[int, int, int], exif: PILImage.Exif | None = None) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 32), colour).save(out, format="JPEG", exif=exif or PILImage.Exif())
    return out.getvalue()


def test_folder_matches_csv_images_to_nearest_point_and_heading(env, fresh_db_url):
    near, _other = make_points(fresh_db_url, [(LON, LAT), (LON + 0.001, LAT)])
    folder = env / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg((200, 0, 0)))
    (folder / "b.jpg").write_bytes(jpeg((0, 200, 0)))
    (folder / "far.jpg").write_bytes(jpeg((0, 0, 200)))
    (folder / "index.csv").write_text(
        "path,lon,lat,heading,captured_at\n"
        f"a.jpg,{LON + 0.00003},{LAT},10,2022-06-05T10:00:00\n"
        f"b.jpg,{LON},{LAT + 0.00002},95,\n"
        f"far.jpg,{LON + 0.0005},{LAT + 0.001},0,\n"
    )
    report = collect(fresh_db_url, f"folder:{folder}", progress=False)
    assert (report.ok, report.missing) == (2, 6)
    ok = {(r[0], r[1]): r for r in image_rows(fresh_db_url) if r[2] == "ok"}
    assert set(ok) == {(near, 0.0), (near, 90.0)}
    assert ok[(near, 0.0)][4] == hashlib.sha256((folder / "a.jpg").read_bytes()).hexdigest()
    assert ok[(near, 0.0)][6] == datetime(2022, 6, 5, 10, tzinfo=UTC)
    assert ok[(near, 90.0)][5] == "b.jpg"


def test_folder_reads_exif_gps_and_names_bad_csv_rows(env, fresh_db_url):
    (_point,) = make_points(fresh_db_url, [(LON, LAT)])
    folder = env / "exif"
    folder.mkdir()
    exif = PILImage.Exif()
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 31.32), 3: "E", 4: (116.0, 23.0, 49.2), 17: 180.0}
    exif[306] = "2022:06:05 10:00:00"
    (folder / "x.jpg").write_bytes(jpeg((10, 10, 10), exif))
    report = collect(fresh_db_url, f"folder:{folder}", progress=False)
    assert report.ok == 1
    assert [r[1] for r in image_rows(fresh_db_url) if r[2] == "ok"] == [180.0]

    bad = env / "bad"
    bad.mkdir()
    (bad / "index.csv").write_text("path,lon,lat\nx.jpg,east,39.9\n")
    with pytest.raises(InputError, match=r"index.csv row 2: lon, lat and heading must be numbers"):
        collect(fresh_db_url, f"folder:{bad}", progress=False)


# -- synthetic ---------------------------------------------------------------------------------
def test_synthetic_writes_image_and_true_labels_beside_it(env, fresh_db_url):
    make_points(fresh_db_url, [(LON, LAT), (LON + 0.001, LAT)], area="Core")
    report = collect(fresh_db_url, "synthetic", size=(512, 256), progress=False)
    assert report.ok == 8
    for row in image_rows(fresh_db_url):
        image_path = Path(row[3])
        labels_path = image_path.with_name(image_path.stem + ".labels.png")
        assert image_path.suffix == ".jpg" and labels_path.exists()
        with PILImage.open(image_path) as image, PILImage.open(labels_path) as labels:
            assert image.size == labels.size == (512, 256) and labels.mode == "L"
            rgb, truth = np.asarray(image.convert("RGB")).astype(int), np.asarray(labels)
        assert set(np.unique(truth)) <= {ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR}
        sky = rgb[truth == SKY]
        assert sky[:, 2].mean() > sky[:, 0].mean() + 30  # the sky pixels really are blue


def test_synthetic_scenes_are_deterministic_and_heritage_has_more_building():
    a, b = draw_scene(42), draw_scene(42)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.rgb, b.rgb)
    core = np.mean([(draw_scene(s, 256, 128, heritage=True).labels == BUILDING).mean() for s in range(20)])
    rest = np.mean([(draw_scene(s, 256, 128).labels == BUILDING).mean() for s in range(20)])
    green_core = np.mean(
        [(draw_scene(s, 256, 128, heritage=True).labels == VEGETATION).mean() for s in range(20)]
    )
    green_rest = np.mean([(draw_scene(s, 256, 128).labels == VEGETATION).mean() for s in range(20)])
    assert core > rest and green_core < green_rest
