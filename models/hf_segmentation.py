"""Hugging Face transformers backend: SegFormer, UperNet, BEiT, DPT, and Mask2Former/MaskFormer.

Preprocessing is the checkpoint's own image processor (resize, rescale, normalise), run
on the device on the already-decoded batch; logits are upsampled bilinearly to each
image's size before the argmax, so a class map has one entry per image pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from streetaudit.models.backend import BackendError, SegmentationBackend, upsampled_argmax
from streetaudit.models.label_sets import from_labels, resolve
from streetaudit.models.weights import checkpoint_dir, load_hf

DEFAULT_MODEL = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
# Query-based models return per-query classes and masks instead of per-pixel logits.
UNIVERSAL = {"mask2former", "maskformer", "oneformer"}


class HFBackend(SegmentationBackend):
    name = "hf"

    def __init__(
        self,
        model: str | None,
        device: torch.device,
        *,
        terrain: bool = False,
        label_set: str | Sequence[str] | None = None,
        element_classes: Mapping[str, Sequence[str]] | None = None,
        cache_dir: str | None = None,
        revision: str | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(device)
        from transformers import (
            AutoConfig,
            AutoImageProcessor,
            AutoModelForSemanticSegmentation,
            AutoModelForUniversalSegmentation,
        )
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the one that matters
        model = model or DEFAULT_MODEL
        folder = checkpoint_dir(model)
        self.source = str(folder) if folder else (f"{model}@{revision}" if revision else model)
        config = load_hf(AutoConfig, model, cache_dir=cache_dir, revision=revision)
        self.universal = config.model_type in UNIVERSAL
        loader = AutoModelForUniversalSegmentation if self.universal else AutoModelForSemanticSegmentation
        try:
            network = load_hf(loader, model, cache_dir=cache_dir, revision=revision)
        except ValueError as error:  # a checkpoint of another task (classification, detection)
            raise BackendError(
                f"--model {model}: not a semantic segmentation checkpoint ({error})"
            ) from error
        # The checkpoint's own preprocessing; only the input size may be overridden (speed vs detail).
        size = {"size": {"height": int(input_size[0]), "width": int(input_size[1])}} if input_size else {}
        self.processor = load_hf(AutoImageProcessor, model, cache_dir=cache_dir, revision=revision, **size)

        labels = [network.config.id2label[i] for i in range(len(network.config.id2label))]
        if label_set is not None:
            chosen = resolve(label_set, terrain=terrain, element_classes=element_classes)
            if len(chosen) != len(labels):
                raise BackendError(
                    f"--labels {label_set}: {len(chosen)} classes, but the model predicts {len(labels)}"
                )
            self.label_set = chosen
        else:
            self.label_set = from_labels(labels, terrain=terrain, element_classes=element_classes)

        network.eval().to(device)
        if self.cuda:
            network.to(memory_format=torch.channels_last)
        self.network = network
        self.parameters = {
            "model_type": config.model_type,
            "processor": type(self.processor).__name__,
            "input_size": _size_of(self.processor),
            "terrain": terrain,
        }

    @property
    def model_name(self) -> str:
        return self.source.rsplit("/", 1)[-1] if "/" in self.source else self.source

    def pixel_values(self, batch: torch.Tensor) -> torch.Tensor:
        # Resizing to the size the image already has changes no value but costs as much as
        # the rest of preprocessing; skip it then.
        size = getattr(self.processor, "size", None)
        same = (getattr(size, "height", None), getattr(size, "width", None)) == tuple(batch.shape[-2:])
        extra = {"do_resize": False} if same else {}
        pixels = self.processor(images=batch, return_tensors="pt", device=self.device, **extra)[
            "pixel_values"
        ]
        pixels = pixels.to(self.device, non_blocking=True)
        return pixels.contiguous(memory_format=torch.channels_last) if self.cuda else pixels

    def scores(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, classes, h, w) class scores at the model's output resolution."""
        output = self.network(pixel_values=pixels)
        if not self.universal:
            return output.logits
        # As transformers' post_process_semantic_segmentation: class probabilities (without
        # the "no object" class) weighted by each query's mask.
        classes = output.class_queries_logits.softmax(dim=-1)[..., :-1]
        masks = output.masks_queries_logits.sigmoid()
        return torch.einsum("bqc,bqhw->bchw", classes, masks)

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        height, width = batch.shape[-2:]
        with self.autocast():
            scores = self.scores(self.pixel_values(batch))
            return upsampled_argmax(scores, height, width)


def _size_of(processor: Any) -> Any:
    size = getattr(processor, "size", None)
    if size is None:
        return None
    if hasattr(size, "items"):
        return {k: v for k, v in dict(size).items() if v is not None}
    return {k: v for k, v in vars(size).items() if v is not None} if hasattr(size, "__dict__") else str(size)
