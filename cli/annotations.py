"""Commands for heritage-feature boxes: `annotations import|export|merge|list`.

The Prefect flow `label` (flows/label.py: import, then merge) takes the same options models.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from streetaudit.cli.app import (
    app,
    command_group,
    console,
    fail,
    ready_url,
    split_list,
)
from streetaudit.cli.options import model_options
from streetaudit.flows.label_options import ImportOptions, MergeOptions

annotations_app = command_group(
    "Raters' boxes around heritage features: import labelImg VOC / YOLO / COCO files, export, "
    "merge several raters into a ground truth, list."
)
app.add_typer(annotations_app, name="annotations")


def _import(url: str, path: Path, importing: ImportOptions, progress: bool):
    from streetaudit.flows.annotations import ImportProblems, import_annotations

    try:
        return import_annotations(url, path, **importing.model_dump(), progress=progress)
    except ImportProblems as error:
        for problem in error.problems[:50]:
            console.print(f"  {escape(problem)}", highlight=False, soft_wrap=True)
        if len(error.problems) > 50:
            console.print(f"  … and {len(error.problems) - 50} more")
        fail(f"{len(error.problems)} problem(s) in {path}; nothing imported (fix them and import again)", 2)


def _print_import(report) -> None:
    how = ", ".join(f"{n} by {k}" for k, n in report.matched_by.items())
    labels = ", ".join(f"{k} {n}" for k, n in report.labels.most_common())
    console.print(
        f"imported {report.boxes} boxes on {report.images} images from {report.files} files ({how}); "
        f"{report.clipped} clipped to the image, {report.replaced} earlier boxes replaced"
        + (f"; labels: {labels}" if labels else ""),
        highlight=False,
        soft_wrap=True,
    )


@annotations_app.command("import")
@model_options("importing", ImportOptions, flags={"fmt": ("--format",)})
def annotations_import(
    importing: ImportOptions,
    path: Path = typer.Argument(..., help="A box file, or a folder of them (searched recursively)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Import raters' boxes; all or nothing: every unmatched file, unknown label or empty box is
    listed by file and object/line number and then nothing is stored. Importing a file again
    replaces that rater's boxes from it (the old rows are kept, marked replaced)."""
    _print_import(_import(ready_url(), path, importing, progress))


@annotations_app.command("export")
def annotations_export(
    fmt: str = typer.Option(..., "--format", help="voc, yolo or coco."),
    out: Path = typer.Option(..., help="Folder to write the files and manifest.csv into."),
    ground_truth: str = typer.Option(None, help="Export this merged ground truth instead of raters' boxes."),
    rater: str = typer.Option(None, help="Only this rater's boxes (default: every rater's current boxes)."),
    labels: str = typer.Option(None, help="Label order for YOLO classes / COCO categories, comma-separated."),
) -> None:
    """Write the current boxes as VOC, YOLO or COCO, with a manifest.csv that re-imports exactly."""
    from streetaudit.flows.annotations import export_annotations

    report = export_annotations(ready_url(), out, fmt, ground_truth, rater, split_list(labels))
    console.print(f"{report.boxes} boxes on {report.images} images written to {report.out}", highlight=False)


@annotations_app.command("merge")
@model_options("merging", MergeOptions)
def annotations_merge(
    merging: MergeOptions,
    name: str = typer.Option(..., help="Name of the new ground truth."),
) -> None:
    """Merge every rater's current boxes into one named ground truth: per image and label, boxes
    overlapping at IoU >= --iou are one feature, fused by --method and kept when drawn by at least
    --min-raters raters. Images annotated as empty are kept as negatives."""
    from streetaudit.flows.ground_truth import merge_annotations

    gt_id = merge_annotations(ready_url(), name, **merging.model_dump())
    _print_truths(only=name)
    console.print(f"ground truth {name} stored (id {gt_id})", highlight=False)


def _print_truths(only: str | None = None) -> None:
    from streetaudit.flows.annotations import list_annotations

    raters, truths = list_annotations(ready_url())
    if only is None and not raters:
        console.print("no annotations yet: `streetaudit annotations import PATH --format voc|yolo|coco`")
    if only is None:
        for r in raters:
            labels = ", ".join(f"{k} {v}" for k, v in sorted(r.labels.items()))
            console.print(
                f"{escape(r.rater or '(no rater)')}\t{r.images} images\t{r.boxes} boxes\t{escape(labels)}",
                highlight=False,
                soft_wrap=True,
            )
    for name, method, iou, min_raters, labels, images, boxes, created in truths:
        if only is None or name == only:
            console.print(
                f"ground truth {escape(name)}\t{method} iou {iou:g} min raters {min_raters}\t"
                f"{images} images\t{boxes} boxes\t{escape(','.join(labels))}\t{created:%Y-%m-%d %H:%M}",
                highlight=False,
                soft_wrap=True,
            )


@annotations_app.command("list")
def annotations_list() -> None:
    """Current boxes per rater (images, boxes, labels) and the stored ground truths."""
    _print_truths()


@annotations_app.command("campaign")
def annotations_campaign(
    labels: str = typer.Option(
        None, help="Labels raters may give a box on /label, comma-separated, in key order (1..9)."
    ),
    top_n: int = typer.Option(None, help="How many of each rater's top images /label offers."),
) -> None:
    """Show or change the /label page's settings (without options: show them)."""
    from streetaudit.flows.label_campaign import read_label_campaign, set_label_campaign

    url = ready_url()
    if labels is None and top_n is None:
        campaign = read_label_campaign(url)
    else:
        chosen = None if labels is None else [v for v in labels.split(",") if v.strip()]
        campaign = set_label_campaign(url, labels=chosen, top_n=top_n)
    console.print(f"/label: labels {', '.join(campaign.labels)}; each rater's top {campaign.top_n} images")
