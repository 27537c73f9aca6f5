"""`annotations merge`: one ground truth from several raters' boxes.

Per image and label, boxes of different raters that overlap at IoU >= t are one feature seen
by several people. `wbf` fuses each cluster with ensemble-boxes' weighted boxes fusion (all
raters weighted equally, so the fused box is the cluster's mean), `median` takes the cluster's
coordinate-wise median (robust to one careless rater), `union` keeps every rater's box as drawn
(the Harbin study's merge). A box is kept when the raters behind its cluster number at least
`min_raters` (1 keeps everything). Every image a rater annotated is covered, so images that
every rater left empty are stored as negatives (ground_truth_image without boxes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import psycopg

from streetaudit.flows.errors import InputError
from streetaudit.sql.rows import scalar

METHODS = ("wbf", "median", "union")


@dataclass
class Fused:
    label: str
    box: tuple[float, ...]  # x1, y1, x2, y2
    n_raters: int
    score: float | None


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def cluster(boxes: list[tuple[int, tuple]], threshold: float) -> list[list[tuple[int, tuple]]]:
    """Greedy clustering as WBF does it: each (rater, box) in turn joins the cluster whose median
    box it overlaps most, if that IoU >= threshold, else starts a cluster."""
    clusters: list[list[tuple[int, tuple]]] = []
    centres: list[tuple] = []
    for rater, box in boxes:
        overlaps = [iou(box, c) for c in centres]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best >= 0 and overlaps[best] >= threshold:
            clusters[best].append((rater, box))
            centres[best] = tuple(np.median([b for _, b in clusters[best]], axis=0))
        else:
            clusters.append([(rater, box)])
            centres.append(box)
    return clusters


def _wbf(boxes, threshold, width, height, label, raters_on_image: int) -> list[Fused]:
    """WBF with one list per rater who annotated the image (empty for those who drew none of
    this label), so the fused score is the share of the image's raters behind the box."""
    from ensemble_boxes import weighted_boxes_fusion

    per_rater: dict[int, list] = defaultdict(list)
    for rater, box in boxes:
        per_rater[rater].append(box)
    scale = np.array([width, height, width, height], dtype=float)
    lists = [np.clip(np.array(b) / scale, 0, 1).tolist() for b in per_rater.values()]
    lists += [[] for _ in range(max(0, raters_on_image - len(lists)))]
    fused, scores, _ = weighted_boxes_fusion(
        lists,
        [[1.0] * len(b) for b in lists],
        [[0] * len(b) for b in lists],
        iou_thr=threshold,
        skip_box_thr=0.0,
    )
    out = []
    for box, score in zip(fused * scale, scores, strict=True):
        raters = {r for r, b in boxes if iou(b, box) >= threshold}
        out.append(Fused(label, tuple(float(v) for v in box), max(1, len(raters)), float(score)))
    return out


def fuse(
    boxes: list[tuple[int, tuple]],
    method: str,
    threshold: float,
    width: float,
    height: float,
    label: str,
    raters_on_image: int = 0,
) -> list[Fused]:
    """The fused boxes of one image and label; `boxes` are (rater id, (x1, y1, x2, y2))."""
    if method == "wbf":
        return _wbf(boxes, threshold, width, height, label, raters_on_image)
    out = []
    for group in cluster(boxes, threshold):
        raters = len({r for r, _ in group})
        if method == "median":
            box = tuple(float(v) for v in np.median([b for _, b in group], axis=0))
            out.append(Fused(label, box, raters, None))
        else:
            out.extend(Fused(label, tuple(map(float, b)), raters, None) for _, b in group)
    return out


def _check(method: str, iou_threshold: float, min_raters: int) -> None:
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < iou_threshold <= 1:
        raise InputError(f"--iou must be in (0, 1], got {iou_threshold}")
    if min_raters < 1:
        raise InputError(f"--min-raters must be >= 1, got {min_raters}")


def merge_annotations(
    url: str,
    name: str,
    method: str = "wbf",
    iou: float = 0.55,
    min_raters: int = 1,
    labels: list[str] | None = None,
    replace: bool = False,
) -> int:
    """Store the ground truth `name` merged from the current annotations; its id."""
    _check(method, iou, min_raters)
    if not 1 <= len(name) <= 100:
        raise InputError(f"--name must be 1 to 100 characters, got {name!r}")
    with psycopg.connect(url) as conn:
        existing = conn.execute("SELECT id FROM streetaudit.ground_truth WHERE name = %s", (name,)).fetchone()
        if existing is not None:
            if not replace:
                raise InputError(f"ground truth {name!r} exists: choose another --name or give --replace")
            if conn.execute(
                "SELECT 1 FROM streetaudit.dataset WHERE ground_truth_id = %s", existing
            ).fetchone():
                raise InputError(
                    f"ground truth {name!r} is used by a dataset (split); merge under a new --name"
                )
            conn.execute("DELETE FROM streetaudit.ground_truth WHERE id = %s", existing)
        images = conn.execute(
            """SELECT i.id, i.width, i.height, count(DISTINCT s.rater_id) + bool_or(s.rater_id IS NULL)::int
               FROM (SELECT image_id, rater_id FROM streetaudit.annotated_image WHERE replaced_at IS NULL
                     UNION SELECT image_id, rater_id FROM streetaudit.annotation WHERE replaced_at IS NULL) AS s
               JOIN streetaudit.image AS i ON i.id = s.image_id
               GROUP BY i.id ORDER BY i.id"""
        ).fetchall()
        if not images:
            raise InputError("no annotations yet: import some with `streetaudit annotations import`")
        boxes: dict[tuple[int, str], list] = defaultdict(list)
        for image_id, rater_id, label, *box in conn.execute(
            """SELECT image_id, coalesce(rater_id, 0), label, x1, y1, x2, y2 FROM streetaudit.annotation
               WHERE replaced_at IS NULL AND (%(labels)s::text[] IS NULL OR label = ANY(%(labels)s))
               ORDER BY image_id, rater_id, id""",
            {"labels": labels},
        ):
            boxes[(image_id, label)].append((rater_id, tuple(box)))
        used = sorted({label for _, label in boxes})
        gt_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.ground_truth (name, method, iou, min_raters, labels)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (name, method, iou, min_raters, labels if labels is not None else used),
            )
        )
        sizes = {image_id: (w, h) for image_id, w, h, _ in images}
        raters_on = {image_id: n for image_id, _, _, n in images}
        rows = []
        for (image_id, label), group in boxes.items():
            width, height = sizes[image_id]
            if not (width and height):
                width = max(b[2] for _, b in group)
                height = max(b[3] for _, b in group)
            for f in fuse(group, method, iou, width, height, label, raters_on[image_id]):
                if f.n_raters >= min_raters:
                    rows.append((gt_id, image_id, f.label, *f.box, f.n_raters, f.score))
        with conn.cursor() as cursor:
            cursor.executemany(
                """INSERT INTO streetaudit.ground_truth_box
                   (ground_truth_id, image_id, label, x1, y1, x2, y2, n_raters, score)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                rows,
            )
            cursor.executemany(
                "INSERT INTO streetaudit.ground_truth_image (ground_truth_id, image_id, n_raters) VALUES (%s, %s, %s)",
                [(gt_id, image_id, n) for image_id, _, _, n in images],
            )
    return gt_id
