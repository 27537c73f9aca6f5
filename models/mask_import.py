"""The `masks` backend: label maps made elsewhere enter the same tables as our predictions.

Results of other tools, hand annotations, and the synthetic provider's true label maps are
one-channel PNGs of class ids; this backend reads them (in the DataLoader workers, like
images) and hands them on unchanged, so shares and histograms are computed exactly as for
a model's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from streetaudit.models.backend import BackendError, SegmentationBackend
from streetaudit.models.inputs import MaskReader
from streetaudit.models.label_sets import LABELS_SUFFIX, resolve


class MaskBackend(SegmentationBackend):
    name = "masks"

    def __init__(
        self,
        model: str | None,
        device: torch.device,
        *,
        label_set: str | Sequence[str] = "cityscapes",
        terrain: bool = False,
        element_classes: Mapping[str, Sequence[str]] | None = None,
        mask_dir: str | None = None,
        suffix: str = LABELS_SUFFIX,
    ) -> None:
        super().__init__(device)
        # --model, when given, names the folder of label maps (same as mask_dir).
        folder = mask_dir or model
        if folder is not None:
            path = Path(folder).expanduser()
            if not path.is_dir():
                raise BackendError(f"--mask-dir {folder}: no such folder of label maps")
            folder = str(path.resolve())
        self.mask_dir = folder
        self.suffix = suffix
        self.label_set = resolve(label_set, terrain=terrain, element_classes=element_classes)
        self.source = f"{folder or 'beside-images'}:{suffix}"
        self.parameters = {"mask_dir": folder, "suffix": suffix, "terrain": terrain}

    @property
    def model_name(self) -> str:
        return f"label maps ({self.label_set.name})"

    def reader(self) -> MaskReader:
        return MaskReader(self.mask_dir, self.suffix)

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device, non_blocking=True)
