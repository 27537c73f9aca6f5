"""City-wide prediction and Grad-CAM against a real PostGIS, with a detector trained here.

A tiny Faster R-CNN is trained for ~40 s on toy scenes (red rectangles = windows, known
boxes); images of other toy scenes are stored as 'ok' images of sample points, half of
them inside a heritage core. Expectations are recomputed independently (numpy, torchvision
run directly on the saved detector).
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
from PIL import Image

from streetaudit.flows.detect_predict import predict
from streetaudit.flows.errors import InputError
from streetaudit.flows.explain import explain
from streetaudit.flows.heat_stats import heat_comparisons, read_heat_comparison
from streetaudit.flows.image_store import ImageStore
from streetaudit.models.detectors import load_detector
from streetaudit.models.gradcam import explain_image, heat_statistics, hook_count
from streetaudit.testing.toy_detector import train_toy_detector, write_scenes

N_IMAGES = 10


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    return train_toy_detector(tmp_path_factory.mktemp("det") / "toy.pt", steps=150)


@pytest.fixture(scope="module")
def scenes(db_url: str, tmp_path_factory) -> dict[int, tuple[Path, np.ndarray]]:
    """image id -> (file, true boxes); even points inside a core area, odd ones outside."""
    written = write_scenes(tmp_path_factory.mktemp("scenes"), range(N_IMAGES))
    out = {}
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
               VALUES ('test', 'old-town', 'old town', 'core',
                       ST_Multi(ST_MakeEnvelope(24.93, 60.16, 24.945, 60.18, 4326)), 1e6)"""
        )
        road_id = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('test', 'det', 'SRID=4326;LINESTRING(24.94 60.17, 24.95 60.17)', 555) RETURNING id"""
        ).fetchone()[0]
        for seq, (path, boxes) in enumerate(written):
            lon = 24.94 if seq % 2 == 0 else 24.95
            point_id = conn.execute(
                """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, 60.17), 4326)) RETURNING id""",
                (road_id, seq, 10.0 * seq, lon),
            ).fetchone()[0]
            image_id = conn.execute(
                """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                   VALUES (%s, 'test', 0, %s, 'ok') RETURNING id""",
                (point_id, str(path)),
            ).fetchone()[0]
            out[image_id] = (path, boxes)
    return out


def stored(url: str, model_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT image_id, label, round(score::numeric, 4), round(x1::numeric, 2), round(y1::numeric, 2),
                      round(x2::numeric, 2), round(y2::numeric, 2)
               FROM streetaudit.detection WHERE model_id = %s ORDER BY 1, 3, 4, 5""",
            (model_id,),
        ).fetchall()


def done_rows(url: str, model_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT image_id, n FROM streetaudit.detection_done WHERE model_id = %s ORDER BY 1", (model_id,)
        ).fetchall()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    phi = math.radians(lat)
    return int((lon + 180) / 360 * n), int(
        (1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * n
    )


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_predict_stores_pixel_boxes_and_resumes(db_url, toy_model, scenes):
    # A first run stopped after 3 images, then the rest: the same rows as one run.
    first = predict(db_url, str(toy_model), batch_size=2, limit=3, workers=0, device="cpu", progress=False)
    assert first.done == 3 and first.skipped == 0
    second = predict(db_url, str(toy_model), batch_size=4, workers=1, device="cpu", progress=False)
    assert second.done == N_IMAGES - 3 and second.skipped == 3
    again = predict(db_url, str(toy_model), batch_size=4, workers=0, device="cpu", progress=False)
    assert again.done == 0 and again.skipped == N_IMAGES
    model_id = first.model_id
    rows = stored(db_url, model_id)
    done = dict(done_rows(db_url, model_id))
    assert sorted(done) == sorted(scenes)
    assert sum(done.values()) == len(rows) == first.detections + second.detections

    # Independently: the saved detector run directly by torchvision on each file.
    detector = load_detector(toy_model)
    expected = []
    matched = total_true = 0
    for image_id, (path, boxes) in scenes.items():
        pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            out = detector.model([pixels])[0]
        keep = out["scores"] >= 0.3
        for box, score in zip(out["boxes"][keep].tolist(), out["scores"][keep].tolist(), strict=True):
            expected.append((image_id, "window", round(score, 4), *(round(v, 2) for v in box)))
        predicted = out["boxes"][keep].tolist()
        total_true += len(boxes)
        matched += sum(any(iou(t, p) >= 0.5 for p in predicted) for t in boxes.tolist())
        assert done[image_id] == int(keep.sum())
    expected.sort(key=lambda r: (r[0], r[2], r[3], r[4]))
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert got[:2] == want[:2]
        assert float(got[2]) == pytest.approx(want[2], abs=2e-3)
        assert [float(v) for v in got[3:]] == pytest.approx(want[3:], abs=0.5)
    # Boxes are in pixels of the stored image and the trained detector finds most windows.
    assert all(0 <= float(r[3]) < float(r[5]) <= 128 and 0 <= float(r[4]) < float(r[6]) <= 96 for r in rows)
    assert matched / total_true >= 0.7


def test_predict_bad_input_writes_nothing(db_url, toy_model, scenes):
    with pytest.raises(InputError, match="--score-threshold"):
        predict(db_url, str(toy_model), score_threshold=1.5, progress=False)
    with pytest.raises(InputError, match="--where-area"):
        predict(db_url, str(toy_model), where_area="atlantis", device="cpu", progress=False)
    with pytest.raises(InputError, match="--model"):
        predict(db_url, "no-such-detector", device="cpu", progress=False)


def test_predict_skips_vanished_images(db_url, toy_model, scenes, tmp_path):
    """An image deleted between listing and writing is counted, not a foreign-key error."""
    from streetaudit.flows import detect_predict

    model_id = predict(db_url, str(toy_model), device="cpu", progress=False).model_id
    with psycopg.connect(db_url) as conn:
        point_id = conn.execute("SELECT point_id FROM streetaudit.image ORDER BY id LIMIT 1").fetchone()[0]
        extra = conn.execute(
            "INSERT INTO streetaudit.image (point_id, provider, heading, uri, status) "
            "VALUES (%s, 'test', 90, %s, 'ok') RETURNING id",
            (point_id, str(next(iter(scenes.values()))[0])),
        ).fetchone()[0]
    original = detect_predict.detect_batch

    def deleting(model, batch, threshold):
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM streetaudit.image WHERE id = %s", (extra,))
        return original(model, batch, threshold)

    detect_predict.detect_batch = deleting
    try:
        report = predict(db_url, str(toy_model), workers=0, device="cpu", progress=False)
    finally:
        detect_predict.detect_batch = original
    assert report.vanished == 1 and report.done == 0
    assert extra not in dict(done_rows(db_url, model_id))


# -- Grad-CAM -----------------------------------------------------------------------------
def test_heat_statistics_match_numpy():
    heat = np.zeros((6, 4))
    heat[0, 0], heat[1, 1], heat[4, 1], heat[5, 3] = 4.0, 2.0, 1.0, 3.0
    building = np.zeros((6, 4), dtype=bool)
    building[1:5, 1] = True  # column 1: facade rows 1..4 (top 1, base 4)
    building[3, 2] = True  # column 2: a one-pixel facade
    building[0:6, 3] = True  # column 3: rows 0..5
    boxes = np.array([[0, 0, 2, 2]])  # pixels (0,0) (0,1) (1,0) (1,1)
    stats = heat_statistics(heat, boxes, building)
    total = 10.0
    assert stats.inside_boxes == pytest.approx((4 + 2) / total)
    assert stats.on_building == pytest.approx((2 + 1 + 3) / total)
    # relative heights: (1,1) -> (4-1)/3 = 1; (4,1) -> 0; (5,3) -> (5-5)/5 = 0
    assert stats.facade_height == pytest.approx((2 * 1 + 1 * 0 + 3 * 0) / 6)
    assert stats.upper_third == pytest.approx(2 / 6)
    none = heat_statistics(heat, np.zeros((0, 4)), None)
    assert none.inside_boxes is None and none.on_building is None and none.facade_height is None


def test_gradcam_heat_sits_in_true_boxes_and_hooks_are_released(toy_model, scenes):
    detector = load_detector(toy_model)
    model = detector.model
    hooks = hook_count(model)
    ratios = []
    for path, boxes in list(scenes.values())[:4]:
        pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        heat = explain_image(model, pixels, "hirescam").heat
        inside = np.zeros(heat.shape, dtype=bool)
        for x1, y1, x2, y2 in boxes.astype(int):
            inside[y1:y2, x1:x2] = True
        ratios.append(heat[inside].mean() / max(heat[~inside].mean(), 1e-9))
    assert np.median(ratios) > 3, ratios  # heat per pixel inside the true boxes vs outside
    assert hook_count(model) == hooks
    # Repeated calls neither leave hooks nor grow memory held by tensors.
    gc.collect()
    before = sum(o.numel() for o in gc.get_objects() if isinstance(o, torch.Tensor))
    for _ in range(5):
        explain_image(model, pixels, "gradcam++")
    gc.collect()
    after = sum(o.numel() for o in gc.get_objects() if isinstance(o, torch.Tensor))
    assert hook_count(model) == hooks
    assert after <= before * 1.05


def by_hand_gradcam(model, pixels: torch.Tensor, result) -> torch.Tensor:
    """Grad-CAM of the predicted boxes without pytorch-grad-cam: the backbone output's gradient
    of sum(IoU + score) of each box's best-matching output box, averaged per channel."""
    from torchvision.ops import box_iou

    captured = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["a"] = output

    handle = model.backbone.register_forward_hook(keep)
    try:
        out = model([pixels])[0]
    finally:
        handle.remove()
    target = out["scores"].sum() * 0
    for box, label in zip(torch.as_tensor(result.boxes), result.labels, strict=True):
        ious = box_iou(box[None], out["boxes"])[0]
        best = int(ious.argmax())
        if ious[best] > 0.5 and int(out["labels"][best]) == label:
            target = target + ious[best] + out["scores"][best]
    model.zero_grad()
    target.backward()
    with torch.no_grad():
        batch, _ = model.transform([pixels])
    (h, w), (ph, pw) = batch.image_sizes[0], batch.tensors.shape[-2:]
    a, g = captured["a"][0].detach(), captured["a"].grad[0]
    rows, cols = math.ceil(a.shape[1] * h / ph), math.ceil(a.shape[2] * w / pw)
    a, g = a[:, :rows, :cols], g[:, :rows, :cols]
    return torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0))


def test_plain_gradcam_is_empty_exactly_where_its_weights_find_no_positive_evidence(toy_model, scenes):
    """The toy detector marks windows by suppressing background channels: Grad-CAM's mean
    gradients are negative in the active channels, so some maps are all zero. They come back
    (and are stored) as `empty`, exactly where the CAM recomputed by hand is zero; HiResCAM
    explains the same images with heat on the predicted boxes."""
    model = load_detector(toy_model).model
    statuses = []
    for path, _ in list(scenes.values())[:5]:
        pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        result = explain_image(model, pixels, "gradcam")
        assert len(result.boxes), "the toy detector finds the windows"
        cam = by_hand_gradcam(model, pixels, result)
        statuses.append(result.status)
        if result.status == "empty":
            assert float(cam.max()) <= 1e-6 and result.heat.max() == 0
            assert heat_statistics(result.heat, result.boxes, None).inside_boxes is None
            fallback = explain_image(model, pixels, "hirescam")
            inside = np.zeros(fallback.heat.shape, dtype=bool)
            for x1, y1, x2, y2 in fallback.boxes.astype(int):
                inside[y1:y2, x1:x2] = True
            assert fallback.status == "ok" and fallback.heat[inside].mean() > fallback.heat[~inside].mean()
        else:
            assert result.status == "ok" and float(cam.max()) > 0 and result.heat.max() > 0
    assert "empty" in statuses, f"plain Grad-CAM was expected to be empty on some toy scenes: {statuses}"
    blank = torch.full((3, 96, 128), 0.45)
    assert explain_image(model, blank, "gradcam", score_threshold=0.99).status == "no_boxes"


def test_explain_stores_one_row_per_image_and_overlays(db_url, toy_model, scenes, tmp_path):
    store = ImageStore(str(tmp_path / "store"))
    report = explain(
        db_url, str(toy_model), method="eigencam", limit=4, device="cpu", progress=False, store=store
    )
    assert report.done == 4 and report.without_mask == 4
    again = explain(
        db_url,
        str(toy_model),
        method="eigencam",
        limit=2,
        device="cpu",
        progress=False,
        store=store,
        redo=True,
    )
    assert again.done == 2
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT image_id, uri, inside_boxes, on_building FROM streetaudit.heatmap WHERE method = 'eigencam'"
        ).fetchall()
    assert len(rows) == 4 and len({r[0] for r in rows}) == 4
    for _, uri, inside, on_building in rows:
        assert Path(uri).is_file() and Image.open(uri).size == (128, 96)
        assert on_building is None and (inside is None or 0 <= inside <= 1)
    rest = explain(db_url, str(toy_model), method="eigencam", device="cpu", progress=False, store=store)
    assert rest.skipped == 4 and rest.done == N_IMAGES - 4
    comparisons = heat_comparisons(db_url, report.model_id, "eigencam")
    inside_all = next(c for c in comparisons if c["statistic"] == "inside_boxes" and c["area_id"] is None)
    assert inside_all["n_core"] + inside_all["n_rest"] <= N_IMAGES
    # explain stored the same tests for readers (api.heat_comparison), replaced after each run.
    stored = read_heat_comparison(db_url, report.model_id, "eigencam")
    assert [(r["area_name"], r["statistic"], r["n_core"], r["welch_p"]) for r in stored] == [
        (c["area_name"], c["statistic"], c["n_core"], c["welch_p"]) for c in comparisons
    ]


def test_api_views_and_tile_layer_for_readers(db_url, reader_db_url, toy_model, scenes):
    predict(db_url, str(toy_model), device="cpu", progress=False)
    with psycopg.connect(db_url) as conn:
        truth = conn.execute(
            """SELECT d.image_id, count(x.*) FROM streetaudit.detection_done AS d
               LEFT JOIN streetaudit.detection AS x ON x.image_id = d.image_id AND x.model_id = d.model_id
               GROUP BY d.image_id"""
        ).fetchall()
    counts = dict(truth)
    core_ids = [i for k, i in enumerate(sorted(scenes)) if k % 2 == 0]
    rest_ids = [i for k, i in enumerate(sorted(scenes)) if k % 2 == 1]
    with psycopg.connect(reader_db_url) as conn:
        stats = {
            (r[0], r[1]): r[2:]
            for r in conn.execute(
                "SELECT area_name, label, n_images, images_with, detections_per_image FROM api.detection_stats"
            )
        }
        for name, ids in (("old town", core_ids), ("rest of the city", rest_ids)):
            n_images, images_with, per_image = stats[(name, "window")]
            assert n_images == len(ids)
            assert images_with == sum(counts[i] > 0 for i in ids)
            assert per_image == pytest.approx(np.mean([counts[i] for i in ids]))
        points = conn.execute("SELECT sum(n_detections), count(*) FROM api.detections").fetchone()
        assert points == (sum(counts.values()), N_IMAGES)
        heat = conn.execute("SELECT area_name, n_images FROM api.heat_stats ORDER BY 1").fetchall()
        assert heat, "explain ran in an earlier test"
        x, y = tile_of(24.94, 60.17, 14)
        tile = conn.execute("SELECT api.detections(14, %s, %s)", (x, y)).fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM streetaudit.detection")
    import mapbox_vector_tile

    decoded = mapbox_vector_tile.decode(bytes(tile))
    features = decoded["api.detections"]["features"]
    assert features and all("n_images" in f["properties"] for f in features)


def test_explain_reads_building_pixels_from_the_segmentation_mask(db_url, toy_model, scenes, tmp_path):
    """on_building etc. come from the stored mask: recomputed here from the same heat map."""
    image_id = sorted(scenes)[1]
    path, _ = scenes[image_id]
    mask = np.zeros((96, 128), dtype=np.uint8)  # cityscapes ids: 2 = building, 10 = sky
    mask[:40] = 10
    mask[40:, 20:110] = 2
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    from streetaudit.models.label_sets import CITYSCAPES

    with psycopg.connect(db_url) as conn:
        seg_model = conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
               VALUES ('segmentation', 'masks', 'masks', 'test', 'cityscapes', %s) RETURNING id""",
            (list(CITYSCAPES),),
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO streetaudit.segmentation (image_id, model_id, building, road, sky, greenery,
                                                     sidewalk, car, histogram, pixels, mask_uri)
               VALUES (%s, %s, %s, 0, %s, 0, 0, 0, %s, %s, %s)""",
            (
                image_id,
                seg_model,
                float((mask == 2).mean()),
                float((mask == 10).mean()),
                np.bincount(mask.ravel(), minlength=len(CITYSCAPES)).tolist(),
                mask.size,
                str(mask_path),
            ),
        )
    report = explain(
        db_url,
        str(toy_model),
        method="hirescam",
        device="cpu",
        progress=False,
        limit=None,
        store=ImageStore(str(tmp_path / "store")),
    )
    assert report.done == N_IMAGES and report.without_mask == N_IMAGES - 1
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """SELECT inside_boxes, on_building, facade_height, upper_third FROM streetaudit.heatmap
               WHERE image_id = %s AND method = 'hirescam'""",
            (image_id,),
        ).fetchone()
    detector = load_detector(toy_model)
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    heat = explain_image(detector.model, pixels, "hirescam")
    h = heat.heat.astype(float)
    building = mask == 2
    rel = (95 - np.arange(96))[:, None] / (95 - 40) * np.ones((1, 128))
    facade = np.zeros_like(building)
    facade[40:, 20:110] = True
    assert row[1] == pytest.approx(h[building].sum() / h.sum(), abs=1e-6)
    assert row[2] == pytest.approx((h * rel)[facade].sum() / h[facade].sum(), abs=1e-6)
    assert row[3] == pytest.approx(h[facade & (rel > 2 / 3)].sum() / h[facade].sum(), abs=1e-6)


def test_cli_predict_and_explain(cli, toy_model, scenes):
    result = cli("detect", "predict", "--model", toy_model, "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "already done" in result.output
    bad = cli("detect", "predict", "--model", toy_model, "--score-threshold", "2")
    assert bad.exit_code == 2 and "--score-threshold" in bad.output
    result = cli("explain", "--model", toy_model, "--method", "gradcam++", "--limit", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "1 heat maps" in result.output
    bad = cli("explain", "--model", toy_model, "--method", "saliency")
    assert bad.exit_code == 2 and "--method" in bad.output


def test_heat_panel_figure(db_url, toy_model, scenes, tmp_path):
    from streetaudit.flows.heat_plots import heat_panel

    explain(
        db_url,
        str(toy_model),
        method="hirescam",
        limit=3,
        device="cpu",
        progress=False,
        store=ImageStore(str(tmp_path / "store")),
    )
    path = heat_panel(db_url, tmp_path)
    assert path is not None and Image.open(path).size[0] > 400
