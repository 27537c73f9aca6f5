"""`stats refresh` recomputes only when something it reads changed (streetaudit.stats_input_change).

On a small grid city: a refresh with nothing changed leaves everything as it was, data
version included; a ~1% change (new images and segmentations, a changed segmentation, a
retired point) is seen and published exactly as `--full` publishes it; a different
selection or comparison parameter recomputes; a change committed while a refresh runs is
kept for the next one.
"""

from __future__ import annotations

import psycopg
import pytest

from streetaudit.flows.stats import refresh_stats, summary_line
from streetaudit.sql.migrate import migrate
from streetaudit.sql.rows import scalar
from streetaudit.testing.grid_city import add_model, build, grow
from streetaudit.testing.published_stats import published, published_grid_city


def version(url: str) -> int:
    with psycopg.connect(url) as conn:
        return scalar(conn.execute("SELECT version FROM api.data_version"))


@pytest.fixture
def city(fresh_db_url: str) -> str:
    return published_grid_city(fresh_db_url)


def change_one_percent(url: str) -> None:
    """New images with segmentations at 1% of the points, one segmentation changed, one point retired."""
    with psycopg.connect(url) as conn:
        model = scalar(conn.execute("SELECT model_id FROM streetaudit.stats_state"))
    grow(url, model)
    with psycopg.connect(url) as conn:
        conn.execute(
            """UPDATE streetaudit.segmentation SET building = building / 2
               WHERE image_id = (SELECT min(image_id) FROM streetaudit.segmentation)"""
        )
        conn.execute(
            "UPDATE streetaudit.sample_point SET retired_at = now() WHERE id = (SELECT max(point_id) FROM api.point_elements)"
        )


def test_refresh_with_nothing_changed_recomputes_nothing(city):
    before, was = published(city), version(city)
    report = refresh_stats(city, permutations=99)
    assert report.mode == "unchanged" and report.reason is None
    assert report.version == was == version(city)
    assert published(city) == before
    assert report.points == len(before["api.point_elements"]) and len(report.comparisons) == 18
    assert "nothing recomputed" in summary_line(report)


def test_one_percent_change_is_published_as_a_full_refresh_publishes_it(city):
    before, was = published(city), version(city)
    change_one_percent(city)
    report = refresh_stats(city, permutations=99)
    assert report.mode == "incremental"  # tests/test_stats_incremental_points.py: every table
    assert report.reason == "inputs changed: image, sample_point, segmentation"
    assert report.version > was
    after = published(city)
    assert after["api.point_elements"] != before["api.point_elements"]
    assert after["streetaudit.prebuilt_tile"] != before["streetaudit.prebuilt_tile"]

    forced = refresh_stats(city, permutations=99, full=True)
    assert forced.mode == "full" and forced.reason == "--full"
    assert published(city) == after
    assert refresh_stats(city, permutations=99).mode == "unchanged"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"complete_only": True}, "the selection changed"),
        ({"holm": "all"}, "the comparison parameters changed"),
        ({"permutations": 199}, "the comparison parameters changed"),
    ],
)
def test_another_selection_or_comparison_recomputes(city, change, reason):
    report = refresh_stats(city, **{"permutations": 99, **change})
    assert (report.mode, report.reason) == ("full", reason)


def test_another_model_recomputes(city):
    with psycopg.connect(city) as conn:
        other = add_model(conn, "grid-second", building=0.5)
    # Its segmentations were written too: the selection is what is named first.
    report = refresh_stats(city, model=other, permutations=99)
    assert (report.mode, report.reason) == ("full", "the selection changed")
    assert refresh_stats(city, model=other, permutations=99).mode == "unchanged"


def test_change_committed_during_a_refresh_is_kept_for_the_next(city):
    change_one_percent(city)
    with psycopg.connect(city) as refreshing, psycopg.connect(city) as writer:
        refreshing.execute("SELECT streetaudit.refresh_stats(model_id) FROM streetaudit.stats_state")
        writer.execute("UPDATE streetaudit.road SET name = name || ' (renamed)' WHERE id = 1")
        writer.commit()
        refreshing.commit()
    report = refresh_stats(city, permutations=99)
    assert (report.mode, report.reason) == ("full", "inputs changed: road")


def test_a_transaction_logs_each_table_once_however_many_statements(city):
    with psycopg.connect(city) as conn:
        for _ in range(5):
            conn.execute(
                "UPDATE streetaudit.image SET status = status WHERE id = (SELECT min(id) FROM streetaudit.image)"
            )
        conn.execute(
            "DELETE FROM streetaudit.segmentation WHERE image_id = (SELECT max(image_id) FROM streetaudit.segmentation)"
        )
    with psycopg.connect(city) as conn:
        logged = conn.execute(
            "SELECT relation, operation FROM streetaudit.stats_input_change ORDER BY relation"
        ).fetchall()
    assert logged == [("image", "UPDATE"), ("segmentation", "DELETE")]


def test_stats_refresh_says_which_refresh_ran(cli, db_url):
    build(db_url, 6)

    def said(*args: str) -> str:
        result = cli("stats", "refresh", "--quiet", "--permutations", "99", *args)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())  # the console wraps long lines

    first = said()
    assert "; full refresh" in first and "full refresh because: " in first
    again = said()
    assert "unchanged since the last refresh: nothing recomputed" in again and "because" not in again
    assert "full refresh because: --full" in said("--full")


def test_a_migrate_that_makes_the_views_anew_recomputes_the_comparison(city):
    with psycopg.connect(city) as conn:
        # As `db migrate` does when a source changed: post/030_stats.sql runs again.
        conn.execute("DELETE FROM streetaudit.schema_source WHERE name = '030_stats.sql'")
    migrate(city)
    report = refresh_stats(city, permutations=99)
    assert (report.mode, report.reason) == ("full", "inputs changed: definitions")
