"""The Prefect flow `label`: import one rater's (or a manifest's) box files, then merge every
rater's current boxes into a named ground truth. Made from the two plain functions, so the
flow, `run label` and the separate `annotations import|merge` commands cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from streetaudit.flows.annotations import import_annotations
from streetaudit.flows.ground_truth import merge_annotations
from streetaudit.flows.label_options import ImportOptions, MergeOptions


def import_and_merge(
    path: str,
    name: str,
    importing: ImportOptions | None = None,
    merging: MergeOptions | None = None,
    url: str | None = None,
) -> dict:
    """Import `path`, then merge into ground truth `name`; counts for the flow's result. Safe
    to schedule over a shared labelling folder: importing a file again replaces, never adds."""
    from streetaudit.flows.deployments import refuse_empty_variables

    refuse_empty_variables()  # in a deployment's run: $STREETAUDIT_LABELS_DIR was set
    if url is None:
        from streetaudit.sql.connect import ready_database

        url = ready_database()
    importing = importing or ImportOptions()
    merging = merging or MergeOptions()
    report = import_annotations(url, Path(path), **importing.model_dump())
    gt_id = merge_annotations(url, name, **merging.model_dump())
    print(f"imported {report.boxes} boxes on {report.images} images; ground truth {name!r} (id {gt_id})")
    return {
        "boxes": report.boxes,
        "images": report.images,
        "replaced": report.replaced,
        "ground_truth_id": gt_id,
    }


label_flow = flow(name="label", log_prints=True)(import_and_merge)
