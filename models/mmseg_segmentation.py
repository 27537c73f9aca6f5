"""OpenMMLab mmsegmentation backend (optional extra `streetaudit[openmmlab]`).

mmseg needs mmcv with compiled ops, which has only a source release for current torch;
the README gives the build recipe. The core install never imports this module.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from streetaudit.models.backend import BackendError, SegmentationBackend
from streetaudit.models.label_sets import from_labels, resolve

MMCV_RECIPE = (
    "pip install -e '.[openmmlab]' 'setuptools<81' ninja (repository root); then build mmcv 2.1.0 from source: "
    "pip download --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 && tar xzf mmcv-2.1.0.tar.gz && "
    "sed -i 's/-std=c++17/-std=c++20/g' mmcv-2.1.0/setup.py && "
    "MMCV_WITH_OPS=1 pip install --no-build-isolation ./mmcv-2.1.0 (about 20 minutes on 2 cores; "
    "see README, 'OpenMMLab backend')"
)


class MmsegBackend(SegmentationBackend):
    name = "mmseg"

    def __init__(
        self,
        model: str | None,
        device: torch.device,
        *,
        checkpoint: str | None = None,
        terrain: bool = False,
        label_set: str | Sequence[str] | None = None,
        element_classes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(device)
        if not model or not checkpoint:
            raise BackendError("--backend mmseg needs --model CONFIG.py and --checkpoint WEIGHTS.pth")
        try:
            from mmseg.apis import init_model
        except ImportError as error:
            raise BackendError(
                f"the mmseg backend needs mmsegmentation and mmcv ({error}): {MMCV_RECIPE}"
            ) from error
        # Local paths absolute, so the model row names the same files from any working directory.
        model, checkpoint = (
            v if "://" in v else str(Path(v).expanduser().resolve()) for v in (model, checkpoint)
        )
        for option, value in (("--model", model), ("--checkpoint", checkpoint)):
            if "://" not in value and not Path(value).is_file():
                raise BackendError(f"{option} {value}: no such file")
        try:
            self.network = init_model(model, checkpoint, device=str(device))
        except pickle.UnpicklingError as error:
            # torch >= 2.6 loads only tensors by default; mmengine's runner also saves numpy
            # values and its own objects (message_hub) in the checkpoint.
            raise BackendError(
                f"--checkpoint {checkpoint}: torch >= 2.6 refuses to unpickle its non-tensor contents. "
                "If you trust the file, run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, or re-save only its "
                "'state_dict' and 'meta'"
            ) from error
        except KeyError as error:  # mmseg reads checkpoint["meta"] unguarded
            raise BackendError(
                f"--checkpoint {checkpoint}: no {error} in it; mmseg wants "
                "{'state_dict': ..., 'meta': {'dataset_meta': {'classes': [...]}}}"
            ) from error
        classes = list(self.network.dataset_meta["classes"])
        if label_set is not None:
            self.label_set = resolve(label_set, terrain=terrain, element_classes=element_classes)
        else:
            self.label_set = from_labels(classes, terrain=terrain, element_classes=element_classes)
        self.source = f"{model}+{checkpoint}"
        self.parameters = {"config": str(model), "checkpoint": checkpoint, "terrain": terrain}

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        from mmseg.apis import inference_model

        # mmseg's pipelines expect BGR HWC arrays, as cv2 reads them.
        images = [image.flip(0).permute(1, 2, 0).cpu().numpy() for image in batch]
        results = inference_model(self.network, images)
        return torch.stack([r.pred_sem_seg.data[0] for r in results]).to(self.device)
