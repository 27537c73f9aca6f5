"""The optional mmdet detector backend of `detect predict`.

Without mmdet (the core install and CI): `--backend mmdet` is refused with the build recipe and
nothing is written. With the `openmmlab` extra and a compiled mmcv (README, "OpenMMLab
backend"): a tiny random-weight RetinaNet config predicts through the pipeline, and its stored
boxes equal mmdet's own `inference_detector` on the same (lossless) files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from streetaudit.flows.detect_predict import predict
from streetaudit.flows.errors import InputError
from streetaudit.testing.sample_rows import add_images
from streetaudit.testing.toy_detector import toy_scene

HAVE_MMDET = importlib.util.find_spec("mmdet") is not None
NEEDS_MMDET = (
    "needs the optional openmmlab extra: mmdet 3.3 and mmcv built from source (README, 'OpenMMLab backend')"
)

# mmdet 3.x: RetinaNet, ResNet-18, a 32-channel FPN and one-conv head, one class; every box kept.
TINY_RETINANET = """
model = dict(
    type="RetinaNet",
    data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(1, 2, 3), frozen_stages=-1,
                  norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch"),
    neck=dict(type="FPN", in_channels=[128, 256, 512], out_channels=32, start_level=0,
              add_extra_convs="on_input", num_outs=3),
    bbox_head=dict(
        type="RetinaHead", num_classes=1, in_channels=32, stacked_convs=1, feat_channels=32,
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=1,
                              ratios=[1.0], strides=[8, 16, 32]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
    test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5),
                  max_per_img=20),
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(128, 96), keep_ratio=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
test_dataloader = dict(dataset=dict(type="CocoDataset", pipeline=test_pipeline))
"""


@pytest.mark.skipif(HAVE_MMDET, reason="mmdet is installed: the end-to-end test below covers it")
def test_without_mmdet_the_backend_is_refused_with_its_recipe(db_url, tmp_path, cli):
    config, checkpoint = tmp_path / "tiny.py", tmp_path / "tiny.pth"
    config.write_text(TINY_RETINANET)
    checkpoint.write_bytes(b"")
    with pytest.raises(InputError, match=r"mmdet backend needs mmdetection and mmcv.*MMCV_WITH_OPS=1"):
        predict(db_url, "tiny", backend="mmdet", config=str(config), checkpoint=str(checkpoint), device="cpu")
    with pytest.raises(InputError, match=r"--backend mmdet needs --config CONFIG.py and --checkpoint"):
        predict(db_url, "tiny", backend="mmdet", device="cpu")
    with pytest.raises(InputError, match=r"--backend 'yolo': choose one of torchvision, mmdet"):
        predict(db_url, "tiny", backend="yolo", device="cpu")
    with psycopg.connect(db_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM streetaudit.model WHERE backend = 'mmdet'").fetchone()[0] == 0
        )
    result = cli("detect", "predict", "--model", "tiny", "--backend", "mmdet", "--config", str(config))
    assert result.exit_code == 2 and "--checkpoint" in result.output


def test_mmdet_predictions_are_stored_as_mmdet_makes_them(db_url, tmp_path):
    pytest.importorskip("mmdet", reason=NEEDS_MMDET)
    import torch
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    config = tmp_path / "tiny_retinanet.py"
    config.write_text(TINY_RETINANET)
    torch.manual_seed(0)
    network = MODELS.build(Config.fromfile(str(config)).model)
    network.init_weights()
    checkpoint = tmp_path / "tiny_retinanet.pth"
    torch.save(
        {"state_dict": network.state_dict(), "meta": {"dataset_meta": {"classes": ("window",)}}}, checkpoint
    )
    paths = []
    for seed in range(3):
        image, _ = toy_scene(seed)
        paths.append(tmp_path / f"scene_{seed}.png")  # lossless: both readers see the same pixels
        Image.fromarray(image).save(paths[-1])
    ids = add_images(db_url, paths)

    report = predict(
        db_url, "tiny-retinanet", backend="mmdet", config=str(config), checkpoint=str(checkpoint),
        score_threshold=0.0, device="cpu", workers=0, progress=False,
    )  # fmt: skip
    assert report.done == len(paths) and report.architecture == "mmdet:tiny_retinanet"
    reference = init_detector(str(config), str(checkpoint), device="cpu")
    with psycopg.connect(db_url) as conn:
        backend, labels = conn.execute(
            "SELECT backend, labels FROM streetaudit.model WHERE id = %s", (report.model_id,)
        ).fetchone()
        assert (backend, labels) == ("mmdet", ["window"])
        for image_id, path in zip(ids, paths, strict=True):
            want = inference_detector(reference, str(path)).pred_instances
            got = conn.execute(
                """SELECT label, score, x1, y1, x2, y2 FROM streetaudit.detection
                   WHERE model_id = %s AND image_id = %s ORDER BY score DESC""",
                (report.model_id, image_id),
            ).fetchall()
            order = np.argsort(-want.scores.numpy(), kind="stable")
            assert len(got) == len(order)
            assert {g[0] for g in got} <= {"window"}
            np.testing.assert_allclose([g[1] for g in got], want.scores.numpy()[order], atol=1e-5)
            np.testing.assert_allclose([g[2:] for g in got], want.bboxes.numpy()[order], atol=0.05)
    assert Path(checkpoint).is_file()
