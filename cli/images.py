"""Commands for street-view images: `collect`, `images clean` and `images orphans`."""

from __future__ import annotations

import typer
from rich.markup import escape

from streetaudit.cli.app import (
    app,
    console,
    exit_on_database_loss,
    fail,
    images_app,
    ready_url,
)
from streetaudit.cli.options import model_options
from streetaudit.cli.processes import processes_option, run_copies
from streetaudit.flows.stage_options import CleanOptions, CollectOptions


@app.command("collect")
@model_options("collect", CollectOptions, required=("provider",))
def collect_cmd(
    collect: CollectOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    processes: int = processes_option(),
) -> None:
    """Fetch street-view images for the sample points; resumable (stored views are never refetched).

    Exit status: 0 done; 1 every view it tried failed (reasons listed; fix, then --retry-errors);
    2 bad input, or the run stopped on a key, quota or unreachable host (those views are not
    recorded, so the rerun asks again); 3 the database went away (rerun after `db up`).
    """
    if processes > 1:
        run_copies(processes)
        return
    from streetaudit.flows.collect import collect as run_collect
    from streetaudit.flows.collect import only_errors_message

    with exit_on_database_loss("collect"):
        report = run_collect(ready_url(), **collect.model_dump(), progress=progress)
    print_collect_report(report)
    if report.only_errors:
        fail(only_errors_message(report), 1)


def print_collect_report(report) -> None:
    from streetaudit.flows.collect import error_lines, summary_line

    console.print(escape(summary_line(report)), highlight=False)
    for line in error_lines(report):
        console.print(escape(line), highlight=False)


@images_app.command("clean")
@model_options("clean", CleanOptions)
def images_clean(clean: CleanOptions) -> None:
    """Mark unusable views excluded (winter, broken, tiny, duplicate placeholders), with the reason."""
    from streetaudit.flows.clean import clean_images, summary_lines

    report = clean_images(ready_url(), **clean.model_dump())
    for line in summary_lines(report, undo=clean.undo, min_bytes=clean.min_bytes):
        console.print(escape(line), highlight=False)


@images_app.command("orphans")
def images_orphans(
    delete: bool = typer.Option(False, "--delete", help="Delete the files that no image row names."),
    min_age: float = typer.Option(
        600.0,
        help="With --delete, leave files younger than this many seconds (a collect may be writing their row).",
    ),
    show: int = typer.Option(20, help="List at most this many files and rows of each kind."),
) -> None:
    """Find image files with no `image` row, and rows whose file is missing; deletes files only with --delete."""
    from streetaudit.flows.errors import InputError
    from streetaudit.flows.orphans import find_orphans

    if not min_age >= 0 or min_age == float("inf"):
        raise InputError(f"--min-age must be a finite number of seconds >= 0, got {min_age}")
    if show < 0:
        raise InputError(f"--show must be >= 0, got {show}")
    report = find_orphans(ready_url(), delete=delete, min_age_s=min_age)
    console.print(f"image store {report.root}: {report.files} files", highlight=False, soft_wrap=True)
    console.print(
        f"{len(report.orphans)} files have no image row ({report.orphan_bytes / 1e6:.1f} MB)", highlight=False
    )
    for orphan in report.orphans[:show]:
        console.print(f"  {orphan.uri}", highlight=False, soft_wrap=True)
    if len(report.orphans) > show:
        console.print(f"  … and {len(report.orphans) - show} more")
    console.print(
        f"{len(report.missing)} image rows name a file that is missing", highlight=False, soft_wrap=True
    )
    for image_id, status, uri in report.missing[:show]:
        console.print(f"  image {image_id} ({status}): {uri}", highlight=False, soft_wrap=True)
    if len(report.missing) > show:
        console.print(f"  … and {len(report.missing) - show} more")
    if report.missing:
        console.print("  (`streetaudit images clean` marks ok views whose file is gone as excluded)")
    if delete:
        console.print(
            f"deleted {report.deleted} files without an image row"
            + (f"; left {report.too_recent} younger than {min_age:g} s" if report.too_recent else ""),
            highlight=False,
            soft_wrap=True,
        )
    elif report.orphans:
        console.print("nothing deleted; `streetaudit images orphans --delete` deletes the files without rows")
