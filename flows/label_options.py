"""What the labelling stages are told: `annotations import`, `annotations merge`, `detect split`.

One options model per stage, as in flows/stage_options.py: the CLI command (via
cli.options.model_options) and the Prefect flow `label` take these models, and the plain
functions' keyword parameters carry the same names and defaults. Kept free of heavy imports.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from streetaudit.flows.stage_options import StageOptions, comma_list


class ImportOptions(StageOptions):
    """Keywords of `streetaudit.flows.annotations.import_annotations` (besides url, path, progress)."""

    fmt: str = Field("voc", description="voc (labelImg XML), yolo (txt + classes.txt) or coco (JSON).")
    rater: str | None = Field(
        None,
        description="Whose boxes these are (a name from `raters add`; default: the manifest's rater column).",
    )
    manifest: str | None = Field(
        None,
        description="manifest.csv from `ratings top`: file -> image id (else matched by file name, then SHA-256).",
    )
    labels: list[str] | None = Field(
        None,
        description="Allowed labels, comma-separated; a box with another label is reported (default: any).",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return None if value is None else comma_list(value) or None


class MergeOptions(StageOptions):
    """Keywords of `streetaudit.flows.ground_truth.merge_annotations` (besides url and name)."""

    method: str = Field(
        "wbf", description="wbf (weighted boxes fusion), median (cluster's median box) or union (every box)."
    )
    iou: float = Field(0.55, description="Boxes of one label overlapping at IoU >= this are one feature.")
    min_raters: int = Field(
        1, description="Keep a feature drawn by at least this many raters (1 = the union)."
    )
    labels: list[str] | None = Field(None, description="Only these labels, comma-separated (default: all).")
    replace: bool = Field(
        False, description="Replace a ground truth of the same name (not one a dataset uses)."
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return None if value is None else comma_list(value) or None


class SplitOptions(StageOptions):
    """Keywords of `streetaudit.flows.detect_split.split_dataset` (besides url and name)."""

    ground_truth: str = Field("", description="The ground truth to split (`annotations merge --name`).")
    test: float = Field(0.3, description="Share of images held out for testing (by sample point).")
    val: float = Field(0.3, description="Share of the remaining images for validation.")
    seed: int = Field(0, description="Seed of the random order of sample points (same seed, same split).")
    replace: bool = Field(
        False, description="Replace a dataset of the same name (not one with training runs)."
    )
    sample: int | None = Field(
        None,
        description="Keep only about N images (whole sample points, seeded) for a quick trial; "
        "default: every image of the ground truth.",
    )
