"""OpenMMLab mmdetection as an optional detector backend (extra `streetaudit[openmmlab]`), for
prediction: any mmdet 3.x config and checkpoint (YOLOv3, DETR, Cascade R-CNN…) behind the same
interface as the torchvision detectors, so `detect predict` stores its boxes like theirs.

mmdet needs mmcv with compiled ops (a source build, README "OpenMMLab backend"); the core
install never imports this module. Training stays with torchvision (`detect train`): mmdet
trains with its own runner (`tools/train.py CONFIG`), whose checkpoint this backend then reads.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streetaudit.models.backend import BackendError
from streetaudit.models.detectors import Detector

MMDET_RECIPE = (
    "pip install -e '.[openmmlab]' 'mmdet==3.3.0' 'setuptools<81' ninja (repository root); then build mmcv "
    "from source: pip download --no-deps --no-binary :all: mmcv==2.1.0 && tar xzf mmcv-2.1.0.tar.gz && "
    "sed -i 's/-std=c++17/-std=c++20/g' mmcv-2.1.0/setup.py && "
    "MMCV_WITH_OPS=1 pip install --no-build-isolation ./mmcv-2.1.0 (README, 'OpenMMLab backend')"
)


class MmdetNetwork(nn.Module):
    """An mmdet detector called like a torchvision one in eval mode: a list of (3, H, W) float
    images in [0, 1] in, a list of {boxes (x1 y1 x2 y2 pixels), scores, labels (1-based)} out.

    mmdet's test pipeline (resize, normalisation, BGR order) comes from its config, so the
    images are handed over as the uint8 BGR arrays it expects from a file.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        from mmdet.apis import inference_detector

        arrays = [
            np.ascontiguousarray(
                (image.detach().float().clamp(0, 1) * 255)
                .round()
                .byte()
                .permute(1, 2, 0)
                .cpu()
                .numpy()[..., ::-1]
            )
            for image in images
        ]
        results = inference_detector(self.network, arrays)
        out = []
        for result in results:
            found = result.pred_instances
            out.append(
                {
                    "boxes": found.bboxes.float(),
                    "scores": found.scores.float(),
                    "labels": found.labels.long() + 1,  # class 0 is the background, as torchvision's
                }
            )
        return out


def absolute(value: str) -> str:
    return value if "://" in value else str(Path(value).expanduser().resolve())


def load_mmdet_detector(config: str | None, checkpoint: str | None, device: torch.device) -> Detector:
    """The detector of an mmdet config and checkpoint; its labels are the checkpoint's classes."""
    if not config or not checkpoint:
        raise BackendError("--backend mmdet needs --config CONFIG.py and --checkpoint WEIGHTS.pth")
    try:
        from mmdet.apis import init_detector
    except ImportError as error:
        raise BackendError(
            f"the mmdet backend needs mmdetection and mmcv ({error}): {MMDET_RECIPE}"
        ) from error
    config, checkpoint = absolute(config), absolute(checkpoint)
    for option, value in (("--config", config), ("--checkpoint", checkpoint)):
        if "://" not in value and not Path(value).is_file():
            raise BackendError(f"{option} {value}: no such file")
    try:
        network = init_detector(config, checkpoint, device=str(device))
    except pickle.UnpicklingError as error:
        raise BackendError(
            f"--checkpoint {checkpoint}: torch >= 2.6 refuses to unpickle its non-tensor contents. If you "
            "trust the file, run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, or re-save only 'state_dict' and 'meta'"
        ) from error
    classes = [str(c) for c in (network.dataset_meta or {}).get("classes", ())]
    if not classes:
        raise BackendError(
            f"--checkpoint {checkpoint}: no class names in it (meta.dataset_meta.classes); mmdet would "
            "call them by number"
        )
    return Detector(
        MmdetNetwork(network).eval(),
        f"mmdet:{Path(config).stem}",
        classes,
        {},
        source=f"{config}+{checkpoint}",
        extra={"config": config, "checkpoint": checkpoint},
    )
