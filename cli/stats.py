"""Commands for results: `stats refresh|plot|export`, `serve`, `run stats` and `run pipeline`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from streetaudit.cli.app import app, console, quiet_prefect, ready_url, run_app, split_list, stats_app
from streetaudit.cli.options import model_options
from streetaudit.flows.load_options import AreaLoading, RoadLoading


@stats_app.command("refresh")
def stats_refresh(
    model: str = typer.Option(None, help="Segmentation model id or name (default: the most recent)."),
    show: bool = typer.Option(True, "--show/--quiet", help="Print the core-vs-rest table."),
) -> None:
    """Recompute the api views from one model, compare cores with the rest, bump the data version."""
    from streetaudit.flows.stats import refresh_stats

    report = refresh_stats(ready_url(), model=model)
    console.print(
        f"stats from model {report.model_id} ({report.model_name}): {report.points} points with data, "
        f"{report.roads} roads, {report.areas} heritage areas; data version {report.version} "
        f"({report.seconds:.2f} s)"
    )
    if show:
        from streetaudit.flows.stats import comparison_table

        console.print(comparison_table(report.comparisons))


@stats_app.command("plot")
def stats_plot(out: Path = typer.Option(Path("plots"), help="Folder for the PNG files.")) -> None:
    """Write PNGs: segment means and std per element, heritage areas, box plots core vs rest."""
    from streetaudit.flows.plots import plot_stats

    for path in plot_stats(ready_url(), out):
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


@run_app.command("stats")
def run_stats(model: str = typer.Option(None, help="Segmentation model id or name.")) -> None:
    """Refresh the statistics as the Prefect flow `stats`."""
    quiet_prefect()
    from streetaudit.flows.stats import stats_flow

    stats_flow(ready_url(), model=model)


# Pipeline names for the loading options: `--roads FILE --road-name-field F …` and
# `--areas FILE --area-name-field F …` (`--kinds` kept as the older name of `--road-kinds`).
ROAD_FLAGS = {"path": ("--roads",), "kinds": ("--road-kinds", "--kinds")}
AREA_FLAGS = {"path": ("--areas",)}


@run_app.command("pipeline")
@model_options(
    "roads",
    RoadLoading,
    prefix="road-",
    flags=ROAD_FLAGS,
    help={"path": "Road file to (re)load first; default: keep the loaded roads."},
)
@model_options(
    "areas",
    AreaLoading,
    prefix="area-",
    flags=AREA_FLAGS,
    help={"path": "Heritage area file to (re)load; default: keep the loaded areas."},
)
def run_pipeline_cmd(
    roads: RoadLoading,
    areas: AreaLoading,
    interval: float = typer.Option(30.0, help="Metres between sample points."),
    provider: str = typer.Option(None, help="Street-view provider for the collect stage."),
    collect_limit: int = typer.Option(None, help="Collect at most N points."),
    model: str = typer.Option(None, help="Segmentation checkpoint (default: the backend's default)."),
    backend: str = typer.Option("hf", help="Segmentation backend."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    stages: str = typer.Option(
        ",".join(("roads", "points", "collect", "clean", "segment", "stats")),
        help="Stages to run, comma-separated; they always run in pipeline order.",
    ),
) -> None:
    """Run roads → points → collect → clean → segment → stats once, as the Prefect flow `pipeline`."""
    quiet_prefect()
    from streetaudit.flows.pipeline import pipeline_flow

    pipeline_flow(
        ready_url(),
        roads=roads,
        areas=areas,
        interval=interval,
        provider=provider,
        collect_limit=collect_limit,
        model=model,
        backend=backend,
        device=device,
        stages=split_list(stages),
    )
