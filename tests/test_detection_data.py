"""A stored split read back with its boxes and negatives; augmentation keeps facades upright."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import torch

from streetaudit.flows.detection_data import Augment, DetectionImages, collate, read_split
from streetaudit.flows.errors import InputError
from streetaudit.testing.detection_data import seed_detection_dataset


@pytest.fixture(scope="module")
def seeded(db_url, tmp_path_factory):
    return seed_detection_dataset(
        db_url, tmp_path_factory.mktemp("images"), n=20, labels=("window", "ornament"), negatives=0.3, seed=4
    )


def test_split_holds_every_image_with_its_boxes_and_negatives(db_url, seeded):
    with psycopg.connect(db_url) as conn:
        stored = read_split(conn, seeded.dataset)
    assert stored.labels == ["window", "ornament"]
    got = {item.image_id: (split, item) for split, items in stored.items.items() for item in items}
    assert set(got) == set(seeded.boxes)
    negatives = 0
    for image_id, boxes in seeded.boxes.items():
        split, item = got[image_id]
        assert split == seeded.splits[image_id]
        expected = sorted((stored.labels.index(b[0]) + 1, *b[1:]) for b in boxes)
        assert (
            sorted((int(c), *map(float, xy)) for c, xy in zip(item.classes, item.boxes, strict=True))
            == expected
        )
        negatives += not boxes
    assert negatives >= 1


def test_dataset_reads_images_and_targets(db_url, seeded):
    with psycopg.connect(db_url) as conn:
        items = read_split(conn, seeded.dataset).items["train"]
    images, targets = collate([DetectionImages(items)[i] for i in range(2)])
    assert images[0].shape == (3, 96, 128) and images[0].dtype == torch.float32
    assert float(images[0].min()) >= 0 and float(images[0].max()) <= 1
    assert targets[0]["boxes"].shape == (len(items[0].classes), 4)
    assert int(targets[0]["image_id"]) == items[0].image_id


def test_flip_mirrors_boxes_onto_the_drawn_windows_and_never_turns_the_image(db_url, seeded):
    with psycopg.connect(db_url) as conn:
        items = [i for i in read_split(conn, seeded.dataset).items["train"] if len(i.classes)]
    plain = DetectionImages(items)
    flipped = DetectionImages(items, Augment(flip=1.0, brightness=0, contrast=0, saturation=0, hue=0))
    for index in range(len(items)):
        image, target = plain[index]
        mirror, mirror_target = flipped[index]
        assert torch.equal(mirror, image.flip(-1))  # horizontal only: rows stay in place
        for (x1, y1, x2, y2), (fx1, fy1, fx2, fy2) in zip(
            target["boxes"], mirror_target["boxes"], strict=True
        ):
            assert (fy1, fy2) == (y1, y2)
            assert (float(fx1), float(fx2)) == (128 - float(x2), 128 - float(x1))
            # the drawn object is under the mirrored box: its pixels match the original box's, mirrored
            inside = mirror[:, int(fy1) + 1 : int(fy2) - 1, int(fx1) + 1 : int(fx2) - 1]
            source = image[:, int(y1) + 1 : int(y2) - 1, int(x1) + 1 : int(x2) - 1].flip(-1)
            assert torch.allclose(inside, source)


def test_photometric_jitter_changes_colours_not_geometry(db_url, seeded):
    with psycopg.connect(db_url) as conn:
        items = read_split(conn, seeded.dataset).items["train"]
    torch.manual_seed(0)
    jittered = DetectionImages(items, Augment(flip=0.0, brightness=0.4, contrast=0.4))
    image, target = DetectionImages(items)[0]
    changed, changed_target = jittered[0]
    assert changed.shape == image.shape and not torch.allclose(changed, image)
    assert torch.equal(changed_target["boxes"], target["boxes"])
    assert float(changed.min()) >= 0 and float(changed.max()) <= 1


def test_unknown_dataset_is_named(db_url, seeded):
    with (
        psycopg.connect(db_url) as conn,
        pytest.raises(InputError, match=r"--dataset nope: no such dataset \(known: "),
    ):
        read_split(conn, "nope")


def test_image_without_file_is_reported_by_id(db_url, seeded):
    victim = seeded.ids("test")[0]
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE streetaudit.image SET status = 'missing' WHERE id = %s", (victim,))
        with pytest.raises(InputError, match=rf"{victim} \(missing"):
            read_split(conn, seeded.dataset)
        conn.rollback()


def _drawn(seed: int, spread: float, order: int = 1) -> tuple[list[int], list[float]]:
    """The order and factors Augment.photometric draws after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    steps = torch.randperm(4).tolist()
    return steps, [float(torch.empty(()).uniform_(1 - spread, 1 + spread)) for _ in range(order)]


@pytest.mark.parametrize(
    ("field", "reference"),
    [
        ("brightness", "adjust_brightness"),
        ("contrast", "adjust_contrast"),
        ("saturation", "adjust_saturation"),
    ],
)
def test_each_colour_jitter_equals_torchvisions_adjustment(field: str, reference: str) -> None:
    """One matrix must do what torchvision's op does (no clipping: values kept inside 0…1)."""
    import torchvision.transforms.functional as F

    image = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    off = {"flip": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    augment = Augment(**{**off, field: 0.3})
    _, (drawn,) = _drawn(5, 0.3)
    torch.manual_seed(5)
    ours = augment.photometric(image)
    expected = getattr(F, reference)(image, drawn)
    assert drawn != 1.0 and not torch.allclose(expected, image, atol=1e-3)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_the_chain_of_jitters_follows_the_drawn_order() -> None:
    import torchvision.transforms.functional as F

    image = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(2)) * 0.4 + 0.3
    augment = Augment(flip=0.0, brightness=0.15, contrast=0.15, saturation=0.15, hue=0.0)
    for seed in range(6):
        steps, factors = _drawn(seed, 0.15, order=3)
        expected, ops = image, iter(factors)
        for step in steps:
            op = {0: F.adjust_brightness, 1: F.adjust_contrast, 2: F.adjust_saturation}.get(step)
            if op is not None:
                expected = op(expected, next(ops))
        torch.manual_seed(seed)
        assert torch.allclose(augment.photometric(image), expected, atol=1e-5), steps


def test_hue_rotation_moves_hsv_hue_by_the_drawn_amount_and_keeps_grey() -> None:
    """Checked against the standard library's HSV conversion, pixel by pixel."""
    import colorsys

    from streetaudit.flows.detection_data import hue_rotation

    rng = np.random.default_rng(0)
    for hue in (0.02, -0.02, 0.01):
        turn = hue_rotation(hue).numpy()
        np.testing.assert_allclose(turn @ np.full(3, 0.4), np.full(3, 0.4), atol=1e-12)
        np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(hue_rotation(-hue).numpy() @ turn, np.eye(3), atol=1e-12)
        errors = []
        for colour in rng.uniform(0.2, 0.8, (500, 3)):
            before = colorsys.rgb_to_hsv(*colour)
            if before[1] < 0.2:  # hue is ill-defined near grey
                continue
            after = colorsys.rgb_to_hsv(*(turn @ colour))
            errors.append(abs((after[0] - before[0] - hue + 0.5) % 1 - 0.5))
        assert max(errors) < 0.004 and len(errors) > 200
