"""Segmentation stage against a real PostGIS: tiny random-weight models, exact expectations.

Expected label maps are computed here by running the saved checkpoint directly with
transformers / torchvision and counting pixels with numpy, independently of the pipeline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import decode_image

from streetaudit.flows.errors import InputError
from streetaudit.flows.segment import segment, segment_flow
from streetaudit.models.label_palette import palette
from streetaudit.models.label_sets import CITYSCAPES, ELEMENTS, builtin
from streetaudit.testing.sample_rows import add_images
from streetaudit.testing.tiny_models import tiny_segformer

# Cityscapes train ids of the six elements, written out independently of models/label_sets.py.
ELEMENT_IDS = {"building": [2], "road": [0], "sky": [10], "greenery": [8], "sidewalk": [1], "car": [13]}
HEIGHT, WIDTH = 64, 128


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory) -> Path:
    return tiny_segformer(tmp_path_factory.mktemp("segformer"), size=(HEIGHT, WIDTH))


def street_like_jpeg(path: Path, seed: int, size=(HEIGHT, WIDTH)) -> Path:
    """Smooth colour blobs (so JPEG keeps structure and the model sees varied input)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR).save(path, quality=90)
    return path


def rows_of(url: str, model_id: int) -> dict[int, dict]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            f"""SELECT image_id, {", ".join(ELEMENTS)}, histogram, pixels, mask_uri, error
                FROM streetaudit.segmentation WHERE model_id = %s""",
            (model_id,),
        )
        names = [d.name for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def expected_shares(label_map: np.ndarray) -> dict[str, float]:
    counts = np.bincount(label_map.ravel(), minlength=19)
    return {e: counts[ids].sum() / label_map.size for e, ids in ELEMENT_IDS.items()}


def reference_maps(folder: Path, paths: list[Path], batch_size: int) -> list[np.ndarray]:
    """The checkpoint run by hand: its processor, its model, bilinear upsampling, argmax."""
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    processor = SegformerImageProcessor.from_pretrained(folder)
    model = SegformerForSemanticSegmentation.from_pretrained(folder).eval()
    images = [decode_image(str(p)) for p in paths]
    maps = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = torch.stack(images[start : start + batch_size])
            logits = model(**processor(images=chunk, return_tensors="pt")).logits
            logits = F.interpolate(logits, size=chunk.shape[-2:], mode="bilinear", align_corners=False)
            maps.extend(logits.argmax(1).numpy())
    return maps


def test_hf_shares_equal_numpy_bincount_of_independently_predicted_maps(
    fresh_db_url, segformer_dir, tmp_path
):
    paths = [street_like_jpeg(tmp_path / f"{i}_0.jpg", seed=i) for i in range(5)]
    ids = add_images(fresh_db_url, paths, as_url=True)

    report = segment(
        fresh_db_url,
        model=str(segformer_dir),
        batch_size=2,
        device="cpu",
        progress=False,
        save_masks=True,
        workers=2,
        masks_dir=str(tmp_path / "masks"),
    )

    assert (report.done, report.failed, report.skipped) == (5, 0, 0)
    rows = rows_of(fresh_db_url, report.model_id)
    for image_id, label_map in zip(ids, reference_maps(segformer_dir, paths, 2), strict=True):
        row = rows[image_id]
        assert row["histogram"] == np.bincount(label_map.ravel(), minlength=19).tolist()
        assert row["pixels"] == HEIGHT * WIDTH
        for element, share in expected_shares(label_map).items():
            assert row[element] == pytest.approx(share, abs=1e-12), element
        saved = np.asarray(Image.open(row["mask_uri"]))
        np.testing.assert_array_equal(saved, label_map)
        # coloured by the label set's palette, so a browser shows it as the map's overlay
        coloured = np.asarray(Image.open(row["mask_uri"]).convert("RGB"))
        np.testing.assert_array_equal(coloured, palette(builtin("cityscapes"))[label_map])
    with psycopg.connect(fresh_db_url) as conn:
        model_row = conn.execute(
            "SELECT task, backend, source, label_set, labels FROM streetaudit.model WHERE id = %s",
            (report.model_id,),
        ).fetchone()
    assert model_row == ("segmentation", "hf", str(segformer_dir.resolve()), "cityscapes", list(CITYSCAPES))


def label_map_png(path: Path, counts: dict[int, int], height: int = 10, width: int = 20) -> np.ndarray:
    """A label map holding `counts[class]` pixels of each class, 255 (void) elsewhere."""
    flat = np.full(height * width, 255, dtype=np.uint8)
    start = 0
    for class_id, n in counts.items():
        flat[start : start + n] = class_id
        start += n
    label_map = flat.reshape(height, width)
    Image.fromarray(label_map, mode="L").save(path)
    return label_map


def test_masks_backend_reproduces_known_shares_exactly(fresh_db_url, tmp_path):
    first = street_like_jpeg(tmp_path / "101_0.jpg", seed=1)
    second = street_like_jpeg(tmp_path / "101_90.jpg", seed=2)
    label_map_png(tmp_path / "101_0.labels.png", {2: 50, 0: 40, 10: 30, 8: 20, 9: 10, 1: 20, 13: 10})
    label_map_png(tmp_path / "101_90.labels.png", {10: 200})
    ids = add_images(fresh_db_url, [first, second])

    report = segment(fresh_db_url, backend="masks", device="cpu", progress=False, workers=0)
    rows = rows_of(fresh_db_url, report.model_id)
    assert report.done == 2
    one = rows[ids[0]]
    assert (one["building"], one["road"], one["sky"]) == (50 / 200, 40 / 200, 30 / 200)
    assert (one["greenery"], one["sidewalk"], one["car"]) == (20 / 200, 20 / 200, 10 / 200)
    assert one["histogram"][9] == 10 and sum(one["histogram"]) == 180 and one["pixels"] == 200
    assert one["mask_uri"] == str(tmp_path / "101_0.labels.png")
    assert rows[ids[1]]["sky"] == 1.0 and rows[ids[1]]["building"] == 0.0

    # Counting terrain as greenery is another model row; the same maps, other shares.
    with_terrain = segment(fresh_db_url, backend="masks", terrain=True, device="cpu", progress=False)
    assert with_terrain.model_id != report.model_id and with_terrain.label_set == "cityscapes+terrain"
    assert rows_of(fresh_db_url, with_terrain.model_id)[ids[0]]["greenery"] == 30 / 200


def test_masks_backend_reads_a_folder_of_maps_matched_by_file_name(fresh_db_url, tmp_path):
    image = street_like_jpeg(tmp_path / "7_180.jpg", seed=3)
    folder = tmp_path / "maps"
    folder.mkdir()
    label_map_png(folder / "7_180.png", {13: 100, 0: 100})
    (image_id,) = add_images(fresh_db_url, [image])
    report = segment(fresh_db_url, backend="masks", mask_dir=str(folder), device="cpu", progress=False)
    row = rows_of(fresh_db_url, report.model_id)[image_id]
    assert (row["car"], row["road"], row["mask_uri"]) == (0.5, 0.5, str(folder / "7_180.png"))


def test_rerun_skips_done_images_and_limit_bounds_a_run(fresh_db_url, tmp_path):
    paths = []
    for i in range(4):
        paths.append(street_like_jpeg(tmp_path / f"{i}.jpg", seed=i))
        label_map_png(tmp_path / f"{i}.labels.png", {0: 100 + i})
    add_images(fresh_db_url, paths)
    options = {"backend": "masks", "device": "cpu", "progress": False}

    first = segment(fresh_db_url, limit=3, **options)
    assert (first.done, first.skipped) == (3, 0)
    second = segment(fresh_db_url, **options)
    assert (second.done, second.skipped, second.model_id) == (1, 3, first.model_id)
    third = segment(fresh_db_url, **options)
    assert (third.done, third.skipped) == (0, 4)
    assert len(rows_of(fresh_db_url, first.model_id)) == 4
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.model").fetchone()[0] == 1


def test_provider_option_segments_only_that_providers_images(fresh_db_url, tmp_path):
    paths = []
    for i in range(3):
        paths.append(street_like_jpeg(tmp_path / f"{i}.jpg", seed=i))
        label_map_png(tmp_path / f"{i}.labels.png", {0: 100})
    ids = add_images(fresh_db_url, paths)
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("UPDATE streetaudit.image SET provider = 'other' WHERE id = %s", (ids[0],))
    options = {"backend": "masks", "device": "cpu", "progress": False, "workers": 0}
    report = segment(fresh_db_url, provider="test", **options)
    assert report.done == 2 and set(rows_of(fresh_db_url, report.model_id)) == set(ids[1:])
    with pytest.raises(
        InputError, match=r"--provider 'baidu': no ok images .*known: other \(1 ok\), test \(2 ok\)"
    ):
        segment(fresh_db_url, provider="baidu", **options)
    assert segment(fresh_db_url, **options).done == 1  # the rest, without --provider


def test_corrupt_image_is_recorded_and_its_batch_goes_on(fresh_db_url, segformer_dir, tmp_path):
    good = [street_like_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    missing = tmp_path / "gone.jpg"
    ids = add_images(fresh_db_url, [good[0], corrupt, good[1], missing, good[2]])

    report = segment(fresh_db_url, model=str(segformer_dir), batch_size=8, device="cpu", progress=False)

    assert (report.done, report.failed) == (3, 2)
    rows = rows_of(fresh_db_url, report.model_id)
    for bad in (ids[1], ids[3]):
        assert rows[bad]["error"] and rows[bad]["building"] is None and rows[bad]["histogram"] is None
    assert {i for i, _ in report.errors} == {ids[1], ids[3]}
    for fine in (ids[0], ids[2], ids[4]):
        assert rows[fine]["error"] is None and sum(rows[fine]["histogram"]) == HEIGHT * WIDTH
    # A rerun does not retry recorded failures unless asked.
    again = segment(fresh_db_url, model=str(segformer_dir), device="cpu", progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 0, 5)
    retried = segment(fresh_db_url, model=str(segformer_dir), device="cpu", progress=False, retry_failed=True)
    assert (retried.done, retried.failed) == (0, 2)


def test_images_of_different_sizes_share_a_batch(fresh_db_url, segformer_dir, tmp_path):
    small = street_like_jpeg(tmp_path / "small.jpg", seed=5, size=(48, 96))
    large = street_like_jpeg(tmp_path / "large.jpg", seed=6)
    ids = add_images(fresh_db_url, [small, large])
    report = segment(fresh_db_url, model=str(segformer_dir), batch_size=2, device="cpu", progress=False)
    rows = rows_of(fresh_db_url, report.model_id)
    assert [rows[i]["pixels"] for i in ids] == [48 * 96, HEIGHT * WIDTH]
    assert [sum(rows[i]["histogram"]) for i in ids] == [48 * 96, HEIGHT * WIDTH]


def test_a_model_whose_classes_lack_an_element_is_refused(fresh_db_url, tmp_path):
    labels = ["ceiling" if name == "sky" else name for name in CITYSCAPES]
    folder = tiny_segformer(tmp_path / "no-sky", labels=labels, size=(HEIGHT, WIDTH))
    with pytest.raises(InputError, match="no class for sky"):
        segment(fresh_db_url, model=str(folder), device="cpu", progress=False)


def test_offline_without_cached_weights_says_how_to_get_them(fresh_db_url, tmp_path, cli):
    with pytest.raises(InputError, match=r"hf download nvidia/segformer-b0-finetuned-cityscapes-1024-1024"):
        segment(fresh_db_url, device="cpu", progress=False, cache_dir=str(tmp_path / "empty-cache"))
    result = cli(
        "segment", "--model", "nvidia/segformer-b2-finetuned-cityscapes-1024-1024", "--device", "cpu"
    )
    assert result.exit_code == 2
    assert "--model PATH" in result.output and "hf download" in result.output


def test_bad_options_are_refused_with_their_names(fresh_db_url, segformer_dir):
    with pytest.raises(InputError, match="unknown backend"):
        segment(fresh_db_url, backend="caffe", progress=False)
    with pytest.raises(InputError, match="--batch-size"):
        segment(fresh_db_url, model=str(segformer_dir), batch_size=0, progress=False)
    with pytest.raises(InputError, match="unexpected keyword argument 'arch'"):
        segment(fresh_db_url, model=str(segformer_dir), arch="fcn_resnet50", device="cpu", progress=False)
    with pytest.raises(InputError, match="no checkpoint folder"):
        segment(fresh_db_url, model="./no/such/folder", device="cpu", progress=False)
    with pytest.raises(InputError, match="--workers"):
        segment(fresh_db_url, backend="masks", workers=-1, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            segment(fresh_db_url, backend="masks", device="cuda", progress=False)


def test_torchvision_backend_with_a_user_checkpoint(fresh_db_url, tmp_path):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(3)
    network = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19).eval()
    checkpoint = tmp_path / "lraspp.pth"
    torch.save({"model": network.state_dict(), "epoch": 3}, checkpoint)
    paths = [street_like_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(2)]
    ids = add_images(fresh_db_url, paths)

    report = segment(
        fresh_db_url,
        model=str(checkpoint),
        backend="torchvision",
        arch="lraspp_mobilenet_v3_large",
        labels="cityscapes",
        batch_size=2,
        device="cpu",
        progress=False,
    )
    rows = rows_of(fresh_db_url, report.model_id)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    batch = torch.stack([(decode_image(str(p)).float() / 255 - mean) / std for p in paths])
    with torch.no_grad():
        maps = network(batch)["out"].argmax(1).numpy()
    for image_id, label_map in zip(ids, maps, strict=True):
        # Normalising in another order rounds differently; allow a handful of boundary pixels.
        histogram = np.array(rows[image_id]["histogram"])
        assert np.abs(histogram - np.bincount(label_map.ravel(), minlength=19)).sum() <= 0.01 * label_map.size


@pytest.mark.skipif(importlib.util.find_spec("mmseg") is not None, reason="the openmmlab extra is installed")
def test_mmseg_backend_without_openmmlab_explains_the_install(fresh_db_url):
    with pytest.raises(InputError, match="MMCV_WITH_OPS=1"):
        segment(fresh_db_url, backend="mmseg", model="config.py", checkpoint="w.pth", progress=False)


def test_cli_segment_and_flow(cli, db_url, tmp_path, prefect_harness):
    image = street_like_jpeg(tmp_path / "9_0.jpg", seed=9)
    label_map_png(tmp_path / "9_0.labels.png", {0: 200})
    add_images(db_url, [image])
    result = cli("segment", "--backend", "masks", "--device", "cpu", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "1 segmented" in result.output and "images/s" in result.output
    result = cli("run", "pipeline", "--stages", "segment", "--backend", "masks", "--device", "cpu")
    assert result.exit_code == 0, result.output
    # The same summary as the command, not a repr of the report.
    assert "0 segmented, 1 already done, 0 failed" in result.output and "Report(" not in result.output
    flow_report = segment_flow(db_url, backend="masks", device="cpu", terrain=True)
    assert flow_report.done == 1 and flow_report.label_set == "cityscapes+terrain"
