"""`streetaudit explain`: Grad-CAM heat maps of a detector, with their statistics.

Its options are `stage_options.ExplainOptions`; the pipeline runs it as the `explain` stage.
"""

from __future__ import annotations

import typer

from streetaudit.cli.app import app, console, exit_on_database_loss, ready_url
from streetaudit.cli.options import model_options
from streetaudit.flows.stage_options import ExplainOptions


@app.command("explain")
@model_options("explain", ExplainOptions, required=("model",))
def explain_cmd(
    explain: ExplainOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Heat maps of where a detector looks: overlays in the image store and per-image shares.

    Per image: share of heat inside the predicted boxes, on building pixels (from the stored
    segmentation mask; `segment --save-masks`, else NULL), the heat-weighted mean relative
    height within the facade (0 base, 1 top) and the share in its upper third. Aggregated in
    api.heat_stats; `stats plot` draws a panel of overlays.

    Exit status: 0 done; 2 bad input; 3 the database went away (rerun to resume).
    """
    from streetaudit.flows.explain import explain as run_explain

    with exit_on_database_loss("explain"):
        report = run_explain(ready_url(), **explain.model_dump(), progress=progress)
    console.print(
        f"model {report.model_id} ({report.model_name}), {report.method} on {report.device}: "
        f"{report.done} heat maps ({report.without_mask} without a segmentation mask), "
        f"{report.skipped} already done, {report.failed} unreadable; {report.images_per_s:.2f} images/s",
        highlight=False,
    )
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)
