"""Input that used to end in a traceback (or a misleading line) is refused with exit 2 and one line
naming the parameter, file or row and the reason, before anything is written.

Also: rows that vanish under a running stage (a concurrent densify deleting points) are
skipped and counted instead of a ForeignKeyViolation traceback.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image as PILImage

from streetaudit.flows.collect import MAX_CLIENTS, MAX_CONCURRENCY, _Collector, collect
from streetaudit.flows.errors import InputError
from streetaudit.flows.providers import open_provider
from streetaudit.flows.providers.base import View
from streetaudit.flows.segment import segment
from streetaudit.testing.local_server import LocalProviders

LON, LAT = 116.3970, 39.9087
KEY = "SEKRET-input-errors-44a0"


@pytest.fixture
def point_ids(fresh_db_url: str) -> list[int]:
    with psycopg.connect(fresh_db_url) as conn:
        road = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('t', '1', ST_GeomFromText('LINESTRING(116.397 39.9087, 116.3982 39.9087)', 4326), 100)
               RETURNING id"""
        ).fetchone()[0]
        return [
            conn.execute(
                """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id""",
                (road, i, 25.0 * i, LON + 0.0003 * i, LAT),
            ).fetchone()[0]
            for i in range(3)
        ]


@pytest.fixture
def run(cli, fresh_db_url, monkeypatch, tmp_path):
    """The CLI against this test's own (fresh) database."""
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    return cli


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM streetaudit.{table}").fetchone()[0]


def assert_refused(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = " ".join(result.output.split())  # rich may wrap a long line
    for needle in needles:
        assert needle in line, result.output


def jpeg(colour=(90, 120, 150), exif: PILImage.Exif | None = None) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 32), colour).save(out, format="JPEG", exif=exif or PILImage.Exif())
    return out.getvalue()


# -- folder provider ------------------------------------------------------------------------
def test_non_utf8_index_csv_names_the_file_and_line(run, point_ids, fresh_db_url, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg())
    (folder / "index.csv").write_bytes(
        f"path,lon,lat,heading\na.jpg,{LON},{LAT},0\n".encode() + "b.jpg,1,2,0,Straße\n".encode("latin-1")
    )
    result = run("collect", "--provider", f"folder:{folder}", "--no-progress")
    assert_refused(result, "index.csv line 3: not UTF-8 text (byte 0xdf)", "save the file as UTF-8")
    assert count(fresh_db_url, "image") == 0


def test_one_photo_with_a_zero_exif_date_does_not_refuse_the_folder(run, point_ids, fresh_db_url, tmp_path):
    folder = tmp_path / "exif"
    folder.mkdir()
    for name, taken, heading in (
        ("good.jpg", "2022:06:05 10:00:00", 0.0),
        ("zero.jpg", "0000:00:00 00:00:00", 90.0),
    ):
        exif = PILImage.Exif()
        exif[0x8825] = {1: "N", 2: (39.0, 54.0, 31.32), 3: "E", 4: (116.0, 23.0, 49.2), 17: heading}
        exif[306] = taken
        (folder / name).write_bytes(jpeg(exif=exif))
    result = run("collect", "--provider", f"folder:{folder}", "--no-progress")
    assert result.exit_code == 0, result.output
    with psycopg.connect(fresh_db_url) as conn:
        taken = dict(
            conn.execute("SELECT pano_id, captured_at FROM streetaudit.image WHERE status = 'ok'").fetchall()
        )
    assert taken == {"good.jpg": datetime(2022, 6, 5, 10, tzinfo=UTC), "zero.jpg": None}


# -- roads file -------------------------------------------------------------------------------
def test_a_file_whose_only_row_is_out_of_range_names_the_row_and_reason(run, fresh_db_url, tmp_path):
    path = tmp_path / "roads.geojson"
    feature = {"type": "Feature", "properties": {"name": "Far"}, "geometry": {"type": "LineString", "coordinates": [[200.0, 39.9], [201.0, 39.9]]}}  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    result = run("roads", "load", str(path))
    assert_refused(
        result, "roads.geojson: no usable road lines", "row 1: coordinates outside longitude/latitude range"
    )
    assert count(fresh_db_url, "road") == 0


# -- collect parameters -----------------------------------------------------------------------
def test_nan_headings_are_named_with_their_value(run, point_ids):
    assert_refused(run("collect", "--provider", "synthetic", "--headings", "0,nan"), "--headings", "got nan")
    assert_refused(run("collect", "--provider", "synthetic", "--headings", "inf"), "got inf")


def test_huge_concurrency_is_refused_and_clients_do_not_grow_with_it(run, point_ids, fresh_db_url):
    result = run("collect", "--provider", "synthetic", "--concurrency", "100000")
    assert_refused(result, f"--concurrency must be between 1 and {MAX_CONCURRENCY}", "got 100000")
    assert count(fresh_db_url, "image") == 0
    for provider, clients in (("baidu", MAX_CLIENTS), ("synthetic", 1)):
        chosen = open_provider(provider) if provider == "synthetic" else _baidu()
        collector = _Collector(
            fresh_db_url, chosen, [View(0)], limit=None, area=None, concurrency=MAX_CONCURRENCY, rate=None,
            retry_errors=False, recheck_missing=False, progress=False,
        )  # fmt: skip
        assert len(collector.clients()) == clients


def _baidu():
    from streetaudit.flows.providers.baidu import BaiduProvider
    from streetaudit.flows.providers.settings import ProviderSettings

    return BaiduProvider(ProviderSettings(baidu_ak=KEY))


def test_unknown_or_missing_image_store_backends_name_the_variable(run, point_ids, fresh_db_url, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_IMAGES_URL", "nosuch://bucket/images")
    result = run("collect", "--provider", "synthetic", "--no-progress")
    assert_refused(result, "STREETAUDIT_IMAGES_URL: unknown storage scheme 'nosuch'")
    # gcsfs is not installed here (s3fs is: tests/test_image_store_s3.py)
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL")
    monkeypatch.setenv("STREETAUDIT_IMAGE_STORE", "gcs://bucket/images")
    result = run("collect", "--provider", "synthetic", "--no-progress")
    assert_refused(
        result, "STREETAUDIT_IMAGE_STORE: storing images at gcs:// needs an fsspec backend", "gcsfs"
    )
    assert count(fresh_db_url, "image") == 0


# -- segment ------------------------------------------------------------------------------------
def test_zero_input_size_is_refused_before_the_model_row_is_written(run, fresh_db_url):
    result = run("segment", "--input-size", "0x0", "--device", "cpu")
    assert_refused(result, "--input-size must be between 1x1 and 8192x8192 pixels, got 0x0")
    with pytest.raises(InputError, match="--input-size"):
        segment(fresh_db_url, backend="masks", input_size=(0, 512), device="cpu", progress=False)
    assert count(fresh_db_url, "model") == 0


def label_map(path: Path, class_id: int) -> None:
    PILImage.fromarray(np.full((8, 16), class_id, dtype=np.uint8), mode="L").save(path)


def test_images_deleted_while_segmenting_are_skipped_and_counted(
    fresh_db_url, point_ids, tmp_path, monkeypatch
):
    import streetaudit.flows.segment as segment_module

    ids = []
    with psycopg.connect(fresh_db_url) as conn:
        for point_id in point_ids:
            image = tmp_path / f"{point_id}_0.jpg"
            image.write_bytes(jpeg())
            label_map(tmp_path / f"{point_id}_0.labels.png", 10)
            ids.append(
                conn.execute(
                    """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                       VALUES (%s, 'test', 0, %s, 'ok') RETURNING id""",
                    (point_id, str(image)),
                ).fetchone()[0]
            )
    real_claim = segment_module.claim_images

    def claim_then_densify(*args, **kwargs):
        """What a `points densify` running beside us does: its points go, their images cascade."""
        found = real_claim(*args, **kwargs)
        with psycopg.connect(fresh_db_url) as other:
            other.execute("DELETE FROM streetaudit.sample_point WHERE id = ANY(%s)", (point_ids[:2],))
        return found

    monkeypatch.setattr(segment_module, "claim_images", claim_then_densify)
    report = segment(fresh_db_url, backend="masks", device="cpu", workers=0, progress=False)
    assert (report.done, report.failed, report.vanished) == (1, 0, 2)
    with psycopg.connect(fresh_db_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT image_id FROM streetaudit.segmentation")]
    assert stored == [ids[2]]


def test_points_deleted_while_collecting_are_dropped_not_a_traceback(
    fresh_db_url, point_ids, tmp_path, monkeypatch
):
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREETAUDIT_BAIDU_AK", KEY)
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    first = f"{LON:.7f}"
    with LocalProviders(key=KEY) as server:
        monkeypatch.setenv("STREETAUDIT_BAIDU_URL", f"{server.url}/panorama/v2")

        def densify_meanwhile(request):
            if request.query["location"].startswith(first):
                with psycopg.connect(fresh_db_url) as conn:
                    conn.execute("DELETE FROM streetaudit.sample_point WHERE id = %s", (point_ids[0],))
            return None

        server.script = densify_meanwhile
        report = collect(fresh_db_url, "baidu", concurrency=2, progress=False)
    assert (report.ok, report.vanished) == (8, 4)
    with psycopg.connect(fresh_db_url) as conn:
        points = {r[0] for r in conn.execute("SELECT point_id FROM streetaudit.image")}
    assert points == set(point_ids[1:])
