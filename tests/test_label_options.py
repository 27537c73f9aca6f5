"""The labelling stages' options models: every field reaches its function with the same default
and its CLI command as one flag; the Prefect flow `label` runs import then merge."""

from __future__ import annotations

import inspect

import numpy as np
import psycopg
import pytest
import typer
from PIL import Image

from streetaudit.cli.main import app
from streetaudit.flows.annotations import import_annotations
from streetaudit.flows.detect_split import split_dataset
from streetaudit.flows.ground_truth import merge_annotations
from streetaudit.flows.label_options import ImportOptions, MergeOptions, SplitOptions
from streetaudit.flows.raters import add_rater
from streetaudit.testing.sample_rows import add_images

CASES = [
    (ImportOptions, import_annotations, ("annotations", "import"), {"fmt": "--format"}),
    (MergeOptions, merge_annotations, ("annotations", "merge"), {}),
    (SplitOptions, split_dataset, ("detect", "split"), {}),
]


def command(*path: str):
    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]
    return group


@pytest.mark.parametrize(("model", "function", "path", "flags"), CASES)
def test_every_option_reaches_the_function_and_the_command(model, function, path, flags):
    parameters = inspect.signature(function).parameters
    options = {opt for p in command(*path).params for opt in p.opts}
    for field, info in model.model_fields.items():
        assert field in parameters, f"{function.__name__} lacks {field}"
        default = parameters[field].default
        if field != "ground_truth":  # required on the command line, positional in the function
            assert info.get_default() == default, field
        assert flags.get(field, f"--{field.replace('_', '-')}") in options, field


def test_label_flow_imports_then_merges(prefect_harness, fresh_db_url, tmp_path):
    from streetaudit.flows.label import label_flow

    path = tmp_path / "flow_a.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    add_images(fresh_db_url, [path])
    add_rater(fresh_db_url, "flo")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "flow_a.xml").write_text(
        "<annotation><filename>flow_a.png</filename><object><name>window</name>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object></annotation>"
    )
    result = label_flow(
        str(labels), "flow-gt", ImportOptions(rater="flo"), MergeOptions(method="union"), url=fresh_db_url
    )
    assert result["boxes"] == 1
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute(
            "SELECT label, x1, y1, x2, y2, n_raters FROM streetaudit.ground_truth_box WHERE ground_truth_id = %s",
            (result["ground_truth_id"],),
        ).fetchall() == [("window", 1, 2, 10, 12, 1)]
