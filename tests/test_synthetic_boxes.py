"""The synthetic scenes' true boxes lie where the heritage features are drawn (pixel checks on
the drawn picture), the provider writes them beside each view, and they import as a rater."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import psycopg
import pytest

from streetaudit.flows.collect import collect
from streetaudit.flows.providers.synthetic_scene import BUILDING, CORNICE, FRAME, draw_scene
from streetaudit.flows.synthetic_boxes import import_synthetic_boxes
from streetaudit.testing.sample_rows import make_points

LON, LAT = 24.9384, 60.1699
TOLERANCE = 25  # per channel; the scene's noise is N(0, 6), the same in all three channels


def near(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.abs(rgb.astype(int) - colour).max(axis=-1) <= TOLERANCE


def covered(shape, boxes, label) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for name, x1, y1, x2, y2 in boxes:
        if name == label:
            mask[y1:y2, x1:x2] = True
    return mask


@pytest.mark.parametrize("seed", range(6))
def test_window_boxes_hold_every_framed_window_and_their_edges_are_frames(seed):
    scene = draw_scene(seed, 512, 256, heritage=True)
    windows = [b for b in scene.boxes if b[0] == "window"]
    assert windows, "a heritage scene has window groups"
    frame = near(scene.rgb, FRAME) & (scene.labels == BUILDING)
    # every frame pixel belongs to a window group (drawn boxes, shown or hidden)
    assert not (frame & ~covered(frame.shape, scene.boxes + scene.occluded, "window")).any()
    for _, x1, y1, x2, y2 in windows:
        visible = scene.labels[y1:y2, x1:x2] == BUILDING
        assert visible.mean() >= 0.5
        if visible.all():  # nothing in front of it: the box is tight, frames touch all four edges
            assert frame[y1, x1:x2].any() and frame[y2 - 1, x1:x2].any()
            assert frame[y1:y2, x1].any() and frame[y1:y2, x2 - 1].any()


@pytest.mark.parametrize("seed", range(6))
def test_roof_boxes_start_at_the_facade_top_with_the_cornice(seed):
    scene = draw_scene(seed, 512, 256, heritage=True)
    cornice = near(scene.rgb, CORNICE) & (scene.labels == BUILDING)
    roofs = [b for b in scene.boxes if b[0] == "roof"]
    assert roofs
    assert not (cornice & ~covered(cornice.shape, scene.boxes + scene.occluded, "roof")).any()
    for _, x1, y1, x2, _ in roofs:
        top_row = scene.labels[y1, x1:x2] == BUILDING
        assert cornice[y1, x1:x2][top_row].mean() > 0.95  # the box's first row is cornice
        if y1 > 0:  # and the row above is not this facade any more
            assert not cornice[y1 - 1, x1:x2].any()


def test_plain_scenes_have_no_boxes_and_no_heritage_features():
    for seed in range(6):
        scene = draw_scene(seed, 512, 256)
        assert scene.boxes == () and scene.occluded == ()
        on_building = scene.labels == BUILDING
        assert not (near(scene.rgb, FRAME) & on_building).any()
        assert not (near(scene.rgb, CORNICE) & on_building).any()


def test_provider_writes_voc_beside_each_view_and_they_import_as_rater_synthetic(
    monkeypatch, tmp_path, fresh_db_url
):
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    make_points(fresh_db_url, [(LON, LAT), (LON + 0.001, LAT)], area="Core")
    report = collect(fresh_db_url, "synthetic", size=(256, 128), headings=[0, 180], progress=False)
    assert report.ok == 4
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            """SELECT i.id, i.uri, sp.id IN (SELECT sp.id FROM streetaudit.sample_point AS sp
                       JOIN streetaudit.heritage_area AS a ON ST_Intersects(a.geom, sp.geom))
               FROM streetaudit.image AS i JOIN streetaudit.sample_point AS sp ON sp.id = i.point_id"""
        ).fetchall()
    expected = {}
    for image_id, uri, _ in rows:
        xml = Path(uri).with_suffix(".boxes.xml")
        root = ET.parse(xml).getroot()
        assert root.findtext("filename") == Path(uri).name
        expected[image_id] = sorted(
            (
                o.findtext("name"),
                *(float(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")),
            )
            for o in root.iter("object")
        )
    assert any(expected.values()), "the heritage point's views have boxes"
    assert any(not v for v in expected.values()), "the plain point's views are negatives"
    imported = import_synthetic_boxes(fresh_db_url)
    assert imported.files == 4 and imported.images == 4
    again = import_synthetic_boxes(fresh_db_url)  # a rerun replaces, never duplicates
    assert again.replaced == imported.boxes
    with psycopg.connect(fresh_db_url) as conn:
        stored = conn.execute(
            """SELECT a.image_id, a.label, a.x1, a.y1, a.x2, a.y2 FROM streetaudit.annotation AS a
               JOIN streetaudit.rater AS r ON r.id = a.rater_id
               WHERE r.name = 'synthetic' AND a.replaced_at IS NULL"""
        ).fetchall()
    got: dict[int, list] = {i: [] for i in expected}
    for image_id, *box in stored:
        got[image_id].append(tuple(box))
    assert {i: sorted(v) for i, v in got.items()} == expected
