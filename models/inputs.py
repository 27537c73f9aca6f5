"""Reading segmentation inputs in DataLoader worker processes.

Decoding JPEGs is the CPU-heavy part of the pipeline, so it happens in worker processes
while the model runs; the main process only receives ready uint8 tensors, grouped by size
and stacked. A file that cannot be read or decoded becomes an error for that one image,
never an exception that stops the batch.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image

from streetaudit.models.label_sets import LABELS_SUFFIX


def local_path(uri: str) -> str | None:
    """The local file a URI names (plain path or file:// URL); None for remote URLs."""
    if "://" not in uri:
        return uri
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def read_bytes(uri: str) -> bytes:
    path = local_path(uri)
    if path is not None:
        return Path(path).read_bytes()
    import fsspec

    with fsspec.open(uri, "rb") as handle:
        return handle.read()


class ImageReader:
    """Decodes an image file to a (3, H, W) uint8 RGB tensor (JPEG via libjpeg-turbo)."""

    def __call__(self, uri: str) -> tuple[torch.Tensor, str]:
        data = torch.frombuffer(bytearray(read_bytes(uri)), dtype=torch.uint8)
        return decode_image(data, mode=ImageReadMode.RGB), uri


@dataclass(frozen=True)
class MaskReader:
    """Finds and reads the label map made elsewhere for an image, as (H, W) class ids.

    By default the map lies beside the image with the suffix replaced (`x/1_0.jpg` ->
    `x/1_0.labels.png`, as the synthetic provider writes); with `mask_dir`, it is the file
    in that folder whose name is the image's stem plus the suffix, or plus `.png`.
    """

    mask_dir: str | None = None
    suffix: str = LABELS_SUFFIX

    def locate(self, uri: str) -> str:
        path = local_path(uri) or urlparse(uri).path
        stem = posixpath.splitext(posixpath.basename(path))[0]
        if self.mask_dir is None:
            return posixpath.splitext(uri)[0] + self.suffix
        folder = Path(self.mask_dir)
        candidates = [folder / f"{stem}{self.suffix}", folder / f"{stem}.png"]
        return str(next((c for c in candidates if c.exists()), candidates[0]))

    def __call__(self, uri: str) -> tuple[torch.Tensor, str]:
        mask_uri = self.locate(uri)
        with Image.open(io.BytesIO(read_bytes(mask_uri))) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(
                    f"{mask_uri}: a label map must be a one-channel PNG of class ids, not {image.mode}"
                )
            array = np.array(image)  # a writable copy, as torch.from_numpy wants
        if array.dtype != np.uint8:  # 16-bit or 32-bit ids; uint8 stays small across processes
            array = array.astype(np.int32)
        return torch.from_numpy(array), mask_uri


@dataclass
class Batch:
    """A batch as the model sees it: same-sized inputs stacked, failures set aside.

    `groups` holds (positions, stacked tensor) per input size; `ids[positions]` names the images.
    """

    ids: list[int]
    sources: list[str]
    groups: list[tuple[list[int], torch.Tensor]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def pin_memory(self) -> Batch:
        self.groups = [(positions, tensor.pin_memory()) for positions, tensor in self.groups]
        return self


class InputDataset(Dataset):
    def __init__(self, items: Sequence[tuple[int, str]], reader) -> None:
        self.items = list(items)
        self.reader = reader

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        image_id, uri = self.items[index]
        try:
            tensor, source = self.reader(uri)
        except (OSError, RuntimeError, ValueError) as error:
            # Recorded per image: one corrupt or missing file must not stop a city-sized run.
            return image_id, None, f"{type(error).__name__}: {error}"[:500]
        return image_id, tensor, source


def collate(samples: list[tuple[int, torch.Tensor | None, str]]) -> Batch:
    batch = Batch(ids=[s[0] for s in samples], sources=[""] * len(samples))
    by_shape: dict[tuple[int, ...], list[int]] = {}
    tensors: dict[int, torch.Tensor] = {}
    for position, (image_id, tensor, detail) in enumerate(samples):
        if tensor is None:
            batch.errors[image_id] = detail
        else:
            batch.sources[position] = detail
            tensors[position] = tensor
            by_shape.setdefault(tuple(tensor.shape), []).append(position)
    for positions in by_shape.values():
        batch.groups.append((positions, torch.stack([tensors[p] for p in positions])))
    return batch


def make_loader(
    items: Sequence[tuple[int, str]],
    reader,
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    return DataLoader(
        InputDataset(items, reader),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
