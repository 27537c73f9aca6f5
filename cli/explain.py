"""`streetaudit explain`: Grad-CAM heat maps of a detector, with their statistics."""

from __future__ import annotations

import typer

from streetaudit.cli.app import app, console, exit_on_database_loss, quiet_prefect, ready_url, run_app

_METHOD_HELP = (
    "gradcam, gradcam++, eigencam (gradient-free) or hirescam (gradient x activation; use it when "
    "gradcam maps come out empty, as they can on detectors)."
)


@app.command("explain")
def explain_cmd(
    model: str = typer.Option(..., "--model", help="Detector: a model name or id, or a detector file (.pt)."),
    method: str = typer.Option("gradcam", help=_METHOD_HELP),
    limit: int = typer.Option(None, help="Explain at most N images (those with most detections first)."),
    target: str = typer.Option("boxes", help="What to explain: boxes (the detector's own boxes)."),
    score_threshold: float = typer.Option(0.3, help="Boxes scoring at least this are explained."),
    where_area: str = typer.Option(
        None, help="Only images of points inside this heritage area (name or id)."
    ),
    redo: bool = typer.Option(
        False, "--redo", help="Compute again images already explained (rows replaced)."
    ),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Heat maps of where a detector looks: overlays in the image store and per-image shares.

    Per image: share of heat inside the predicted boxes, on building pixels (from the stored
    segmentation mask; `segment --save-masks`, else NULL), the heat-weighted mean relative
    height within the facade (0 base, 1 top) and the share in its upper third. Aggregated in
    api.heat_stats; `stats plot` draws a panel of overlays.

    Exit status: 0 done; 2 bad input; 3 the database went away (rerun to resume).
    """
    from streetaudit.flows.explain import explain

    with exit_on_database_loss("explain"):
        report = explain(
            ready_url(),
            model,
            method=method,
            limit=limit,
            target=target,
            device=device,
            progress=progress,
            score_threshold=score_threshold,
            where_area=where_area,
            redo=redo,
        )
    console.print(
        f"model {report.model_id} ({report.model_name}), {report.method} on {report.device}: "
        f"{report.done} heat maps ({report.without_mask} without a segmentation mask), "
        f"{report.skipped} already done, {report.failed} unreadable; {report.images_per_s:.2f} images/s",
        highlight=False,
    )
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)


@run_app.command("explain")
def run_explain(
    model: str = typer.Option(..., "--model", help="Detector: a model name or id, or a detector file (.pt)."),
    method: str = typer.Option("gradcam", help=_METHOD_HELP),
    limit: int = typer.Option(None, help="Explain at most N images."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Heat maps as the Prefect flow `explain`."""
    quiet_prefect()
    from streetaudit.flows.explain import explain_flow

    with exit_on_database_loss("explain"):
        explain_flow(ready_url(), model, method=method, limit=limit, device=device)
