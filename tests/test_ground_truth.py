"""Merging raters' boxes into a ground truth, checked against shapely IoU and numpy mean/median
on hand-made overlapping boxes; empty images kept as negatives."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from shapely.geometry import box as shape

from streetaudit.flows.errors import InputError
from streetaudit.flows.ground_truth import merge_annotations
from streetaudit.flows.raters import add_rater
from streetaudit.testing.sample_rows import add_images

# Three raters on one 200x100 image: a window all three drew, a window only alice drew, a roof
# bob and carol drew; a second image alice looked at and left empty.
BOXES = {
    "alice": [("window", (10, 10, 30, 40)), ("window", (100, 10, 120, 30))],
    "bob": [("window", (12, 11, 31, 42)), ("roof", (0, 0, 200, 20))],
    "carol": [("window", (11, 9, 29, 41)), ("roof", (0, 0, 198, 22))],
}
SHARED_WINDOW = [b for boxes in BOXES.values() for label, b in boxes if label == "window" and b[0] < 50]
ROOF = [b for boxes in BOXES.values() for label, b in boxes if label == "roof"]


def shapely_iou(a, b) -> float:
    a, b = shape(*a), shape(*b)
    return a.intersection(b).area / a.union(b).area


@pytest.fixture(scope="module")
def images(db_url: str, tmp_path_factory) -> list[int]:
    folder = tmp_path_factory.mktemp("gt")
    ids = add_images(db_url, [folder / "gt_a.jpg", folder / "gt_b.jpg"])
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE streetaudit.image SET width = 200, height = 100 WHERE id = ANY(%s)", (ids,))
        for name, boxes in BOXES.items():
            add_rater(db_url, name)
            rater = conn.execute("SELECT id FROM streetaudit.rater WHERE name = %s", (name,)).fetchone()[0]
            conn.execute(
                "INSERT INTO streetaudit.annotated_image (image_id, rater_id, source, boxes) VALUES (%s, %s, 'hand', %s)",
                (ids[0], rater, len(boxes)),
            )
            for row, (label, (x1, y1, x2, y2)) in enumerate(boxes, start=1):
                conn.execute(
                    """INSERT INTO streetaudit.annotation (image_id, rater_id, label, x1, y1, x2, y2, source, source_row)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, 'hand', %s)""",
                    (ids[0], rater, label, x1, y1, x2, y2, row),
                )
        conn.execute(
            """INSERT INTO streetaudit.annotated_image (image_id, rater_id, source, boxes)
               SELECT %s, id, 'hand', 0 FROM streetaudit.rater WHERE name = 'alice'""",
            (ids[1],),
        )
    return ids


def stored(db_url: str, gt_id: int) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT label, x1, y1, x2, y2, n_raters FROM streetaudit.ground_truth_box
               WHERE ground_truth_id = %s ORDER BY label, x1""",
            (gt_id,),
        ).fetchall()


def test_the_hand_made_clusters_are_what_shapely_says():
    # The fixture's premise: the shared window and the roof overlap well above 0.55, the lone
    # window overlaps nothing.
    assert min(shapely_iou(a, b) for a in SHARED_WINDOW for b in SHARED_WINDOW) > 0.7
    assert shapely_iou(*ROOF) > 0.85
    assert shapely_iou(SHARED_WINDOW[0], (100, 10, 120, 30)) == 0


@pytest.mark.parametrize(("method", "centre"), [("median", np.median), ("wbf", np.mean)])
def test_fused_boxes_are_the_cluster_median_or_mean_and_count_their_raters(db_url, images, method, centre):
    gt = merge_annotations(db_url, f"gt-{method}", method=method, iou=0.55, min_raters=1)
    rows = stored(db_url, gt)
    assert [(r[0], r[5]) for r in rows] == [("roof", 2), ("window", 3), ("window", 1)]
    np.testing.assert_allclose(rows[0][1:5], centre(ROOF, axis=0), atol=1e-3)
    np.testing.assert_allclose(rows[1][1:5], centre(SHARED_WINDOW, axis=0), atol=1e-3)
    np.testing.assert_allclose(rows[2][1:5], (100, 10, 120, 30), atol=1e-3)
    if method == "wbf":  # the score: the share of the image's three raters behind the box
        with psycopg.connect(db_url) as conn:
            scores = conn.execute(
                "SELECT score FROM streetaudit.ground_truth_box WHERE ground_truth_id = %s ORDER BY label, x1",
                (gt,),
            ).fetchall()
        np.testing.assert_allclose([s for (s,) in scores], [2 / 3, 1, 1 / 3], atol=1e-6)


def test_min_raters_drops_features_too_few_people_drew(db_url, images):
    gt = merge_annotations(db_url, "gt-two", method="median", min_raters=2)
    assert [(r[0], r[5]) for r in stored(db_url, gt)] == [("roof", 2), ("window", 3)]
    gt3 = merge_annotations(db_url, "gt-three", method="median", min_raters=3)
    assert [(r[0], r[5]) for r in stored(db_url, gt3)] == [("window", 3)]


def test_union_keeps_every_box_and_empty_images_are_negatives(db_url, images):
    gt = merge_annotations(db_url, "gt-union", method="union")
    rows = stored(db_url, gt)
    drawn = sorted((label, *map(float, b)) for boxes in BOXES.values() for label, b in boxes)
    assert sorted(r[:5] for r in rows) == drawn
    with psycopg.connect(db_url) as conn:
        covered = conn.execute(
            "SELECT image_id, n_raters FROM streetaudit.ground_truth_image WHERE ground_truth_id = %s ORDER BY image_id",
            (gt,),
        ).fetchall()
        labels = conn.execute("SELECT labels FROM streetaudit.ground_truth WHERE id = %s", (gt,)).fetchone()[
            0
        ]
    assert covered == [(images[0], 3), (images[1], 1)]
    assert labels == ["roof", "window"]


def test_labels_filter_and_existing_name_needs_replace(db_url, images):
    gt = merge_annotations(db_url, "gt-roof", method="median", labels=["roof"])
    assert [r[0] for r in stored(db_url, gt)] == ["roof"]
    with pytest.raises(InputError, match="exists: choose another --name or give --replace"):
        merge_annotations(db_url, "gt-roof")
    again = merge_annotations(db_url, "gt-roof", method="union", labels=["roof"], replace=True)
    assert len(stored(db_url, again)) == 2
    with pytest.raises(InputError, match="--method must be one of"):
        merge_annotations(db_url, "gt-x", method="mean")
