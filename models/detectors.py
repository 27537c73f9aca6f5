"""Heritage-feature detectors: building one by name, and the one file format they travel in.

The Harbin study trained a Faster R-CNN with a ResNeXt-101 32x8d FPN backbone by transfer
learning and compared it with RetinaNet, SSD and YOLOv3-SPP. torchvision has all but
YOLO, so an architecture here is a torchvision builder plus the two facts transfer
learning needs: which library weights exist for the whole detector (COCO) or only for its
backbone (ImageNet), and how to give the class head our number of labels.

Class index 0 is background for every architecture; label i + 1 is `labels[i]`.

A trained detector is saved as one `.pt` file holding a plain dict (architecture, labels,
input options, state dict) so that `torch.load(weights_only=True)` can read it, prediction
and Grad-CAM rebuild exactly the trained network from the file alone, and `--weights`
accepts the file to continue from (with other labels: all but the class head is reused).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streetaudit.models.backend import BackendError, WeightsUnavailable
from streetaudit.models.weights import first_line

FORMAT = "streetaudit-detector"
VERSION = 1
#: what `--weights` means when it names no file: no pretrained weights at all
NO_WEIGHTS = ("", "none", "random")


@dataclass(frozen=True)
class Architecture:
    name: str
    summary: str
    #: torchvision weights enum of the whole detector (COCO), None when only a backbone has any
    detector_weights: str | None
    #: torchvision weights enum of the backbone (ImageNet)
    backbone_weights: str | None
    build: Callable[..., nn.Module] = field(repr=False)
    #: whether images are resized to (min_size, max_size) by the model; SSD is fixed at 300×300
    resizes: bool = True
    #: how many backbone stages can be trained (torchvision's trainable_backbone_layers)
    max_trainable_layers: int = 5


@dataclass
class Detector:
    """A network ready to run, with what it was trained to find."""

    model: nn.Module
    architecture: str
    labels: list[str]
    options: dict[str, Any]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def label_name(self, index: int) -> str:
        return self.labels[index - 1] if 1 <= index <= len(self.labels) else "background"


def _torchvision_weights(enum_name: str | None, choice: str | None, what: str):
    """torchvision's weights enum member for a user's `--weights` word (DEFAULT, COCO_V1, …)."""
    if choice is None or choice.lower() in NO_WEIGHTS:
        return None
    from torchvision.models import get_weight

    if enum_name is None:
        raise BackendError(f"{what} {choice!r}: this architecture has no library weights of that kind")
    member = choice.split(".")[-1].upper()
    try:
        return get_weight(f"{enum_name}.{member}")
    except (ValueError, KeyError, AttributeError):
        import torchvision.models as tvm

        enum = getattr(tvm, enum_name, None) or getattr(tvm.detection, enum_name)
        names = ", ".join(["DEFAULT", *enum.__members__])
        raise BackendError(f"{what} {choice!r}: not one of {enum_name}'s weights ({names})") from None


def _replace_class_head(model: Any, architecture: str, num_classes: int) -> None:
    """Give a COCO-trained detector a class head for our labels (the rest is transferred)."""
    from torchvision.models.detection import fcos, retinanet, ssd
    from torchvision.models.detection._utils import retrieve_out_channels
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    if architecture.startswith("fasterrcnn"):
        predictor = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(predictor.cls_score.in_features, num_classes)
    elif architecture.startswith("retinanet"):
        head = model.head.classification_head
        anchors = model.anchor_generator.num_anchors_per_location()[0]
        model.head.classification_head = retinanet.RetinaNetClassificationHead(
            head.conv[0][0].in_channels, anchors, num_classes, norm_layer=partial(nn.GroupNorm, 32)
        )
    elif architecture.startswith("fcos"):
        head = model.head.classification_head
        model.head.classification_head = fcos.FCOSClassificationHead(
            head.conv[0].in_channels, model.anchor_generator.num_anchors_per_location()[0], num_classes
        )
    elif architecture.startswith("ssd"):
        channels = retrieve_out_channels(model.backbone, (300, 300))
        anchors = model.anchor_generator.num_anchors_per_location()
        model.head.classification_head = ssd.SSDClassificationHead(channels, anchors, num_classes)
    else:  # pragma: no cover - every ARCHITECTURES entry is handled above
        raise BackendError(f"no class head rule for {architecture}")
    model.num_classes = num_classes


def _torchvision_builder(function: str, architecture: str):
    def build(
        num_classes: int,
        weights: str | None,
        weights_backbone: str | None,
        trainable_layers: int | None,
        options: dict[str, Any],
    ) -> nn.Module:
        import torchvision.models.detection as detection

        spec = ARCHITECTURES[architecture]
        detector_weights = _torchvision_weights(spec.detector_weights, weights, "--weights")
        backbone_weights = _torchvision_weights(spec.backbone_weights, weights_backbone, "--weights-backbone")
        kwargs: dict[str, Any] = {}
        if spec.resizes:
            kwargs.update(min_size=options["min_size"], max_size=options["max_size"])
        if trainable_layers is not None:
            kwargs["trainable_backbone_layers"] = trainable_layers
        builder = getattr(detection, function)
        if detector_weights is None:
            return builder(weights=None, weights_backbone=backbone_weights, num_classes=num_classes, **kwargs)
        model = builder(weights=detector_weights, weights_backbone=None, **kwargs)
        _replace_class_head(model, architecture, num_classes)
        return model

    return build


def _build_resnext101(
    num_classes: int,
    weights: str | None,
    weights_backbone: str | None,
    trainable_layers: int | None,
    options: dict[str, Any],
) -> nn.Module:
    """The Harbin study's detector: Faster R-CNN on a ResNeXt-101 32x8d FPN backbone.

    torchvision has no COCO weights for it, so transfer learning starts from the
    backbone's ImageNet weights, as the study's did.
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    if weights is not None and weights.lower() not in NO_WEIGHTS:
        raise BackendError(
            f"--weights {weights!r}: there are no library COCO weights for fasterrcnn_resnext101_32x8d_fpn; "
            "use --weights-backbone DEFAULT (ImageNet) or --weights FILE from an earlier run"
        )
    backbone_weights = _torchvision_weights(
        "ResNeXt101_32X8D_Weights", weights_backbone, "--weights-backbone"
    )
    backbone = resnet_fpn_backbone(
        backbone_name="resnext101_32x8d",
        weights=backbone_weights,
        trainable_layers=trainable_layers if trainable_layers is not None else (3 if backbone_weights else 5),
    )
    return FasterRCNN(backbone, num_classes, min_size=options["min_size"], max_size=options["max_size"])


def _build_tiny(
    num_classes: int,
    weights: str | None,
    weights_backbone: str | None,
    trainable_layers: int | None,
    options: dict[str, Any],
) -> nn.Module:
    """A Faster R-CNN small enough to train on a CPU in a minute: for the demo and tests only.

    Three strided convolutions (stride 8, 32 channels) and a 128-wide box head, the rest
    torchvision's Faster R-CNN, so training, prediction and Grad-CAM run the same code
    paths as the real architectures.
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    for what, value in (("--weights", weights), ("--weights-backbone", weights_backbone)):
        if value is not None and value.lower() not in NO_WEIGHTS:
            raise BackendError(f"{what} {value!r}: fasterrcnn_tiny has no library weights (use none)")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    backbone = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 32))
    backbone.out_channels = 32  # type: ignore[assignment]
    anchors = AnchorGenerator(sizes=((16, 32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),))
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(32 * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        min_size=options["min_size"],
        max_size=options["max_size"],
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=128,
    )


ARCHITECTURES: dict[str, Architecture] = {
    spec.name: spec
    for spec in (
        Architecture(
            "fasterrcnn_resnext101_32x8d_fpn",
            "Faster R-CNN, ResNeXt-101 32x8d FPN (the Harbin study's; ImageNet backbone weights)",
            None,
            "ResNeXt101_32X8D_Weights",
            _build_resnext101,
        ),
        Architecture(
            "fasterrcnn_resnet50_fpn_v2",
            "Faster R-CNN, ResNet-50 FPN v2 (COCO weights; the fast default for trials)",
            "FasterRCNN_ResNet50_FPN_V2_Weights",
            "ResNet50_Weights",
            _torchvision_builder("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn_v2"),
        ),
        Architecture(
            "retinanet_resnet50_fpn_v2",
            "RetinaNet, ResNet-50 FPN v2 (one-stage, focal loss; COCO weights)",
            "RetinaNet_ResNet50_FPN_V2_Weights",
            "ResNet50_Weights",
            _torchvision_builder("retinanet_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2"),
        ),
        Architecture(
            "ssd300_vgg16",
            "SSD300, VGG-16 (one-stage, fixed 300×300 input; COCO weights)",
            "SSD300_VGG16_Weights",
            "VGG16_Weights",
            _torchvision_builder("ssd300_vgg16", "ssd300_vgg16"),
            resizes=False,
        ),
        Architecture(
            "fcos_resnet50_fpn",
            "FCOS, ResNet-50 FPN (anchor-free; COCO weights)",
            "FCOS_ResNet50_FPN_Weights",
            "ResNet50_Weights",
            _torchvision_builder("fcos_resnet50_fpn", "fcos_resnet50_fpn"),
        ),
        Architecture(
            "fasterrcnn_tiny",
            "A tiny Faster R-CNN for CPU demos and tests (no pretrained weights; not for real use)",
            None,
            None,
            _build_tiny,
        ),
    )
}
DEFAULT_ARCHITECTURE = "fasterrcnn_resnet50_fpn_v2"
#: the study's panoramas are 1024×512; the shorter side 512 keeps them at their own size
DEFAULT_OPTIONS: dict[str, Any] = {"min_size": 512, "max_size": 1024}


def check_labels(labels: Sequence[str]) -> list[str]:
    names = [str(label).strip() for label in labels]
    if not names:
        raise BackendError("a detector needs at least one label")
    if any(not name for name in names):
        raise BackendError("labels must not be empty strings")
    if len(set(names)) != len(names):
        raise BackendError(f"labels repeat: {', '.join(names)}")
    if "background" in names:
        raise BackendError("'background' is class 0 of every detector; it is not a label")
    return names


def build_detector(
    architecture: str,
    labels: Sequence[str],
    *,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_layers: int | None = None,
    options: dict[str, Any] | None = None,
) -> Detector:
    """A detector for `labels`, from library weights (downloaded once, cached), a file, or none.

    `weights` is a torchvision weights name of the whole detector (DEFAULT, COCO_V1) or the
    path/URL of a detector file saved by `save_detector` (any labels: the class head is
    rebuilt when they differ); `weights_backbone` names ImageNet backbone weights.
    """
    if architecture not in ARCHITECTURES:
        raise BackendError(f"--architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}")
    spec = ARCHITECTURES[architecture]
    labels = check_labels(labels)
    if trainable_layers is not None and not 0 <= trainable_layers <= spec.max_trainable_layers:
        raise BackendError(
            f"--trainable-backbone-layers {trainable_layers}: must be 0…{spec.max_trainable_layers}"
        )
    merged = {**DEFAULT_OPTIONS, **(options or {})}
    for key in ("min_size", "max_size"):
        if int(merged[key]) < 32:
            raise BackendError(f"{key} {merged[key]}: must be at least 32 pixels")
    if int(merged["min_size"]) > int(merged["max_size"]):
        raise BackendError(f"min_size {merged['min_size']} is larger than max_size {merged['max_size']}")
    from_file = weights is not None and weights.lower() not in NO_WEIGHTS and _is_file_or_url(weights)
    try:
        model = spec.build(
            len(labels) + 1, None if from_file else weights, weights_backbone, trainable_layers, merged
        )
    except OSError as error:  # urllib's URLError is an OSError: offline and not cached
        raise WeightsUnavailable(
            f"cannot download the library weights for {architecture} ({first_line(error)}). Run once "
            "where there is network (they are cached under TORCH_HOME, default ~/.cache/torch), copy "
            "that cache here, or pass --weights none / --weights FILE"
        ) from error
    detector = Detector(model, architecture, labels, merged)
    if from_file:
        assert weights is not None
        start = read_detector_file(weights)
        if start["architecture"] != architecture:
            raise BackendError(
                f"--weights {weights}: a {start['architecture']} detector, not {architecture} "
                f"(pass --architecture {start['architecture']})"
            )
        _load_matching(model, start["state_dict"], weights)
    return detector


def _is_file_or_url(value: str) -> bool:
    return (
        value.startswith(("http://", "https://")) or value.endswith((".pt", ".pth")) or Path(value).exists()
    )


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor whose name and shape match: all but the class head when labels changed."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise BackendError(f"--weights {source}: no tensor of the file fits this network")
    model.load_state_dict(usable, strict=False)


def save_detector(path: str | Path, detector: Detector, **extra: Any) -> Path:
    """Write the detector file atomically: a killed run never leaves half a file under the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = detector.model
    model = getattr(model, "module", model)  # DistributedDataParallel
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": detector.architecture,
        "labels": list(detector.labels),
        "options": dict(detector.options),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    partial_path = path.with_name(f".{path.name}.partial")
    torch.save(payload, partial_path)
    os.replace(partial_path, path)
    return path


def read_detector_file(source: str | Path) -> dict[str, Any]:
    """The dict a detector file holds, checked, from a path or a URL (cached by torch.hub)."""
    text = str(source)
    try:
        if text.startswith(("http://", "https://")):
            try:
                payload = torch.hub.load_state_dict_from_url(text, map_location="cpu", weights_only=True)
            except OSError as error:
                raise WeightsUnavailable(
                    f"cannot download {text} ({first_line(error)}); download it where there is network "
                    "and pass the file, or put it in torch's hub cache (TORCH_HOME)"
                ) from error
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise BackendError(f"{text}: no detector file there")
            if path.stat().st_size == 0:
                raise BackendError(f"{text}: the detector file is empty (0 bytes)")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise BackendError(f"{text}: cannot read the detector file ({first_line(error)})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BackendError(
            f"{text}: not a streetaudit detector file (save one with `streetaudit detect train`)"
        )
    if int(payload.get("version", 0)) > VERSION:
        raise BackendError(
            f"{text}: detector file version {payload['version']} is newer than this streetaudit"
        )
    if payload.get("architecture") not in ARCHITECTURES:
        raise BackendError(f"{text}: unknown architecture {payload.get('architecture')!r}")
    return payload


def load_detector(source: str | Path, device: torch.device | str = "cpu") -> Detector:
    """Rebuild the trained network from its file alone, in eval mode on `device`."""
    payload = read_detector_file(source)
    detector = build_detector(
        payload["architecture"], payload["labels"], options=payload.get("options") or {}
    )
    try:
        detector.model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise BackendError(
            f"{source}: the weights do not fit {payload['architecture']} ({first_line(error)})"
        ) from error
    detector.model.to(device).eval()
    detector.source = str(source)
    known = {"format", "version", "architecture", "labels", "options", "state_dict"}
    detector.extra = {k: v for k, v in payload.items() if k not in known}
    return detector
