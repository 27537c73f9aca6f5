"""A stored split as detector training data: items from the database, images from the store.

Every run on a dataset reads the same images per split (dataset_item), their true boxes
(ground_truth_box of the dataset's ground truth) and the images raters left empty
(ground_truth_image without boxes): negatives are kept, so a detector learns that a plain
facade holds nothing.

Augmentations keep facades upright, as street views are: a horizontal flip (boxes
mirrored) and photometric jitter only, never a vertical flip or a rotation, which would
teach the detector buildings that cannot occur.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import psycopg
import torch
from torch.utils.data import Dataset

from streetaudit.flows.errors import InputError
from streetaudit.models.inputs import ImageReader
from streetaudit.sql.rows import scalar

SPLITS = ("train", "val", "test")


@dataclass
class Item:
    image_id: int
    uri: str
    #: N × 4 float32, x1 y1 x2 y2 pixels
    boxes: np.ndarray
    #: N class indices, 1 … K (label i + 1 is labels[i])
    classes: np.ndarray


@dataclass
class StoredSplit:
    dataset_id: int
    name: str
    labels: list[str]
    items: dict[str, list[Item]]

    def count(self, split: str) -> int:
        return len(self.items.get(split, []))


def dataset_row(conn: psycopg.Connection, name: str) -> tuple[int, list[str]]:
    """(dataset id, its ground truth's labels) for `--dataset` given as a name or id."""
    row = conn.execute(
        """SELECT d.id, g.labels FROM streetaudit.dataset d
             JOIN streetaudit.ground_truth g ON g.id = d.ground_truth_id
            WHERE d.name = %s OR d.id::text = %s
            ORDER BY d.name = %s DESC LIMIT 1""",
        (name, name, name),
    ).fetchone()
    if row is None:
        known = scalar(conn.execute("SELECT string_agg(name, ', ' ORDER BY name) FROM streetaudit.dataset"))
        raise InputError(
            f"--dataset {name}: no such dataset"
            + (f" (known: {known})" if known else " (make one with `streetaudit detect split`)")
        )
    return int(row[0]), list(row[1])


def read_split(conn: psycopg.Connection, name: str, splits: tuple[str, ...] = SPLITS) -> StoredSplit:
    """The dataset's items per split, each with its boxes (none for negatives)."""
    dataset_id, labels = dataset_row(conn, name)
    index = {label: i for i, label in enumerate(labels, start=1)}
    rows = conn.execute(
        """SELECT di.split, i.id, i.uri, i.status,
                  coalesce(array_agg(ARRAY[b.x1, b.y1, b.x2, b.y2] ORDER BY b.id)
                           FILTER (WHERE b.id IS NOT NULL), '{}'),
                  coalesce(array_agg(b.label ORDER BY b.id) FILTER (WHERE b.id IS NOT NULL), '{}')
             FROM streetaudit.dataset_item di
             JOIN streetaudit.dataset d ON d.id = di.dataset_id
             JOIN streetaudit.image i ON i.id = di.image_id
             LEFT JOIN streetaudit.ground_truth_box b
                    ON b.ground_truth_id = d.ground_truth_id AND b.image_id = di.image_id
            WHERE di.dataset_id = %s AND di.split = ANY(%s)
            GROUP BY di.split, i.id, i.uri, i.status
            ORDER BY di.split, i.id""",
        (dataset_id, list(splits)),
    ).fetchall()
    items: dict[str, list[Item]] = {split: [] for split in splits}
    unusable = []
    for split, image_id, uri, status, boxes, box_labels in rows:
        if status != "ok" or not uri:
            unusable.append(f"{image_id} ({status}{', no file' if not uri else ''})")
            continue
        unknown = sorted(set(box_labels) - set(index))
        if unknown:
            raise InputError(
                f"dataset {name}: image {image_id} has boxes labelled {', '.join(unknown)}, "
                f"not among the ground truth's labels ({', '.join(labels)})"
            )
        items[split].append(
            Item(
                int(image_id),
                uri,
                np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                np.asarray([index[label] for label in box_labels], dtype=np.int64),
            )
        )
    if unusable:
        raise InputError(
            f"dataset {name}: {len(unusable)} images have no usable file: {', '.join(unusable[:10])}"
            + (" …" if len(unusable) > 10 else "")
        )
    return StoredSplit(dataset_id, name, labels, items)


# torchvision's grey (rgb_to_grayscale): the contrast and saturation blends' target.
_GREY = torch.tensor([[0.2989, 0.587, 0.114]], dtype=torch.float64)


def hue_rotation(hue: float) -> torch.Tensor:
    """The RGB matrix turning every colour by `hue` of a full turn about the grey axis.

    HSV's hue is the angle of a colour around that axis (measured on a hexagon rather than
    a circle), so the turn moves hue by about `hue` and keeps each pixel's mean of R, G, B.
    """
    angle = 2 * math.pi * hue
    # Rodrigues' rotation about the unit grey axis (1, 1, 1) / √3
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)
    return (
        math.cos(angle) * torch.eye(3, dtype=torch.float64)
        + math.sin(angle) / math.sqrt(3) * cross
        + (1 - math.cos(angle)) / 3 * torch.ones(3, 3, dtype=torch.float64)
    )


@dataclass(frozen=True)
class Augment:
    """Upright-preserving augmentation: horizontal flip and brightness/contrast/saturation/hue jitter.

    The flip runs in the DataLoader (it moves boxes); the jitter runs on each image after it
    reaches the device (`photometric`), where hue conversion of a 1024×512 image costs
    microseconds instead of ~80 ms of a CPU worker.
    """

    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def geometric(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flip and torch.rand(()) < self.flip:
            image = image.flip(-1)
            width = image.shape[-1]
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        return image, boxes

    def photometric(self, image: torch.Tensor) -> torch.Tensor:
        """ColorJitter's four adjustments, in an order drawn per image, as one colour matrix.

        Brightness, contrast (a blend with the mean grey), saturation (a blend with the grey
        of each pixel) and a hue rotation are each affine in RGB, so their chain is one 3×3
        matrix and offset, applied in a single pass: torchvision's functional ops make five
        passes and an HSV round trip: 131 ms for a 1024×512 image on one CPU core against
        1.9 ms here (128×96: 3.3 against 0.16 ms, when a tiny detector's step is ~30 ms). The
        hue is turned about the grey axis (hue_rotation), not shifted in HSV: at ColorJitter's
        ±0.02 it moves HSV hue by the drawn amount within 0.004, and nudges saturation and
        value where HSV keeps them. Values are clipped once, at the end, not after each step.
        """

        def factor(spread: float) -> float:
            return float(torch.empty(()).uniform_(1 - spread, 1 + spread))

        matrix = torch.eye(3, dtype=torch.float64)
        offset = torch.zeros(3, dtype=torch.float64)
        means = image.mean(dim=(-2, -1), dtype=torch.float64).cpu()  # per channel, for contrast
        # the order and the factors are drawn as torchvision's ColorJitter draws them (on the
        # CPU generator, so a resumed run repeats them)
        for step in torch.randperm(4).tolist():
            if step == 0 and self.brightness:
                scale = factor(self.brightness)
                matrix, offset = matrix * scale, offset * scale
            elif step == 1 and self.contrast:
                scale = factor(self.contrast)
                grey = float(_GREY @ (matrix @ means + offset))
                matrix, offset = matrix * scale, offset * scale + (1 - scale) * grey
            elif step == 2 and self.saturation:
                scale = factor(self.saturation)
                blend = scale * torch.eye(3, dtype=torch.float64) + (1 - scale) * _GREY.expand(3, 3)
                matrix, offset = blend @ matrix, blend @ offset
            elif step == 3 and self.hue:
                turn = hue_rotation(float(torch.empty(()).uniform_(-self.hue, self.hue)))
                matrix, offset = turn @ matrix, turn @ offset
        flat = image.reshape(3, -1)
        out = torch.addmm(
            offset.to(image.device, image.dtype)[:, None], matrix.to(image.device, image.dtype), flat
        )
        return out.reshape(image.shape).clamp_(0, 1)

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, boxes = self.geometric(image, boxes)
        return self.photometric(image), boxes


class DetectionImages(Dataset):
    """(float image 3 × H × W in 0…1, target dict) pairs as torchvision detectors take them."""

    def __init__(
        self, items: list[Item], augment: Augment | None = None, *, photometric: bool = True
    ) -> None:
        """`photometric=False`: only the flip here; the training loop jitters on the device."""
        self.items = items
        self.augment = augment
        self.photometric = photometric
        self.reader = ImageReader()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item = self.items[index]
        try:
            pixels, _ = self.reader(item.uri)
        except (OSError, RuntimeError, ValueError) as error:
            # a training set is small and chosen: a missing file is the user's to fix, by name
            raise InputError(f"image {item.image_id} ({item.uri}): cannot read it ({error})") from None
        image = pixels.float() / 255
        boxes = torch.from_numpy(item.boxes.copy())
        if self.augment is not None:
            image, boxes = self.augment.geometric(image, boxes)
            if self.photometric:
                image = self.augment.photometric(image)
        target = {
            "boxes": boxes.reshape(-1, 4),
            "labels": torch.from_numpy(item.classes.copy()),
            "image_id": torch.tensor(item.image_id),
        }
        return image, target


def collate(batch: list) -> tuple[tuple, tuple]:
    """Detection batches are lists: images differ in size and in number of boxes."""
    images, targets = zip(*batch, strict=True)
    return images, targets
