"""Grad-CAM heat maps of a detector over the city's images, with their statistics.

Per image: the detector's boxes (at the score threshold), the heat map of the chosen
method for them, an overlay PNG in the image store (`heatmaps/model-M/METHOD/ID.png`) and
one heatmap row (image, model, method, target) with the four shares of models/gradcam.py.
The building pixels come from the image's stored segmentation mask (mask_uri; the stats
model's when it has one, else the newest); without a mask the building shares are NULL.

Images that already have a row for (model, method, target) are skipped; `redo` computes
them again and replaces the row (never a second one). Images with the most predicted
detections go first, so `--limit 20` explains the most telling ones. Each image is its own
transaction; an image deleted meanwhile is skipped and counted. A run that made heat maps
then stores the core-vs-rest tests of (model, method, target) again (flows/heat_stats.py).

Many workers (`--processes N`, or the same command on other machines) share the images
through leases (flows/leases.py, stage 'explain', scope model id, method and target), a
small batch at a time (`STREETAUDIT_LEASE_EXPLAIN_BATCH`): each image is explained by one of
them, and a killed worker's batch is taken over when its leases expire. With `redo` an image
is done again if its row is older than the worker's start, so workers of one redo should
start together (`--processes N` does): one started later would redo what others just did.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
import psycopg
from prefect import flow
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from streetaudit.flows.database_loss import CONNECT_OPTIONS, reporting_database_loss
from streetaudit.flows.detect_predict import _IN_AREA, area_filter, open_detector
from streetaudit.flows.errors import InputError
from streetaudit.flows.heat_stats import store_heat_comparisons
from streetaudit.flows.image_store import ImageStore
from streetaudit.flows.leases import UNLEASED, Leases
from streetaudit.flows.run_reports import RunProgress
from streetaudit.models.gradcam import METHODS, TARGETS, explain_image, heat_statistics, overlay_png
from streetaudit.models.inputs import ImageReader, read_bytes
from streetaudit.models.label_sets import LabelSetError, from_labels
from streetaudit.sql.rows import scalar


@dataclass
class ExplainReport:
    model_id: int
    model_name: str
    method: str
    target: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    vanished: int = 0
    without_mask: int = 0
    empty: int = 0  # maps of nothing (status 'empty': no positive evidence for the method)
    seconds: float = 0.0
    images_per_s: float = 0.0
    device: str = "cpu"
    errors: list[tuple[int, str]] = field(default_factory=list)


# The images still to explain (model, method, target): `ok`, stored, in the area if one is
# given, without a row computed since `redo_before` (NULL: without any row).
TODO_IMAGES = f"""
    FROM streetaudit.image AS i
    LEFT JOIN streetaudit.detection_done AS d ON d.image_id = i.id AND d.model_id = %(model)s
    WHERE i.status = 'ok' AND i.uri IS NOT NULL {_IN_AREA}
      AND NOT EXISTS (SELECT 1 FROM streetaudit.heatmap AS h
                      WHERE h.image_id = i.id AND h.model_id = %(model)s
                        AND h.method = %(method)s AND h.target = %(target)s
                        AND (%(redo_before)s::timestamptz IS NULL OR h.computed_at >= %(redo_before)s))"""
# Most predicted detections first: `--limit 20` explains the most telling images.
MOST_TELLING = "ORDER BY d.n DESC NULLS LAST, i.id"


def pending_images(conn, params: dict, limit: int | None) -> tuple[int, list]:
    """Images already explained (reported as skipped; none with a redo) and the work list, for
    the progress bar's total; `params` as TODO_IMAGES binds them."""
    skipped = 0
    if params["redo_before"] is None:
        skipped = conn.execute(
            f"""SELECT count(*) FROM streetaudit.image AS i WHERE i.status = 'ok' {_IN_AREA}
                AND EXISTS (SELECT 1 FROM streetaudit.heatmap AS h WHERE h.image_id = i.id
                            AND h.model_id = %(model)s AND h.method = %(method)s AND h.target = %(target)s)""",
            params,
        ).fetchone()[0]
    todo = conn.execute(
        f"SELECT i.id, i.uri {TODO_IMAGES} {MOST_TELLING} LIMIT %(limit)s", {**params, "limit": limit}
    ).fetchall()
    return skipped, todo


def claim_images(leases: Leases, params: dict, limit: int | None) -> list[tuple[int, str]]:
    """The next few images still to explain that this worker now leases, most telling first."""
    return leases.claim_rows(
        f"SELECT i.id, i.uri {TODO_IMAGES} AND {UNLEASED} {MOST_TELLING} LIMIT %(size)s",
        params,
        limit,
        batch=leases.settings.explain_batch,
    )


def building_mask(conn: psycopg.Connection, image_id: int) -> np.ndarray | None:
    """The image's building pixels from its stored segmentation mask, None when it has none."""
    row = conn.execute(
        """SELECT s.mask_uri, m.labels FROM streetaudit.segmentation AS s
           JOIN streetaudit.model AS m ON m.id = s.model_id
           LEFT JOIN streetaudit.stats_state AS st ON st.model_id = s.model_id
           WHERE s.image_id = %s AND s.mask_uri IS NOT NULL AND s.error IS NULL
           ORDER BY st.model_id IS NOT NULL DESC, s.model_id DESC LIMIT 1""",
        (image_id,),
    ).fetchone()
    if row is None:
        return None
    uri, labels = row
    try:
        ids = from_labels(labels).elements["building"]
    except LabelSetError:
        return None
    from PIL import Image

    with Image.open(io.BytesIO(read_bytes(uri))) as image:
        classes = np.array(image)
    return np.isin(classes, ids)


def explain(
    url: str,
    model: str | None = None,
    method: str = "gradcam",
    limit: int | None = None,
    target: str = "boxes",
    device: str = "auto",
    progress: bool = True,
    score_threshold: float = 0.3,
    where_area: str | None = None,
    redo: bool = False,
    store: ImageStore | None = None,
) -> ExplainReport:
    """Heat maps and their statistics for up to `limit` images not yet explained this way."""
    if not model:
        raise InputError("--model is required: a detector name or id (from `detect train`) or a file")
    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise InputError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    if not 0 <= score_threshold <= 1:
        raise InputError(f"--score-threshold must be between 0 and 1, got {score_threshold}")
    store = store or ImageStore()
    with reporting_database_loss("explain"), psycopg.connect(url, **CONNECT_OPTIONS) as conn:
        model_id, name, detector = open_detector(conn, model, device)
        if detector.architecture.startswith("mmdet:"):
            raise InputError(
                f"--model {model}: an mmdet detector; explain needs a torchvision one (its backbone and "
                "transform), from `detect train`"
            )
        area_id = area_filter(conn, where_area)
        # Redo: rows computed before this run are done again (the database's clock, as theirs).
        redo_before = scalar(conn.execute("SELECT now()")) if redo else None
        params = {
            "model": model_id,
            "method": method,
            "target": target,
            "area": area_id,
            "redo_before": redo_before,
        }
        skipped, todo = pending_images(conn, params, limit)
        conn.commit()
        report = ExplainReport(
            model_id,
            name,
            method,
            target,
            skipped=skipped,
            device=str(next(detector.model.parameters()).device),
        )
        reader = ImageReader()
        bar = RunProgress(
            TextColumn("[bold]explain[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not progress,
            stage="explain",
        )
        start = time.perf_counter()
        # Other `explain` processes (here or elsewhere) may share this model, method and target.
        leases = Leases(url, "explain", f"{model_id}:{method}:{target}")
        with bar, leases:
            task = bar.add_task("explain", total=len(todo))
            for chunk in leases.batches(lambda left: claim_images(leases, params, left), limit):
                for image_id, uri in chunk:
                    explain_one(conn, detector, store, report, image_id, uri, reader, score_threshold)
                    bar.advance(task)
        report.seconds = time.perf_counter() - start
        report.images_per_s = (report.done + report.failed) / report.seconds if report.seconds else 0.0
        if report.done:
            # New heat maps, new core-vs-rest tests (api.heat_comparison) for this model and method.
            store_heat_comparisons(conn, model_id, method, target)
            conn.commit()
        store.release()
        return report


def explain_one(conn, detector, store, report, image_id, uri, reader, score_threshold) -> None:
    try:
        pixels, _ = reader(uri)
    except (OSError, RuntimeError, ValueError) as error:
        report.failed += 1
        if len(report.errors) < 20:
            report.errors.append((image_id, f"{type(error).__name__}: {error}"[:500]))
        return
    device = next(detector.model.parameters()).device
    heat = explain_image(
        detector.model, pixels.to(device).float() / 255, report.method, score_threshold=score_threshold
    )
    try:
        mask = building_mask(conn, image_id)
    except (OSError, ValueError):
        mask = None
    conn.commit()
    report.without_mask += mask is None
    stats = heat_statistics(heat.heat, heat.boxes, mask)
    key = f"heatmaps/model-{report.model_id}/{report.method.replace('+', 'p')}/{image_id}.png"
    png = overlay_png(pixels.permute(1, 2, 0).numpy(), heat.heat, heat.boxes)
    with conn.transaction():
        alive = conn.execute(
            "SELECT 1 FROM streetaudit.image WHERE id = %s FOR KEY SHARE", (image_id,)
        ).fetchone()
        if alive is None:
            report.vanished += 1
            return
        file_uri = store.put(key, png)
        conn.execute(
            """INSERT INTO streetaudit.heatmap (image_id, model_id, method, target, uri, inside_boxes,
                                                on_building, facade_height, upper_third, status)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (image_id, model_id, method, target) DO UPDATE SET
                   uri = EXCLUDED.uri, status = EXCLUDED.status, inside_boxes = EXCLUDED.inside_boxes,
                   on_building = EXCLUDED.on_building, facade_height = EXCLUDED.facade_height,
                   upper_third = EXCLUDED.upper_third, computed_at = now()""",
            (
                image_id,
                report.model_id,
                report.method,
                report.target,
                file_uri,
                stats.inside_boxes,
                stats.on_building,
                stats.facade_height,
                stats.upper_third,
                heat.status,
            ),
        )
    report.done += 1
    report.empty += heat.status == "empty"


def summary_line(report: ExplainReport) -> str:
    return (
        f"model {report.model_id} ({report.model_name}), {report.method}: {report.done} heat maps, "
        f"{report.skipped} already done, {report.failed} failed; {report.images_per_s:.2f} images/s"
    )


explain_flow = flow(name="explain", log_prints=True)(explain)
