"""`images orphans`: files under the image store that no row names, and rows whose file is gone."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from streetaudit.cli.main import app
from streetaudit.flows.image_store import ImageStore, sidecar_key, view_key
from streetaudit.flows.orphans import find_orphans


def point(conn: psycopg.Connection) -> int:
    road = conn.execute(
        """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
           VALUES ('t', '1', ST_GeomFromText('LINESTRING(24.94 60.17, 24.95 60.17)', 4326), 550) RETURNING id"""
    ).fetchone()[0]
    return conn.execute(
        """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
           VALUES (%s, 0, 0, ST_SetSRID(ST_MakePoint(24.94, 60.17), 4326)) RETURNING id""",
        (road,),
    ).fetchone()[0]


def stock(conn: psycopg.Connection, store: ImageStore) -> dict[str, list[str]]:
    """Three views with rows (one with a sidecar, one whose file then vanishes) and two orphans."""
    pid = point(conn)
    kept, gone = [], []
    for heading in (0.0, 90.0, 22.5):
        key = view_key("synthetic", pid, heading, "jpg")
        uri = store.put(key, b"jpeg")
        kept.append(uri)
        if heading == 0.0:
            kept.append(store.put(sidecar_key(key, ".labels.png"), b"png"))
        conn.execute(
            "INSERT INTO streetaudit.image (point_id, provider, heading, uri, status) VALUES (%s, 'synthetic', %s, %s, 'ok')",
            (pid, heading, uri),
        )
    gone.append(kept.pop())
    if store.local:
        os.unlink(gone[0])
    else:
        store.fs.rm_file(gone[0])
    orphans = [
        store.put(view_key("synthetic", pid + 1, 0.0, "jpg"), b"no row"),  # its point was deleted
        store.put(view_key("baidu", pid, 0.0, "jpg"), b"no row either"),
    ]
    return {"kept": kept, "gone": gone, "orphans": orphans}


def test_orphans_are_found_and_deleted_only_when_asked(fresh_db_url: str, tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        files = stock(conn, store)
    temp = Path(store.root) / ".tmp" / "host-1" / "partial"  # a write in progress is no orphan
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"x")

    report = find_orphans(fresh_db_url, store=store)
    assert sorted(f.uri for f in report.orphans) == sorted(files["orphans"])
    assert [uri for _, _, uri in report.missing] == files["gone"]
    assert report.files == len(files["kept"]) + len(files["orphans"])
    assert report.orphan_bytes == len(b"no row") + len(b"no row either") and report.deleted == 0
    assert all(store.exists(u) for u in files["orphans"])

    fresh = find_orphans(fresh_db_url, store=store, delete=True)  # younger than the default 10 min
    assert fresh.deleted == 0 and fresh.too_recent == 2
    done = find_orphans(fresh_db_url, store=store, delete=True, min_age_s=0)
    assert done.deleted == 2
    assert not any(store.exists(u) for u in files["orphans"])
    assert all(store.exists(u) for u in files["kept"]) and temp.exists()
    assert find_orphans(fresh_db_url, store=store).orphans == []


def test_orphans_in_an_fsspec_store(fresh_db_url: str) -> None:
    store = ImageStore(f"memory://orphans-{uuid.uuid4().hex}/images")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        files = stock(conn, store)
    report = find_orphans(fresh_db_url, store=store, delete=True, min_age_s=0)
    assert sorted(f.uri for f in report.orphans) == sorted(files["orphans"]) and report.deleted == 2
    assert [uri for _, _, uri in report.missing] == files["gone"]
    assert all(store.exists(u) for u in files["kept"])
    assert not any(store.exists(u) for u in files["orphans"])


def test_orphans_command_lists_and_deletes(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("STREETAUDIT_IMAGES_URL", str(tmp_path / "images"))
    store = ImageStore()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        files = stock(conn, store)
    old = time.time() - 3600
    for uri in files["orphans"]:
        os.utime(uri, (old, old))
    runner = CliRunner()
    listed = runner.invoke(app, ["images", "orphans"], catch_exceptions=False)
    out = " ".join(listed.output.split())
    assert listed.exit_code == 0
    assert "2 files have no image row" in out and "1 image rows name a file that is missing" in out
    assert all(u in listed.output for u in files["orphans"] + files["gone"])
    assert "nothing deleted" in out and all(Path(u).exists() for u in files["orphans"])
    deleted = runner.invoke(app, ["images", "orphans", "--delete"], catch_exceptions=False)
    assert deleted.exit_code == 0 and "deleted 2 files without an image row" in " ".join(
        deleted.output.split()
    )
    assert not any(Path(u).exists() for u in files["orphans"]) and all(
        Path(u).exists() for u in files["kept"]
    )
    bad = runner.invoke(app, ["images", "orphans", "--min-age", "nan"], catch_exceptions=False)
    assert bad.exit_code == 2 and "--min-age" in bad.output
