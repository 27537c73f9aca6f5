"""Commands for the database, roads, heritage areas, sample points and the demo."""

from __future__ import annotations

import typer

from streetaudit.cli.app import (
    app,
    areas_app,
    console,
    db_app,
    points_app,
    print_skipped,
    ready_url,
    roads_app,
)
from streetaudit.cli.options import model_options
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.stage_options import PointsOptions
from streetaudit.sql.errors import DatabaseSetupError
from streetaudit.sql.rows import scalar


# -- db ----------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Initialise (once) and start the private PostGIS cluster, then apply migrations."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.migrate import migrate
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        console.print("STREETAUDIT_DATABASE_URL is set; using that server (nothing to start).")
        url = settings.database_url
    else:
        cluster = local_cluster(settings)
        url = cluster.up()
        state = cluster.state()
        assert state is not None  # up() has just written it
        console.print(f"PostGIS running: data in {state.pgdata}, port {state.port}")
    applied = migrate(url)
    console.print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


@db_app.command("down")
def db_down() -> None:
    """Stop the private cluster (its data stays)."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        console.print("STREETAUDIT_DATABASE_URL is set: that server is not ours to stop.")
        return
    stopped = local_cluster(settings).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Say which database is used and whether the private cluster runs."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        import psycopg

        try:
            with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                version = scalar(conn.execute("SELECT postgis_lib_version()"))
        except psycopg.Error as error:
            raise DatabaseSetupError(f"STREETAUDIT_DATABASE_URL does not answer: {error}") from error
        console.print(f"using STREETAUDIT_DATABASE_URL: reachable, PostGIS {version}")
        return
    cluster = local_cluster(settings)
    state = cluster.state()
    if state is None:
        console.print(f"no private cluster under {settings.data_dir} (run `streetaudit db up`)")
        raise typer.Exit(1)
    running = cluster.running()
    console.print(f"private cluster {'running' if running else 'stopped'}: {state.pgdata}, port {state.port}")
    if not running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url(
    reader: bool = typer.Option(False, "--reader", help="URL of the read-only role streetaudit_reader."),
) -> None:
    """Print a libpq URL for psql, QGIS or pandas (on the last line)."""
    from streetaudit.sql.connect import database_url, local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if reader and not settings.database_url:
        local_cluster(settings).up()
        print(local_cluster(settings).reader_url())
        return
    print(database_url(settings))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations in order; refuses if an applied file changed."""
    from streetaudit.sql.connect import database_url
    from streetaudit.sql.migrate import migrate

    applied = migrate(database_url())
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


# -- roads, areas, points -------------------------------------------------------------------
@roads_app.command("load")
@model_options("roads", RoadLoading, argument="path")
def roads_load(roads: RoadLoading) -> None:
    """Load road centre lines (any CRS; multi-lines split; degenerate rows skipped and reported)."""
    from streetaudit.flows.roads import load_roads

    url = ready_url()
    assert roads.path is not None  # the command's argument
    with console.status(f"reading {roads.path.name} and writing roads…"):
        report = load_roads(url, **roads.model_dump())
    console.print(
        f"loaded {report.loaded} road line{'' if report.loaded == 1 else 's'} ({report.length_km:.1f} km) "
        f"from {report.rows} row{'' if report.rows == 1 else 's'} of {roads.path}: "
        f"{report.summary()}",
        soft_wrap=True,
    )
    if report.streets_rebuilt is not None:
        by, max_length, streets = report.streets_rebuilt
        cut = f" --max-length {max_length:g}" if max_length else ""
        console.print(f"streets rebuilt as last built (--by {by}{cut}): {streets} streets")
    print_skipped(report.skipped)
    print_repaired(report.warnings)


@areas_app.command("load")
@model_options("areas", AreaLoading, argument="path")
def areas_load(areas: AreaLoading) -> None:
    """Load heritage areas (invalid polygons repaired, empty ones skipped and reported)."""
    from streetaudit.flows.areas import load_areas

    report = load_areas(ready_url(), **areas.model_dump())
    console.print(
        f"loaded {report.loaded} areas from {report.rows} rows of {areas.path}: {report.summary('areas')}",
        soft_wrap=True,
    )
    print_skipped(report.skipped)
    print_repaired(report.warnings)


def print_repaired(warnings: list[tuple[int, str]]) -> None:
    for row, text in warnings:
        console.print(f"  row {row}: {text}", highlight=False, soft_wrap=True)


@points_app.command("densify")
@model_options("points", PointsOptions)
def points_densify(points: PointsOptions) -> None:
    """Place sample points at 0, d, 2d, … metres along every road, in PostGIS. Idempotent.

    Points of an earlier interval are retired, not deleted: they keep their images, and come
    back (same ids) when a new point falls within 1.5 m of one on the same road.
    """
    from streetaudit.flows.points import densify, summary_lines

    url = ready_url()
    with console.status(f"placing sample points every {points.interval:g} m…"):
        report = densify(url, **points.model_dump())
    for line in summary_lines(report, points.interval):
        console.print(line, highlight=False, soft_wrap=True)


# -- demo --------------------------------------------------------------------------------
@app.command("demo")
def demo(
    interval: float = typer.Option(30.0, help="Metres between sample points."),
) -> None:
    """Run the whole pipeline offline on real OSM roads of central Helsinki."""
    from streetaudit.flows.demo import run_demo

    run_demo(ready_url(), console, interval=interval)
