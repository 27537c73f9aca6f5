"""Detector building and the detector file: what training writes, prediction and Grad-CAM read."""

from __future__ import annotations

import pytest
import torch

from streetaudit.models.backend import BackendError
from streetaudit.models.detectors import (
    ARCHITECTURES,
    build_detector,
    load_detector,
    save_detector,
)

LABELS = ["window", "roof"]


def _class_outputs(model) -> int:
    """Number of classes the class head scores, read from the head itself."""
    if hasattr(model, "roi_heads"):
        return model.roi_heads.box_predictor.cls_score.out_features
    head = model.head.classification_head
    return head.num_columns if hasattr(head, "num_columns") else head.num_classes  # SSD's scoring head


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_builds_offline_with_our_classes(architecture):
    detector = build_detector(architecture, LABELS, options={"min_size": 64, "max_size": 128})
    assert _class_outputs(detector.model) == len(LABELS) + 1
    assert detector.label_name(1) == "window" and detector.label_name(0) == "background"


def test_saved_detector_predicts_exactly_as_before(tmp_path):
    torch.manual_seed(0)
    detector = build_detector("fasterrcnn_tiny", LABELS, options={"min_size": 64, "max_size": 128})
    detector.model.eval()
    image = torch.rand(3, 64, 128)
    with torch.no_grad():
        before = detector.model([image])[0]
    path = save_detector(tmp_path / "d.pt", detector, run="r1")
    loaded = load_detector(path)
    with torch.no_grad():
        after = loaded.model([image])[0]
    assert loaded.labels == LABELS and loaded.architecture == "fasterrcnn_tiny"
    assert loaded.options == {"min_size": 64, "max_size": 128}
    assert loaded.extra == {"run": "r1"}
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(before[key], after[key])
    assert not list(tmp_path.glob(".*partial"))


def test_weights_from_a_file_with_other_labels_keep_all_but_the_class_head(tmp_path):
    torch.manual_seed(1)
    first = build_detector("fasterrcnn_tiny", LABELS)
    path = save_detector(tmp_path / "first.pt", first)
    second = build_detector("fasterrcnn_tiny", ["window", "roof", "ornament"], weights=str(path))
    old, new = first.model.state_dict(), second.model.state_dict()
    assert torch.equal(old["backbone.0.weight"], new["backbone.0.weight"])
    assert new["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "yolo"}, "choose one of"),
        ({"labels": []}, "at least one label"),
        ({"labels": ["a", "a"]}, "repeat"),
        ({"labels": ["background"]}, "class 0"),
        ({"architecture": "fasterrcnn_resnet50_fpn_v2", "weights": "IMAGENET9K"}, "not one of"),
        ({"architecture": "fasterrcnn_tiny", "weights": "DEFAULT"}, "no library weights"),
        ({"trainable_layers": 9}, "must be 0"),
        ({"options": {"min_size": 900, "max_size": 600}}, "larger than"),
    ],
)
def test_bad_requests_say_what_to_change(kwargs, message):
    arguments = {"architecture": "fasterrcnn_tiny", "labels": LABELS, **kwargs}
    with pytest.raises(BackendError, match=message):
        build_detector(arguments.pop("architecture"), arguments.pop("labels"), **arguments)


def test_damaged_or_foreign_files_are_named(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip")
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    for path, message in (
        (empty, "empty"),
        (garbage, "cannot read"),
        (foreign, "not a streetaudit detector"),
    ):
        with pytest.raises(BackendError, match=message) as caught:
            load_detector(path)
        assert str(path) in str(caught.value)
    other = save_detector(tmp_path / "tiny.pt", build_detector("fasterrcnn_tiny", LABELS))
    with pytest.raises(BackendError, match="pass --architecture fasterrcnn_tiny"):
        build_detector("fcos_resnet50_fpn", LABELS, weights=str(other))


@pytest.mark.parametrize(
    "architecture",
    ["fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2", "ssd300_vgg16", "fcos_resnet50_fpn"],
)
def test_a_coco_detector_gets_a_working_head_for_our_labels(architecture):
    """The transfer-learning path, without the download: a 91-class network, head replaced."""
    import torchvision.models.detection as detection

    from streetaudit.models.detectors import _replace_class_head

    kwargs = {} if architecture.startswith("ssd") else {"min_size": 64, "max_size": 96}
    model = getattr(detection, architecture)(weights=None, weights_backbone=None, num_classes=91, **kwargs)
    _replace_class_head(model, architecture, len(LABELS) + 1)
    assert _class_outputs(model) == len(LABELS) + 1
    model.train()
    target = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([2])}
    losses = model([torch.rand(3, 64, 64)], [target])
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert out["labels"].numel() == 0 or int(out["labels"].max()) <= len(LABELS)
