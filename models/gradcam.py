"""Grad-CAM heat maps of a torchvision detector, and the statistics that make them comparable.

The Harbin study read its heat maps by eye: the heritage signal sits near windows and the
top of facades. Here each map becomes four numbers — the share of heat inside the boxes
the detector predicted, on building pixels (the segmentation mask), the heat-weighted mean
relative height within the facade (0 at its base, 1 at its top) and the share in the
facade's upper third — so that the finding can be tested across a city.

The CAM is taken at the output of the detector's backbone (all FPN levels resized to the
coarsest, as pytorch-grad-cam's `fasterrcnn_reshape_transform`, or the single feature map
of the tiny test detector), cropped to the part that covers the image (torchvision pads the
resized batch to a multiple of 32), and scaled to the image's own pixels.

Methods: Grad-CAM, Grad-CAM++, EigenCAM (gradient-free; its sign oriented here) and
HiResCAM. On detectors Grad-CAM's channel-averaged gradients can be negative in every
channel that is active: the tiny detector of the tests marks its red windows by
*suppressing* background channels (mean activation ~0.4 everywhere, the box score rises
where they fall), so every channel weight but a few idle ones is negative and ReLU(sum of
weight x activation) is zero everywhere. Hooks, targets and layer are not the cause: the
gradients reach the backbone and the boxes match (tests/test_detections.py recomputes
the weights by hand), and taking the CAM before the last ReLU does not help either. Such a
map is returned with status `empty` (stored so, its shares NULL) rather than passed off as
one; HiResCAM multiplies gradient and activation element-wise and stays faithful to the
box scores there.

Every CAM object is used inside `with`, which removes its forward hooks: a detector
explained a thousand times must not carry a thousand hooks.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("gradcam", "gradcam++", "eigencam", "hirescam")
TARGETS = ("boxes",)


def oriented_projection(activations: np.ndarray) -> np.ndarray:
    """EigenCAM's map (first principal component of the activations), signed to agree with them.

    The sign of a principal component is arbitrary, so pytorch-grad-cam's EigenCAM may
    light up the background instead of the objects; here the projection is flipped when it
    correlates negatively with the activations' total (they are post-ReLU, so large where
    the network responds).
    """
    maps = []
    for sample in np.asarray(activations, dtype=np.float64):
        channels = sample.reshape(sample.shape[0], -1).T
        centered = channels - channels.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        projection = centered @ vt[0]
        energy = channels.sum(axis=1)
        if projection.std() > 0 and energy.std() > 0 and np.corrcoef(projection, energy)[0, 1] < 0:
            projection = -projection
        maps.append(projection.reshape(sample.shape[1:]))
    return np.stack(maps).astype(np.float32)


def cam_class(method: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM

    class OrientedEigenCAM(EigenCAM):
        def get_cam_image(
            self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth
        ):
            return oriented_projection(activations)

    classes = {
        "gradcam": GradCAM,
        "gradcam++": GradCAMPlusPlus,
        "eigencam": OrientedEigenCAM,
        "hirescam": HiResCAM,
    }
    if method not in classes:
        raise ValueError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    return classes[method]


class _CroppedFeatures:
    """Backbone output -> one (N, C, h, w) map over the image's own (unpadded) area."""

    def __init__(self, fraction: tuple[float, float]) -> None:
        self.fraction = fraction

    def __call__(self, features) -> torch.Tensor:
        if isinstance(features, (dict, OrderedDict)):
            values = list(features.values())
            size = (features["pool"] if "pool" in features else values[-1]).shape[-2:]
            features = torch.cat(
                [F.interpolate(torch.abs(v), size, mode="bilinear", align_corners=False) for v in values], 1
            )
        h = max(1, math.ceil(features.shape[-2] * self.fraction[0]))
        w = max(1, math.ceil(features.shape[-1] * self.fraction[1]))
        return features[..., :h, :w]


@dataclass
class HeatMap:
    heat: np.ndarray  # (H, W) float32 in [0, 1], the image's own size
    boxes: np.ndarray  # (n, 4) predicted boxes x1 y1 x2 y2 in pixels
    labels: list[int]
    scores: list[float]
    # ok; empty: the method found no positive evidence (an all-zero map); no_boxes: no
    # predicted box at the threshold for a gradient method to explain.
    status: str = "ok"


def _unpadded_fraction(model: Any, image: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        batch, _ = model.transform([image])
    (h, w), (ph, pw) = batch.image_sizes[0], batch.tensors.shape[-2:]
    return h / ph, w / pw


def explain_image(
    model: nn.Module, image: torch.Tensor, method: str = "gradcam", score_threshold: float = 0.3
) -> HeatMap:
    """The heat map of one (3, H, W) float image in [0, 1] for the boxes the detector predicts."""
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    model.eval()
    with torch.no_grad():
        output = model([image])[0]
    keep = output["scores"] >= score_threshold
    boxes = output["boxes"][keep].detach()
    labels = output["labels"][keep].detach()
    scores = output["scores"][keep].detach()
    height, width = image.shape[-2:]
    heat = np.zeros((height, width), dtype=np.float32)
    explained = bool(len(boxes)) or method == "eigencam"  # the others need a box to explain
    if explained:
        target = FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)
        transform = _CroppedFeatures(_unpadded_fraction(model, image))
        with cam_class(method)(model, [model.backbone], reshape_transform=transform) as cam:
            heat = cam(image[None], targets=[target])[0].astype(np.float32)
            cam.activations_and_grads.release()
    heat = np.nan_to_num(heat, nan=0.0)
    status = "ok" if heat.max(initial=0.0) > 0 else ("empty" if explained else "no_boxes")
    return HeatMap(
        heat, boxes.cpu().numpy().reshape(-1, 4), labels.cpu().tolist(), scores.cpu().tolist(), status
    )


def hook_count(model: nn.Module) -> int:
    """Forward and backward hooks on every module (to check a CAM left none behind)."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )


# -- statistics ---------------------------------------------------------------------------
def boxes_mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """Pixels whose centre lies in at least one box (pixel (r, c) has centre (c + .5, r + .5))."""
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        c0, c1 = max(0, math.ceil(x1 - 0.5)), min(shape[1], math.ceil(x2 - 0.5))
        r0, r1 = max(0, math.ceil(y1 - 0.5)), min(shape[0], math.ceil(y2 - 0.5))
        mask[r0:r1, c0:c1] = True
    return mask


def facade_heights(building: np.ndarray) -> np.ndarray:
    """Per pixel, its relative height within its column's facade; NaN outside any facade.

    A column's facade spans from its topmost to its lowest building pixel (windows or
    signs the segmentation calls something else still belong to it): 0 at the base, 1 at
    the top; a one-pixel facade is 0.5.
    """
    rows = np.arange(building.shape[0])[:, None]
    has = building.any(axis=0)
    top = np.where(has, building.argmax(axis=0), 0)
    base = np.where(has, building.shape[0] - 1 - building[::-1].argmax(axis=0), -1)
    span = (base - top).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(span > 0, (base - rows) / np.where(span > 0, span, 1), 0.5)
    inside = has & (rows >= top) & (rows <= base)
    return np.where(inside, relative, np.nan)


@dataclass
class HeatStats:
    inside_boxes: float | None
    on_building: float | None
    facade_height: float | None
    upper_third: float | None


def _share(part: float, whole: float) -> float | None:
    return float(min(1.0, max(0.0, part / whole))) if whole > 0 else None


def heat_statistics(heat: np.ndarray, boxes: np.ndarray, building: np.ndarray | None) -> HeatStats:
    """The four shares of a heat map; None where they are undefined (no heat, no boxes, no mask)."""
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0, None)
    total = heat.sum()
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    inside = _share(heat[boxes_mask(heat.shape, boxes)].sum(), total) if len(boxes) else None
    if building is None:
        return HeatStats(inside, None, None, None)
    building = resize_mask(building, heat.shape)
    relative = facade_heights(building)
    in_facade = ~np.isnan(relative)
    facade_heat = heat[in_facade].sum()
    height = (
        float(np.clip((heat[in_facade] * relative[in_facade]).sum() / facade_heat, 0, 1))
        if facade_heat > 0
        else None
    )
    upper = _share(heat[in_facade & (np.nan_to_num(relative) > 2 / 3)].sum(), facade_heat)
    return HeatStats(inside, _share(heat[building].sum(), total), height, upper)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask at another size (nearest neighbour), as masks may be stored smaller."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    rows = (np.arange(shape[0]) * mask.shape[0] // shape[0]).clip(0, mask.shape[0] - 1)
    cols = (np.arange(shape[1]) * mask.shape[1] // shape[1]).clip(0, mask.shape[1] - 1)
    return mask[rows][:, cols]


# -- overlays -----------------------------------------------------------------------------
def overlay_png(image: np.ndarray, heat: np.ndarray, boxes: np.ndarray, alpha: float = 0.5) -> bytes:
    """The image with the heat map in the jet colour map on top and the predicted boxes drawn."""
    from PIL import Image, ImageDraw
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.asarray(image, dtype=np.float32) / 255.0
    blended = show_cam_on_image(rgb, np.clip(heat, 0, 1), use_rgb=True, image_weight=1 - alpha)
    picture = Image.fromarray(blended)
    draw = ImageDraw.Draw(picture)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        draw.rectangle([x1, y1, x2, y2], outline=(255, 255, 255), width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
