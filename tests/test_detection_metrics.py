"""Our COCO scores against hand-computed AP and against faster-coco-eval (an independent C++ implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streetaudit.models.detection_metrics import ImageBoxes, _coco_dicts, coco_scores

LABELS = ["window", "ornament"]


def faster_stats(truths, detections, labels):
    from faster_coco_eval import COCO, COCOeval_faster

    dataset, results = _coco_dicts(truths, detections, labels)
    truth_api = COCO(dataset)
    found_api = truth_api.loadRes(results)
    evaluation = COCOeval_faster(truth_api, found_api, "bbox", print_function=lambda *a, **k: None)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[:3]


def check_against_faster(truths, detections, labels=LABELS):
    ours = coco_scores(truths, detections, labels)
    theirs = faster_stats(truths, detections, labels)
    assert [ours.map, ours.map50, ours.map75] == pytest.approx(list(theirs), abs=1e-6)
    return ours


def one(boxes, labels, scores=None):
    return ImageBoxes.of(boxes, labels, scores)


def test_perfect_detections_score_one():
    truths = [one([[0, 0, 10, 10], [20, 20, 40, 35]], [1, 2]), one([[5, 5, 30, 30]], [1])]
    found = [one(t.boxes, t.labels, np.full(len(t.labels), 0.9)) for t in truths]
    scores = check_against_faster(truths, found)
    assert (scores.map, scores.map50, scores.map75) == pytest.approx((1.0, 1.0, 1.0))
    assert scores.per_class == pytest.approx({"window": 1.0, "ornament": 1.0})


def test_shifted_box_counts_only_at_thresholds_below_its_iou():
    # shifted 2 px along x: IoU = 80 / 120 = 0.667, a hit at IoU .50 … .65 (4 of 10 thresholds)
    truths = [one([[0, 0, 10, 10]], [1])]
    found = [one([[2, 0, 12, 10]], [1], [0.9])]
    scores = check_against_faster(truths, found, ["window"])
    assert scores.map == pytest.approx(0.4)
    assert (scores.map50, scores.map75) == pytest.approx((1.0, 0.0))


def test_missed_box_halves_recall():
    truths = [one([[0, 0, 10, 10], [50, 50, 70, 70]], [1, 1])]
    found = [one([[0, 0, 10, 10]], [1], [0.9])]
    scores = check_against_faster(truths, found, ["window"])
    # 101-point interpolation: precision 1 at recall 0, .01, …, .50 and 0 beyond
    assert scores.map50 == pytest.approx(51 / 101)


def test_duplicate_detection_is_a_false_positive():
    truths = [one([[0, 0, 10, 10]], [1])]
    # ranked after the true hit a duplicate costs nothing: precision is 1 up to full recall
    found_low = [one([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], [0.9, 0.5])]
    assert check_against_faster(truths, found_low, ["window"]).map == pytest.approx(1.0)
    # a looser duplicate (IoU 100/120 = .833) ranked first takes the match at IoU .50 … .80;
    # at .85 … .95 it is a false positive before the true hit: AP 1/2 at those 3 thresholds
    found = [one([[0, 0, 10, 10], [0, 0, 10, 12]], [1, 1], [0.5, 0.9])]
    scores = check_against_faster(truths, found, ["window"])
    assert (scores.map, scores.map50, scores.map75) == pytest.approx((0.85, 1.0, 1.0))


def test_detections_on_empty_images_are_false_positives():
    truths = [one([[0, 0, 10, 10]], [1]), one(np.zeros((0, 4)), [])]
    found = [one([[0, 0, 10, 10]], [1], [0.6]), one([[3, 3, 9, 9]], [1], [0.95])]
    scores = check_against_faster(truths, found, ["window"])
    assert scores.map50 == pytest.approx(0.5)
    assert scores.images == 2


def test_class_without_true_boxes_has_no_ap_and_nothing_found_scores_zero():
    truths = [one([[0, 0, 10, 10]], [1])]
    found = [one([[0, 0, 10, 10]], [1], [0.9])]
    scores = coco_scores(truths, found, LABELS)
    assert scores.per_class["window"] == pytest.approx(1.0) and scores.per_class["ornament"] is None
    nothing = coco_scores(truths, [one(np.zeros((0, 4)), [])], LABELS)
    assert (nothing.map, nothing.map50, nothing.per_class["window"]) == (0.0, 0.0, 0.0)
    no_truth = coco_scores([one(np.zeros((0, 4)), [])], [one(np.zeros((0, 4)), [])], LABELS)
    assert math.isnan(no_truth.map)


def test_random_scenes_agree_with_faster_coco_eval():
    rng = np.random.default_rng(3)
    truths, found = [], []
    for _ in range(30):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        boxes = np.hstack([xy, xy + wh])
        labels = rng.integers(1, 3, n)
        truths.append(one(boxes, labels))
        jitter = boxes + rng.normal(0, 4, boxes.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        extra = int(rng.integers(0, 3))
        exy = rng.uniform(0, 200, (extra, 2))
        fake = np.hstack([exy, exy + rng.uniform(5, 40, (extra, 2))])
        found.append(
            one(
                np.vstack([jitter, fake]),
                np.concatenate([labels, rng.integers(1, 3, extra)]),
                rng.uniform(0.05, 1, n + extra),
            )
        )
    scores = check_against_faster(truths, found)
    assert 0.1 < scores.map < 0.9


def test_bad_class_index_is_refused_by_name():
    with pytest.raises(ValueError, match="class index 3 outside 1…2"):
        coco_scores([one([[0, 0, 1, 1]], [3])], [one(np.zeros((0, 4)), [])], LABELS)
