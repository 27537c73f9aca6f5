"""Box files in and out: VOC, YOLO and COCO round trips against hand-made files, matching by
manifest, name and SHA-256, clipping, all-or-nothing problem reports, re-import replaces."""

from __future__ import annotations

import csv
import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from streetaudit.flows.annotations import ImportProblems, export_annotations, import_annotations
from streetaudit.flows.errors import InputError
from streetaudit.flows.raters import add_rater
from streetaudit.testing.sample_rows import add_images

W, H = 64, 48


def make_images(db_url: str, folder: Path, names: list[str]) -> tuple[list[Path], list[int]]:
    """Small PNGs of distinct grey levels and their image rows (size left to be read from the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        Image.fromarray(np.full((H, W, 3), 40 * i + 10, np.uint8)).save(path)
        paths.append(path)
    return paths, add_images(db_url, paths)


@pytest.fixture(scope="module")
def alice(db_url: str) -> str:
    add_rater(db_url, "alice")
    add_rater(db_url, "bob")
    add_rater(db_url, "yuri")
    return "alice"


def current(db_url: str, image_ids: list[int]) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT a.image_id, r.name, a.label, a.x1, a.y1, a.x2, a.y2, a.source_row
               FROM streetaudit.annotation AS a LEFT JOIN streetaudit.rater AS r ON r.id = a.rater_id
               WHERE a.replaced_at IS NULL AND a.image_id = ANY(%s) ORDER BY a.image_id, a.source_row""",
            (image_ids,),
        ).fetchall()


VOC = """<annotation>
	<folder>top</folder>
	<filename>{name}</filename>
	<path>/home/rater/top/{name}</path>
	<source><database>Unknown</database></source>
	<size><width>64</width><height>48</height><depth>3</depth></size>
	<segmented>0</segmented>
	{objects}
</annotation>
"""
OBJECT = """<object><name>{label}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
	<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"""


def voc_file(folder: Path, name: str, boxes: list[tuple]) -> Path:
    objects = "".join(OBJECT.format(label=b[0], x1=b[1], y1=b[2], x2=b[3], y2=b[4]) for b in boxes)
    path = folder / (Path(name).stem + ".xml")
    path.write_text(VOC.format(name=name, objects=objects))
    return path


def test_voc_import_through_manifest_then_export_round_trips(db_url, alice, tmp_path):
    _, ids = make_images(db_url, tmp_path / "store", ["voc_a.png", "voc_b.png"])
    labels = tmp_path / "labels"
    labels.mkdir()
    # Files named as `ratings top` names them; only the manifest says which image each one is.
    voc_file(labels, f"0001_{ids[0]}.png", [("window", 3, 4, 20, 30), ("roof", 0, 0, 64, 10)])
    voc_file(labels, f"0002_{ids[1]}.png", [("window", 50, 40, 70, 60)])  # beyond the image: clipped
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"file,image_id,rank,score,rater\n0001_{ids[0]}.png,{ids[0]},1,1600,\n0002_{ids[1]}.png,{ids[1]},2,1590,\n"
    )
    report = import_annotations(db_url, labels, "voc", rater=alice, manifest=manifest)
    assert (report.files, report.images, report.boxes, report.clipped) == (2, 2, 3, 1)
    assert report.matched_by["manifest"] == 2
    assert current(db_url, ids) == [
        (ids[0], "alice", "window", 3, 4, 20, 30, 1),
        (ids[0], "alice", "roof", 0, 0, 64, 10, 2),
        (ids[1], "alice", "window", 50, 40, 64, 48, 1),
    ]
    out = tmp_path / "export"
    export_annotations(db_url, out, "voc", rater=alice)
    parsed = {}
    for xml in out.glob("*.xml"):
        root = ET.parse(xml).getroot()
        boxes = [
            (
                o.findtext("name"),
                *(float(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")),
            )
            for o in root.iter("object")
        ]
        assert (root.findtext("size/width"), root.findtext("size/height")) == ("64", "48")
        parsed[root.findtext("filename")] = boxes
    assert parsed["voc_a.png"] == [("window", 3, 4, 20, 30), ("roof", 0, 0, 64, 10)]
    assert parsed["voc_b.png"] == [("window", 50, 40, 64, 48)]
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert {r["file"]: int(r["image_id"]) for r in rows} == {"voc_a.png": ids[0], "voc_b.png": ids[1]}
    # The export imports again (matched by file name now) as the same boxes.
    again = import_annotations(db_url, out, "voc", rater="bob")
    assert again.matched_by["name"] == 2
    rows = current(db_url, ids)
    assert sorted(r[:1] + r[2:7] for r in rows if r[1] == "bob") == sorted(
        r[:1] + r[2:7] for r in rows if r[1] == "alice"
    )
    # Importing the same file again replaces, never duplicates.
    import_annotations(db_url, labels, "voc", rater=alice, manifest=manifest)
    assert len(current(db_url, ids)) == 6


def test_yolo_import_denormalises_and_export_round_trips(db_url, alice, tmp_path):
    _, ids = make_images(db_url, tmp_path / "store", ["yolo_a.png", "yolo_b.png"])
    labels = tmp_path / "yolo"
    labels.mkdir()
    (labels / "classes.txt").write_text("window\nornament\n")
    (labels / "yolo_a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.1 0.1\n")
    (labels / "yolo_b.txt").write_text("")  # looked at, nothing there: a negative
    report = import_annotations(db_url, labels, "yolo", rater="yuri")
    assert (report.files, report.boxes) == (2, 2)
    expected = [
        (ids[0], "yuri", "window", 0.375 * W, 0.25 * H, 0.625 * W, 0.75 * H, 1),
        (ids[0], "yuri", "ornament", 0.05 * W, 0.15 * H, 0.15 * W, 0.25 * H, 2),
    ]
    got = current(db_url, ids)
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    np.testing.assert_allclose([g[3:7] for g in got], [e[3:7] for e in expected])
    out = tmp_path / "export"
    export_annotations(db_url, out, "yolo", rater="yuri", labels=["window", "ornament"])
    assert (out / "classes.txt").read_text().split() == ["window", "ornament"]
    lines = [[float(v) for v in line.split()] for line in (out / "yolo_a.txt").read_text().splitlines()]
    np.testing.assert_allclose(lines, [[0, 0.5, 0.5, 0.25, 0.5], [1, 0.1, 0.2, 0.1, 0.1]], atol=1e-6)
    assert (out / "yolo_b.txt").read_text() == ""
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT boxes FROM streetaudit.annotated_image WHERE image_id = %s AND replaced_at IS NULL",
            (ids[1],),
        ).fetchall() == [(0,)]


def test_coco_import_and_export_agree_with_pycocotools(db_url, alice, tmp_path):
    from pycocotools.coco import COCO

    _, ids = make_images(db_url, tmp_path / "store", ["coco_a.png", "coco_b.png"])
    data = {
        "images": [
            {"id": 7, "file_name": "coco_a.png", "width": W, "height": H},
            {"id": 9, "file_name": "coco_b.png", "width": W, "height": H},
        ],
        "categories": [{"id": 3, "name": "roof"}, {"id": 5, "name": "window"}],
        "annotations": [
            {"id": 11, "image_id": 7, "category_id": 5, "bbox": [1.5, 2, 10, 12], "area": 120, "iscrowd": 0},
            {"id": 12, "image_id": 9, "category_id": 3, "bbox": [0, 0, 64, 8], "area": 512, "iscrowd": 0},
            {"id": 13, "image_id": 9, "category_id": 5, "bbox": [30, 20, 5, 5], "area": 25, "iscrowd": 0},
        ],
    }
    source = tmp_path / "in" / "instances.json"
    source.parent.mkdir()
    source.write_text(json.dumps(data))
    import_annotations(db_url, source, "coco", rater=alice)
    got = current(db_url, ids)
    assert got == [
        (ids[0], "alice", "window", 1.5, 2, 11.5, 14, 11),
        (ids[1], "alice", "roof", 0, 0, 64, 8, 12),
        (ids[1], "alice", "window", 30, 20, 35, 25, 13),
    ]
    out = tmp_path / "export"
    export_annotations(db_url, out, "coco", rater=alice)
    coco = COCO(str(out / "annotations.json"))
    by_file = {}
    for image in coco.dataset["images"]:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        by_file[image["file_name"]] = sorted((coco.cats[a["category_id"]]["name"], *a["bbox"]) for a in anns)
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        names = {c["id"]: c["name"] for c in data["categories"]}
        assert by_file[image["file_name"]] == sorted((names[a["category_id"]], *a["bbox"]) for a in anns)


def test_problems_are_reported_by_file_and_object_and_nothing_is_imported(db_url, alice, tmp_path):
    make_images(db_url, tmp_path / "store", ["bad_a.png", "bad_b.png"])
    labels = tmp_path / "labels"
    labels.mkdir()
    good = voc_file(labels, "bad_a.png", [("window", 1, 1, 10, 10)])
    mixed = voc_file(
        labels, "bad_b.png", [("window", 1, 1, 10, 10), ("chimney", 2, 2, 9, 9), ("window", 5, 5, 5, 20)]
    )
    lost = voc_file(labels, "nowhere.png", [("window", 1, 1, 10, 10)])
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM streetaudit.annotation").fetchone()[0]
    with pytest.raises(ImportProblems) as caught:
        import_annotations(db_url, labels, "voc", rater=alice, labels=["window", "roof"])
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith(f"{mixed} object 2: label 'chimney'") for p in problems)
    assert any(p.startswith(f"{mixed} object 3: box") and "no area" in p for p in problems)
    assert any(p.startswith(f"{lost}: image 'nowhere.png' matches no image") for p in problems)
    assert str(good) not in " ".join(problems)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.annotation").fetchone()[0] == before


def test_reimport_replaces_that_raters_boxes_from_that_file_and_keeps_the_old_rows(db_url, alice, tmp_path):
    _, ids = make_images(db_url, tmp_path / "store", ["again_a.png"])
    labels = tmp_path / "labels"
    labels.mkdir()
    voc_file(labels, "again_a.png", [("window", 1, 1, 10, 10), ("window", 20, 1, 30, 10)])
    import_annotations(db_url, labels, "voc", rater="bob")
    import_annotations(db_url, labels, "voc", rater=alice)
    voc_file(labels, "again_a.png", [("roof", 0, 0, 64, 5)])
    report = import_annotations(db_url, labels, "voc", rater=alice)
    assert report.replaced == 2
    assert sorted((r[1], r[2]) for r in current(db_url, ids)) == [
        ("alice", "roof"),
        ("bob", "window"),
        ("bob", "window"),
    ]
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*), count(replaced_at) FROM streetaudit.annotation WHERE image_id = %s", (ids[0],)
        ).fetchone() == (5, 2)


def test_a_renamed_file_is_matched_by_the_sha256_of_the_image_beside_it(db_url, alice, tmp_path):
    paths, ids = make_images(db_url, tmp_path / "store", ["sha_a.png"])
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE streetaudit.image SET sha256 = %s WHERE id = %s",
            (hashlib.sha256(paths[0].read_bytes()).hexdigest(), ids[0]),
        )
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "renamed.png").write_bytes(paths[0].read_bytes())
    voc_file(labels, "renamed.png", [("window", 1, 1, 10, 10)])
    report = import_annotations(db_url, labels, "voc", rater=alice)
    assert report.matched_by["sha256"] == 1
    assert [r[0] for r in current(db_url, ids)] == [ids[0]]


def test_unknown_rater_and_format_are_input_errors(db_url, alice, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    make_images(db_url, tmp_path / "store", ["who_a.png"])
    voc_file(labels, "who_a.png", [("window", 1, 1, 10, 10)])
    with pytest.raises(InputError, match="rater carol unknown"):
        import_annotations(db_url, labels, "voc", rater="carol")
    with pytest.raises(InputError, match="--format must be one of"):
        import_annotations(db_url, labels, "pascal", rater=alice)


def test_a_corrected_coco_file_replaces_boxes_of_images_it_no_longer_lists(db_url, alice, tmp_path):
    _, ids = make_images(db_url, tmp_path / "store", ["fix_a.png", "fix_b.png"])
    images = [
        {"id": n, "file_name": f"fix_{c}.png", "width": W, "height": H} for n, c in ((1, "a"), (2, "b"))
    ]
    boxes = [{"id": n, "image_id": n, "category_id": 1, "bbox": [1, 1, 5, 5]} for n in (1, 2)]
    source = tmp_path / "fix.json"
    source.write_text(
        json.dumps({"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "window"}]})
    )
    import_annotations(db_url, source, "coco", rater="yuri")
    assert [r[0] for r in current(db_url, ids)] == ids
    source.write_text(
        json.dumps(
            {"images": images[:1], "annotations": boxes[:1], "categories": [{"id": 1, "name": "window"}]}
        )
    )
    report = import_annotations(db_url, source, "coco", rater="yuri")
    assert report.replaced == 2
    assert [r[0] for r in current(db_url, ids)] == [ids[0]]


def test_the_manifest_names_the_rater_of_a_per_rater_list(db_url, alice, tmp_path):
    _, ids = make_images(db_url, tmp_path / "store", ["who_list.png"])
    labels = tmp_path / "labels" / "bob"
    labels.mkdir(parents=True)
    voc_file(labels, f"0001_{ids[0]}.png", [("window", 1, 1, 10, 10)])
    manifest = tmp_path / "labels" / "manifest.csv"
    manifest.write_text(f"file,image_id,rank,score,rater\nbob/0001_{ids[0]}.png,{ids[0]},1,1500,bob\n")
    import_annotations(db_url, labels, "voc", manifest=manifest)
    assert [r[1] for r in current(db_url, ids)] == ["bob"]
