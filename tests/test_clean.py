"""`images clean`: each rule, its reason, reruns and undo."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from streetaudit.flows.clean import clean_images
from streetaudit.flows.errors import InputError
from streetaudit.testing.local_server import base_jpeg, unique_jpeg

JULY, DECEMBER = datetime(2022, 7, 1, tzinfo=UTC), datetime(2022, 12, 15, tzinfo=UTC)


@pytest.fixture
def images(db_url: str, tmp_path: Path) -> dict[str, int]:
    """Image rows, each made to trip exactly one rule (or none)."""
    base = base_jpeg()
    placeholder = unique_jpeg(base, "no imagery placeholder")
    files = {
        "good": (unique_jpeg(base, "good"), JULY),
        "winter": (unique_jpeg(base, "winter"), DECEMBER),
        "truncated": (unique_jpeg(base, "truncated")[:4000] + b"\x00" * 3000, JULY),
        "tiny": (unique_jpeg(base_jpeg(16, 8), "tiny"), JULY),
        "dup1": (placeholder, JULY),
        "dup2": (placeholder, JULY),
        "gone": (unique_jpeg(base, "gone"), JULY),
        "garbage": (b"<html>error</html>" * 400, None),
    }
    ids = {}
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE streetaudit.road CASCADE")
        road = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('c', '1', ST_GeomFromText('LINESTRING(24.9 60.1, 24.91 60.1)', 4326), 500) RETURNING id"""
        ).fetchone()[0]
        for seq, (name, (data, when)) in enumerate(files.items()):
            point = conn.execute(
                """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, 0, ST_SetSRID(ST_MakePoint(24.9, 60.1), 4326)) RETURNING id""",
                (road, seq),
            ).fetchone()[0]
            path = tmp_path / f"{name}.jpg"
            if name != "gone":
                path.write_bytes(data)
            ids[name] = conn.execute(
                """INSERT INTO streetaudit.image (point_id, provider, heading, uri, sha256, bytes, status, captured_at)
                   VALUES (%s, 'test', 0, %s, %s, %s, 'ok', %s) RETURNING id""",
                (point, str(path), hashlib.sha256(data).hexdigest(), len(data), when),
            ).fetchone()[0]
        ids["missing"] = conn.execute(
            """INSERT INTO streetaudit.image (point_id, provider, heading, status, detail)
               VALUES (%s, 'test', 90, 'missing', 'no pano') RETURNING id""",
            (point,),
        ).fetchone()[0]
        conn.commit()
    return ids


def states(url: str, ids: dict[str, int]) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(url) as conn:
        found = dict(
            (row[0], (row[1], row[2]))
            for row in conn.execute("SELECT id, status, detail FROM streetaudit.image").fetchall()
        )
    return {name: found[i] for name, i in ids.items()}


def test_clean_excludes_each_kind_of_unusable_view_with_its_reason(images, db_url):
    report = clean_images(db_url)
    got = states(db_url, images)
    assert got["good"] == ("ok", None)
    assert got["missing"] == ("missing", "no pano")
    assert got["winter"][0] == "excluded" and "month 12" in got["winter"][1]
    assert got["truncated"][1] == "excluded: truncated image"
    assert got["gone"][1] == "excluded: file missing"
    assert got["garbage"][1].startswith("excluded: undecodable image")
    assert "below --min-bytes 5000" in got["tiny"][1]
    assert "identical to 1 other view" in got["dup1"][1] and "identical" in got["dup2"][1]
    assert (report.broken, report.winter, report.small, report.duplicates) == (3, 1, 1, 2)
    assert report.checked == 8 and report.excluded == 7

    # A rerun gives the same result; other settings give exactly their own result.
    clean_images(db_url)
    assert states(db_url, images) == got
    report = clean_images(db_url, exclude_months=(), min_bytes=0)
    assert (report.winter, report.small) == (0, 0)
    assert states(db_url, images)["winter"] == ("ok", None)


def test_undo_restores_every_excluded_view(images, db_url):
    clean_images(db_url)
    report = clean_images(db_url, undo=True)
    assert report.restored == 7
    assert all(status == "ok" for name, (status, _) in states(db_url, images).items() if name != "missing")


def test_clean_cli_prints_what_it_excluded_and_why(images, cli):
    result = cli("images", "clean", "--exclude-months", "12")
    assert result.exit_code == 0, result.output
    assert "excluded 7" in result.output and "captured in month 12" in result.output
    assert "truncated image" in result.output
    result = cli("images", "clean", "--undo")
    assert "restored 7" in result.output
    result = cli("images", "clean", "--exclude-months", "13")
    assert result.exit_code == 2 and "--exclude-months" in result.output


def test_bad_settings_are_named(db_url):
    with pytest.raises(InputError, match="--min-bytes"):
        clean_images(db_url, min_bytes=-1)
