"""`streetaudit detect predict`: a trained detector over every collected image.

The `detect` group belongs to cli/detect.py (train, evaluate, compare); this module adds
its `predict` command to that group, or makes the group itself where cli/detect.py is not
there yet.
"""

from __future__ import annotations

import typer

from streetaudit.cli.app import (
    app,
    command_group,
    console,
    exit_on_database_loss,
    quiet_prefect,
    ready_url,
    run_app,
)

try:
    from streetaudit.cli.detect import detect_app
except ImportError:  # before the training commands are merged
    detect_app = command_group("Heritage-feature detectors: predict across the city.")
    app.add_typer(detect_app, name="detect")

MODEL_HELP = "Detector: a model name or id (from `detect train`), or a detector file (.pt)."


def predict_cmd(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    score_threshold: float = typer.Option(0.3, help="Keep detections scoring at least this (0-1)."),
    limit: int = typer.Option(None, help="Predict at most N images in this run."),
    where_area: str = typer.Option(
        None, help="Only images of points inside this heritage area (name or id)."
    ),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    workers: int = typer.Option(None, help="DataLoader processes decoding images (default: by device)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Detect heritage features on every 'ok' image the model has not run on yet. Resumable.

    Each image's boxes (pixels of the stored image) and its detection_done row are written
    together, so a killed run resumes where it stopped and no image is stored twice. Read
    the results in api.detections, api.detection_stats and the api.detections tile layer.

    Exit status: 0 done; 2 bad input (nothing written); 3 the database went away (rerun to resume).
    """
    from streetaudit.flows.detect_predict import predict

    with exit_on_database_loss("detect predict"):
        report = predict(
            ready_url(),
            model,
            batch_size=batch_size,
            score_threshold=score_threshold,
            limit=limit,
            where_area=where_area,
            device=device,
            workers=workers,
            progress=progress,
        )
    console.print(
        f"model {report.model_id} ({report.model_name}, {report.architecture}) on {report.device}: "
        f"{report.done} images, {report.detections} detections, {report.skipped} already done, "
        f"{report.failed} unreadable; {report.images_per_s:.1f} images/s",
        highlight=False,
    )
    if report.vanished:
        console.print(f"  {report.vanished} images were deleted while predicting and skipped")
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)


detect_app.command("predict")(predict_cmd)


@run_app.command("detect-predict")
def run_predict(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    score_threshold: float = typer.Option(0.3, help="Keep detections scoring at least this (0-1)."),
    limit: int = typer.Option(None, help="Predict at most N images in this run."),
    where_area: str = typer.Option(
        None, help="Only images of points inside this heritage area (name or id)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Predict as the Prefect flow `detect-predict`."""
    quiet_prefect()
    from streetaudit.flows.detect_predict import predict_flow

    with exit_on_database_loss("detect predict"):
        predict_flow(
            ready_url(),
            model,
            batch_size=batch_size,
            score_threshold=score_threshold,
            limit=limit,
            where_area=where_area,
            device=device,
        )
