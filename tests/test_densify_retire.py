"""Densify never loses images: old points are retired with their images, come back on
reuse, and only an explicit prune deletes them (rows and files); orphan files are found.

Images and segmentations are written like collect and segment write them (rows plus files
in a private image store, sidecar label maps included), directly, so that every count
below is known independently of the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import psycopg
import pytest

from streetaudit.flows.image_store import ImageStore, sidecar_key, view_key
from streetaudit.flows.orphans import find_orphans
from streetaudit.flows.points import densify
from streetaudit.models.label_sets import ELEMENTS

METRE = 1 / 111_320
HEADINGS = (0.0, 90.0, 180.0, 270.0)


def east(lon0: float, lat0: float, metres: float) -> str:
    """WKT of a straight road `metres` long heading east (spherical approximation)."""
    lon1 = lon0 + metres * METRE / math.cos(math.radians(lat0))
    return f"LINESTRING({lon0} {lat0}, {lon1} {lat0})"


def add_roads(conn: psycopg.Connection, lengths: list[float]) -> list[int]:
    return [
        conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('t', %s, ST_GeomFromText(%s, 4326), %s) RETURNING id""",
            (str(k), east(24.90 + 0.01 * k, 60.17, m), m),
        ).fetchone()[0]
        for k, m in enumerate(lengths)
    ]


def active(conn: psycopg.Connection) -> dict[tuple[int, int], int]:
    return {
        (road, seq): pid
        for pid, road, seq in conn.execute(
            "SELECT id, road_id, seq FROM streetaudit.sample_point WHERE retired_at IS NULL"
        )
    }


def add_segmented_views(conn: psycopg.Connection, store: ImageStore, point_ids, model_id: int) -> list[str]:
    """Four ok views per point, each a file plus a label-map sidecar, and a segmentation (unlike
    testing.sample_rows.add_images: on existing points, with files in the image store)."""
    rng = np.random.default_rng(1)
    files = []
    for pid in point_ids:
        for heading in HEADINGS:
            key = view_key("synthetic", pid, heading, "jpg")
            uri = store.put(key, b"\xff\xd8 fake jpeg \xff\xd9")
            files += [uri, store.put(sidecar_key(key, ".labels.png"), b"png")]
            image_id = conn.execute(
                """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                   VALUES (%s, 'synthetic', %s, %s, 'ok') RETURNING id""",
                (pid, heading, uri),
            ).fetchone()[0]
            shares = rng.dirichlet(np.ones(7))[:6]
            conn.execute(
                f"""INSERT INTO streetaudit.segmentation (image_id, model_id, {", ".join(ELEMENTS)}, histogram, pixels)
                    VALUES (%s, %s, {", ".join(["%s"] * 6)}, %s, 100)""",
                (image_id, model_id, *map(float, shares), [1] * 7),
            )
    return files


def add_model(conn: psycopg.Connection, name: str = "m") -> int:
    return conn.execute(
        """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
           VALUES ('segmentation', %s, 'synthetic', %s, 'six-elements', %s) RETURNING id""",
        (name, f"synthetic:{name}", [*ELEMENTS, "other"]),
    ).fetchone()[0]


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    return conn.execute(
        "SELECT (SELECT count(*) FROM streetaudit.image), (SELECT count(*) FROM streetaudit.segmentation)"
    ).fetchone()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ImageStore:
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREETAUDIT_IMAGES_URL", str(tmp_path / "images"))
    return ImageStore()


@pytest.fixture
def collected(fresh_db_url: str, store: ImageStore):
    """Three roads (330, 310 and 95 m) densified at 30 m, every point with 4 views segmented."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        add_roads(conn, [330.0, 310.0, 95.0])
        densify(fresh_db_url, interval=30, dedupe_within=0)
        at_30 = active(conn)
        files = add_segmented_views(conn, store, at_30.values(), add_model(conn))
        yield conn, at_30, files


def test_a_new_interval_retires_points_and_keeps_every_image(fresh_db_url: str, collected, store) -> None:
    conn, at_30, files = collected
    images, segs = counts(conn)
    assert images == 4 * len(at_30) and segs == images

    report = densify(fresh_db_url, interval=50, dedupe_within=0)

    assert counts(conn) == (images, segs)
    assert all(Path(f).exists() for f in files)
    at_50 = active(conn)
    # Points at 0, 150 and 300 m lie where 30 m points were: those rows serve the new set.
    shared = 0
    for (road, seq), pid in at_50.items():
        if 50 * seq % 30 == 0:
            assert pid == at_30[(road, 50 * seq // 30)]
            shared += 1
        else:
            assert pid not in at_30.values()
    assert shared == 3 + 3 + 1  # 0/150/300 m, 0/150/300 m, 0 m
    retired = set(at_30.values()) - set(at_50.values())
    assert report.retired == len(retired) and report.inserted == len(at_50) - shared
    stored_retired = {
        r[0] for r in conn.execute("SELECT id FROM streetaudit.sample_point WHERE retired_at IS NOT NULL")
    }
    assert stored_retired == retired
    assert (report.kept.points, report.kept.imaged) == (len(retired), len(retired))
    assert (report.kept.images, report.kept.segmentations) == (4 * len(retired), 4 * len(retired))


def test_statistics_use_active_points_only(fresh_db_url: str, collected) -> None:
    from streetaudit.flows.stats import refresh_stats

    conn, at_30, _ = collected
    refresh_stats(fresh_db_url)
    assert {r[0] for r in conn.execute("SELECT point_id FROM api.point_elements")} == set(at_30.values())
    densify(fresh_db_url, interval=50, dedupe_within=0)
    refresh_stats(fresh_db_url)
    imaged_active = set(active(conn).values()) & set(at_30.values())
    assert 0 < len(imaged_active) < len(at_30)
    assert {r[0] for r in conn.execute("SELECT point_id FROM api.point_elements")} == imaged_active
    assert {r[0] for r in conn.execute("SELECT point_id FROM streetaudit.point_features")} == imaged_active
    n_by_road = dict(conn.execute("SELECT road_id, n_points FROM api.road_stats"))
    for road in n_by_road:
        assert n_by_road[road] == sum(
            1 for (r, _), p in active(conn).items() if r == road and p in imaged_active
        )
    rest = conn.execute("SELECT n_points FROM api.area_stats WHERE area_id IS NULL").fetchone()[0]
    assert rest == len(imaged_active)


def test_going_back_to_an_interval_gives_back_the_same_point_ids(fresh_db_url: str, collected) -> None:
    conn, at_30, _ = collected
    densify(fresh_db_url, interval=50, dedupe_within=0)
    at_50 = active(conn)
    back = densify(fresh_db_url, interval=30, dedupe_within=0)
    assert active(conn) == at_30
    assert back.inserted == 0 and back.reactivated == len(set(at_30.values()) - set(at_50.values()))
    # The 50 m points that had no 30 m twin are retired now, not deleted.
    assert back.retired == len(set(at_50.values()) - set(at_30.values()))
    assert densify(fresh_db_url, interval=50, dedupe_within=0).inserted == 0
    assert active(conn) == at_50


def test_a_point_within_a_metre_and_a_half_reuses_the_stored_point(fresh_db_url: str, store) -> None:
    """30 m -> 30.5 m: new points 0.5 and 1.0 m from old ones take them over, 2 m and more do not.

    On the road with images the reused point stays where its images were taken; on the
    road without, it moves to its new place.
    """
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        imaged_road, bare_road = add_roads(conn, [200.0, 200.0])
        densify(fresh_db_url, interval=30, dedupe_within=0)
        at_30 = active(conn)
        add_segmented_views(conn, store, [at_30[(imaged_road, s)] for s in range(7)], add_model(conn))
        place = {
            pid: (d, wkb)
            for pid, d, wkb in conn.execute(
                "SELECT id, distance_m, ST_AsEWKB(geom) FROM streetaudit.sample_point"
            )
        }
        report = densify(fresh_db_url, interval=30.5, dedupe_within=0)
        now = active(conn)
        for road in (imaged_road, bare_road):
            assert now[(road, 0)] == at_30[(road, 0)]
            assert now[(road, 1)] == at_30[(road, 1)] and now[(road, 2)] == at_30[(road, 2)]
            assert all(now[(road, s)] not in at_30.values() for s in (4, 5, 6))
        rows = {
            pid: (seq, d, wkb)
            for pid, seq, d, wkb in conn.execute(
                "SELECT id, seq, distance_m, ST_AsEWKB(geom) FROM streetaudit.sample_point WHERE retired_at IS NULL"
            )
        }
        kept = rows[now[(imaged_road, 2)]]
        assert (kept[1], kept[2]) == place[at_30[(imaged_road, 2)]]  # never moves from its images
        moved = rows[now[(bare_road, 2)]]
        assert moved[1] == pytest.approx(61.0) and moved[2] != place[at_30[(bare_road, 2)]][1]
        assert report.inserted == sum(1 for p in now.values() if p not in at_30.values())
        # Reusing is how views are not fetched again: the reused point still has its 4 views.
        n = conn.execute(
            "SELECT count(*) FROM streetaudit.image WHERE point_id = %s", (now[(imaged_road, 1)],)
        ).fetchone()[0]
        assert n == len(HEADINGS)


def test_collect_fetches_only_what_active_points_lack(fresh_db_url: str, collected) -> None:
    """After a new interval, collect skips the views of reused points and never visits retired ones."""
    from streetaudit.flows.collect import collect

    conn, at_30, _ = collected
    densify(fresh_db_url, interval=50, dedupe_within=0)
    at_50 = active(conn)
    report = collect(fresh_db_url, "synthetic", headings=HEADINGS, size=(64, 32), progress=False)
    fresh = set(at_50.values()) - set(at_30.values())
    assert report.ok == 4 * len(fresh) and report.skipped == 4 * (len(at_50) - len(fresh))
    touched = {
        r[0]
        for r in conn.execute("SELECT DISTINCT point_id FROM streetaudit.image WHERE fetched_at IS NOT NULL")
    }
    assert touched == fresh


def test_prune_deletes_retired_rows_and_their_files_and_says_so(
    fresh_db_url: str, collected, store, tmp_path: Path
) -> None:
    conn, at_30, files = collected
    densify(fresh_db_url, interval=50, dedupe_within=0)
    retired = set(at_30.values()) - set(active(conn).values())
    own = tmp_path / "user" / "mask.png"  # a label map of the user's, named by a segmentation
    own.parent.mkdir()
    own.write_bytes(b"png")
    victim = conn.execute(
        """SELECT s.image_id FROM streetaudit.segmentation AS s JOIN streetaudit.image AS i ON i.id = s.image_id
           WHERE i.point_id = %s LIMIT 1""",
        (min(retired),),
    ).fetchone()[0]
    conn.execute("UPDATE streetaudit.segmentation SET mask_uri = %s WHERE image_id = %s", (str(own), victim))
    doomed = [f for f in files if int(Path(f).name.split("_")[0]) in retired]
    assert len(doomed) == 8 * len(retired)
    images, segs = counts(conn)

    report = densify(fresh_db_url, interval=50, dedupe_within=0, prune=True)

    p = report.pruned
    assert (p.points, p.images, p.segmentations) == (len(retired), 4 * len(retired), 4 * len(retired))
    assert p.files.deleted == len(doomed) and p.files.outside == 1 and p.files.missing == 0
    assert counts(conn) == (images - p.images, segs - p.segmentations)
    assert not any(Path(f).exists() for f in doomed)
    assert all(Path(f).exists() for f in files if f not in doomed) and own.exists()
    assert (
        conn.execute("SELECT count(*) FROM streetaudit.sample_point WHERE retired_at IS NOT NULL").fetchone()[
            0
        ]
        == 0
    )
    assert find_orphans(fresh_db_url).orphans == []


def test_densify_cli_reports_what_is_kept_and_what_prune_deletes(
    fresh_db_url: str, collected, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from streetaudit.cli.main import app

    conn, at_30, _ = collected
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    runner = CliRunner()
    kept = runner.invoke(app, ["points", "densify", "--interval", "50", "--dedupe-within", "0"])
    assert kept.exit_code == 0, kept.output
    n = len(set(at_30.values()) - set(active(conn).values()))
    assert f"{n} retired points are kept" in kept.output
    assert f"{n} of them hold {4 * n} images and {4 * n} segmentations" in kept.output
    assert "--prune" in kept.output
    pruned = runner.invoke(app, ["points", "densify", "--interval", "50", "--dedupe-within", "0", "--prune"])
    assert pruned.exit_code == 0, pruned.output
    assert (
        f"pruned {n} retired points: deleted {4 * n} image rows, {4 * n} segmentations and {8 * n} files"
        in pruned.output
    )


def test_a_segmentation_written_while_densify_runs_is_not_refused(fresh_db_url: str, collected) -> None:
    """`segment` overlapping a densify used to die with ForeignKeyViolation: its image was cascaded away."""
    conn, _at_30, _ = collected
    with psycopg.connect(fresh_db_url) as densifier, psycopg.connect(fresh_db_url) as writer:
        densifier.execute("SELECT * FROM streetaudit.densify_roads(50, 0)")  # not committed yet
        retired = densifier.execute(
            "SELECT id FROM streetaudit.sample_point WHERE retired_at IS NOT NULL ORDER BY id LIMIT 1"
        ).fetchone()[0]
        image_id = conn.execute(
            "SELECT id FROM streetaudit.image WHERE point_id = %s LIMIT 1", (retired,)
        ).fetchone()[0]
        model = add_model(writer, "second")
        # Were the image cascaded away or locked, this would fail or wait out the timeout.
        writer.execute("SET statement_timeout = '20s'")
        writer.execute(
            f"""INSERT INTO streetaudit.segmentation (image_id, model_id, {", ".join(ELEMENTS)}, histogram, pixels)
                VALUES (%s, %s, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, %s, 100)""",
            (image_id, model, [1] * 7),
        )
        writer.commit()
        densifier.commit()
    assert (
        conn.execute(
            "SELECT count(*) FROM streetaudit.segmentation WHERE image_id = %s", (image_id,)
        ).fetchone()[0]
        == 2
    )


def test_bulk_rewrites_keep_ids_and_rebuild_every_index(fresh_db_url: str) -> None:
    """Over 10,000 writes take the path that drops and rebuilds the indexes and foreign key."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        add_roads(conn, [3000.0] * 5)
        assert densify(fresh_db_url, interval=1, dedupe_within=0).inserted > 10000
        at_1 = active(conn)
        at_2 = densify(fresh_db_url, interval=2, dedupe_within=0)
        assert at_2.inserted == 0 and at_2.retired > 5000  # every other point is a 1 m one
        assert all(pid == at_1[(r, 2 * s)] for (r, s), pid in active(conn).items())
        back = densify(fresh_db_url, interval=1, dedupe_within=0)
        assert active(conn) == at_1 and back.inserted == 0 and back.reactivated == at_2.retired
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'sample_point'")
        }
        assert indexes == {
            "sample_point_pkey",
            "sample_point_geom_idx",
            "sample_point_active_seq_key",
            "sample_point_road_idx",
        }
        fk = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'sample_point_road_fk'"
        ).fetchone()[0]
        assert fk == 1
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   SELECT road_id, seq, distance_m, geom FROM streetaudit.sample_point
                   WHERE retired_at IS NULL LIMIT 1"""
            )


def test_prune_keeps_retired_points_whose_images_raters_compared(fresh_db_url: str, collected) -> None:
    conn, at_30, _ = collected
    densify(fresh_db_url, interval=50, dedupe_within=0)
    retired = sorted(set(at_30.values()) - set(active(conn).values()))
    left, right = (
        conn.execute("SELECT min(id) FROM streetaudit.image WHERE point_id = %s", (pid,)).fetchone()[0]
        for pid in retired[:2]
    )
    rater = conn.execute(
        "INSERT INTO streetaudit.rater (name, token_hash) VALUES ('r', repeat('a', 64)) RETURNING id"
    ).fetchone()[0]
    conn.execute(
        """INSERT INTO streetaudit.comparison (rater_id, left_image, right_image, choice)
           VALUES (%s, %s, %s, 'left')""",
        (rater, left, right),
    )

    report = densify(fresh_db_url, interval=50, dedupe_within=0, prune=True)

    assert report.pruned.points == len(retired) - 2 and report.kept.points == 2
    still = {
        r[0] for r in conn.execute("SELECT id FROM streetaudit.sample_point WHERE retired_at IS NOT NULL")
    }
    assert still == set(retired[:2])
    assert conn.execute("SELECT count(*) FROM streetaudit.comparison").fetchone()[0] == 1
