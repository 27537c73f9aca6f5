"""An incremental `stats refresh` (only points changed) publishes exactly what a full one does.

On a small grid city with streets: about 1% of the points change (new images, a changed
segmentation, an image excluded, a point retired, and one road's every image excluded, so
that road leaves its overview group). The incremental refresh recomputes only those points
and what they reach; then `--full` rebuilds everything, and every published table, tile
table and pre-built tile must be byte for byte what the incremental one left. Changes that
are not a point's own make the refresh full; the dirty set is emptied by a refresh and
survives one that fails.
"""

from __future__ import annotations

import psycopg
import pytest

from streetaudit.flows.stats import mode_line, refresh_stats, summary_line
from streetaudit.sql.rows import scalar
from streetaudit.testing.grid_city import grow
from streetaudit.testing.published_stats import PUBLISHED, published, published_grid_city


def dirty_points(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT point_id FROM streetaudit.stats_dirty_point")}


@pytest.fixture
def city(fresh_db_url: str) -> str:
    return published_grid_city(fresh_db_url)


def change_one_percent(url: str) -> set[int]:
    """The changes of the module docstring; returns the points they touch (an independent count)."""
    with psycopg.connect(url) as conn:
        model = scalar(conn.execute("SELECT model_id FROM streetaudit.stats_state"))
        before = {r[0] for r in conn.execute("SELECT DISTINCT point_id FROM streetaudit.image")}
        heading45 = set()
    grow(url, model)
    with psycopg.connect(url) as conn:
        heading45 = {r[0] for r in conn.execute("SELECT point_id FROM streetaudit.image WHERE heading = 45")}
        resegmented = scalar(
            conn.execute(
                """UPDATE streetaudit.segmentation AS s SET building = building / 2 FROM streetaudit.image AS i
                   WHERE i.id = s.image_id AND s.image_id = (SELECT min(image_id) FROM streetaudit.segmentation)
                   RETURNING i.point_id"""
            )
        )
        excluded = scalar(
            conn.execute(
                """UPDATE streetaudit.image SET status = 'excluded'
                   WHERE id = (SELECT max(id) FROM streetaudit.image WHERE heading = 90) RETURNING point_id"""
            )
        )
        retired = scalar(
            conn.execute(
                """UPDATE streetaudit.sample_point SET retired_at = now()
                   WHERE id = (SELECT max(point_id) FROM api.point_elements) RETURNING id"""
            )
        )
        # A road whose every view is excluded loses its data: it moves to the overview
        # group of roads without data, whose lines are merged again.
        emptied = {
            r[0]
            for r in conn.execute(
                """UPDATE streetaudit.image SET status = 'excluded'
                   WHERE point_id IN (SELECT id FROM streetaudit.sample_point
                                      WHERE road_id = (SELECT min(road_id) + 7 FROM api.road_stats))
                   RETURNING point_id"""
            )
        }
    assert heading45 and heading45 <= before and emptied
    return heading45 | {resegmented, excluded, retired} | emptied


def test_incremental_refresh_after_a_one_percent_change_equals_a_full_rebuild(city):
    before = published(city)
    touched = change_one_percent(city)
    assert dirty_points(city) == touched

    report = refresh_stats(city, permutations=99)
    assert (report.mode, report.recomputed_points) == ("incremental", len(touched))
    assert report.reason == "inputs changed: image, sample_point, segmentation"
    assert f"incremental refresh: {len(touched)} changed points recomputed" in summary_line(report)
    assert (
        mode_line(report) == "incremental refresh because: inputs changed: image, sample_point, segmentation"
    )
    incremental = published(city)
    for name in PUBLISHED:  # what the points reach did change
        if name not in ("streetaudit.area_features",):
            assert incremental[name] != before[name], name
    assert dirty_points(city) == set()

    forced = refresh_stats(city, permutations=99, full=True)
    assert (forced.mode, forced.reason) == ("full", "--full")
    assert forced.recomputed_points == len(incremental["api.point_elements"])
    rebuilt = published(city)
    for name in PUBLISHED:
        assert incremental[name] == rebuilt[name], name


def test_incremental_refresh_writes_only_the_changed_points_rows(city):
    with psycopg.connect(city) as conn:
        point = scalar(conn.execute("SELECT min(point_id) FROM api.point_elements"))
        conn.execute(
            "UPDATE streetaudit.segmentation SET sky = sky / 3 WHERE image_id IN "
            "(SELECT id FROM streetaudit.image WHERE point_id = %s)",
            (point,),
        )
        conn.commit()
        rows = "SELECT point_id, xmin::text FROM api.point_elements ORDER BY point_id"
        was = dict(conn.execute(rows).fetchall())
    assert refresh_stats(city, permutations=99).mode == "incremental"
    with psycopg.connect(city) as conn:
        now = dict(conn.execute(rows).fetchall())
    assert [p for p in was if was[p] != now[p]] == [point]


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE streetaudit.road SET name = name || ' (renamed)' WHERE id = 1",
        "UPDATE streetaudit.heritage_area SET name = name || ' (renamed)' WHERE id = (SELECT min(id) FROM streetaudit.heritage_area)",
        # A point moved may change area and street: not its own change alone.
        "UPDATE streetaudit.sample_point SET geom = ST_Translate(geom, 0.0001, 0) WHERE id = (SELECT min(id) FROM streetaudit.sample_point)",
        # More than a tenth of the points: a full refresh costs no more.
        "UPDATE streetaudit.segmentation SET car = car",
    ],
    ids=["road", "area", "moved point", "most points"],
)
def test_a_change_that_is_not_a_few_points_own_makes_the_refresh_full(city, change):
    with psycopg.connect(city) as conn:
        conn.execute("UPDATE streetaudit.segmentation SET sky = sky / 2 WHERE image_id = 1")
        conn.execute(change)
    report = refresh_stats(city, permutations=99)
    assert report.mode == "full", report.reason
    assert dirty_points(city) == set()


def test_a_failed_refresh_keeps_the_dirty_points(city):
    touched = change_one_percent(city)
    with psycopg.connect(city) as conn:
        conn.execute("SELECT * FROM streetaudit.refresh_stats(%s, true)", (1,))
        assert scalar(conn.execute("SELECT count(*) FROM streetaudit.stats_dirty_point")) == 0
        conn.rollback()  # as when the comparison fails after the SQL refresh
    assert dirty_points(city) == touched
    assert refresh_stats(city, permutations=99).mode == "incremental"
    assert dirty_points(city) == set()


def test_a_statement_marks_each_point_it_touches_once(city):
    with psycopg.connect(city) as conn:
        conn.execute("DELETE FROM streetaudit.stats_dirty_point")
        conn.execute(
            "UPDATE streetaudit.image SET status = status WHERE point_id IN "
            "(SELECT id FROM streetaudit.sample_point ORDER BY id LIMIT 3)"
        )
        marked = conn.execute("SELECT point_id FROM streetaudit.stats_dirty_point ORDER BY 1").fetchall()
        expected = conn.execute("SELECT id FROM streetaudit.sample_point ORDER BY id LIMIT 3").fetchall()
    assert marked == expected


def test_kept_permutation_draws_give_the_p_values_of_fresh_ones(city):
    draws = "SELECT key, drawn_at FROM streetaudit.permutation_draw ORDER BY key"
    with psycopg.connect(city) as conn:
        made = conn.execute(draws).fetchall()
    assert len(made) == 3  # all cores together, and each of the two core areas, against the rest
    kept = published(city)["api.area_comparison"]
    refresh_stats(city, permutations=99, full=True)
    with psycopg.connect(city) as conn:
        assert conn.execute(draws).fetchall() == made  # read back, not drawn again
        conn.execute("DELETE FROM streetaudit.permutation_draw")
    refresh_stats(city, permutations=99, full=True)
    assert published(city)["api.area_comparison"] == kept
    # Another count of permutations is another draw; the unused ones go.
    refresh_stats(city, permutations=199)
    with psycopg.connect(city) as conn:
        assert len(set(conn.execute(draws).fetchall()) & set(made)) == 0
        assert scalar(conn.execute("SELECT count(*) FROM streetaudit.permutation_draw")) == 3
