"""`annotations import|merge|export|list` and `detect split` from the command line."""

from __future__ import annotations

import numpy as np
import psycopg
from PIL import Image

from streetaudit.flows.raters import add_rater
from streetaudit.testing.sample_rows import add_images

VOC = """<annotation><filename>{name}</filename><size><width>40</width><height>30</height><depth>3</depth></size>
{objects}</annotation>"""
OBJECT = "<object><name>{0}</name><bndbox><xmin>{1}</xmin><ymin>{2}</ymin><xmax>{3}</xmax><ymax>{4}</ymax></bndbox></object>"


def write_voc(folder, name, boxes):
    folder.mkdir(parents=True, exist_ok=True)
    objects = "".join(OBJECT.format(*b) for b in boxes)
    (folder / (name.rsplit(".", 1)[0] + ".xml")).write_text(VOC.format(name=name, objects=objects))


def test_import_merge_split_export_list(cli, db_url, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    paths = []
    for i in range(6):
        paths.append(store / f"cli_{i}.png")
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(paths[-1])
    add_images(db_url, paths)
    add_rater(db_url, "ann")
    add_rater(db_url, "ben")
    for rater, shift in (("ann", 0), ("ben", 1)):
        for i in range(6):
            write_voc(
                tmp_path / rater, f"cli_{i}.png", [("window", 2 + shift, 2, 12 + shift, 12)] if i % 2 else []
            )
        result = cli(
            "annotations", "import", tmp_path / rater, "--format", "voc", "--rater", rater, "--no-progress"
        )
        assert result.exit_code == 0, result.output
        assert "imported 3 boxes on 6 images" in result.output

    result = cli("annotations", "merge", "--name", "cli-gt", "--method", "median", "--min-raters", "2")
    assert result.exit_code == 0, result.output
    assert "cli-gt" in result.output and "6 images" in result.output and "3 boxes" in result.output
    with psycopg.connect(db_url) as conn:
        boxes = conn.execute(
            "SELECT x1, x2, n_raters FROM streetaudit.ground_truth_box ORDER BY image_id"
        ).fetchall()
    assert boxes == [(2.5, 12.5, 2)] * 3

    result = cli(
        "detect", "split", "--ground-truth", "cli-gt", "--name", "cli-ds", "--test", "0.5", "--val", "0"
    )
    assert result.exit_code == 0, result.output
    assert "dataset cli-ds" in result.output

    out = tmp_path / "out"
    result = cli("annotations", "export", "--format", "coco", "--out", out, "--ground-truth", "cli-gt")
    assert result.exit_code == 0, result.output
    assert (out / "annotations.json").exists() and "3 boxes on 6 images" in result.output

    result = cli("annotations", "list")
    assert "ann 6 images 3 boxes window 3" in " ".join(result.output.split())


def test_import_problems_are_listed_and_exit_2(cli, db_url, tmp_path):
    write_voc(tmp_path / "bad", "nothing_like_it.png", [("window", 1, 1, 5, 5)])
    result = cli("annotations", "import", tmp_path / "bad", "--format", "voc", "--no-progress")
    assert result.exit_code == 2
    assert "nothing_like_it.xml: image 'nothing_like_it.png' matches no image" in result.output.replace(
        "\n", ""
    )
    assert "nothing imported" in result.output
    result = cli("annotations", "import", tmp_path / "bad", "--format", "pascal")
    assert result.exit_code == 2 and "--format must be one of voc, yolo, coco" in result.output
    result = cli("detect", "split", "--ground-truth", "nope", "--name", "x")
    assert result.exit_code == 2 and "nope" in result.output


def test_label_campaign_settings_from_the_command_line(cli, db_url):
    shown = cli("annotations", "campaign")
    assert shown.exit_code == 0 and "window, roof, ornament" in shown.output
    changed = cli("annotations", "campaign", "--labels", "window,cornice", "--top-n", "50")
    assert changed.exit_code == 0 and "window, cornice" in changed.output and "top 50" in changed.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT labels, top_n FROM streetaudit.label_campaign").fetchone() == (
            ["window", "cornice"],
            50,
        )
    refused = cli("annotations", "campaign", "--top-n", "0")
    assert refused.exit_code == 2
