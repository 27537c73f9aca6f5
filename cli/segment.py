"""The `segment` command: its options are `stage_options.SegmentOptions`."""

from __future__ import annotations

import typer

from streetaudit.cli.app import app, console, exit_on_database_loss, ready_url
from streetaudit.cli.options import model_options
from streetaudit.cli.processes import processes_option, run_copies
from streetaudit.flows.stage_options import SegmentOptions


@app.command("segment")
@model_options("segment", SegmentOptions)
def segment_cmd(
    segment: SegmentOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    processes: int = processes_option(),
) -> None:
    """Segment collected images into building/road/sky/greenery/sidewalk/car shares. Idempotent.

    Exit status: 0 done; 2 bad input (nothing written); 3 the database went away (rows written
    are kept; rerun after `db up` to resume).
    """
    if processes > 1:
        run_copies(processes)
        return
    from streetaudit.flows.segment import segment as run_segment
    from streetaudit.flows.segment import summary_lines

    with exit_on_database_loss("segment"):
        report = run_segment(ready_url(), **segment.model_dump(), progress=progress)
    for line in summary_lines(report):
        console.print(line, highlight=False)
