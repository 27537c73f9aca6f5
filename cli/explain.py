"""`streetaudit explain`: Grad-CAM heat maps of a detector, with their statistics; `detect heat-stats`: their core-vs-rest tests.

Its options are `stage_options.ExplainOptions`; the pipeline runs it as the `explain` stage.
"""

from __future__ import annotations

import typer

from streetaudit.cli.app import app, console, exit_on_database_loss, ready_url
from streetaudit.cli.detect import detect_app
from streetaudit.cli.options import model_options
from streetaudit.cli.processes import processes_option, run_copies
from streetaudit.flows.stage_options import ExplainOptions


@app.command("explain")
@model_options("explain", ExplainOptions, required=("model",))
def explain_cmd(
    explain: ExplainOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    processes: int = processes_option(),
) -> None:
    """Heat maps of where a detector looks: overlays in the image store and per-image shares.

    Per image: share of heat inside the predicted boxes, on building pixels (from the stored
    segmentation mask; `segment --save-masks`, else NULL), the heat-weighted mean relative
    height within the facade (0 base, 1 top) and the share in its upper third. Aggregated in
    api.heat_stats; `stats plot` draws a panel of overlays.

    Exit status: 0 done; 2 bad input; 3 the database went away (rerun to resume).
    """
    if processes > 1:
        run_copies(processes)
        return
    from streetaudit.flows.explain import explain as run_explain

    with exit_on_database_loss("explain"):
        report = run_explain(ready_url(), **explain.model_dump(), progress=progress)
    console.print(
        f"model {report.model_id} ({report.model_name}), {report.method} on {report.device}: "
        f"{report.done} heat maps ({report.without_mask} without a segmentation mask), "
        f"{report.skipped} already done, {report.failed} unreadable; {report.images_per_s:.2f} images/s",
        highlight=False,
    )
    if report.empty:
        console.print(
            f"  {report.empty} maps are empty: {report.method} found no positive evidence there (stored with "
            "status 'empty', shares NULL); `--method hirescam` explains those images",
            highlight=False,
        )
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)


@detect_app.command("heat-stats")
def heat_stats_cmd(
    model: str | None = typer.Option(
        None, help="Detector (name, id or file); default every one with heat maps."
    ),
    method: str | None = typer.Option(
        None, help="CAM method (gradcam, gradcam++, eigencam, hirescam); default all."
    ),
    target: str | None = typer.Option(None, help="Heat-map target (boxes, ...); default all."),
    recompute: bool = typer.Option(
        True,
        "--recompute/--stored",
        help="Run the tests again on the current heat maps, or print the stored ones.",
    ),
) -> None:
    """Heat maps in the heritage cores vs the rest of the city: Welch t and Mann–Whitney U.

    Per image, the four statistics of `streetaudit explain` (inside_boxes, on_building,
    facade_height, upper_third); each core area, and all cores together, against the images
    of points in no core area, Holm-adjusted over the four. Stored in api.heat_comparison
    (served at /stats/heat/comparison), as `explain` does after each run.
    """
    from streetaudit.flows.detector_registry import resolve_detector
    from streetaudit.flows.heat_stats import (
        heat_comparison_table,
        read_heat_comparison,
        refresh_heat_comparisons,
    )

    url = ready_url()
    model_id = None
    if model is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            model_id = resolve_detector(conn, model)[0]
            conn.commit()
    with exit_on_database_loss("detect heat-stats"):
        read = refresh_heat_comparisons if recompute else read_heat_comparison
        rows = read(url, model_id, method, target)
    if not rows:
        console.print("no heat maps to compare yet: run `streetaudit explain --model …` first")
        return
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model_id"], row["method"], row["target"], row["area_id"]), []).append(row)
    for (m, meth, tgt, _), chosen in groups.items():
        title = f"model {m}, {meth} ({tgt}): {chosen[0]['area_name']} vs rest of the city"
        console.print(heat_comparison_table(chosen, title))
