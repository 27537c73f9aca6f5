"""Seeded, made-up images and segmentations for the sample points already in the database.

Tests and benchmarks need statistics on real road geometry without running collection or
a neural network; this writes rows exactly as those stages would (status 'ok' images with
six shares per model, plus the failures the statistics must ignore). Never used on real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg

from streetaudit.models.label_sets import ELEMENTS
from streetaudit.sql.rows import scalar


@dataclass
class SyntheticReport:
    model_id: int
    images: int
    segmentations: int


def fill_synthetic(
    url: str,
    *,
    seed: int = 0,
    model_name: str = "synthetic",
    headings: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0),
    provider: str = "synthetic",
    p_not_ok: float = 0.1,
    p_error: float = 0.05,
) -> SyntheticReport:
    """One image per point and heading (a share of them not 'ok'), and one segmentation each.

    Images are written once per provider; segmentations once per model and image.

    Shares are drawn from a Dirichlet over the six elements plus "other", so they lie in
    0..1 and sum to at most 1, like a real segmentation's. A share `p_error` of the
    segmentations are recorded failures (error set, shares NULL). Calling again with
    another `model_name` adds a second model's results for the same images.
    """
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        model_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
               VALUES ('segmentation', %s, 'synthetic', %s, 'six-elements', %s)
               ON CONFLICT (task, backend, source, label_set) DO UPDATE SET created_at = now()
               RETURNING id""",
                (model_name, f"synthetic:{model_name}", [*ELEMENTS, "other"]),
            )
        )
        points = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM streetaudit.sample_point WHERE retired_at IS NULL ORDER BY id"
            )
        ]
        statuses = rng.choice(
            ["ok", "missing", "error", "excluded"],
            size=(len(points), len(headings)),
            p=[1 - p_not_ok, p_not_ok / 3, p_not_ok / 3, p_not_ok / 3],
        )
        existing = scalar(
            conn.execute("SELECT count(*) FROM streetaudit.image WHERE provider = %s", (provider,))
        )
        if not existing:
            with conn.cursor().copy(
                "COPY streetaudit.image (point_id, provider, heading, status) FROM STDIN"
            ) as copy:
                for i, point in enumerate(points):
                    for j, heading in enumerate(headings):
                        copy.write_row((point, provider, heading, str(statuses[i, j])))
        images = conn.execute(
            "SELECT id FROM streetaudit.image WHERE provider = %s ORDER BY id", (provider,)
        ).fetchall()
        shares = rng.dirichlet(np.ones(len(ELEMENTS) + 1), size=len(images))[:, : len(ELEMENTS)]
        failed = rng.random(len(images)) < p_error
        with conn.cursor().copy(
            "COPY streetaudit.segmentation (image_id, model_id, building, road, sky, greenery, sidewalk, car,"
            " histogram, pixels, error) FROM STDIN"
        ) as copy:
            for (image_id,), row, bad in zip(images, shares, failed, strict=True):
                if bad:
                    copy.write_row((image_id, model_id, *([None] * 6), None, None, "synthetic failure"))
                else:
                    counts = [round(v * 1000) for v in row.tolist()]
                    copy.write_row((image_id, model_id, *map(float, row), counts, 1000, None))
        conn.commit()
    return SyntheticReport(model_id, len(images), len(images))


def load_helsinki(url: str, *, interval: float = 30.0) -> None:
    """Real OSM roads of central Helsinki, its heritage core and sample points every `interval` m
    (tests load this once per session into a template database: `helsinki_db_url`)."""
    from streetaudit.flows.areas import load_areas
    from streetaudit.flows.demo import DEMO_KINDS, helsinki_core, helsinki_pbf
    from streetaudit.flows.points import densify
    from streetaudit.flows.roads import load_roads

    load_roads(url, helsinki_pbf(), kinds=DEMO_KINDS, source="demo:helsinki-osm")
    load_areas(url, helsinki_core(), name_field="name", source="demo:helsinki-core")
    densify(url, interval=interval)


def synthetic_models(url: str, seeds: tuple[int, ...] = (5, 6)) -> list[int]:
    """One synthetic model per seed over the points already there (the last one is the most
    recent). Returns the model ids in seed order."""
    return [fill_synthetic(url, seed=seed, model_name=f"synthetic-{seed}").model_id for seed in seeds]


def helsinki_with_synthetic(
    url: str, *, interval: float = 30.0, seeds: tuple[int, ...] = (5, 6)
) -> list[int]:
    """load_helsinki, then synthetic_models: for a database not cloned from the Helsinki template."""
    load_helsinki(url, interval=interval)
    return synthetic_models(url, seeds)
