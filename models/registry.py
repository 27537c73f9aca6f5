"""The checkpoints streetaudit is known to work with, each with the label set it predicts.

Any Hugging Face semantic segmentation checkpoint can be passed as --model; these are the
ones whose class names map onto the six elements without help, so a short name is enough to
download them (`streetaudit models download segformer-b2-cityscapes`) before going offline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Checkpoint:
    name: str
    backend: str  # as `segment --backend`
    label_set: str  # a built-in label set (models/label_sets.py)
    #: the hub id `models download` fetches; None where the user brings the weights
    repo_id: str | None
    architecture: str
    note: str = ""


SEGFORMER_NOTES = {
    "b0": "default; 3.7 M parameters, fastest",
    "b1": "13.7 M parameters",
    "b2": "27.4 M parameters",
    "b3": "47.3 M parameters",
    "b4": "64.1 M parameters",
    "b5": "84.7 M parameters, most accurate SegFormer",
}

CHECKPOINTS: tuple[Checkpoint, ...] = (
    *(
        Checkpoint(
            name=f"segformer-{size}-cityscapes",
            backend="hf",
            label_set="cityscapes",
            repo_id=f"nvidia/segformer-{size}-finetuned-cityscapes-1024-1024",
            architecture=f"SegFormer-{size.upper()}",
            note=note,
        )
        for size, note in SEGFORMER_NOTES.items()
    ),
    Checkpoint(
        name="mask2former-swin-large-cityscapes",
        backend="hf",
        label_set="cityscapes",
        repo_id="facebook/mask2former-swin-large-cityscapes-semantic",
        architecture="Mask2Former Swin-L",
        note="strongest Cityscapes model; slow on CPU",
    ),
    Checkpoint(
        name="mask2former-swin-large-mapillary-vistas",
        backend="hf",
        label_set="mapillary-vistas",
        repo_id="facebook/mask2former-swin-large-mapillary-vistas-semantic",
        architecture="Mask2Former Swin-L",
        note="more street classes (curbs, crosswalks)",
    ),
    Checkpoint(
        name="upernet-convnext-small-ade20k",
        backend="hf",
        label_set="ade20k",
        repo_id="openmmlab/upernet-convnext-small",
        architecture="UperNet ConvNeXt-S",
        note="ADE20K scenes (150 classes)",
    ),
    Checkpoint(
        name="upernet-swin-small-ade20k",
        backend="hf",
        label_set="ade20k",
        repo_id="openmmlab/upernet-swin-small",
        architecture="UperNet Swin-S",
        note="ADE20K scenes (150 classes)",
    ),
    Checkpoint(
        name="deeplabv3-resnet50-cityscapes",
        backend="torchvision",
        label_set="cityscapes",
        repo_id=None,
        architecture="torchvision deeplabv3_resnet50",
        note="your own Cityscapes-trained .pth: --backend torchvision --model FILE --labels cityscapes",
    ),
)

BY_NAME = {c.name: c for c in CHECKPOINTS}
DEFAULT_CHECKPOINT = "segformer-b0-cityscapes"


def find(name: str) -> Checkpoint | None:
    """A listed checkpoint by short name or hub id."""
    return BY_NAME.get(name) or next((c for c in CHECKPOINTS if c.repo_id == name), None)
