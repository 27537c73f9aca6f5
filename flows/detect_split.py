"""`detect split`: a stored, seeded train/val/test split of a ground truth.

The Harbin study held out 30 % for testing and 30 % of the rest for validation. The four views
of one sample point show the same buildings, so a split by image would test on facades seen in
training; here whole sample points (image.point_id) are assigned, in a seeded random order,
each to the split whose share it brings closer to its target. Each share therefore ends within
one point's views of its target, and the same seed on the same ground truth gives the same split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import psycopg

from streetaudit.flows.errors import InputError
from streetaudit.sql.rows import scalar


@dataclass
class SplitReport:
    dataset_id: int
    counts: dict[str, int]
    points: int


def assign(groups: dict[int, list[int]], test: float, val: float, seed: int) -> dict[int, str]:
    """image id -> 'train' | 'val' | 'test' for images grouped by sample point."""
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    total = sum(len(v) for v in groups.values())
    target = {"test": test * total, "val": val * (1 - test) * total}
    filled = Counter[str]()
    out = {}
    for point in order:
        size = len(groups[point])
        split = "train"
        for name in ("test", "val"):
            if abs(filled[name] + size - target[name]) < abs(filled[name] - target[name]):
                split = name
                break
        filled[split] += size
        out.update({image: split for image in groups[point]})
    return out


def split_dataset(
    url: str,
    name: str,
    ground_truth: str,
    test: float = 0.3,
    val: float = 0.3,
    seed: int = 0,
    replace: bool = False,
) -> SplitReport:
    """Store the dataset `name` splitting the images of `ground_truth`; see the module docstring."""
    for option, share in (("--test", test), ("--val", val)):
        if not 0 <= share < 1:
            raise InputError(f"{option} must be a share in [0, 1), got {share}")
    if not 1 <= len(name) <= 100:
        raise InputError(f"--name must be 1 to 100 characters, got {name!r}")
    with psycopg.connect(url) as conn:
        gt = conn.execute(
            "SELECT id FROM streetaudit.ground_truth WHERE name = %s", (ground_truth,)
        ).fetchone()
        if gt is None:
            raise InputError(
                f"--ground-truth {ground_truth!r}: no such ground truth (make one with `annotations merge`)"
            )
        existing = conn.execute("SELECT id FROM streetaudit.dataset WHERE name = %s", (name,)).fetchone()
        if existing is not None:
            if not replace:
                raise InputError(f"dataset {name!r} exists: choose another --name or give --replace")
            if conn.execute(
                "SELECT 1 FROM streetaudit.detector_run WHERE dataset_id = %s", existing
            ).fetchone():
                raise InputError(f"dataset {name!r} has training runs; split under a new --name")
            conn.execute("DELETE FROM streetaudit.dataset WHERE id = %s", existing)
        groups: dict[int, list[int]] = {}
        for image_id, point_id in conn.execute(
            """SELECT i.id, i.point_id FROM streetaudit.ground_truth_image AS g
               JOIN streetaudit.image AS i ON i.id = g.image_id
               WHERE g.ground_truth_id = %s ORDER BY i.id""",
            gt,
        ):
            groups.setdefault(point_id, []).append(image_id)
        if not groups:
            raise InputError(f"ground truth {ground_truth!r} covers no images")
        splits = assign(groups, test, val, seed)
        dataset_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.dataset (name, ground_truth_id, seed, test_share, val_share)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (name, gt[0], seed, test, val),
            )
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO streetaudit.dataset_item (dataset_id, image_id, split) VALUES (%s, %s, %s)",
                [(dataset_id, image, split) for image, split in sorted(splits.items())],
            )
    counts = Counter(splits.values())
    return SplitReport(dataset_id, {s: counts.get(s, 0) for s in ("train", "val", "test")}, len(groups))
