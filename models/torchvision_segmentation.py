"""torchvision backend: FCN, DeepLabV3 and LR-ASPP with the user's own checkpoint.

torchvision ships only VOC-class weights, which have no building, road or sky, so the
user brings a checkpoint trained on street scenes (e.g. with torchvision's reference
training script) and names its classes: a built-in label set, a text file or a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.models.segmentation as segmentation

from streetaudit.models.backend import BackendError, SegmentationBackend, upsampled_argmax
from streetaudit.models.label_sets import resolve
from streetaudit.models.weights import load_state_dict

ARCHITECTURES = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionBackend(SegmentationBackend):
    name = "torchvision"

    def __init__(
        self,
        model: str | None,
        device: torch.device,
        *,
        arch: str = "deeplabv3_resnet50",
        label_set: str | Sequence[str] = "cityscapes",
        terrain: bool = False,
        element_classes: Mapping[str, Sequence[str]] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(device)
        if not model:
            raise BackendError(
                "--backend torchvision needs --model CHECKPOINT (a .pth state dict or URL) trained on "
                "street scenes; torchvision's own weights are VOC classes without building, road or sky"
            )
        if arch not in ARCHITECTURES:
            raise BackendError(f"--arch {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
        self.label_set = labels = resolve(label_set, terrain=terrain, element_classes=element_classes)
        state = load_state_dict(model)
        network = getattr(segmentation, arch)(
            weights=None,
            weights_backbone=None,
            num_classes=len(labels),
            aux_loss=any(k.startswith("aux_classifier.") for k in state),
        )
        try:
            network.load_state_dict(state)
        except RuntimeError as error:
            raise BackendError(
                f"--model {model} does not fit {arch} with {len(labels)} classes "
                f"({labels.name}): {str(error).splitlines()[0]} — check --arch and the label names"
            ) from error
        network.eval().to(device)
        if self.cuda:
            network.to(memory_format=torch.channels_last)
        self.network = network
        self.input_size = tuple(input_size) if input_size else None
        self.source = model if "://" in model else str(Path(model).expanduser().resolve())
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
        self.parameters = {"arch": arch, "terrain": terrain, "input_size": self.input_size}

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        height, width = batch.shape[-2:]
        pixels = (batch.float() - self.mean) / self.std
        if self.input_size:
            pixels = F.interpolate(pixels, size=self.input_size, mode="bilinear", align_corners=False)
        if self.cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            scores = self.network(pixels)["out"]
            if scores.shape[-2:] != (height, width):
                return upsampled_argmax(scores, height, width)
            return scores.argmax(dim=1)
