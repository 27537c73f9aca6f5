"""The detection writer against a real PostGIS: the binary COPY path stores each box exactly.

Boxes are random float32 tensors, as a detector returns them; what is read back must be the
same numbers (float32 widened to double, no rounding through text), the label names of the
class indices ('background' for any index outside the label list), the scores clipped into
[0, 1], and per image one detection_done row with its count.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import torch

from streetaudit.flows.detection_writer import DetectionWriter

LABELS = ["window", "roof"]


@pytest.fixture
def images(fresh_db_url: str) -> tuple[int, list[int]]:
    """(model id, ids of four 'ok' images)."""
    with psycopg.connect(fresh_db_url) as conn:
        model_id = conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
               VALUES ('detection', 'writer-test', 'torchvision', 'none', 'test', %s) RETURNING id""",
            (LABELS,),
        ).fetchone()[0]
        road = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('test', 'w', 'SRID=4326;LINESTRING(0 0, 0.01 0)', 1000) RETURNING id"""
        ).fetchone()[0]
        point = conn.execute(
            """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
               VALUES (%s, 0, 0, ST_SetSRID(ST_MakePoint(0, 0), 4326)) RETURNING id""",
            (road,),
        ).fetchone()[0]
        ids = [
            conn.execute(
                """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                   VALUES (%s, 'test', %s, 'x.jpg', 'ok') RETURNING id""",
                (point, heading),
            ).fetchone()[0]
            for heading in (0, 90, 180, 270)
        ]
    return model_id, ids


def outputs(n: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=generator) * 500
    size = torch.rand(n, 2, generator=generator) * 100
    return {
        "boxes": torch.cat([corner, corner + size], dim=1),
        "scores": torch.rand(n, generator=generator),
        "labels": torch.randint(0, len(LABELS) + 2, (n,), generator=generator),
    }


def stored(url: str, model_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT image_id, label, score, x1, y1, x2, y2 FROM streetaudit.detection
               WHERE model_id = %s ORDER BY image_id, score DESC""",
            (model_id,),
        ).fetchall()


def expected_rows(results: list[tuple[int, dict]]) -> list[tuple]:
    rows = []
    for image_id, output in results:
        for box, score, label in zip(
            output["boxes"].tolist(),
            output["scores"].clamp(0, 1).tolist(),
            output["labels"].tolist(),
            strict=True,
        ):
            name = LABELS[label - 1] if 1 <= label <= len(LABELS) else "background"
            rows.append((image_id, name, score, *box))
    return sorted(rows, key=lambda r: (r[0], -r[2]))


def test_writer_stores_every_box_exactly_with_its_label_name_and_counts(fresh_db_url, images):
    model_id, ids = images
    results = [(ids[0], outputs(100, 1)), (ids[1], outputs(0, 2)), (ids[2], outputs(37, 3))]
    results[2][1]["scores"][:2] = torch.tensor([1.0000001, -0.0])  # a score at the edges stays in [0, 1]
    with DetectionWriter(fresh_db_url, model_id, LABELS, 0.0) as writer:
        writer.put(results)
    assert writer.stored == 137 and writer.vanished == 0
    assert stored(fresh_db_url, model_id) == expected_rows(results)
    with psycopg.connect(fresh_db_url) as conn:
        done = conn.execute(
            "SELECT image_id, n, score_threshold FROM streetaudit.detection_done WHERE model_id = %s ORDER BY 1",
            (model_id,),
        ).fetchall()
    assert done == [(ids[0], 100, 0.0), (ids[1], 0, 0.0), (ids[2], 37, 0.0)]
    labels = {row[1] for row in stored(fresh_db_url, model_id)}
    assert labels == {"window", "roof", "background"}  # indices 0 and 3 are not labels


def test_writer_never_stores_an_image_twice_and_counts_vanished_images(fresh_db_url, images):
    model_id, ids = images
    with DetectionWriter(fresh_db_url, model_id, LABELS, 0.3) as writer:
        writer.put([(ids[0], outputs(5, 1))])
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("DELETE FROM streetaudit.image WHERE id = %s", (ids[3],))
    # A second run on an overlapping batch: ids[0] is done already, ids[3] was deleted.
    again = [(ids[0], outputs(9, 7)), (ids[1], outputs(4, 8)), (ids[3], outputs(6, 9))]
    with DetectionWriter(fresh_db_url, model_id, LABELS, 0.3) as writer:
        writer.put(again)
    assert writer.stored == 4 and writer.vanished == 1
    rows = stored(fresh_db_url, model_id)
    assert rows == expected_rows([(ids[0], outputs(5, 1)), again[1]])
    assert np.isfinite(np.array([r[2:] for r in rows], dtype=float)).all()
