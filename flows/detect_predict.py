"""City-wide prediction of heritage features: a trained detector over every 'ok' image.

Beside a GPU, as in segmentation, DataLoader workers decode the next JPEGs while the detector
runs; beside a CPU model the main process decodes between batches (the model needs the
cores). A writer thread stores finished batches, so the loop runs at close to the speed of a
bare torchvision loop over the same files (bench/detect_predict.py measures both).

Resumable and idempotent per (image, model): an image's detections and its detection_done
row (how many, at which threshold, possibly 0) are written in one transaction, only for
images that have no detection_done row yet, so a killed run loses at most the batches in
flight and a rerun skips what is stored and never stores an image twice. Images deleted
while the run goes are skipped and counted. A lost database stops the run with
`DatabaseLost` (exit 3; the rerun resumes).

Many workers (`--processes N`, or the same command on other machines) share a model's images
through leases (flows/leases.py, stage 'predict', scope the model id): each claims a batch,
predicts it and releases it once its rows are stored, and a killed worker's batch is taken
over when its leases expire, so every image is predicted once and none is left out.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import torch
from prefect import flow
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from streetaudit.flows.database_loss import CONNECT_OPTIONS, reporting_database_loss
from streetaudit.flows.detection_writer import DetectionWriter
from streetaudit.flows.detector_registry import register_mmdet, resolve_detector
from streetaudit.flows.errors import InputError
from streetaudit.flows.leases import UNLEASED, Leases
from streetaudit.flows.run_reports import RunProgress
from streetaudit.flows.segment import default_workers
from streetaudit.models.backend import BackendError, resolve_device
from streetaudit.models.detectors import Detector, load_detector
from streetaudit.models.inputs import Batch, ImageReader, make_loader
from streetaudit.sql.rows import one, scalar

#: torchvision: detector files of `detect train`; mmdet: an mmdetection config + checkpoint (optional extra)
BACKENDS = ("torchvision", "mmdet")


@dataclass
class PredictReport:
    model_id: int
    model_name: str
    architecture: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    vanished: int = 0
    detections: int = 0
    seconds: float = 0.0
    #: CPU seconds of this process and its decoders over `seconds` (the database's not counted)
    cpu_seconds: float = 0.0
    images_per_s: float = 0.0
    device: str = "cpu"
    errors: list[tuple[int, str]] = field(default_factory=list)


def check_options(batch_size: int, score_threshold: float, limit: int | None, workers: int | None) -> None:
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if not 0 <= score_threshold <= 1:
        raise InputError(f"--score-threshold must be between 0 and 1, got {score_threshold}")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    if workers is not None and workers < 0:
        raise InputError(f"--workers must be >= 0 (0 decodes in the main process), got {workers}")


def open_detector(
    conn: psycopg.Connection,
    model: str | None,
    device: str,
    backend: str = "torchvision",
    config: str | None = None,
    checkpoint: str | None = None,
) -> tuple[int, str, Detector]:
    """(model id, model name, detector on its device) for `--model` (or, with `--backend
    mmdet`, `--config` and `--checkpoint`, named `--model`); bad input is an InputError."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    try:
        target = resolve_device(device)
        if backend == "mmdet":
            from streetaudit.models.mmdet_detection import load_mmdet_detector

            detector = load_mmdet_detector(config, checkpoint, target)
            model_id = register_mmdet(conn, model or Path(detector.extra["config"]).stem, detector)
        else:
            model_id, source = resolve_detector(conn, str(model))
            kind, parameters = one(
                conn.execute("SELECT backend, parameters FROM streetaudit.model WHERE id = %s", (model_id,))
            )
            if kind == "mmdet":  # registered by an earlier `--backend mmdet` run
                from streetaudit.models.mmdet_detection import load_mmdet_detector

                detector = load_mmdet_detector(parameters.get("config"), parameters.get("checkpoint"), target)
            else:
                detector = load_detector(source, target)
    except BackendError as error:
        raise InputError(str(error)) from error
    name = scalar(conn.execute("SELECT name FROM streetaudit.model WHERE id = %s", (model_id,)))
    conn.commit()
    return model_id, name, detector


def area_filter(conn: psycopg.Connection, where_area: str | None) -> int | None:
    """The heritage area id of `--where-area` (a name or an id)."""
    if where_area is None:
        return None
    row = conn.execute(
        "SELECT id FROM streetaudit.heritage_area WHERE name = %s OR id::text = %s ORDER BY id LIMIT 1",
        (str(where_area), str(where_area)),
    ).fetchone()
    if row is None:
        known = scalar(
            conn.execute(
                "SELECT string_agg(name || ' (' || id || ')', ', ' ORDER BY id) FROM streetaudit.heritage_area"
            )
        )
        raise InputError(f"--where-area {where_area!r}: no such heritage area (known: {known or 'none'})")
    return row[0]


_IN_AREA = """AND (%(area)s::bigint IS NULL OR EXISTS (
                  SELECT 1 FROM streetaudit.point_area AS pa
                  WHERE pa.point_id = i.point_id AND pa.area_id = %(area)s))"""


# The images a model still has to predict: `ok`, stored, in the area if one is given, without
# a detection_done row.
TODO_IMAGES = f"""
    FROM streetaudit.image AS i
    WHERE i.status = 'ok' AND i.uri IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM streetaudit.detection_done AS d
                      WHERE d.image_id = i.id AND d.model_id = %(model)s)
    {_IN_AREA}"""


def pending_images(
    conn: psycopg.Connection, model_id: int, limit: int | None, area_id: int | None
) -> tuple[int, list[tuple[int, str]]]:
    params = {"model": model_id, "limit": limit, "area": area_id}
    skipped = scalar(
        conn.execute(
            f"""SELECT count(*) FROM streetaudit.image AS i
            WHERE i.status = 'ok' AND EXISTS (SELECT 1 FROM streetaudit.detection_done AS d
                                              WHERE d.image_id = i.id AND d.model_id = %(model)s)
            {_IN_AREA}""",
            params,
        )
    )
    todo = conn.execute(f"SELECT i.id, i.uri {TODO_IMAGES} ORDER BY i.id LIMIT %(limit)s", params).fetchall()
    return skipped, [tuple(row) for row in todo]


def claim_images(
    leases: Leases, model_id: int, limit: int | None, area_id: int | None
) -> list[tuple[int, str]]:
    """The next batch of images still to predict that this worker now leases."""
    return leases.claim_rows(
        f"SELECT i.id, i.uri {TODO_IMAGES} AND {UNLEASED} ORDER BY i.id LIMIT %(size)s",
        {"model": model_id, "area": area_id},
        limit,
    )


def cpu_time() -> float:
    """CPU seconds of this process and its finished children (decoder processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def decoder_workers(device: torch.device) -> int:
    """Decoder processes beside an accelerator; none beside a CPU model.

    On a CPU the model already uses every core: a decoder process there takes its share of
    them from every batch (and costs a fork per leased batch), while decoding in the main
    process between batches costs only the decoding, a few percent of a detector's time.
    """
    return 0 if device.type == "cpu" else default_workers(device)


def predict(
    url: str,
    model: str | None = None,
    batch_size: int = 8,
    score_threshold: float = 0.3,
    limit: int | None = None,
    where_area: str | None = None,
    device: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    backend: str = "torchvision",
    config: str | None = None,
    checkpoint: str | None = None,
) -> PredictReport:
    """Detect heritage features on every 'ok' image this model has not run on yet."""
    if not model and backend != "mmdet":
        raise InputError("--model is required: a detector name or id (from `detect train`) or a file")
    check_options(batch_size, score_threshold, limit, workers)
    with reporting_database_loss("detect predict"):
        with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
            model_id, name, detector = open_detector(conn, model, device, backend, config, checkpoint)
            area_id = area_filter(conn, where_area)
            skipped, todo = pending_images(conn, model_id, limit, area_id)
        target = next(detector.model.parameters()).device
        report = PredictReport(model_id, name, detector.architecture, skipped=skipped, device=str(target))
        if not todo:
            return report
        workers = decoder_workers(target) if workers is None else workers
        start, cpu_start = time.perf_counter(), cpu_time()
        options = {"batch_size": batch_size, "workers": workers, "score_threshold": score_threshold}
        leased_batches(url, detector, report, limit, area_id, progress, len(todo), **options)
        report.seconds, report.cpu_seconds = time.perf_counter() - start, cpu_time() - cpu_start
        if report.detections or report.done:
            # Tiles of api.detections are cached by data version: new detections, new version.
            with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
                conn.execute(
                    "UPDATE streetaudit.stats_state SET version = streetaudit.next_data_version(version)"
                )
        report.done -= report.vanished  # counted when predicted, deleted before they were stored
        report.images_per_s = (report.done + report.failed) / report.seconds if report.seconds else 0.0
        return report


def leased_batches(
    url, detector, report, limit, area_id, progress, total, *, batch_size, workers, score_threshold
) -> None:
    """Predict leased batches until no image is left and no other worker holds one.

    Other `detect predict` processes (here or on other machines) may work on the same model;
    a batch's leases are released only once its writer has stored it. Decoder processes fork,
    so with them the leases hold no connection or thread between calls (run_batches keeps
    them alive); without them, one connection and a renewal thread save a connection a call.
    """
    model_id = report.model_id
    target = next(detector.model.parameters()).device
    leases = Leases(url, "predict", str(model_id), background=workers == 0)
    with leases:
        for chunk in leases.batches(lambda left: claim_images(leases, model_id, left, area_id), limit):
            loader = make_loader(
                chunk, ImageReader(), batch_size=batch_size, workers=workers, pin_memory=target.type == "cuda"
            )
            with DetectionWriter(url, model_id, detector.labels, score_threshold) as writer:
                run_batches(detector, loader, writer, report, score_threshold, progress, total, leases)
            report.detections += writer.stored
            report.vanished += writer.vanished


def inference_context(device: torch.device):
    """cuDNN autotuning and float16 autocast on CUDA; plain inference elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    torch.backends.cudnn.benchmark = True
    return torch.autocast("cuda", dtype=torch.float16)


def detect_batch(model: torch.nn.Module, batch: Batch, score_threshold: float) -> list[tuple[int, dict]]:
    """(image id, {boxes, scores, labels} on the CPU at or above the threshold) per readable image."""
    device = next(model.parameters()).device
    positions = [p for group, _ in batch.groups for p in group]
    images = [
        image.to(device, non_blocking=True).float().div_(255)
        for _, tensor in batch.groups
        for image in tensor.unbind(0)
    ]
    if not images:
        return []
    with torch.inference_mode(), inference_context(device):
        outputs = model(images)
    results = []
    for position, output in zip(positions, outputs, strict=True):
        keep = output["scores"] >= score_threshold
        results.append(
            (
                batch.ids[position],
                {
                    k: output[k][keep].float().cpu() if k != "labels" else output[k][keep].cpu()
                    for k in output
                },
            )
        )
    return results


def run_batches(detector, loader, writer, report, score_threshold, progress, total, leases=None) -> None:
    batches = iter(loader)  # start the workers (fork) before the writer's thread is busy
    bar = RunProgress(
        TextColumn("[bold]detect[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]:.1f} images/s"),
        TimeElapsedColumn(),
        disable=not progress,
        stage="predict",
    )
    started = time.perf_counter()
    with bar:
        before = report.done + report.failed  # images of earlier leased batches
        task = bar.add_task("detect", total=max(total, before), completed=before, speed=0.0)
        for batch in batches:
            if leases is not None:
                leases.keep_alive()
            results = detect_batch(detector.model, batch, score_threshold)
            writer.put(results)
            report.done += len(results)
            report.failed += len(batch.errors)
            report.errors.extend(list(batch.errors.items())[: max(0, 20 - len(report.errors))])
            elapsed = time.perf_counter() - started
            bar.update(task, advance=len(batch.ids), speed=(report.done + report.failed - before) / elapsed)


def summary_line(report: PredictReport) -> str:
    return (
        f"model {report.model_id} ({report.model_name}, {report.architecture}) on {report.device}: "
        f"{report.done} images, {report.detections} detections, {report.skipped} already done, "
        f"{report.failed} unreadable; {report.images_per_s:.1f} images/s"
    )


predict_flow = flow(name="detect-predict", log_prints=True)(predict)
