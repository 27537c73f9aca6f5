"""The `streetaudit` application object, its command groups and what every command shares.

Commands live in one module per stage (data, images, segment, stats, ratings) and
import their stage lazily, so `--help` and `db` stay quick; Prefect's server is only
involved under `streetaudit run …`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from streetaudit.sql.errors import StreetauditError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, status: int) -> NoReturn:
    """One red line on stderr (as text, not markup) and exit with `status`."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(status)


class StreetauditGroup(TyperGroup):
    """Turns errors the user can act on into one red line and exit status 2, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StreetauditError as error:
            fail(str(error), 2)


@contextmanager
def exit_on_database_loss(stage: str) -> Iterator[None]:
    """For the long-running commands: one red line and exit status 3 when the database is lost."""
    from streetaudit.flows.database_loss import EXIT_DATABASE_LOST, DatabaseLost, reporting_database_loss

    try:
        with reporting_database_loss(stage):
            yield
    except DatabaseLost as error:
        fail(str(error), EXIT_DATABASE_LOST)


def command_group(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, cls=StreetauditGroup)


app = command_group(
    "Audit a city's streetscape from street-view imagery: roads and heritage areas in, "
    "sample points, images, segmentation, statistics and vector tiles out. "
    "Uses STREETAUDIT_DATABASE_URL, or a private PostGIS under STREETAUDIT_DATA_DIR (default ./.streetaudit)."
)
db_app = command_group("Start, stop and migrate the database.")
roads_app = command_group("Road centre lines.")
areas_app = command_group("Heritage (historic core) areas.")
points_app = command_group("Sample points along the roads.")
run_app = command_group(
    "Run stages as Prefect flows (uses or starts a Prefect server): `run pipeline --stages …`, `run ratings`."
)
images_app = command_group("Collected street-view images: cleaning.")
stats_app = command_group("Statistics per segment and heritage area: refresh, plot, export.")
app.add_typer(db_app, name="db")
app.add_typer(roads_app, name="roads")
app.add_typer(areas_app, name="areas")
app.add_typer(points_app, name="points")
app.add_typer(run_app, name="run")
app.add_typer(images_app, name="images")
app.add_typer(stats_app, name="stats")


def ready_url() -> str:
    from streetaudit.sql.connect import ready_database

    return ready_database()


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def print_skipped(skipped: list[tuple[int, str]], limit: int = 20) -> None:
    for row, reason in skipped[:limit]:
        console.print(f"  skipped row {row}: {reason}")
    if len(skipped) > limit:
        console.print(f"  … and {len(skipped) - limit} more skipped rows")


def quiet_prefect() -> None:
    """Prefect's telemetry would print a traceback on this offline machine class."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
