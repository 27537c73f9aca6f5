"""`split_dataset`: seeded, reproducible, grouped by sample point, shares near the target."""

from __future__ import annotations

import psycopg
import pytest

from streetaudit.flows.detect_split import assign_groups, split_dataset
from streetaudit.flows.errors import InputError
from streetaudit.flows.simulated_ratings import seed_rating_images


@pytest.fixture(scope="module")
def ground_truth(db_url: str, tmp_path_factory) -> str:
    """40 points with 1 to 3 views each (79 images), all covered by ground truth 'gt'."""
    images = seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 40)
    with psycopg.connect(db_url) as conn:
        for n, image in enumerate(images):
            for heading in range(1, n % 3 + 1):
                conn.execute(
                    """INSERT INTO streetaudit.image (point_id, provider, heading, width, height, uri, status)
                       SELECT point_id, provider, %s, width, height, uri, 'ok' FROM streetaudit.image WHERE id = %s""",
                    (90 * heading, image),
                )
        gt = conn.execute(
            """INSERT INTO streetaudit.ground_truth (name, method, iou, min_raters, labels)
               VALUES ('gt', 'union', 0.55, 1, '{window}') RETURNING id"""
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO streetaudit.ground_truth_image (ground_truth_id, image_id, n_raters)
               SELECT %s, id, 1 FROM streetaudit.image""",
            (gt,),
        )
    return "gt"


def _items(url: str, dataset_id: int) -> dict[int, tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT d.image_id, d.split, i.point_id FROM streetaudit.dataset_item AS d
               JOIN streetaudit.image AS i ON i.id = d.image_id WHERE d.dataset_id = %s""",
            (dataset_id,),
        ).fetchall()
    return {image: (split, point) for image, split, point in rows}


def test_split_is_reproducible_and_grouped_by_point(db_url, ground_truth):
    a = split_dataset(db_url, "a", ground_truth, seed=7)
    b = split_dataset(db_url, "b", ground_truth, seed=7)
    c = split_dataset(db_url, "c", ground_truth, seed=8)
    items_a, items_b, items_c = (_items(db_url, r.dataset_id) for r in (a, b, c))
    assert len(items_a) == 79 and items_a == items_b
    assert items_a != items_c
    per_point: dict[int, set[str]] = {}
    for split, point in items_a.values():
        per_point.setdefault(point, set()).add(split)
    assert all(len(s) == 1 for s in per_point.values())
    assert {s for s, _ in items_a.values()} == {"train", "val", "test"}


def test_split_shares_are_within_one_group_of_target(db_url, ground_truth):
    report = split_dataset(db_url, "shares", ground_truth, test=0.3, val=0.3, seed=3)
    total = sum(report.counts.values())
    largest = 3
    assert abs(report.counts["test"] - 0.3 * total) <= largest
    assert abs(report.counts["val"] - 0.3 * (total - 0.3 * total)) <= largest


def test_split_refuses_an_existing_name_unless_replace(db_url, ground_truth):
    first = split_dataset(db_url, "again", ground_truth, seed=1)
    with pytest.raises(InputError, match="exists already"):
        split_dataset(db_url, "again", ground_truth, seed=2)
    assert _items(db_url, first.dataset_id)  # nothing lost on refusal
    second = split_dataset(db_url, "again", ground_truth, seed=2, replace=True)
    assert second.dataset_id != first.dataset_id and len(_items(db_url, second.dataset_id)) == 79
    with pytest.raises(InputError, match="no ground truth named 'nope'"):
        split_dataset(db_url, "x", "nope")
    with pytest.raises(InputError, match="--test must be a share"):
        split_dataset(db_url, "x", ground_truth, test=1.5)


def test_assign_groups_depends_on_seed_not_key_order():
    sizes = {k: 1 + k % 3 for k in range(30)}
    reordered = dict(reversed(list(sizes.items())))
    assert assign_groups(sizes, 0.3, 0.3, 5) == assign_groups(reordered, 0.3, 0.3, 5)


def test_a_sample_keeps_whole_points_and_is_seeded(db_url, ground_truth):
    """`--sample N`: about N images, never part of a point's views, the same for the same seed."""
    first = _items(db_url, split_dataset(db_url, "sampled-a", ground_truth, seed=3, sample=20).dataset_id)
    again = _items(db_url, split_dataset(db_url, "sampled-b", ground_truth, seed=3, sample=20).dataset_id)
    other = _items(db_url, split_dataset(db_url, "sampled-c", ground_truth, seed=4, sample=20).dataset_id)
    assert first == again and set(first) != set(other)
    assert 20 <= len(first) <= 22  # whole points of 1–3 views
    with psycopg.connect(db_url) as conn:
        views = dict(
            conn.execute("SELECT point_id, count(*) FROM streetaudit.image GROUP BY point_id").fetchall()
        )
    kept_points = [point for _, point in first.values()]
    assert all(kept_points.count(point) == views[point] for point in set(kept_points))
    with pytest.raises(InputError, match="--sample"):
        split_dataset(db_url, "sampled-d", ground_truth, sample=2)
