"""Draws simple street scenes together with their true Cityscapes label maps.

The demo and the tests need imagery without a provider key or a network. A drawn scene —
sky, facades with windows, road, sidewalk, trees, cars — comes with the exact class of every
pixel, so the segmentation stage can be checked against the truth. Scenes vary with a seed
(point id and heading); heritage cores get taller, denser facades and fewer trees.

Heritage facades also carry the features the detector is to find, and the scene knows their
true boxes: a *window group* (the framed windows of one facade, label "window") and the
*facade top* (a terracotta cornice with dentils along the roofline, label "roof"). Plain facades
have unframed windows and no cornice, so the features are distinct and learnable. The
decorations use no random numbers, so the rest of a scene is what it was before them.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Cityscapes train ids (19 classes; 255 = ignore).
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR = 0, 1, 2, 8, 10, 13
IGNORE = 255

# Labels of the heritage features a scene knows boxes for.
WINDOW_GROUP, FACADE_TOP = "window", "roof"
FEATURE_LABELS = (WINDOW_GROUP, FACADE_TOP)
FRAME = np.array([250, 250, 250])  # white stone round each heritage window
CORNICE = np.array([125, 55, 45])  # terracotta band along the roofline
DENTIL = np.array([70, 60, 55])
# A box is kept only if this share of it is still building once trees and cars are drawn.
MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class Scene:
    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8 Cityscapes train ids
    # True boxes of heritage features: (label, x1, y1, x2, y2) in pixels, x2/y2 exclusive.
    boxes: tuple[tuple[str, int, int, int, int], ...] = ()
    # Drawn but mostly hidden behind a tree or car, so not a box a rater would draw.
    occluded: tuple[tuple[str, int, int, int, int], ...] = ()

    def jpeg(self, quality: int = 88) -> bytes:
        out = io.BytesIO()
        Image.fromarray(self.rgb).save(out, format="JPEG", quality=quality)
        return out.getvalue()

    def labels_png(self) -> bytes:
        out = io.BytesIO()
        Image.fromarray(self.labels, mode="L").save(out, format="PNG", compress_level=1)
        return out.getvalue()


def scene_seed(point_id: int, heading: float) -> int:
    return zlib.crc32(f"{point_id}:{heading:g}".encode())


def draw_scene(seed: int, width: int = 1024, height: int = 512, *, heritage: bool = False) -> Scene:
    rng = np.random.default_rng(seed)
    labels = np.full((height, width), SKY, dtype=np.uint8)
    rgb = np.empty((height, width, 3), dtype=np.float32)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    horizon = int(height * rng.uniform(0.52, 0.62))

    # Sky: a vertical gradient from deep to pale blue.
    t = (yy / height)[..., None]
    rgb[:] = (1 - t) * np.array([95, 145, 215]) + t * np.array([200, 220, 240])

    boxes = _draw_facades(rng, labels, rgb, horizon, width, height, heritage)
    _draw_ground(rng, labels, rgb, yy, xx, horizon, width)
    for _ in range(rng.poisson(0.8 if heritage else 3.5)):
        _draw_tree(rng, labels, rgb, yy, xx, horizon, width, height)
    for _ in range(rng.integers(0, 4)):
        _draw_car(rng, labels, rgb, horizon, width, height)

    rgb += rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    shown = [(labels[b[2] : b[4], b[1] : b[3]] == BUILDING).mean() >= MIN_VISIBLE for b in boxes]
    return Scene(
        np.clip(rgb, 0, 255).astype(np.uint8),
        labels,
        tuple(b for b, keep in zip(boxes, shown, strict=True) if keep),
        tuple(b for b, keep in zip(boxes, shown, strict=True) if not keep),
    )


def _draw_facades(rng, labels, rgb, horizon, width, height, heritage) -> list:
    """Facades left to right; on heritage ones a cornice and framed windows, and their boxes."""
    boxes: list[tuple[str, int, int, int, int]] = []
    x = 0
    gap_chance = 0.08 if heritage else 0.3
    while x < width:
        w = int(rng.integers(width // 12, width // 4))
        if rng.random() < gap_chance:
            x += w
            continue
        low, high = (0.05, 0.3) if heritage else (0.2, 0.42)
        top = int(height * rng.uniform(low, high))
        x1 = min(width, x + w)
        colour = np.array([200, 170, 140]) if heritage else np.array([170, 170, 175])
        colour = colour + rng.integers(-40, 40, size=3)
        labels[top:horizon, x:x1] = BUILDING
        rgb[top:horizon, x:x1] = colour
        windows_top = top
        if heritage:
            band = max(3, round(0.035 * height))
            rgb[top : top + band, x:x1] = CORNICE
            for dx in range(x + 1, x1 - 1, 6):  # dentils: a row of dark teeth under the cornice
                rgb[top + band : top + band + 2, dx : dx + 3] = DENTIL
            boxes.append((FACADE_TOP, x, top, x1, min(horizon, top + band + 2)))
            windows_top = top + band + 2
        group = _draw_windows(rng, rgb, x, x1, windows_top, horizon, framed=heritage)
        if heritage and group is not None:
            boxes.append((WINDOW_GROUP, *group))
        x = x1
    return boxes


def _draw_windows(rng, rgb, x0, x1, top, bottom, *, framed: bool = False) -> tuple | None:
    """Windows are part of the building class in Cityscapes: colour only, same label. Framed
    (heritage) windows get a 2-pixel stone frame; the group's box (frames included) is returned."""
    win_w, win_h = int(rng.integers(10, 22)), int(rng.integers(14, 28))
    step_x, step_y = win_w * 2, win_h * 2
    glass = np.array([60, 75, 95]) + rng.integers(-15, 15, size=3)
    pad = 2 if framed else 0
    group = None
    for y in range(top + win_h // 2, bottom - win_h - pad, step_y):
        for x in range(x0 + win_w // 2, x1 - win_w - pad, step_x):  # frames stay on their facade
            if framed:
                rgb[y - pad : y + win_h + pad, x - pad : x + win_w + pad] = FRAME
            rgb[y : y + win_h, x : x + win_w] = glass
            cell = (x - pad, y - pad, x + win_w + pad, y + win_h + pad)
            group = (
                cell
                if group is None
                else (
                    min(group[0], cell[0]),
                    min(group[1], cell[1]),
                    max(group[2], cell[2]),
                    max(group[3], cell[3]),
                )
            )
    return group


def _draw_ground(rng, labels, rgb, yy, xx, horizon, width) -> None:
    """Sidewalk below the horizon, a road narrowing to a vanishing point, lane markings."""
    below_labels, below_rgb = labels[horizon:], rgb[horizon:]
    below_labels[:] = SIDEWALK
    below_rgb[:] = np.array([165, 160, 150])
    depth = yy[horizon:] - horizon
    centre = width * rng.uniform(0.4, 0.6)
    spread = rng.uniform(1.2, 2.2)
    off = np.abs(xx - centre)
    road = off <= spread * depth + 4
    below_labels[road] = ROAD
    below_rgb[road] = np.array([80, 80, 85])
    # Lane markings: part of the road class.
    marks = road & (off <= 0.03 * depth + 1) & ((depth.astype(int) // 12) % 2 == 0)
    below_rgb[marks] = np.array([230, 230, 220])


def _draw_tree(rng, labels, rgb, yy, xx, horizon, width, height) -> None:
    cx = rng.uniform(0, width)
    base = horizon + rng.uniform(0.0, 0.08) * height
    radius = rng.uniform(0.06, 0.14) * height
    cy = base - radius * rng.uniform(1.4, 2.0)
    # Work inside the tree's bounding box only.
    y0, y1 = max(0, int(cy - radius)), min(height, int(base) + 1)
    x0, x1 = max(0, int(cx - radius * 1.1)), min(width, int(cx + radius * 1.1) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = yy[y0:y1], xx[:, x0:x1]
    box_labels, box_rgb = labels[y0:y1, x0:x1], rgb[y0:y1, x0:x1]
    trunk = (np.abs(xs - cx) <= radius * 0.12) & (ys >= cy) & (ys <= base)
    crown = ((xs - cx) / (radius * 1.1)) ** 2 + ((ys - cy) / radius) ** 2 <= 1.0
    box_labels[trunk] = VEGETATION
    box_rgb[trunk] = np.array([90, 65, 40])
    box_labels[crown] = VEGETATION
    box_rgb[crown] = np.array([60, 120, 50]) + rng.integers(-20, 20, size=3)


def _draw_car(rng, labels, rgb, horizon, width, height) -> None:
    y_bottom = int(horizon + rng.uniform(0.1, 0.9) * (height - horizon))
    scale = (y_bottom - horizon) / max(1, height - horizon)
    car_w, car_h = int(width * (0.06 + 0.2 * scale)), int(height * (0.04 + 0.14 * scale))
    x0 = int(rng.uniform(0, width - car_w))
    y0 = max(0, y_bottom - car_h)
    labels[y0:y_bottom, x0 : x0 + car_w] = CAR
    rgb[y0:y_bottom, x0 : x0 + car_w] = rng.integers(30, 220, size=3)
    # Windscreen band (still car).
    rgb[y0 : y0 + car_h // 3, x0 + car_w // 6 : x0 + car_w * 5 // 6] = np.array([50, 60, 70])
