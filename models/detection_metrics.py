"""COCO detection scores (mAP@[.5:.95], mAP@.5, mAP@.75, per-class AP) from boxes in memory.

The Harbin study reports COCO mAP; computing it with pycocotools itself (not a
re-implementation) keeps our figures comparable with every published one. pycocotools
reads files or dicts, so this builds its structures from arrays: one image entry per
image (images with no true box are negatives and still count: every detection on them is
a false positive), boxes converted from x1 y1 x2 y2 to COCO's x y w h.

A class with no true box anywhere has no AP (COCO's -1), reported as None, and is left out
of the mean, as pycocotools does.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageBoxes:
    """True boxes (N × 4, x1 y1 x2 y2 pixels) and their class indices (1 … K) of one image."""

    boxes: np.ndarray
    labels: np.ndarray
    #: detections only: their scores
    scores: np.ndarray | None = None

    @classmethod
    def of(cls, boxes, labels, scores=None) -> ImageBoxes:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        s = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(lab) != len(b) or (s is not None and len(s) != len(b)):
            raise ValueError(f"{len(b)} boxes, {len(lab)} labels, {None if s is None else len(s)} scores")
        return cls(b, lab, s)


@dataclass
class DetectionScores:
    map: float
    map50: float
    map75: float
    #: label -> AP@[.5:.95] (None: no true box of that label)
    per_class: dict[str, float | None] = field(default_factory=dict)
    #: label -> AP@.5
    per_class50: dict[str, float | None] = field(default_factory=dict)
    images: int = 0

    def as_row(self) -> dict:
        return {"map": self.map, "map50": self.map50, "map75": self.map75, "per_class": self.per_class}


def _coco_dicts(
    truths: Sequence[ImageBoxes], detections: Sequence[ImageBoxes], labels: Sequence[str]
) -> tuple[dict, list[dict]]:
    images: list[dict] = []
    annotations: list[dict] = []
    results: list[dict] = []
    for image_id, (truth, found) in enumerate(zip(truths, detections, strict=True), start=1):
        images.append({"id": image_id, "width": 0, "height": 0})
        for (x1, y1, x2, y2), label in zip(truth.boxes, truth.labels, strict=True):
            w, h = float(x2 - x1), float(y2 - y1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [float(x1), float(y1), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        scores = found.scores if found.scores is not None else np.ones(len(found.boxes))
        for (x1, y1, x2, y2), label, score in zip(found.boxes, found.labels, scores, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "score": float(score),
                }
            )
    categories = [{"id": i, "name": name} for i, name in enumerate(labels, start=1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _ap(value: float) -> float | None:
    return None if value < 0 or math.isnan(value) else float(value)


def coco_scores(
    truths: Sequence[ImageBoxes], detections: Sequence[ImageBoxes], labels: Sequence[str]
) -> DetectionScores:
    """COCO box scores of `detections` against `truths` (one entry per image, same order)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(truths) != len(detections):
        raise ValueError(f"{len(truths)} images of truths but {len(detections)} of detections")
    for truth in truths:
        bad = truth.labels[(truth.labels < 1) | (truth.labels > len(labels))]
        if len(bad):
            raise ValueError(f"class index {int(bad[0])} outside 1…{len(labels)} ({', '.join(labels)})")
    dataset, results = _coco_dicts(truths, detections, labels)
    has_truth = {int(label) for truth in truths for label in truth.labels}
    empty = DetectionScores(0.0, 0.0, 0.0, images=len(truths))
    empty.per_class = {name: (0.0 if i in has_truth else None) for i, name in enumerate(labels, 1)}
    empty.per_class50 = dict(empty.per_class)
    if not has_truth:
        # nothing to find: COCO's AP is undefined (-1); a detector that found nothing is right
        return DetectionScores(math.nan, math.nan, math.nan, empty.per_class, empty.per_class50, len(truths))
    if not results:
        return empty
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and tables
        truth_api = COCO()
        truth_api.dataset = dataset
        truth_api.createIndex()
        found_api = truth_api.loadRes(results)
        evaluation = COCOeval(truth_api, found_api, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    # precision: [IoU thresholds, recall points, classes, area ranges, max detections]
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_class, per_class50 = {}, {}
    for k, name in enumerate(labels):
        cls = precision[:, :, k]
        per_class[name] = _ap(float(np.mean(cls[cls > -1]))) if (cls > -1).any() else None
        cls50 = precision[0, :, k]
        per_class50[name] = _ap(float(np.mean(cls50[cls50 > -1]))) if (cls50 > -1).any() else None
    return DetectionScores(
        max(float(stats[0]), 0.0),
        max(float(stats[1]), 0.0),
        max(float(stats[2]), 0.0),
        per_class,
        per_class50,
        len(truths),
    )
