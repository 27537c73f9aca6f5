"""Class names of segmentation label sets and how they map onto the six street elements.

A model predicts its own classes; the audit measures six elements. The per-class pixel
histogram is kept in full, so a different mapping can be applied later without
re-inference. Greenery means living vegetation; ground cover (Cityscapes' ``terrain``,
which includes grass) is added only when asked, because studies disagree on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ELEMENTS = ("building", "road", "sky", "greenery", "sidewalk", "car")
# A true label map travels beside its image under this suffix (`x/1_0.jpg` -> `x/1_0.labels.png`).
LABELS_SUFFIX = ".labels.png"


class LabelSetError(ValueError):
    """A label set cannot be used: unknown name, or an element without any class."""


CITYSCAPES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# ADE20K SceneParsing, 150 classes, in the order of its objectInfo150 (as mmseg and the HF label files).
ADE20K = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# Mapillary Vistas v1.2, 65 classes (the order of its config.json, "unlabeled" dropped),
# with the readable names the Mask2Former Vistas checkpoints use.
MAPILLARY_VISTAS = (
    "Bird", "Ground Animal", "Curb", "Fence", "Guard Rail", "Barrier", "Wall", "Bike Lane",
    "Crosswalk - Plain", "Curb Cut", "Parking", "Pedestrian Area", "Rail Track", "Road",
    "Service Lane", "Sidewalk", "Bridge", "Building", "Tunnel", "Person", "Bicyclist",
    "Motorcyclist", "Other Rider", "Lane Marking - Crosswalk", "Lane Marking - General",
    "Mountain", "Sand", "Sky", "Snow", "Terrain", "Vegetation", "Water", "Banner", "Bench",
    "Bike Rack", "Billboard", "Catch Basin", "CCTV Camera", "Fire Hydrant", "Junction Box",
    "Mailbox", "Manhole", "Phone Booth", "Pothole", "Street Light", "Pole", "Traffic Sign Frame",
    "Utility Pole", "Traffic Light", "Traffic Sign (Back)", "Traffic Sign (Front)", "Trash Can",
    "Bicycle", "Boat", "Bus", "Car", "Caravan", "Motorcycle", "On Rails", "Other Vehicle",
    "Trailer", "Truck", "Wheeled Slow", "Car Mount", "Ego Vehicle",
)  # fmt: skip

# Element -> class names; "terrain" is what `terrain=True` adds to greenery.
# Lane markings lie on the road and curbs belong to the sidewalk, as in Cityscapes' own definitions.
_MAPPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "cityscapes": {
        "building": ("building",),
        "road": ("road",),
        "sky": ("sky",),
        "greenery": ("vegetation",),
        "sidewalk": ("sidewalk",),
        "car": ("car",),
        "terrain": ("terrain",),
    },
    "ade20k": {
        "building": ("building", "house", "skyscraper"),
        "road": ("road",),
        "sky": ("sky",),
        "greenery": ("tree", "grass", "plant", "flower", "palm"),
        "sidewalk": ("sidewalk",),
        "car": ("car",),
        "terrain": ("earth", "field", "land"),
    },
    "mapillary-vistas": {
        "building": ("Building",),
        "road": (
            "Road",
            "Lane Marking - General",
            "Lane Marking - Crosswalk",
            "Crosswalk - Plain",
            "Service Lane",
        ),
        "sky": ("Sky",),
        "greenery": ("Vegetation",),
        "sidewalk": ("Sidewalk", "Curb", "Curb Cut", "Pedestrian Area"),
        "car": ("Car",),
        "terrain": ("Terrain",),
    },
}
_BUILTIN_LABELS = {"cityscapes": CITYSCAPES, "ade20k": ADE20K, "mapillary-vistas": MAPILLARY_VISTAS}
_ALIASES = {"mapillary": "mapillary-vistas", "vistas": "mapillary-vistas", "ade": "ade20k"}

# For label lists that match no built-in set: class names (normalised) that count as each element.
_SYNONYMS: dict[str, frozenset[str]] = {
    "building": frozenset({"building", "house", "skyscraper"}),
    "road": frozenset({"road", "lane marking general", "lane marking crosswalk", "crosswalk plain"}),
    "sky": frozenset({"sky"}),
    "greenery": frozenset({"vegetation", "tree", "trees", "plant", "plants", "grass", "flower", "palm"}),
    "sidewalk": frozenset({"sidewalk", "pavement", "footpath", "curb", "pedestrian area"}),
    "car": frozenset({"car", "cars"}),
    "terrain": frozenset({"terrain", "earth", "field", "land", "soil"}),
}


def normalise(name: str) -> str:
    """Compare names loosely: case, punctuation and spacing differ between tools."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())


@dataclass(frozen=True)
class LabelSet:
    """The classes a model predicts (class id = index) and which ids make up each element."""

    name: str
    labels: tuple[str, ...]
    elements: Mapping[str, tuple[int, ...]]
    terrain: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """Identifies the mapping as well as the classes: shares differ when terrain is counted."""
        return f"{self.name}+terrain" if self.terrain else self.name

    def __len__(self) -> int:
        return len(self.labels)

    def element_matrix(self) -> np.ndarray:
        """(classes, 6) 0/1 matrix: histogram @ matrix = element pixel counts."""
        matrix = np.zeros((len(self.labels), len(ELEMENTS)), dtype=np.int64)
        for column, element in enumerate(ELEMENTS):
            matrix[list(self.elements[element]), column] = 1
        return matrix

    def shares(self, histograms: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(n, 6) element shares from (n, classes) histograms and (n,) pixel totals."""
        counts = np.asarray(histograms, dtype=np.int64) @ self.element_matrix()
        return counts / np.asarray(pixels, dtype=np.float64)[:, None]


def _mapping_ids(
    labels: Sequence[str], mapping: Mapping[str, Sequence[str]], terrain: bool
) -> dict[str, tuple[int, ...]]:
    index = {normalise(label): i for i, label in enumerate(labels)}
    ids = {}
    for element in ELEMENTS:
        names = list(mapping.get(element, ()))
        if element == "greenery" and terrain:
            names += list(mapping.get("terrain", ()))
        ids[element] = tuple(sorted({index[normalise(n)] for n in names if normalise(n) in index}))
    return ids


def _check_complete(name: str, labels: Sequence[str], ids: Mapping[str, tuple[int, ...]]) -> None:
    missing = [element for element in ELEMENTS if not ids[element]]
    if missing:
        shown = ", ".join(labels[:40]) + (", …" if len(labels) > 40 else "")
        raise LabelSetError(
            f"label set {name!r} has no class for {', '.join(missing)}: every one of "
            f"{', '.join(ELEMENTS)} needs at least one class (its classes: {shown}). "
            "Use a model trained on Cityscapes, ADE20K or Mapillary Vistas, or name the classes of each element."
        )


def builtin(name: str, *, terrain: bool = False) -> LabelSet:
    """One of the built-in label sets: cityscapes, ade20k, mapillary-vistas."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _BUILTIN_LABELS:
        raise LabelSetError(f"unknown label set {name!r}; built-in: {', '.join(_BUILTIN_LABELS)}")
    labels = _BUILTIN_LABELS[key]
    ids = _mapping_ids(labels, _MAPPINGS[key], terrain)
    _check_complete(key, labels, ids)
    return LabelSet(key, tuple(labels), ids, terrain)


def builtin_names() -> tuple[str, ...]:
    return tuple(_BUILTIN_LABELS)


def identify(labels: Sequence[str]) -> str | None:
    """The built-in set these class names are, if any.

    Checkpoints spell names slightly differently ("bed " vs "bed", "traffic_light"), so a set
    matches when the count is the same and most names agree position by position.
    """
    names = [normalise(label) for label in labels]
    for key, known in _BUILTIN_LABELS.items():
        if len(known) != len(names):
            continue
        agree = sum(a == normalise(b) for a, b in zip(names, known, strict=True))
        if agree >= 0.9 * len(known):
            return key
    return None


def from_labels(
    labels: Sequence[str],
    *,
    name: str | None = None,
    terrain: bool = False,
    element_classes: Mapping[str, Sequence[str]] | None = None,
) -> LabelSet:
    """The label set of a model's class names, refusing one that lacks an element.

    Built-in sets are recognised and get their curated mapping; any other list is mapped by
    common class names, or by `element_classes` (element -> class names) when given.
    """
    labels = tuple(str(label) for label in labels)
    if not labels:
        raise LabelSetError("the model has no class names")
    if element_classes is not None:
        unknown = [e for e in element_classes if e not in (*ELEMENTS, "terrain")]
        if unknown:
            raise LabelSetError(f"unknown element(s) {unknown}; elements are {', '.join(ELEMENTS)}")
        key = name or "custom"
        ids = _mapping_ids(labels, element_classes, terrain)
    elif (known := identify(labels)) is not None:
        key = name or known
        ids = _mapping_ids(labels, _MAPPINGS[known], terrain)
    else:
        key = name or "custom"
        index: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            index.setdefault(normalise(label), []).append(i)
        ids = {}
        for element in ELEMENTS:
            wanted = set(_SYNONYMS[element]) | (
                _SYNONYMS["terrain"] if element == "greenery" and terrain else set()
            )
            ids[element] = tuple(sorted(i for n in wanted for i in index.get(n, ())))
    _check_complete(key, labels, ids)
    return LabelSet(key, labels, ids, terrain)


def resolve(
    spec: str | Sequence[str],
    *,
    terrain: bool = False,
    element_classes: Mapping[str, Sequence[str]] | None = None,
) -> LabelSet:
    """A label set from a built-in name, a text file of class names (one per line), or a list."""
    name = None
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            name = path.stem
        elif "," in spec:
            names = [s.strip() for s in spec.split(",")]
        elif element_classes is None:
            return builtin(spec, terrain=terrain)
        else:
            names = list(builtin(spec, terrain=terrain).labels)
    else:
        names = list(spec)
    return from_labels(names, name=name, terrain=terrain, element_classes=element_classes)
