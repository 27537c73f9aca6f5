"""A seeded, made-up detection set: drawn facades with known "window" boxes, as the tables hold them.

Training, evaluation, prediction and Grad-CAM tests need images whose true boxes are
known without labelling anything. Each image is a coloured facade on a sky with a few
dark rectangles ("window") and, with two labels, bright squares ("ornament"); the boxes
go into ground_truth_box, every image (negatives included: facades with no window) into
ground_truth_image, and a split grouped by sample point into dataset/dataset_item, exactly
as `annotations merge` and `detect split` would write them. Never used on real data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image, ImageDraw

from streetaudit.flows.image_store import ImageStore
from streetaudit.sql.rows import scalar

# Far from the other seeded pools (ratings sit around 24.95, 60.17).
_ORIGIN = (25.05, 60.25)
#: fill colour per label; windows are dark, ornaments bright, facades mid-tone
_COLOURS = {"window": (25, 35, 60), "ornament": (240, 220, 40)}


@dataclass
class SeededDetection:
    dataset: str
    dataset_id: int
    ground_truth_id: int
    labels: list[str]
    #: image id -> [(label, x1, y1, x2, y2), …] (empty for negatives)
    boxes: dict[int, list[tuple[str, float, float, float, float]]] = field(default_factory=dict)
    #: image id -> 'train' | 'val' | 'test'
    splits: dict[int, str] = field(default_factory=dict)
    #: image id -> file URI in the image store
    uris: dict[int, str] = field(default_factory=dict)

    def ids(self, split: str) -> list[int]:
        return sorted(i for i, s in self.splits.items() if s == split)


def draw_facade(
    rng: np.random.Generator, size: tuple[int, int], labels: tuple[str, ...], negative: bool
) -> tuple[Image.Image, list[tuple[str, float, float, float, float]]]:
    """One picture and its true boxes: a facade with 1–4 objects, or none when `negative`."""
    width, height = size
    sky = tuple(int(v) for v in rng.integers(150, 230, 3))
    image = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(image)
    top = int(rng.integers(height // 10, height // 4))
    facade = tuple(int(v) for v in rng.integers(110, 190, 3))
    draw.rectangle([0, top, width, height], fill=facade)
    boxes: list[tuple[str, float, float, float, float]] = []
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(0 if negative else int(rng.integers(1, 5))):
        label = labels[int(rng.integers(len(labels)))]
        for _attempt in range(20):
            w = int(rng.integers(max(8, width // 10), max(9, width // 4)))
            h = int(rng.integers(max(8, height // 8), max(9, height // 3)))
            x1 = int(rng.integers(2, width - w - 2))
            y1 = int(rng.integers(top + 2, height - h - 2))
            box = (x1, y1, x1 + w, y1 + h)
            if all(
                box[2] + 3 < p[0] or p[2] + 3 < box[0] or box[3] + 3 < p[1] or p[3] + 3 < box[1]
                for p in placed
            ):
                break
        else:
            continue
        placed.append(box)
        # PIL's rectangle includes its end pixel: fill [x1, x2 - 1] so the box is exactly x1..x2
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=_COLOURS[label])
        boxes.append((label, float(box[0]), float(box[1]), float(box[2]), float(box[3])))
    return image, boxes


def seed_detection_dataset(
    url: str,
    root: Path | str,
    *,
    n: int = 60,
    name: str = "synthetic-windows",
    labels: tuple[str, ...] = ("window",),
    size: tuple[int, int] = (128, 96),
    negatives: float = 0.15,
    test: float = 0.25,
    val: float = 0.2,
    views_per_point: int = 2,
    seed: int = 0,
) -> SeededDetection:
    """`n` ok images (JPEG under `root`) with known boxes, a ground truth and a split named `name`.

    Views of one sample point share a split (as `detect split` groups them). A share
    `negatives` of the images have no box at all and are still part of the ground truth.
    """
    unknown = [label for label in labels if label not in _COLOURS]
    if unknown:
        raise ValueError(f"labels {unknown}: the synthetic drawings know only {sorted(_COLOURS)}")
    rng = np.random.default_rng(seed)
    store = ImageStore(str(root))
    x0, y0 = _ORIGIN
    y0 += 0.003 * (seed % 50)
    points = (n + views_per_point - 1) // views_per_point
    point_split = rng.choice(["train", "val", "test"], size=points, p=[1 - test - val, val, test])
    # every split gets at least one point, so tiny sets still train, validate and test
    for i, split in enumerate(("test", "val", "train")[: min(points, 3)]):
        point_split[i] = split
    step = 0.0004
    result = SeededDetection(name, 0, 0, list(labels))
    with psycopg.connect(url) as conn:
        road = scalar(
            conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
               VALUES ('seeded-detection', %s, 'Seeded facades', 'residential',
                       ST_SetSRID(ST_MakeLine(ST_MakePoint(%s, %s), ST_MakePoint(%s, %s)), 4326), %s)
               RETURNING id""",
                (f"{name}-{seed}", x0, y0, x0 + step * points, y0, 22.0 * points),
            )
        )
        gt = scalar(
            conn.execute(
                """INSERT INTO streetaudit.ground_truth (name, method, iou, min_raters, labels)
               VALUES (%s, 'union', 0.5, 1, %s) RETURNING id""",
                (f"{name}-gt", list(labels)),
            )
        )
        dataset = scalar(
            conn.execute(
                """INSERT INTO streetaudit.dataset (name, ground_truth_id, seed, test_share, val_share)
               VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (name, gt, seed, test, val),
            )
        )
        result.dataset_id, result.ground_truth_id = dataset, gt
        made = 0
        for p in range(points):
            point = scalar(
                conn.execute(
                    """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id""",
                    (road, p, 22.0 * p, x0 + step * p, y0),
                )
            )
            for v in range(views_per_point):
                if made == n:
                    break
                made += 1
                heading = 90.0 * v
                picture, boxes = draw_facade(rng, size, labels, negative=rng.random() < negatives)
                out = io.BytesIO()
                picture.save(out, "JPEG", quality=92)
                uri = store.put(f"seeded-detection/{point}_{heading:g}.jpg", out.getvalue())
                image = scalar(
                    conn.execute(
                        """INSERT INTO streetaudit.image (point_id, provider, heading, width, height, uri, status)
                       VALUES (%s, 'seeded-detection', %s, %s, %s, %s, 'ok') RETURNING id""",
                        (point, heading, size[0], size[1], uri),
                    )
                )
                conn.execute(
                    "INSERT INTO streetaudit.ground_truth_image (ground_truth_id, image_id, n_raters) VALUES (%s, %s, 1)",
                    (gt, image),
                )
                for label, x1, y1, x2, y2 in boxes:
                    conn.execute(
                        """INSERT INTO streetaudit.ground_truth_box
                               (ground_truth_id, image_id, label, x1, y1, x2, y2, n_raters)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, 1)""",
                        (gt, image, label, x1, y1, x2, y2),
                    )
                conn.execute(
                    "INSERT INTO streetaudit.dataset_item (dataset_id, image_id, split) VALUES (%s, %s, %s)",
                    (dataset, image, str(point_split[p])),
                )
                result.boxes[image] = boxes
                result.splits[image] = str(point_split[p])
                result.uris[image] = uri
        conn.commit()
    store.release()
    return result
