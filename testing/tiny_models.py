"""Random-weight models saved in the real checkpoint formats: tests load them through the
same code that loads a downloaded checkpoint, with nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from streetaudit.models.label_sets import CITYSCAPES


def tiny_segformer(
    folder: Path, labels: Sequence[str] = CITYSCAPES, seed: int = 0, size: tuple[int, int] = (64, 128)
) -> Path:
    """A two-block SegFormer with `labels` as its classes; its processor resizes to `size` (height, width)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 1],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(seed)
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": size[0], "width": size[1]}).save_pretrained(folder)
    return folder
