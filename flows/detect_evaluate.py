"""Scoring detectors on a stored split (`detect evaluate`) and comparing them (`detect compare`).

A score is only comparable with another when both come from the same images, so every
evaluation row names its model, dataset and split, and `compare` reads only rows of one
dataset and split, the latest per model: the Harbin study's comparison table, from our runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import psycopg
import torch
from psycopg.types.json import Jsonb
from torch.utils.data import DataLoader

from streetaudit.flows.detection_data import SPLITS, DetectionImages, Item, collate, read_split
from streetaudit.flows.detector_registry import resolve_detector
from streetaudit.flows.errors import InputError
from streetaudit.models.backend import BackendError, resolve_device
from streetaudit.models.detection_metrics import DetectionScores, ImageBoxes, coco_scores
from streetaudit.models.detectors import load_detector
from streetaudit.sql.rows import scalar


def default_workers(device: torch.device, processes: int = 1) -> int:
    """Decode in worker processes beside a GPU; on a CPU the model needs every core itself."""
    import os

    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // processes - 1))


def detect_items(
    model: torch.nn.Module,
    items: list[Item],
    device: torch.device,
    *,
    batch_size: int = 8,
    workers: int = 0,
    amp: bool = True,
) -> tuple[list[ImageBoxes], float]:
    """Detections (all the model keeps, scores included) per item, and the images/s of the pass."""
    loader = DataLoader(
        DetectionImages(items),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    found: list[ImageBoxes] = []
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cuda", enabled=amp and device.type == "cuda"):
        for images, _ in loader:
            outputs = model([image.to(device, non_blocking=True) for image in images])
            for out in outputs:
                found.append(
                    ImageBoxes.of(
                        out["boxes"].float().cpu().numpy(),
                        out["labels"].cpu().numpy(),
                        out["scores"].float().cpu().numpy(),
                    )
                )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    model.train(was_training)
    return found, (len(items) / seconds if seconds > 0 else 0.0)


def truths_of(items: list[Item]) -> list[ImageBoxes]:
    return [ImageBoxes.of(item.boxes, item.classes) for item in items]


def score_items(
    model: torch.nn.Module,
    items: list[Item],
    labels: list[str],
    device: torch.device,
    **options,
) -> tuple[DetectionScores, float]:
    found, speed = detect_items(model, items, device, **options)
    return coco_scores(truths_of(items), found, labels), speed


@dataclass
class EvaluationReport:
    evaluation_id: int
    model_id: int
    dataset: str
    split: str
    map: float
    map50: float
    map75: float
    per_class: dict[str, float | None] = field(default_factory=dict)
    images: int = 0
    images_per_s: float = 0.0


def _renumber(found: list[ImageBoxes], detector_labels: list[str], labels: list[str]) -> list[ImageBoxes]:
    """Detector class indices → the dataset's, by label name; classes the dataset lacks are dropped."""
    index = {name: i for i, name in enumerate(labels, start=1)}
    mapping = np.array([0] + [index.get(name, 0) for name in detector_labels], dtype=np.int64)
    out = []
    for f in found:
        classes = mapping[f.labels]
        keep = classes > 0
        out.append(
            ImageBoxes.of(f.boxes[keep], classes[keep], f.scores[keep] if f.scores is not None else None)
        )
    return out


def evaluate(
    url: str,
    model: str,
    dataset: str,
    split: str = "test",
    *,
    device: str = "auto",
    batch_size: int = 8,
    workers: int | None = None,
    amp: bool = True,
) -> EvaluationReport:
    """COCO scores of `model` (name, id or detector file) on a split; stored as a detector_evaluation row."""
    if split not in SPLITS:
        raise InputError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    try:
        torch_device = resolve_device(device)
    except BackendError as error:
        raise InputError(str(error)) from None
    with psycopg.connect(url) as conn:
        model_id, source = resolve_detector(conn, model)
        stored = read_split(conn, dataset, (split,))
        conn.commit()
    items = stored.items[split]
    if not items:
        raise InputError(f"dataset {dataset}: the {split} split is empty")
    try:
        detector = load_detector(source, torch_device)
    except BackendError as error:
        raise InputError(f"--model {model}: {error}") from None
    if not set(detector.labels) & set(stored.labels):
        raise InputError(
            f"--model {model} finds {', '.join(detector.labels)}; dataset {dataset} is labelled "
            f"{', '.join(stored.labels)}: no label in common"
        )
    found, speed = detect_items(
        detector.model,
        items,
        torch_device,
        batch_size=batch_size,
        workers=default_workers(torch_device) if workers is None else workers,
        amp=amp,
    )
    scores = coco_scores(truths_of(items), _renumber(found, detector.labels, stored.labels), stored.labels)
    if np.isnan(scores.map):
        raise InputError(f"dataset {dataset}: the {split} split has no true box; mAP is undefined there")
    with psycopg.connect(url) as conn:
        evaluation_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.detector_evaluation
                   (model_id, dataset_id, split, map, map50, map75, per_class, images, images_per_second)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    model_id,
                    stored.dataset_id,
                    split,
                    scores.map,
                    scores.map50,
                    scores.map75,
                    Jsonb(scores.per_class),
                    len(items),
                    speed,
                ),
            )
        )
    return EvaluationReport(
        evaluation_id,
        model_id,
        stored.name,
        split,
        scores.map,
        scores.map50,
        scores.map75,
        scores.per_class,
        len(items),
        speed,
    )


COMPARE_COLUMNS = ("model", "architecture", "epochs", "map", "map50", "map75", "images_per_s", "images")


def compare(url: str, dataset: str, split: str = "test") -> list[dict]:
    """The latest evaluation of every model on the dataset's split, best mAP first."""
    from streetaudit.flows.detection_data import dataset_row

    with psycopg.connect(url) as conn:
        dataset_id, _ = dataset_row(conn, dataset)
        rows = conn.execute(
            """SELECT DISTINCT ON (e.model_id)
                      m.name, m.id, m.label_set, r.epochs_done, e.map, e.map50, e.map75,
                      e.images_per_second, e.images, e.evaluated_at
                 FROM streetaudit.detector_evaluation e
                 JOIN streetaudit.model m ON m.id = e.model_id
                 LEFT JOIN LATERAL (
                      SELECT epochs_done FROM streetaudit.detector_run
                       WHERE model_id = m.id ORDER BY finished_at DESC NULLS LAST LIMIT 1) r ON true
                WHERE e.dataset_id = %s AND e.split = %s
                ORDER BY e.model_id, e.evaluated_at DESC, e.id DESC""",
            (dataset_id, split),
        ).fetchall()
    table = [
        {
            "model": f"{name} ({model_id})",
            "architecture": architecture,
            "epochs": epochs,
            "map": m,
            "map50": m50,
            "map75": m75,
            "images_per_s": speed,
            "images": images,
            "evaluated_at": at,
        }
        for name, model_id, architecture, epochs, m, m50, m75, speed, images, at in rows
    ]
    return sorted(table, key=lambda row: -row["map"])


def runs(url: str) -> list[dict]:
    """Every training run, newest first, with its last epoch's validation mAP."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT r.name, r.architecture, d.name, r.status, r.epochs_done,
                      (r.parameters ->> 'epochs')::int, e.val_map, e.val_map50, m.name, r.started_at,
                      r.finished_at, r.detail
                 FROM streetaudit.detector_run r
                 JOIN streetaudit.dataset d ON d.id = r.dataset_id
                 LEFT JOIN streetaudit.model m ON m.id = r.model_id
                 LEFT JOIN LATERAL (
                      SELECT val_map, val_map50 FROM streetaudit.detector_epoch
                       WHERE run_id = r.id ORDER BY epoch DESC LIMIT 1) e ON true
                ORDER BY r.started_at DESC, r.id DESC"""
        ).fetchall()
    keys = (
        "name",
        "architecture",
        "dataset",
        "status",
        "epochs_done",
        "epochs",
        "val_map",
        "val_map50",
        "model",
        "started_at",
        "finished_at",
        "detail",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]
