"""The optional OpenMMLab backend end to end: a tiny random-weight SegFormer config, exact shares.

The expected label maps come from mmseg itself (`init_model` + `inference_model` on the image
files), counted with numpy, independently of the pipeline. Needs the `openmmlab` extra with a
compiled mmcv (README, "OpenMMLab backend"), which the core install and CI lack: skipped there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
from PIL import Image

pytest.importorskip(
    "mmseg",
    reason="needs the optional openmmlab extra: mmsegmentation and mmcv 2.1.0 built from source "
    "(README, 'OpenMMLab backend (optional)')",
)

from streetaudit.models.label_sets import CITYSCAPES, ELEMENTS
from streetaudit.testing.sample_rows import add_images

# Cityscapes train ids of the six elements, written out independently of models/label_sets.py.
ELEMENT_IDS = {"building": [2], "road": [0], "sky": [10], "greenery": [8], "sidewalk": [1], "car": [13]}
HEIGHT, WIDTH = 64, 128

# mmseg 1.x config of a SegFormer with a two-stage MiT of 8/16 channels: Cityscapes' 19 classes, a
# test pipeline that resizes to 96x48 (so the prediction is scaled back to the image), SyncBN as
# in the model zoo's configs (it runs on CPU in eval mode).
TINY_SEGFORMER = """
norm_cfg = dict(type="SyncBN", requires_grad=True)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=(48, 96),
    ),
    pretrained=None,
    backbone=dict(
        type="MixVisionTransformer",
        in_channels=3,
        embed_dims=8,
        num_stages=2,
        num_layers=[1, 1],
        num_heads=[1, 2],
        patch_sizes=[7, 3],
        strides=[4, 2],
        sr_ratios=[2, 1],
        out_indices=(0, 1),
        mlp_ratio=2,
    ),
    decode_head=dict(
        type="SegformerHead",
        in_channels=[8, 16],
        in_index=[0, 1],
        channels=16,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(96, 48), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
default_scope = "mmseg"
"""


@pytest.fixture(scope="module")
def tiny_mmseg(tmp_path_factory) -> tuple[Path, Path]:
    """The config and a checkpoint of random weights, saved as mmengine's runner saves them."""
    from mmengine.runner import save_checkpoint
    from mmseg.apis import init_model

    folder = tmp_path_factory.mktemp("mmseg")
    config = folder / "tiny_segformer.py"
    config.write_text(TINY_SEGFORMER)
    torch.manual_seed(0)
    network = init_model(str(config), None, device="cpu")
    network.init_weights()  # the heads' own initialisation, so the random maps hold many classes
    checkpoint = folder / "tiny_segformer.pth"
    meta = {"dataset_meta": {"classes": CITYSCAPES, "palette": [[i, i, i] for i in range(19)]}}
    save_checkpoint({"meta": meta, "state_dict": network.state_dict()}, str(checkpoint))
    return config, checkpoint


def street_like_png(path: Path, seed: int) -> Path:
    """Smooth colour blobs, lossless: mmseg (cv2) and the pipeline (libpng) decode the same pixels."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BILINEAR).save(path)
    return path


def reference_maps(config: Path, checkpoint: Path, paths: list[Path], batch_size: int) -> list[np.ndarray]:
    """mmseg's own prediction: its loader reads the files, its pipeline scales back to their size."""
    from mmseg.apis import inference_model, init_model

    network = init_model(str(config), str(checkpoint), device="cpu")
    maps = []
    for start in range(0, len(paths), batch_size):
        results = inference_model(network, [str(p) for p in paths[start : start + batch_size]])
        maps.extend(r.pred_sem_seg.data[0].numpy() for r in results)
    return maps


def test_mmseg_cli_shares_equal_numpy_bincount_of_mmseg_prediction(cli, db_url, tiny_mmseg, tmp_path):
    config, checkpoint = tiny_mmseg
    paths = [street_like_png(tmp_path / f"{i}_0.png", seed=i) for i in range(5)]
    ids = add_images(db_url, paths)

    result = cli(
        "segment", "--backend", "mmseg", "--model", config, "--checkpoint", checkpoint,
        "--device", "cpu", "--batch-size", "2", "--save-masks",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 segmented" in result.output

    with psycopg.connect(db_url) as conn:
        model_id, source, label_set, labels = conn.execute(
            "SELECT id, source, label_set, labels FROM streetaudit.model WHERE backend = 'mmseg'"
        ).fetchone()
        cursor = conn.execute(
            f"""SELECT image_id, {", ".join(ELEMENTS)}, histogram, pixels, mask_uri, error
                FROM streetaudit.segmentation WHERE model_id = %s""",
            (model_id,),
        )
        names = [d.name for d in cursor.description]
        rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor}
    assert (source, label_set, labels) == (
        f"{config.resolve()}+{checkpoint.resolve()}",
        "cityscapes",
        list(CITYSCAPES),
    )

    maps = reference_maps(config, checkpoint, paths, batch_size=2)
    assert len(np.unique(np.concatenate([m.ravel() for m in maps]))) >= 3, "a trivial model tests nothing"
    for image_id, label_map in zip(ids, maps, strict=True):
        row = rows[image_id]
        assert label_map.shape == (HEIGHT, WIDTH)
        counts = np.bincount(label_map.ravel(), minlength=19)
        assert row["error"] is None and row["pixels"] == HEIGHT * WIDTH
        assert row["histogram"] == counts.tolist()
        for element, class_ids in ELEMENT_IDS.items():
            assert row[element] == pytest.approx(counts[class_ids].sum() / label_map.size, abs=1e-12), element
        np.testing.assert_array_equal(np.asarray(Image.open(row["mask_uri"])), label_map)


def test_checkpoints_init_model_cannot_read_are_refused_with_the_way_out(fresh_db_url, tiny_mmseg, tmp_path):
    from streetaudit.flows.errors import InputError
    from streetaudit.flows.segment import segment

    config, checkpoint = tiny_mmseg
    saved = torch.load(checkpoint, weights_only=True)
    options = {"backend": "mmseg", "model": str(config), "device": "cpu", "progress": False}
    runner_made = tmp_path / "runner.pth"  # mmengine's runner also saves numpy values
    torch.save({**saved, "meta": {**saved["meta"], "seed": np.int64(0)}}, runner_made)
    with pytest.raises(InputError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1"):
        segment(fresh_db_url, checkpoint=str(runner_made), **options)
    bare = tmp_path / "bare.pth"
    torch.save(saved["state_dict"], bare)
    with pytest.raises(InputError, match="no 'meta' in it"):
        segment(fresh_db_url, checkpoint=str(bare), **options)
    with pytest.raises(InputError, match="no such file"):
        segment(fresh_db_url, checkpoint=str(tmp_path / "missing.pth"), **options)
