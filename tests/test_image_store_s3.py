"""Images in object storage: collect, segment, clean, orphans and the API against a real S3 server.

moto's server mode runs on 127.0.0.1 (a real HTTP S3 endpoint, the same wire protocol s3fs
speaks to AWS or MinIO); `STREETAUDIT_IMAGE_STORE=s3://bucket/prefix` is the only setting the
stages need, the endpoint and keys come from the usual AWS variables.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import fsspec
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.clean import clean_images
from streetaudit.flows.collect import collect
from streetaudit.flows.image_store import ImageStore
from streetaudit.flows.orphans import find_orphans
from streetaudit.flows.raters import add_rater
from streetaudit.flows.segment import segment
from streetaudit.testing.sample_rows import along, make_points

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
pytest.importorskip("s3fs", reason="s3fs is in the dev extra and the s3 extra")

BUCKET = "streetaudit-test"
# Cityscapes train ids the six elements count (models/label_sets.py): building 2, road 0, sky 10,
# vegetation 8, sidewalk 1, car 13.
ELEMENT_IDS = {"building": (2,), "road": (0,), "sky": (10,), "greenery": (8,), "sidewalk": (1,), "car": (13,)}


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "streetaudit-test",
        "AWS_SECRET_ACCESS_KEY": "streetaudit-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    patch = pytest.MonkeyPatch()
    for name, value in env.items():
        patch.setenv(name, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    yield env
    patch.undo()
    server.stop()


@pytest.fixture
def store_url(s3_env, monkeypatch) -> str:
    url = f"s3://{BUCKET}/city-{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    monkeypatch.setenv("STREETAUDIT_IMAGE_STORE", url)
    return url


def s3() -> fsspec.AbstractFileSystem:
    """A filesystem with no listing cache: other processes write the bucket too."""
    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)


def image_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, point_id, heading, status, uri, sha256 FROM streetaudit.image ORDER BY point_id, heading"
        ).fetchall()


def test_collect_segment_clean_and_serve_from_s3(fresh_db_url, store_url, pg_cluster):
    make_points(fresh_db_url, along((126.62, 45.76), 0.0004, 4), spacing=30.0)
    report = collect(fresh_db_url, "synthetic", headings=(0, 180), size=(128, 64), progress=False)
    assert report.ok == 8
    rows = image_rows(fresh_db_url)
    fs = s3()
    for _, _, _, status, uri, sha in rows:
        assert status == "ok" and uri.startswith(f"{store_url}/synthetic/")
        assert hashlib.sha256(fs.cat_file(uri)).hexdigest() == sha
    objects = fs.find(store_url)
    # PUT is atomic on S3: no temporary names, only each view and the synthetic provider's two
    # sidecars (label map, true boxes).
    assert not [o for o in objects if ".tmp-" in o] and len(objects) == 3 * 8

    seg = segment(fresh_db_url, backend="masks", device="cpu", progress=False, workers=0)
    assert seg.done == 8
    with psycopg.connect(fresh_db_url) as conn:
        shares = conn.execute(
            """SELECT i.uri, s.building, s.road, s.sky, s.greenery, s.sidewalk, s.car
               FROM streetaudit.segmentation AS s JOIN streetaudit.image AS i ON i.id = s.image_id
               WHERE s.model_id = %s""",
            (seg.model_id,),
        ).fetchall()
    assert len(shares) == 8
    for uri, *values in shares:
        labels = np.asarray(Image.open(io.BytesIO(fs.cat_file(uri.removesuffix(".jpg") + ".labels.png"))))
        expected = [np.isin(labels, ids).mean() for ids in ELEMENT_IDS.values()]
        np.testing.assert_allclose(values, expected, atol=1e-9)

    # A view overwritten with garbage in the bucket is excluded by `images clean`.
    broken_id, broken_uri = rows[0][0], rows[0][4]
    fs.pipe_file(broken_uri, b"not a jpeg")
    cleaned = clean_images(fresh_db_url, exclude_months=(), min_bytes=0)
    assert cleaned.broken == 1
    with psycopg.connect(fresh_db_url) as conn:
        status = conn.execute("SELECT status FROM streetaudit.image WHERE id = %s", (broken_id,)).fetchone()
        conn.execute(
            "INSERT INTO streetaudit.rating_image (image_id) SELECT id FROM streetaudit.image WHERE status = 'ok'"
        )
        conn.commit()
    assert status == ("excluded",)

    # The API streams a campaign image from the bucket to a rater's token.
    database = fresh_db_url.rsplit("/", 1)[1]
    rater = add_rater(fresh_db_url, "s3-rater")
    patch = pytest.MonkeyPatch()
    patch.setenv("STREETAUDIT_API_RATER_DATABASE_URL", pg_cluster.rater_url(database))
    try:
        app = create_app(pg_cluster.reader_url(database), ApiSettings(ogc=False, version_ttl=0))
        with TestClient(app) as client:
            served_id, served_uri = rows[1][0], rows[1][4]
            got = client.get(f"/rate/image/{served_id}", headers={"Authorization": f"Bearer {rater.token}"})
            assert got.status_code == 200 and got.content == fs.cat_file(served_uri)
            assert got.headers["content-type"] == "image/jpeg"
    finally:
        patch.undo()


def test_kill_during_upload_then_rerun_leaves_each_view_once(fresh_db_url, store_url, s3_env):
    """kill -9 of a collect writing to S3, then a rerun: one row and one object per view, all whole."""
    n_points, headings = 24, (0, 90, 180, 270)
    make_points(fresh_db_url, along((126.62, 45.76), 0.0004, n_points), spacing=30.0)
    env = {
        **os.environ,
        **s3_env,
        "STREETAUDIT_DATABASE_URL": fresh_db_url,
        "STREETAUDIT_IMAGE_STORE": store_url,
    }
    env.pop("STREETAUDIT_IMAGES_URL", None)
    command = [sys.executable, "-m", "streetaudit.cli.main", "collect", "--provider", "synthetic"]
    process = subprocess.Popen(
        [*command, "--no-progress", "--size", "320x160", "--concurrency", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while sum(r[3] == "ok" for r in image_rows(fresh_db_url)) < 12:
        assert process.poll() is None, process.stdout.read().decode()
        assert time.monotonic() < deadline, "the subprocess stored nothing in 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = sum(r[3] == "ok" for r in image_rows(fresh_db_url))
    assert at_kill < n_points * len(headings) * 0.9, "the kill came too late to test anything"

    report = collect(fresh_db_url, "synthetic", headings=headings, size=(320, 160), progress=False)
    rows = image_rows(fresh_db_url)
    assert len(rows) == n_points * len(headings) == len({(r[1], r[2]) for r in rows})
    assert all(r[3] == "ok" for r in rows) and report.ok == len(rows) - report.skipped
    fs = s3()
    for _, _, _, _, uri, sha in rows:
        data = fs.cat_file(uri)
        assert hashlib.sha256(data).hexdigest() == sha
        Image.open(io.BytesIO(data)).load()
    # Every object in the prefix belongs to a row: the view or its label map; nothing half-written.
    orphans = find_orphans(fresh_db_url, store=ImageStore(store_url))
    assert orphans.orphans == [] and orphans.missing == []
    assert len(fs.find(store_url)) == 3 * len(rows)
