"""`detect split`: a named, seeded train/val/test split of a ground truth, stored so every
training run and evaluation uses the same images.

The method splits 70/30 and keeps 30 % of train for validation. Views taken at one sample
point show the same facades, so the split is drawn over sample points (image.point_id), not
images: a point's views never straddle train and test, which would leak test facades into
training and inflate mAP.
"""

from __future__ import annotations

import random
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


def assign_groups(group_sizes: dict[int, int], test: float, val: float, seed: int) -> dict[int, str]:
    """Groups in a seeded random order fill test until it holds `test` of the images, then
    val until it holds `val` of the rest; the remainder is train. Sorting the keys first
    makes the order depend on the seed only, not on the order rows came back in."""
    keys = sorted(group_sizes)
    order = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    total = sum(group_sizes.values())
    test_target = test * total
    val_target = val * (total - test_target)
    split: dict[int, str] = {}
    held = {"test": 0, "val": 0}
    for key in order:
        if held["test"] < test_target and held["test"] + group_sizes[key] / 2 <= test_target:
            name = "test"
        elif held["val"] < val_target and held["val"] + group_sizes[key] / 2 <= val_target:
            name = "val"
        else:
            name = "train"
        split[key] = name
        if name != "train":
            held[name] += group_sizes[key]
    return split


def _check(name: str, test: float, val: float) -> None:
    if not 1 <= len(name.strip()) <= 100:
        raise InputError(f"--name must be 1 to 100 characters, got {len(name.strip())}")
    for option, share in (("--test", test), ("--val", val)):
        if not 0 <= share < 1:
            raise InputError(f"{option} must be a share in [0, 1), got {share}")


def _sampled(rows: list[tuple], sample: int, seed: int) -> list[tuple]:
    """Whole sample points in a seeded order until `sample` images are in."""
    by_point: dict[int, list[tuple]] = {}
    for row in rows:
        by_point.setdefault(row[1], []).append(row)
    order = sorted(by_point)
    random.Random(seed).shuffle(order)
    kept: list[tuple] = []
    for point in order:
        if len(kept) >= sample:
            break
        kept += by_point[point]
    return sorted(kept)


def split_dataset(
    url: str,
    name: str,
    ground_truth: str,
    test: float = 0.3,
    val: float = 0.3,
    seed: int = 0,
    replace: bool = False,
    sample: int | None = None,
) -> SplitReport:
    """Store the split as dataset + dataset_item in one transaction; an existing name is
    refused unless `replace` (then its rows are replaced, under the same transaction).

    `sample` keeps only about that many images (whole sample points in seeded order) for a
    quick trial run before training on the whole ground truth."""
    _check(name, test, val)
    if sample is not None and sample < 3:
        raise InputError(f"--sample must be at least 3 images (one per split), got {sample}")
    name = name.strip()
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id FROM streetaudit.ground_truth WHERE name = %s", (ground_truth,)
        ).fetchone()
        if found is None:
            raise InputError(
                f"--ground-truth: no ground truth named {ground_truth!r}; run `annotations merge`"
            )
        gt_id = found[0]
        existing = conn.execute("SELECT id FROM streetaudit.dataset WHERE name = %s", (name,)).fetchone()
        if existing is not None:
            if not replace:
                raise InputError(
                    f"--name: a dataset named {name!r} exists already; choose another name or --replace"
                )
            conn.execute("DELETE FROM streetaudit.dataset WHERE id = %s", (existing[0],))
        rows = conn.execute(
            """SELECT g.image_id, i.point_id FROM streetaudit.ground_truth_image AS g
               JOIN streetaudit.image AS i ON i.id = g.image_id
               WHERE g.ground_truth_id = %s ORDER BY g.image_id""",
            (gt_id,),
        ).fetchall()
        if not rows:
            raise InputError(f"ground truth {ground_truth!r} covers no images")
        if sample is not None:
            rows = _sampled(rows, sample, seed)
        sizes: dict[int, int] = {}
        for _, point in rows:
            sizes[point] = sizes.get(point, 0) + 1
        groups = assign_groups(sizes, test, val, seed)
        dataset_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.dataset (name, ground_truth_id, seed, test_share, val_share)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (name, gt_id, seed, test, val),
            )
        )
        with conn.cursor().copy(
            "COPY streetaudit.dataset_item (dataset_id, image_id, split) FROM STDIN"
        ) as copy:
            for image_id, point in rows:
                copy.write_row((dataset_id, image_id, groups[point]))
    counts = {"train": 0, "val": 0, "test": 0}
    for _, point in rows:
        counts[groups[point]] += 1
    return SplitReport(dataset_id, counts, len(sizes))
