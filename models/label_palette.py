"""Colours for label maps: what `segment --save-masks` writes into each mask PNG's palette.

A mask stays a PNG of class ids (readers get the ids back unchanged), but its palette
colours every class, so a browser shows it as a coloured overlay without knowing the
label set. The six elements get the Cityscapes colours of their classes in every label
set, so a mask of any model matches the map's share bars; Cityscapes keeps its own
palette for its other classes; any other class gets a muted colour of its own.
"""

from __future__ import annotations

import colorsys

import numpy as np

from streetaudit.models.label_sets import CITYSCAPES, ELEMENTS, LabelSet

# Cityscapes' official colours (cityscapesScripts labels.py), in its train-id order.
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
# The map page (api/static/map.js ELEMENT_COLOURS) draws the share bars in these.
ELEMENT_COLOURS = {
    "building": (70, 70, 70),
    "road": (128, 64, 128),
    "sky": (70, 130, 180),
    "greenery": (107, 142, 35),
    "sidewalk": (244, 35, 232),
    "car": (0, 0, 142),
}
# Index 255 is void in imported label maps: left transparent.
VOID = 255


def _other_colour(class_id: int) -> tuple[int, int, int]:
    """Golden-ratio hues, desaturated: distinct from each other and quieter than the elements."""
    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618033988749895) % 1.0, 0.35, 0.8)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(label_set: LabelSet) -> np.ndarray:
    """(classes, 3) uint8 RGB: the colour of each class id of `label_set`."""
    if tuple(label_set.labels) == CITYSCAPES:
        colours = list(CITYSCAPES_PALETTE)
    else:
        colours = [_other_colour(i) for i in range(len(label_set.labels))]
    for element in ELEMENTS:
        for class_id in label_set.elements[element]:
            colours[class_id] = ELEMENT_COLOURS[element]
    return np.asarray(colours, dtype=np.uint8).reshape(-1, 3)


def paletted_mask(labels: np.ndarray, label_set: LabelSet):
    """A PIL image of the class ids `labels` with the label set's palette (mode P), void transparent.

    Label sets of more than 255 classes do not fit a palette: their masks stay 16-bit grey.
    """
    from PIL import Image

    if len(label_set.labels) > VOID or labels.max(initial=0) > VOID:
        return Image.fromarray(labels.astype(np.uint16))
    image = Image.fromarray(labels.astype(np.uint8), "L")
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[: len(label_set.labels)] = palette(label_set)
    image.putpalette(colours.ravel().tolist())  # L becomes P: the same bytes, now coloured
    image.info["transparency"] = VOID
    return image
