"""Commands for streets: `streets build`."""

from __future__ import annotations

import typer

from streetaudit.cli.app import app, command_group, console, ready_url
from streetaudit.flows.streets import DEFAULT_MAX_LENGTH

streets_app = command_group("Streets: the roads merged into continuous streets and cut at junctions.")
app.add_typer(streets_app, name="streets")


@streets_app.command("build")
def streets_build(
    by: str = typer.Option(
        "name",
        "--by",
        help="junction: cut a street wherever three or more line ends meet; "
        "name: let a named street go on across side streets, cutting it only where it forks or its name or kind changes.",
    ),
    max_length: float = typer.Option(
        DEFAULT_MAX_LENGTH,
        "--max-length",
        help="Cut longer streets into the fewest equal parts no longer than this many metres (0: never).",
    ),
) -> None:
    """Merge the roads into streets (same name and kind, end to end), cut at junctions and every
    --max-length metres; replaces the previous streets, keeps points and images, and refreshes
    the street statistics (api.street_stats) and tiles (api.streets)."""
    from streetaudit.flows.streets import build_streets

    with console.status("building streets…"):
        report = build_streets(ready_url(), by=by, max_length=max_length or None)
    console.print(
        f"{report.streets} streets from {report.roads} roads ({report.kept} kept, {report.added} new, "
        f"{report.removed} removed; {report.seconds:.2f} s)"
    )
    if report.median_m is not None:
        console.print(
            f"street length: median {report.median_m:.0f} m, 90th percentile {report.p90_m:.0f} m, "
            f"longest {report.longest_m:.0f} m; half of all street length is in streets of "
            f"{report.length_weighted_median_m:.0f} m or more"
        )
