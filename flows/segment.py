"""The segment stage: semantic segmentation of the collected images into element shares in PostGIS.

The model runs on whole batches on the device while DataLoader workers decode the next
JPEGs and a writer thread COPYs finished rows (and saves masks), so the pipeline runs
close to the model's own speed. Work is idempotent per (image, model): only images with
no row for this model are read, and rows are inserted with ON CONFLICT DO NOTHING.

Everything the user gave is checked before the model row is written. A lost database stops
the run at the next batch with `DatabaseLost` (one line, exit 3; the rerun resumes). Images
deleted while the run goes (a `points densify` that replaced their points) are skipped and
counted, not a foreign-key traceback.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import torch
from prefect import flow
from psycopg.types.json import Jsonb
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from streetaudit.flows.database_loss import CONNECT_OPTIONS, reporting_database_loss
from streetaudit.flows.errors import InputError
from streetaudit.flows.leases import UNLEASED, Leases
from streetaudit.flows.run_reports import RunProgress
from streetaudit.models.backend import (
    BackendError,
    SegmentationBackend,
    class_histograms,
    create_backend,
    resolve_device,
)
from streetaudit.models.inputs import Batch, make_loader
from streetaudit.models.label_palette import paletted_mask
from streetaudit.models.label_sets import ELEMENTS, LabelSetError
from streetaudit.sql.rows import one, scalar
from streetaudit.sql.settings import DatabaseSettings

COLUMNS = ("image_id", "model_id", *ELEMENTS, "histogram", "pixels", "mask_uri", "error")
MAX_INPUT_SIDE = 8192


@dataclass
class SegmentReport:
    model_id: int
    model_name: str
    backend: str
    label_set: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    vanished: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    device: str = "cpu"
    errors: list[tuple[int, str]] = field(default_factory=list)


def segment(
    url: str,
    *,
    model: str | None = None,
    backend: str = "hf",
    batch_size: int = 8,
    device: str = "auto",
    limit: int | None = None,
    save_masks: bool = False,
    terrain: bool = False,
    labels: str | None = None,
    arch: str | None = None,
    checkpoint: str | None = None,
    mask_dir: str | None = None,
    input_size: tuple[int, int] | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    masks_dir: str | None = None,
    retry_failed: bool = False,
    provider: str | None = None,
    progress: bool = False,
) -> SegmentReport:
    """Segment every 'ok' image that has no row for this model yet; returns counts and speed.

    The options are those of `stage_options.SegmentOptions`; `input_size` is (width, height).
    Only the backend options that are set reach the backend, which refuses ones it does not take.
    """
    chosen = {
        "label_set": labels,
        "arch": arch,
        "checkpoint": checkpoint,
        "mask_dir": mask_dir,
        "cache_dir": cache_dir,
        "input_size": None if input_size is None else check_input_size(input_size),
    }
    backend_options: dict[str, Any] = {k: v for k, v in chosen.items() if v is not None}
    if terrain:
        backend_options["terrain"] = True
    pipeline = {
        "workers": workers,
        "masks_dir": masks_dir,
        "retry_failed": retry_failed,
        "provider": provider,
    }
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    if workers is not None and int(workers) < 0:
        raise InputError(f"--workers must be >= 0 (0 decodes in the main process), got {workers}")
    if provider is not None:
        with reporting_database_loss("segment"):
            check_provider(url, provider)
    try:
        target = resolve_device(device)
        runner = create_backend(backend, model, target, **backend_options)
    except (BackendError, LabelSetError) as error:
        raise InputError(str(error)) from error

    with reporting_database_loss("segment"):
        return _segment(url, runner, target, batch_size, limit, save_masks, progress, pipeline)


def check_provider(url: str, provider: str) -> None:
    """--provider must name a provider with ok images (statistics are per provider, so
    segmenting only the one to be published saves the others' inference)."""
    with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
        counts = conn.execute(
            """SELECT provider, count(*) FILTER (WHERE status = 'ok') FROM streetaudit.image
               GROUP BY provider ORDER BY provider"""
        ).fetchall()
    if not any(name == provider and ok for name, ok in counts):
        known = ", ".join(f"{name} ({ok} ok)" for name, ok in counts) or "none"
        raise InputError(f"--provider {provider!r}: no ok images of that provider (known: {known})")


def check_input_size(size) -> tuple[int, int]:
    """(width, height) in, (height, width) out (what the backends take), each 1 to MAX_INPUT_SIDE
    pixels; refused before anything is written."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"--input-size must be WIDTHxHEIGHT in pixels, got {size!r}") from None
    if not (1 <= width <= MAX_INPUT_SIDE and 1 <= height <= MAX_INPUT_SIDE):
        raise InputError(
            f"--input-size must be between 1x1 and {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} pixels, got {width}x{height}"
        )
    return height, width


def _segment(url, runner, target, batch_size, limit, save_masks, progress, pipeline) -> SegmentReport:
    with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
        model_id = register_model(conn, runner)
        provider = pipeline.get("provider")
        if pipeline.get("retry_failed"):
            conn.execute(
                """DELETE FROM streetaudit.segmentation AS s USING streetaudit.image AS i
                   WHERE s.image_id = i.id AND s.model_id = %s AND s.error IS NOT NULL
                     AND (%s::text IS NULL OR i.provider = %s)""",
                (model_id, provider, provider),
            )
        skipped, todo = pending_images(conn, model_id, limit, provider)
        conn.commit()

    report = SegmentReport(
        model_id, runner.model_name, runner.name, runner.label_set.key, skipped=skipped, device=str(target)
    )
    if not todo:
        return report
    masks_dir = None
    if save_masks and runner.name != "masks":
        root = Path(pipeline.get("masks_dir") or DatabaseSettings().data_dir / "masks")
        masks_dir = root / f"model-{model_id}"
        masks_dir.mkdir(parents=True, exist_ok=True)
    workers = pipeline.get("workers")
    workers = default_workers(target) if workers is None else int(workers)
    start = time.perf_counter()
    # Other `segment` processes (here or on other machines) may work on the same model: each
    # takes a leased batch at a time (flows/leases.py) until none is left and no other holds one.
    leases = Leases(url, "segment", str(model_id), background=False)
    with leases:
        for chunk in leases.batches(lambda left: claim_images(leases, model_id, left, provider), limit):
            loader = make_loader(
                chunk, runner.reader(), batch_size=batch_size, workers=workers, pin_memory=runner.cuda
            )
            run_batches(url, runner, model_id, loader, len(todo), report, masks_dir, progress, leases)
    report.seconds = time.perf_counter() - start
    report.images_per_s = (report.done + report.failed) / report.seconds if report.seconds else 0.0
    return report


def default_workers(device: torch.device) -> int:
    """Enough decoders to feed a GPU; on CPU, leave the cores to the model."""
    cores = os.cpu_count() or 1
    return max(1, min(16, cores - 2)) if device.type == "cuda" else max(1, min(4, cores // 2))


def register_model(conn: psycopg.Connection, runner: SegmentationBackend) -> int:
    """One model row per (backend, source, label set); histograms depend on its class list."""
    labels = list(runner.label_set.labels)
    model_id, stored = one(
        conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels, parameters)
           VALUES ('segmentation', %s, %s, %s, %s, %s, %s)
           ON CONFLICT (task, backend, source, label_set)
           DO UPDATE SET name = EXCLUDED.name, parameters = EXCLUDED.parameters
           RETURNING id, labels""",
            (
                runner.model_name,
                runner.name,
                runner.source,
                runner.label_set.key,
                labels,
                Jsonb(runner.parameters),
            ),
        )
    )
    if list(stored) != labels:
        conn.rollback()
        raise InputError(
            f"model {runner.source} ({runner.label_set.key}) is registered as model {model_id} with other "
            "class names; its stored histograms would be misread. Use another checkpoint path or delete "
            "that model's rows (DELETE FROM streetaudit.model WHERE id = ...)"
        )
    return model_id


# The images a model still has to segment: `ok`, stored, of the selected provider, without a row.
TODO_IMAGES = """
    FROM streetaudit.image AS i
    WHERE i.status = 'ok' AND i.uri IS NOT NULL
      AND (%(provider)s::text IS NULL OR i.provider = %(provider)s)
      AND NOT EXISTS (SELECT 1 FROM streetaudit.segmentation AS s
                      WHERE s.image_id = i.id AND s.model_id = %(model)s)"""


def pending_images(
    conn: psycopg.Connection, model_id: int, limit: int | None, provider: str | None = None
) -> tuple[int, list]:
    """Images already done (reported as skipped) and the work list, for the progress bar's total."""
    params = {"model": model_id, "provider": provider, "size": limit}
    skipped = scalar(
        conn.execute(
            """SELECT count(*) FROM streetaudit.segmentation AS s JOIN streetaudit.image AS i ON i.id = s.image_id
           WHERE s.model_id = %(model)s AND i.status = 'ok'
             AND (%(provider)s::text IS NULL OR i.provider = %(provider)s)""",
            params,
        )
    )
    todo = conn.execute(f"SELECT i.id, i.uri {TODO_IMAGES} ORDER BY i.id LIMIT %(size)s", params).fetchall()
    return skipped, todo


def claim_images(
    leases: Leases, model_id: int, limit: int | None, provider: str | None = None
) -> list[tuple[int, str]]:
    """The next batch of images without a row for this model that this worker now leases."""
    return leases.claim_rows(
        f"SELECT i.id, i.uri {TODO_IMAGES} AND {UNLEASED} ORDER BY i.id LIMIT %(size)s",
        {"model": model_id, "provider": provider},
        limit,
    )


def run_batches(
    url: str,
    runner: SegmentationBackend,
    model_id: int,
    loader,
    total: int,
    report: SegmentReport,
    masks_dir: Path | None,
    progress: bool,
    leases: Leases | None = None,
) -> None:
    classes = len(runner.label_set)
    # Start the workers (fork) before any thread of ours exists.
    batches = iter(loader)
    bar = RunProgress(
        TextColumn("[bold]segment[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]:.1f} images/s"),
        TimeElapsedColumn(),
        disable=not progress,
        stage="segment",
    )
    started = time.perf_counter()
    writer = RowWriter(url, model_id, runner.label_set, masks_dir, imported=runner.name == "masks")
    with bar, writer:
        before = report.done + report.failed  # images of earlier leased batches
        task = bar.add_task("segment", total=max(total, before), completed=before, speed=0.0)
        for batch in batches:
            if leases is not None:
                leases.keep_alive()
            results = predict_batch(runner, batch, classes, keep_maps=masks_dir is not None)
            writer.put(batch, results)
            report.done += sum(len(r[0]) for r in results)
            report.failed += len(batch.errors)
            report.errors.extend(list(batch.errors.items())[: max(0, 20 - len(report.errors))])
            elapsed = time.perf_counter() - started
            bar.update(task, advance=len(batch.ids), speed=(report.done + report.failed - before) / elapsed)
    # Counted when predicted; those whose image was deleted meanwhile were not stored.
    report.done -= writer.vanished_done
    report.failed -= writer.vanished - writer.vanished_done
    report.vanished = writer.vanished


def predict_batch(
    runner: SegmentationBackend, batch: Batch, classes: int, *, keep_maps: bool
) -> list[tuple[list[int], np.ndarray, int, np.ndarray | None]]:
    """Per same-size group: positions, (n, classes) histograms, pixels per image, maps if kept."""
    results = []
    with torch.inference_mode():
        for positions, tensor in batch.groups:
            maps = runner.predict(tensor.to(runner.device, non_blocking=True))
            histograms = class_histograms(maps, classes).cpu().numpy()
            pixels = int(maps.shape[-2] * maps.shape[-1])
            kept = None
            if keep_maps:
                kept = maps.to(torch.uint8 if classes <= 256 else torch.int32).cpu().numpy()
            results.append((positions, histograms, pixels, kept))
    return results


class RowWriter:
    """Writes result rows with COPY in a background thread, so the device never waits on the database.

    Rows go through a temporary table and INSERT … ON CONFLICT DO NOTHING, so two runs
    over the same images never fail or write twice.
    """

    def __init__(
        self, url: str, model_id: int, label_set, masks_dir: Path | None, *, imported: bool = False
    ) -> None:
        self.url = url
        self.imported = imported
        self.model_id = model_id
        self.label_set = label_set
        self.masks_dir = masks_dir
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.vanished = 0  # rows whose image was deleted before they were written
        self.vanished_done = 0  # of them, rows with shares (not failures)
        self.thread = threading.Thread(target=self._run, name="segmentation-writer", daemon=True)
        self.pool = ThreadPoolExecutor(4) if masks_dir else None

    def __enter__(self) -> RowWriter:
        self.conn = psycopg.connect(self.url, **CONNECT_OPTIONS)
        self.conn.execute(
            """CREATE TEMP TABLE segmentation_load (LIKE streetaudit.segmentation INCLUDING DEFAULTS)
               ON COMMIT DELETE ROWS"""
        )
        self.conn.commit()
        self.thread.start()
        return self

    def put(self, batch: Batch, results) -> None:
        """Hand a batch to the writer; its failure (a lost database) is raised here."""
        while True:
            if self.error is not None:
                raise self.error
            if not self.thread.is_alive():
                raise RuntimeError("the segmentation writer thread stopped")
            try:
                self.queue.put((batch, results), timeout=1.0)
                return
            except queue.Full:
                continue

    def __exit__(self, *exc) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.pool:
            self.pool.shutdown()
        self.conn.close()
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        done = False
        while not done:
            items = [self.queue.get()]
            while not self.queue.empty():  # coalesce what piled up into one COPY
                items.append(self.queue.get())
            done = items[-1] is None
            rows = [row for item in items if item is not None for row in self.rows(*item)]
            if rows and self.error is None:
                try:
                    self.write(rows)
                except BaseException as error:  # surfaced to the main thread at its next put/exit
                    self.error = error

    def rows(self, batch: Batch, results) -> list[tuple]:
        rows = []
        for positions, histograms, pixels, maps in results:
            shares = self.label_set.shares(histograms, np.full(len(positions), pixels))
            ids = [batch.ids[p] for p in positions]
            uris: list[str | None]
            if maps is not None:
                assert self.pool is not None  # label maps are kept only when masks are saved
                uris = list(self.pool.map(self.save_mask, ids, maps))
            elif self.imported:  # an imported label map is its own mask
                uris = [batch.sources[p] for p in positions]
            else:
                uris = [None] * len(positions)
            for image_id, share, histogram, uri in zip(
                ids, shares.tolist(), histograms.tolist(), uris, strict=True
            ):
                rows.append((image_id, self.model_id, *share, histogram, pixels, uri, None))
        for image_id, error in batch.errors.items():
            rows.append((image_id, self.model_id, *([None] * len(ELEMENTS)), None, None, None, error))
        return rows

    def save_mask(self, image_id: int, labels: np.ndarray) -> str:
        assert self.masks_dir is not None
        path = self.masks_dir / f"{image_id}.png"
        image = paletted_mask(labels, self.label_set)
        tmp = path.with_suffix(".tmp.png")
        image.save(tmp, compress_level=1)
        tmp.replace(path)
        return str(path)

    def write(self, rows: list[tuple]) -> None:
        """COPY, then insert the rows whose image still exists, locked so it cannot go meanwhile."""
        columns = ", ".join(COLUMNS)
        with self.conn.transaction():
            with self.conn.cursor().copy(f"COPY segmentation_load ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            alive = {
                r[0]
                for r in self.conn.execute(
                    """SELECT i.id FROM streetaudit.image AS i
                       WHERE i.id IN (SELECT image_id FROM segmentation_load) FOR KEY SHARE"""
                )
            }
            self.conn.execute(
                f"""INSERT INTO streetaudit.segmentation ({columns})
                    SELECT {columns} FROM segmentation_load WHERE image_id = ANY(%s)
                    ON CONFLICT (image_id, model_id) DO NOTHING""",
                (list(alive),),
            )
        gone = [row for row in rows if row[0] not in alive]
        self.vanished += len(gone)
        self.vanished_done += sum(1 for row in gone if row[-1] is None)


def summary_lines(report: SegmentReport) -> list[str]:
    """What `segment` and the pipeline's segment stage print."""
    lines = [
        f"model {report.model_id} ({report.model_name}, {report.label_set}) on {report.device}: "
        f"{report.done} segmented, {report.skipped} already done, {report.failed} failed; "
        f"{report.images_per_s:.1f} images/s"
    ]
    if report.vanished:
        lines.append(
            f"  {report.vanished} images were deleted while segmenting (points re-densified?) and skipped"
        )
    lines += [f"  image {image_id}: {error}" for image_id, error in report.errors[:10]]
    return lines


# The Prefect flow `segment`: the plain function, its parameters validated by Prefect.
segment_flow = flow(name="segment", log_prints=True)(segment)
