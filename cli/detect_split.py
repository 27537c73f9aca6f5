"""`detect split`: a ground truth's images into a stored, seeded train/val/test split."""

from __future__ import annotations

import typer

from streetaudit.cli.app import console, ready_url
from streetaudit.cli.detect import detect_app
from streetaudit.cli.options import model_options
from streetaudit.flows.label_options import SplitOptions


@detect_app.command("split")
@model_options("splitting", SplitOptions, required=("ground_truth",))
def detect_split(
    splitting: SplitOptions,
    name: str = typer.Option(..., help="Name of the new dataset (split)."),
) -> None:
    """Split a ground truth's images into train/val/test by sample point, seeded, and store it.

    The views of one point never straddle train and test; every run on the dataset uses the
    same images. --sample N keeps about N images for a quick trial.
    """
    from streetaudit.flows.detect_split import split_dataset

    report = split_dataset(ready_url(), name, **splitting.model_dump())
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    console.print(
        f"dataset {name} (id {report.dataset_id}): {counts} images from {report.points} sample points",
        highlight=False,
    )
