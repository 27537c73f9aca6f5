"""Commands for results: `stats refresh|plot|export`, `serve` and `run pipeline`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from streetaudit.cli.app import app, console, fail, quiet_prefect, ready_url, run_app, split_list, stats_app
from streetaudit.cli.options import model_options
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.stage_options import (
    DEFAULT_STAGES,
    PREFIXES,
    STAGES,
    CleanOptions,
    CollectOptions,
    ExplainOptions,
    PointsOptions,
    PredictOptions,
    SegmentOptions,
    StatsOptions,
)


@stats_app.command("refresh")
@model_options("stats", StatsOptions)
def stats_refresh(
    stats: StatsOptions,
    show: bool = typer.Option(True, "--show/--quiet", help="Print the core-vs-rest table."),
) -> None:
    """Recompute the api views from one (provider, model) selection, compare cores with the rest, bump the data version.

    The comparison has point-level tests (Welch, Mann–Whitney) and street-level ones (whole
    streets permuted; OLS with street-clustered errors): report the street-level ones, since
    points on one street are not independent (README, Statistics).
    """
    from streetaudit.flows.stats import mode_line, refresh_notes, refresh_stats, summary_line

    report = refresh_stats(ready_url(), **stats.model_dump())
    console.print(summary_line(report))
    if (why := mode_line(report)) is not None:
        console.print(why, markup=False, soft_wrap=True)
    for line in refresh_notes(report):
        console.print(line, markup=False, soft_wrap=True)
    if show:
        from streetaudit.flows.stats import comparison_table, street_table

        console.print(comparison_table(report.comparisons))
        console.print(street_table(report.comparisons))


@stats_app.command("plot")
def stats_plot(
    out: Path = typer.Option(Path("plots"), help="Folder for the figures."),
    unit: str = typer.Option(
        None,
        "--unit",
        help="Map unit: street (api.street_stats) or road (api.road_stats); default street once "
        "`streets build` made streets, else road.",
    ),
    format: str = typer.Option(
        "png,svg", "--format", help="png, svg or png,svg (each figure in each format)."
    ),
) -> None:
    """Write maps of each element's mean and std per street/road (heritage outlines, a no-data key,
    a scale bar, one colour scale per element), core areas close up, the heritage areas, and box
    plots per core area and for all cores vs the rest with n, Cohen's d and Holm-adjusted p."""
    from streetaudit.flows.plots import plot_stats

    with console.status("drawing the figures…") as status:
        paths = plot_stats(
            ready_url(), out, unit=unit, formats=format, report=lambda name: status.update(f"drew {name}…")
        )
    for path in paths:
        console.print(f"wrote {path}")


@stats_app.command("export")
def stats_export(
    format: str = typer.Option(
        ..., "--format", help="gpkg (one file), parquet or csv (a folder, a file per view)."
    ),
    out: Path = typer.Option(..., help="Output .gpkg file, or folder for parquet/csv."),
) -> None:
    """Export api.road_stats, area_stats, point_elements and area_comparison."""
    from streetaudit.flows.export import export_stats

    report = export_stats(ready_url(), format, out)
    for view, n in report.rows.items():
        console.print(f"{view}: {n} rows")
    for path in report.files:
        console.print(f"wrote {path}")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
) -> None:
    """Serve tiles, TileJSON, /stats, OGC API Features (/ogc) and the map (/map) over HTTP.

    Connects as the read-only role streetaudit_reader (the private cluster's, or
    STREETAUDIT_API_DATABASE_URL) and refuses a database user that could write.
    """
    import uvicorn

    from streetaudit.api.database import api_database_url
    from streetaudit.api.role_check import check_read_only
    from streetaudit.api.settings import ApiSettings
    from streetaudit.flows.settings_loading import load_settings
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = load_settings(ApiSettings)
    url = api_database_url(settings)
    check_read_only(url, connect_timeout=settings.connect_timeout)
    os.environ["STREETAUDIT_API_DATABASE_URL"] = url
    if not settings.database_url and not DatabaseSettings().database_url:
        # The raters' endpoints log in as their own role on the private cluster.
        os.environ.setdefault("STREETAUDIT_API_RATER_DATABASE_URL", local_cluster().rater_url())
    console.print(f"raters: http://{host}:{port}/rate (open the link from `streetaudit raters add`)")
    console.print(f"map: http://{host}:{port}/map   layers: http://{host}:{port}/index.json")
    uvicorn.run(
        "streetaudit.api.app:app", host=host, port=port, workers=workers, log_level="info", proxy_headers=True
    )


# `run pipeline` takes every stage's options under the stage's prefix (flows/pipeline.py
# PREFIXES: `--road-name-field`, `--collect-limit`, `--segment-batch-size`, …); the files to
# load are `--roads FILE` and `--areas FILE`, and the options used most keep short names too.
PIPELINE_FLAGS = {
    "roads": {"path": ("--roads",), "kinds": ("--road-kinds", "--kinds")},
    "areas": {"path": ("--areas",)},
    "points": {
        "interval": ("--points-interval", "--interval"),
        "dedupe_within": ("--points-dedupe-within", "--dedupe-within"),
        "srid": ("--points-srid", "--srid"),
    },
    "collect": {"provider": ("--collect-provider", "--provider")},
    "segment": {
        "model": ("--segment-model", "--model"),
        "backend": ("--segment-backend", "--backend"),
        "device": ("--segment-device", "--device"),
    },
}
PIPELINE_HELP = {
    "roads": {"path": "Road file to (re)load; default: keep the loaded roads."},
    "areas": {"path": "Heritage area file to (re)load; default: keep the loaded areas."},
}
STAGE_MODELS = {
    "roads": RoadLoading,
    "areas": AreaLoading,
    "points": PointsOptions,
    "collect": CollectOptions,
    "clean": CleanOptions,
    "segment": SegmentOptions,
    "predict": PredictOptions,
    "explain": ExplainOptions,
    "stats": StatsOptions,
}


def stage_options(command):
    """Every stage's options on `command`, under the stage's prefix."""
    for stage in STAGES:
        command = model_options(
            stage,
            STAGE_MODELS[stage],
            prefix=PREFIXES[stage],
            flags=PIPELINE_FLAGS.get(stage),
            help=PIPELINE_HELP.get(stage),
        )(command)
    return command


@run_app.command("pipeline")
@stage_options
def run_pipeline_cmd(
    roads: RoadLoading,
    areas: AreaLoading,
    points: PointsOptions,
    collect: CollectOptions,
    clean: CleanOptions,
    segment: SegmentOptions,
    predict: PredictOptions,
    explain: ExplainOptions,
    stats: StatsOptions,
    stages: str = typer.Option(
        ",".join(DEFAULT_STAGES),
        help="Stages to run, comma-separated (e.g. points,collect); they always run in pipeline order. "
        f"All stages: {','.join(STAGES)} (predict and explain need --predict-model/--explain-model).",
    ),
    task_runner: str = typer.Option(
        "thread",
        "--task-runner",
        help="thread, or dask (the dask extra: a LocalCluster, or the scheduler at "
        "STREETAUDIT_DASK_ADDRESS). Stages that do not need each other (segment and predict; "
        "stats and explain) run side by side.",
    ),
) -> None:
    """Run roads → areas → points → collect → clean → segment → [predict → explain →] stats.

    Or the --stages chosen, as the Prefect flow `pipeline`; each stage takes the options of its
    own command under a prefix (predict and explain run only when asked).

    Exit status: 0 done; 1 the collect stage produced nothing but errors; 2 bad input.
    """
    quiet_prefect()
    from rich.markup import escape

    from streetaudit.flows.collect import CollectFailed
    from streetaudit.flows.pipeline import pipeline_flow
    from streetaudit.flows.run_reports import echoing

    try:
        with echoing(lambda text: console.print(escape(text), highlight=False, soft_wrap=True)):
            pipeline_flow(
                ready_url(),
                stages=split_list(stages),
                roads=roads,
                areas=areas,
                points=points,
                collect=collect,
                clean=clean,
                segment=segment,
                predict=predict,
                explain=explain,
                stats=stats,
                task_runner=task_runner,
            )
    except CollectFailed as error:
        fail(str(error), 1)
