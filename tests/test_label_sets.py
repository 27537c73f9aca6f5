"""Label sets: the built-in class lists, their element mappings, and refusing incomplete sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streetaudit.models.backend import class_histograms
from streetaudit.models.label_sets import (
    ADE20K,
    CITYSCAPES,
    ELEMENTS,
    MAPILLARY_VISTAS,
    LabelSetError,
    builtin,
    builtin_names,
    from_labels,
    identify,
    resolve,
)


def test_builtin_sets_have_their_published_class_counts():
    assert (len(CITYSCAPES), len(ADE20K), len(MAPILLARY_VISTAS)) == (19, 150, 65)
    for labels in (CITYSCAPES, ADE20K, MAPILLARY_VISTAS):
        assert len(set(labels)) == len(labels)
    assert set(builtin_names()) == {"cityscapes", "ade20k", "mapillary-vistas"}


@pytest.mark.parametrize("name", ["cityscapes", "ade20k", "mapillary-vistas"])
def test_every_builtin_set_covers_all_six_elements_with_distinct_classes(name):
    label_set = builtin(name)
    assert set(label_set.elements) == set(ELEMENTS)
    seen = [i for element in ELEMENTS for i in label_set.elements[element]]
    assert all(label_set.elements[e] for e in ELEMENTS)
    assert len(seen) == len(set(seen)), "a class counted in two elements"
    assert all(0 <= i < len(label_set) for i in seen)


def test_cityscapes_train_ids_map_onto_the_elements():
    ids = builtin("cityscapes").elements
    assert dict(ids) == {
        "building": (2,),
        "road": (0,),
        "sky": (10,),
        "greenery": (8,),
        "sidewalk": (1,),
        "car": (13,),
    }
    assert builtin("cityscapes", terrain=True).elements["greenery"] == (8, 9)


def test_greenery_gains_terrain_only_when_asked():
    for name in builtin_names():
        plain, with_terrain = builtin(name), builtin(name, terrain=True)
        assert set(plain.elements["greenery"]) < set(with_terrain.elements["greenery"])
        assert plain.key == name and with_terrain.key == f"{name}+terrain"
    ade = builtin("ade20k", terrain=True)
    assert {ADE20K[i] for i in ade.elements["greenery"]} >= {"tree", "grass", "plant", "earth", "field"}


def test_a_label_set_lacking_an_element_is_refused_naming_it():
    labels = [name for name in CITYSCAPES if name != "sky"]
    with pytest.raises(LabelSetError, match="no class for sky"):
        from_labels(labels)
    with pytest.raises(LabelSetError, match="sidewalk"):
        from_labels(["road", "building", "sky", "vegetation", "car"])
    voc = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat"]
    with pytest.raises(LabelSetError, match="building, road, sky, greenery, sidewalk"):
        from_labels(voc)


def test_checkpoint_spellings_are_recognised_as_builtin_sets():
    hf_ade = [("bed " if n == "bed" else n) for n in ADE20K]  # as in the HF label file
    assert identify(hf_ade) == "ade20k"
    assert identify([n.replace(" ", "_").title() for n in CITYSCAPES]) == "cityscapes"
    assert identify([n.lower() for n in MAPILLARY_VISTAS]) == "mapillary-vistas"
    assert from_labels(hf_ade).elements == builtin("ade20k").elements
    assert identify(["road", "sky"]) is None


def test_custom_lists_map_by_common_names_or_by_explicit_classes(tmp_path):
    custom = from_labels(["sky", "Trees", "road", "pavement", "house", "cars", "other"])
    assert dict(custom.elements) == {
        "building": (4,),
        "road": (2,),
        "sky": (0,),
        "greenery": (1,),
        "sidewalk": (3,),
        "car": (5,),
    }
    explicit = from_labels(
        ["a", "b", "c", "d", "e", "f", "g"],
        element_classes={
            "building": ["a"],
            "road": ["b"],
            "sky": ["c"],
            "greenery": ["d", "g"],
            "sidewalk": ["e"],
            "car": ["f"],
        },
    )
    assert explicit.elements["greenery"] == (3, 6)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CITYSCAPES) + "\n")
    assert resolve(str(names)).elements == builtin("cityscapes").elements
    with pytest.raises(LabelSetError, match="unknown label set"):
        resolve("pascal-voc")


def test_shares_are_element_pixel_counts_over_all_pixels():
    label_set = builtin("cityscapes", terrain=True)
    rng = np.random.default_rng(1)
    histograms = rng.integers(0, 1000, size=(5, 19))
    pixels = histograms.sum(axis=1) + 17  # 17 void pixels in each image
    shares = label_set.shares(histograms, pixels)
    expected_greenery = (histograms[:, 8] + histograms[:, 9]) / pixels
    np.testing.assert_allclose(shares[:, ELEMENTS.index("greenery")], expected_greenery)
    np.testing.assert_allclose(shares[:, ELEMENTS.index("car")], histograms[:, 13] / pixels)


def test_class_histograms_equal_numpy_bincount_and_ignore_void():
    rng = np.random.default_rng(2)
    maps = rng.integers(0, 22, size=(3, 16, 24))
    maps[0, :2] = 255
    counts = class_histograms(torch.from_numpy(maps), 19).numpy()
    for image, row in zip(maps, counts, strict=True):
        expected = np.bincount(image[image < 19].ravel(), minlength=19)
        np.testing.assert_array_equal(row, expected)


def test_palette_gives_each_element_one_colour_in_every_label_set():
    from streetaudit.models.label_palette import CITYSCAPES_PALETTE, ELEMENT_COLOURS, palette

    for name in ("cityscapes", "ade20k", "mapillary-vistas"):
        label_set = builtin(name)
        colours = palette(label_set)
        assert colours.shape == (len(label_set.labels), 3)
        for element, ids in label_set.elements.items():
            assert {tuple(colours[i]) for i in ids} == {ELEMENT_COLOURS[element]}, (name, element)
    assert [tuple(c) for c in palette(builtin("cityscapes"))] == list(CITYSCAPES_PALETTE)
