"""`points densify` after the roads have only grown places just the new roads' points, and
they are exactly those a full run places: a full run right after changes nothing."""

from __future__ import annotations

import psycopg
import pytest

from streetaudit.flows.points import densify, summary_lines


@pytest.fixture
def db_url(helsinki_db_url: str) -> str:
    return helsinki_db_url


def active_points(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        """SELECT id, road_id, seq, distance_m, ST_AsEWKB(geom) FROM streetaudit.sample_point
           WHERE retired_at IS NULL ORDER BY id"""
    ).fetchall()


def test_new_roads_alone_are_densified_and_a_full_run_then_changes_nothing(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        # A third of central Helsinki's roads leave and come back as newly loaded ones (new,
        # larger ids), among the roads they meet at junctions: their points merge both ways.
        conn.execute(
            """CREATE TABLE later AS SELECT source, source_id || '-again' AS source_id, name, kind, geom, length_m
               FROM streetaudit.road WHERE id % 3 = 0 ORDER BY id"""
        )
        conn.execute("DELETE FROM streetaudit.road WHERE id % 3 = 0")
        first = densify(db_url)
        assert first.new_roads is None  # roads were deleted: a full run
        conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
               SELECT source, source_id, name, kind, geom, length_m FROM later"""
        )
        added = conn.execute("SELECT count(*) FROM later").fetchone()[0]
        grown = densify(db_url)
        assert grown.new_roads == added and grown.inserted > 0
        assert grown.merged > first.merged  # the new roads' junction points merged into earlier roads'
        placed = active_points(conn)
        assert grown.points == len(placed)
        full = densify(db_url, full=True)
        assert full.new_roads is None
        assert (full.inserted, full.retired, full.reactivated) == (0, 0, 0)
        assert (full.points, full.merged) == (grown.points, grown.merged)
        assert active_points(conn) == placed


def test_a_moved_road_or_other_parameters_make_the_next_run_full(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        unchanged = densify(db_url)
        assert unchanged.new_roads == 0  # nothing changed: nothing to do, and it says so
        assert "no road added or changed since the last densify" in summary_lines(unchanged, 30)[0]
        conn.execute(
            "UPDATE streetaudit.road SET name = 'renamed' WHERE id = (SELECT min(id) FROM streetaudit.road)"
        )
        assert densify(db_url).new_roads == 0  # a rename moves no point
        conn.execute(
            """UPDATE streetaudit.road SET geom = ST_Reverse(geom)
               WHERE id = (SELECT min(id) FROM streetaudit.road)"""
        )
        moved = densify(db_url)
        assert moved.new_roads is None and moved.retired > 0
        assert densify(db_url, interval=40).new_roads is None
        assert densify(db_url, interval=40).new_roads == 0
