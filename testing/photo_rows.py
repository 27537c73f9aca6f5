"""Real files behind a sample point's synthetic image rows, for the photo endpoints and the map's panel.

Synthetic images (seeded_results) are rows without files; the photo tests need what
collection and `segment --save-masks` would have left: a JPEG per ok view and a paletted
mask for one of them. Never used on real data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from streetaudit.models.label_palette import paletted_mask
from streetaudit.models.label_sets import LabelSet, builtin
from streetaudit.sql.rows import one, scalar


@dataclass
class Photos:
    point_id: int
    lon: float
    lat: float
    files: dict[int, Path]
    masked: int
    mask_ids: np.ndarray
    label_set: LabelSet
    model_id: int


def give_photos(url: str, folder: Path, *, seed: int = 3, size: tuple[int, int] = (640, 200)) -> Photos:
    """Files for the ok views of the first point that lies in a heritage area and has two or more,
    and a Cityscapes mask (void in one corner) on the first of them, for the stats model."""
    rng = np.random.default_rng(seed)
    width, height = size
    with psycopg.connect(url) as conn:
        point_id, lon, lat = one(
            conn.execute(
                """SELECT p.id, ST_X(p.geom), ST_Y(p.geom) FROM streetaudit.sample_point AS p
               WHERE EXISTS (SELECT 1 FROM streetaudit.point_area AS pa WHERE pa.point_id = p.id)
                 AND (SELECT count(*) FROM streetaudit.image AS i
                      WHERE i.point_id = p.id AND i.status = 'ok') >= 2
                 AND p.retired_at IS NULL
               ORDER BY p.id LIMIT 1"""
            )
        )
        model_id = scalar(conn.execute("SELECT model_id FROM streetaudit.stats_state"))
        images = [
            r[0]
            for r in conn.execute(
                """SELECT i.id FROM streetaudit.image AS i
                   JOIN streetaudit.segmentation AS s ON s.image_id = i.id AND s.model_id = %s
                   WHERE i.point_id = %s AND i.status = 'ok' ORDER BY s.error IS NULL DESC, i.id""",
                (model_id, point_id),
            )
        ]
        files = {}
        for image_id in images:
            path = folder / f"{image_id}.jpg"
            # a sky-to-street gradient with noise: a photo's look, and JPEG-sized bytes
            rows = np.linspace(220, 60, height)[:, None, None] * np.ones((1, width, 3))
            pixels = np.clip(rows + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
            conn.execute(
                "UPDATE streetaudit.image SET uri = %s, sha256 = %s, width = %s, height = %s WHERE id = %s",
                (str(path), hashlib.sha256(path.read_bytes()).hexdigest(), width, height, image_id),
            )
            files[image_id] = path
        label_set = builtin("cityscapes")
        ids = rng.integers(0, len(label_set), (height // 10, width // 10)).repeat(10, 0).repeat(10, 1)
        ids[:10, :10] = 255  # void: transparent over the photo
        masked = images[0]
        mask_path = folder / f"{masked}.png"
        paletted_mask(ids, label_set).save(mask_path)
        conn.execute(
            "UPDATE streetaudit.segmentation SET mask_uri = %s WHERE image_id = %s AND model_id = %s",
            (str(mask_path), masked, model_id),
        )
        conn.commit()
    return Photos(point_id, lon, lat, files, masked, ids, label_set, model_id)
