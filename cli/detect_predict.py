"""`streetaudit detect predict`: a trained detector over every collected image.

Its options are `stage_options.PredictOptions`; the pipeline runs it as the `predict` stage
(`run pipeline --stages predict --predict-model NAME`).
"""

from __future__ import annotations

import typer

from streetaudit.cli.app import console, exit_on_database_loss, ready_url
from streetaudit.cli.detect import detect_app
from streetaudit.cli.options import model_options
from streetaudit.cli.processes import processes_option, run_copies
from streetaudit.flows.stage_options import PredictOptions


@detect_app.command("predict")
@model_options("predict", PredictOptions, required=("model",))
def predict_cmd(
    predict: PredictOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    processes: int = processes_option(),
) -> None:
    """Detect heritage features on every 'ok' image the model has not run on yet. Resumable.

    Each image's boxes (pixels of the stored image) and its detection_done row are written
    together, so a killed run resumes where it stopped and no image is stored twice. Read
    the results in api.detections, api.detection_stats and the api.detections tile layer.

    Exit status: 0 done; 2 bad input (nothing written); 3 the database went away (rerun to resume).
    """
    if processes > 1:
        run_copies(processes)
        return
    from streetaudit.flows.detect_predict import predict as run_predict
    from streetaudit.flows.detect_predict import summary_line

    with exit_on_database_loss("detect predict"):
        report = run_predict(ready_url(), **predict.model_dump(), progress=progress)
    console.print(summary_line(report), highlight=False)
    if report.vanished:
        console.print(f"  {report.vanished} images were deleted while predicting and skipped")
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)
